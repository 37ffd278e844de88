"""The host names ``diffwatch app`` answers to, and how a Host header is matched (pure)."""

from __future__ import annotations

import pytest

from diffwatch.app.guard import host_allowed
from diffwatch.app_defaults import allowed_hosts, streamlit_options
from diffwatch.cli.app import streamlit_command

URL = "https://diffwatch.example.com/dash"


def test_loopback_bind_answers_to_the_dashboard_url_and_localhost_only() -> None:
    hosts = allowed_hosts(URL, "127.0.0.1")
    assert hosts == ["diffwatch.example.com", "127.0.0.1", "localhost", "::1"]


def test_every_interface_adds_localhost_but_not_the_wildcard_address() -> None:
    assert allowed_hosts(URL, "0.0.0.0") == ["diffwatch.example.com", "localhost", "127.0.0.1",
                                             "::1"]  # fmt: skip
    assert "::" not in allowed_hosts(URL, "::")


def test_a_specific_address_and_extra_names() -> None:
    hosts = allowed_hosts(URL, "10.1.2.3", ["Dash.Internal.", "*.corp.example"])
    assert hosts == ["diffwatch.example.com", "10.1.2.3", "dash.internal", "*.corp.example"]


@pytest.mark.parametrize(
    ("host", "ok"),
    [
        ("diffwatch.example.com", True),
        ("DIFFWATCH.example.com:443", True),
        ("diffwatch.example.com.", True),
        ("127.0.0.1:8501", True),
        ("[::1]:8501", True),
        ("localhost", True),
        ("evil.example", False),
        ("diffwatch.example.com.evil.example", False),
        ("127.0.0.1.nip.io", False),
        ("user@localhost", False),
        ("localhost:notaport", False),
        ("localhost/path", False),
        ("", False),
        (None, False),
    ],
)
def test_host_header_matching(host, ok) -> None:
    assert host_allowed(host, allowed_hosts(URL, "127.0.0.1")) is ok


def test_wildcards_and_an_empty_list() -> None:
    assert host_allowed("a.corp.example", ["*.corp.example"])
    assert not host_allowed("corp.example.evil", ["*.corp.example"])
    assert host_allowed("anything", ["*"])
    assert host_allowed("anything", [])  # Streamlit's default: no check


def test_the_command_line_repeats_list_options() -> None:
    cmd = streamlit_command(8501, "127.0.0.1", streamlit_options(URL, "127.0.0.1"))
    assert cmd[cmd.index("--client.showErrorDetails") + 1] == "none"
    hosts = [cmd[i + 1] for i, a in enumerate(cmd) if a == "--server.allowedHosts"]
    assert hosts == ["diffwatch.example.com", "127.0.0.1", "localhost", "::1"]
    assert cmd[4].endswith("diffwatch/app/server.py")

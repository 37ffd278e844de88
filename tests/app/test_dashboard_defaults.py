"""The defaults ``diffwatch app`` serves with, against a real server on loopback.

Allowed hosts (DNS rebinding), no anonymous ``/_stcore/metrics``, no traceback or file path
in the page for crafted URLs or a failing page (an error id instead, its traceback in the
server log), and no session token left in the page's DOM after login. Real Chromium.
"""

from __future__ import annotations

import http.client
import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest

from tests.app.accounts import PW, add_account
from tests.app.dataset import seed
from tests.app.server import CHROMIUM, REPO, log_in, serve
from tests.app.test_drift_page import seed_drift

DASHBOARD_HOST = "dash.example.test"


def get(base: str, path: str, host: str | None = None, **headers: str) -> int:
    """The status of a GET of ``path`` on the server at ``base``, with Host ``host``."""
    u = urlsplit(base)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
    try:
        conn.putrequest("GET", path, skip_host=host is not None)
        if host is not None:
            conn.putheader("Host", host)
        for k, v in headers.items():
            conn.putheader(k.replace("_", "-"), v)
        conn.endheaders()
        return conn.getresponse().status
    finally:
        conn.close()


def websocket_status(base: str, host: str) -> int:
    """The status of a WebSocket handshake on Streamlit's stream (101: accepted)."""
    return get(
        base,
        "/_stcore/stream",
        host,
        Upgrade="websocket",
        Connection="Upgrade",
        Sec_WebSocket_Key="dGhlIHNhbXBsZSBub25jZQ==",
        Sec_WebSocket_Version="13",
        Sec_WebSocket_Protocol="streamlit",
    )


@pytest.fixture
def server(db_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[str]:
    monkeypatch.setenv("DIFFWATCH_DASHBOARD_URL", f"https://{DASHBOARD_HOST}/diffwatch")
    with serve(db_url, log=tmp_path / "server.log") as base:
        yield base


@pytest.mark.slow
def test_a_foreign_host_header_is_refused(server: str) -> None:
    """DNS rebinding: a page on evil.example whose name now points at 127.0.0.1."""
    port = urlsplit(server).port
    for host in ("evil.example", f"evil.example:{port}", "127.0.0.1.evil.example"):
        for path in ("/", "/overview", "/_stcore/health", "/_stcore/host-config"):
            status = get(server, path, host)
            assert 400 <= status < 500, (host, path, status)
        assert 400 <= websocket_status(server, host) < 500, host
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", DASHBOARD_HOST):
        assert get(server, "/", host) == 200, host
        assert get(server, "/_stcore/health", host) == 200, host
        assert websocket_status(server, host) == 101, host


@pytest.mark.slow
def test_metrics_are_not_served_to_anyone(server: str) -> None:
    for path in ("/_stcore/metrics", "/_stcore/metrics?families=session_events_total"):
        status = get(server, path)
        assert 400 <= status < 500, (path, status)


def _assert_no_traceback(html: str, text: str) -> None:
    leaks = ("Traceback", 'File "', str(REPO), ".py", "site-packages", "ValueError",
             "OverflowError", "UndefinedTable")  # fmt: skip
    for leak in leaks:
        assert leak not in text, leak
        assert leak not in html, leak


@pytest.mark.slow
def test_crafted_urls_show_a_plain_message_and_no_traceback(
    server: str, conninfo: str, tmp_path: Path
) -> None:
    from playwright.sync_api import sync_playwright

    seed(conninfo, tmp_path / "images")
    seed_drift(conninfo, tmp_path / "drift")
    add_account(conninfo, "olga", "ops")
    crafted = [  # url, a plain message that the page shows instead
        ("overview?from=0001-01-01T00:00&to=9999-12-31T23:59", "outside the times"),
        ("drift?run=%C2%B2", "not a valid id"),
        ("drift?range=30d&run=1234567890123456789012", "not a valid id"),
        ("cost?range=%5Bclick%5D(http://evil.example)", "unknown time range"),
    ]
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 1600})
        log_in(page, server, "olga", PW)
        for url, message in crafted:
            page.goto(f"{server}/{url}", wait_until="networkidle")
            page.get_by_text("Logged in as olga (ops)").wait_for(timeout=60_000)
            page.get_by_text(message).first.wait_for(timeout=60_000)
            page.wait_for_timeout(500)
            assert page.locator("[data-testid='stException']").count() == 0, url
            _assert_no_traceback(page.content(), page.inner_text("body"))
            assert "evil.example" not in page.inner_text("body"), url
            assert page.locator("a[href*='evil.example']").count() == 0, url
        browser.close()


@pytest.mark.slow
def test_a_failing_page_shows_an_error_id_and_logs_its_traceback(
    db_url: str, conninfo: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A page that raises (here: a table gone) shows an id; the server log has the rest."""
    from playwright.sync_api import sync_playwright

    add_account(conninfo, "olga", "ops")
    log = tmp_path / "server.log"
    with serve(db_url, log=log) as base, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 1600})
        log_in(page, base, "olga", PW)
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute("ALTER TABLE rollup_generations RENAME TO rollup_generations_gone")
        try:
            page.goto(f"{base}/cost?range=7d", wait_until="networkidle")
            page.get_by_text("error id").first.wait_for(timeout=60_000)
            page.wait_for_timeout(500)
            body = page.inner_text("body")
        finally:
            with psycopg.connect(conninfo, autocommit=True) as conn:
                conn.execute("ALTER TABLE rollup_generations_gone RENAME TO rollup_generations")
        assert page.locator("[data-testid='stException']").count() == 0
        _assert_no_traceback(page.content(), body)
        assert "rollup_generations" not in body  # not even the database's message
        found = re.search(r"error id ([0-9a-f]{8,})", body)
        assert found, body
        browser.close()
    logged = log.read_text()
    at = logged.index(found.group(1))
    assert "Traceback" in logged[at:] and "rollup_generations" in logged[at:]


@pytest.mark.slow
def test_no_script_with_the_session_token_stays_in_the_page(
    db_url: str, conninfo: str, tmp_path: Path
) -> None:
    from playwright.sync_api import sync_playwright

    add_account(conninfo, "olga", "ops")
    with serve(db_url) as base, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        log_in(page, base, "olga", PW)
        page.wait_for_timeout(1000)
        token = {c["name"]: c for c in page.context.cookies()}["diffwatch_session"]["value"]
        assert len(token) >= 40  # the cookie was set
        scripts = page.eval_on_selector_all("script", "els => els.map(e => e.textContent)")
        assert not [s for s in scripts if token in s]
        assert token not in page.content()
        # The cookie still works: a reload (a new Streamlit session) is still logged in.
        page.goto(f"{base}/cost", wait_until="networkidle")
        page.get_by_text("Logged in as olga (ops)").wait_for(timeout=60_000)
        assert token not in page.content()
        # Logging out deletes it the same way, leaving no script behind either.
        page.get_by_role("button", name="Log out").click()
        page.get_by_text("You are logged out.").wait_for(timeout=60_000)
        page.wait_for_timeout(1000)
        assert "diffwatch_session" not in {c["name"] for c in page.context.cookies()}
        assert "diffwatch_session=" not in page.content()
        browser.close()

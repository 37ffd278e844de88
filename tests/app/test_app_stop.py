"""Stopping ``diffwatch app`` stops its Streamlit server too (nothing left serving)."""

from __future__ import annotations

import time
import urllib.request

import pytest

from tests.app.server import serve


def _answers(base: str) -> bool:
    try:
        with urllib.request.urlopen(f"{base}/_stcore/health", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


@pytest.mark.slow
def test_sigterm_to_diffwatch_app_stops_the_streamlit_server(db_url: str) -> None:
    with serve(db_url) as base:  # serve() ends with SIGTERM to `diffwatch app`
        assert _answers(base)
    deadline = time.monotonic() + 15
    while _answers(base) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not _answers(base), "the Streamlit server outlived `diffwatch app`"

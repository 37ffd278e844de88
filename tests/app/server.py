"""A real ``diffwatch app`` server for browser tests, and logging in to it with Playwright."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import stop_process

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serve(db_url: str, log: Path | None = None) -> Iterator[str]:
    """Start ``diffwatch app`` on ``db_url``; yield its base URL once it answers.

    ``log``: a file that gets the server's output (its log), for tests that read it.
    """
    port = free_port()
    out = open(log, "w") if log else subprocess.PIPE  # noqa: SIM115 (closed below)
    proc = subprocess.Popen(
        [sys.executable, "-m", "diffwatch.cli", "app", "--port", str(port),
         "--database-url", db_url],
        cwd=REPO, stdout=out, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        try:
            with urllib.request.urlopen(f"{base}/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    break
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            said = proc.stdout.read() if proc.stdout else log.read_text() if log else ""
            pytest.fail(f"diffwatch app did not come up on {base}:\n{said}")
        time.sleep(0.5)
    try:
        yield base
    finally:
        stop_process(proc)
        if log:
            out.close()  # type: ignore[union-attr]


def log_in(page: Any, base: str, username: str, password: str) -> None:
    """Log in through the login form of the app at ``base`` (a Playwright page)."""
    page.goto(f"{base}/", wait_until="networkidle")
    page.get_by_role("heading", name="Log in to diffwatch").wait_for(timeout=60_000)
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Log in").click()
    page.get_by_text(f"Logged in as {username}").wait_for(timeout=60_000)
    # The session cookie is set by a line of JavaScript that runs after the page shows the
    # login (diffwatch.app.session): a test that opens another URL must wait for it, or a
    # loaded machine sends that request without it and lands on the login form again.
    from diffwatch.app.session import COOKIE

    deadline = time.monotonic() + 60
    while not any(c["name"] == COOKIE for c in page.context.cookies()):
        assert time.monotonic() < deadline, "the session cookie was never set after the login"
        page.wait_for_timeout(100)

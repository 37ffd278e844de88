"""The Fairness page in a real browser: Debian's chromium driven by Playwright.

Starts ``diffwatch app`` on seeded bias-probe runs (``tests.app.bias_seed``), logs in as ops,
opens the page, waits for its charts and its example images, checks that the "perceived"
wording is on screen and that a hostile model name and term stay inert, and saves a
screenshot as ``fairness.png`` under ``test-results/screenshots`` (or
``$DIFFWATCH_SCREENSHOTS``, e.g. docs/screenshots).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.app.accounts import PW, add_account
from tests.app.bias_seed import seed_bias
from tests.app.server import CHROMIUM, REPO, log_in, serve

WAIT_MS = 60_000
HOSTILE = "<script>window.__xss=1</script> **bold** [a](javascript:alert(1))"


@pytest.fixture
def served(db_url: str, conninfo: str, tmp_path: Path) -> Iterator[str]:
    seed_bias(conninfo, tmp_path / "bias")
    add_account(conninfo, "olga", "ops")
    with serve(db_url) as base:
        yield base


def _open(page, url: str) -> None:
    page.goto(url, wait_until="networkidle")
    page.get_by_role("heading", name="Fairness").first.wait_for(timeout=WAIT_MS)
    # the bars, the trend: each plot's own SVG
    page.locator(".js-plotly-plot").nth(1).locator(".main-svg").first.wait_for(timeout=WAIT_MS)
    page.locator("[data-testid='stImage'] img").nth(11).wait_for(timeout=WAIT_MS)
    page.wait_for_timeout(1000)  # Plotly's transitions, Streamlit's last deltas
    assert page.locator("[data-testid='stException']").count() == 0


@pytest.mark.slow
def test_fairness_page_in_chromium(served: str) -> None:
    from playwright.sync_api import sync_playwright

    assert CHROMIUM, "Debian's chromium is needed: apt-get install chromium (make test does it)"
    shots = Path(os.environ.get("DIFFWATCH_SCREENSHOTS", REPO / "test-results" / "screenshots"))
    shots.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        # Streamlit scrolls inside its main block, so a tall window shows the whole page.
        page = browser.new_page(viewport={"width": 1400, "height": 4300})
        log_in(page, served, "olga", PW)
        page.get_by_role("link", name="Fairness").wait_for(timeout=WAIT_MS)  # in the navigation
        _open(page, f"{served}/fairness")
        body = page.inner_text("body")
        assert "perceived" in body and "never a fact about a person" in body
        charts = "\n".join(page.locator(".js-plotly-plot").all_text_contents())
        assert "v1" in charts and "v2" in charts and "doctor" in charts
        page.screenshot(path=str(shots / "fairness.png"))
        browser.close()


@pytest.mark.slow
def test_a_hostile_model_and_term_stay_inert_in_chromium(
    db_url: str, conninfo: str, tmp_path: Path
) -> None:
    from playwright.sync_api import sync_playwright

    assert CHROMIUM, "Debian's chromium is needed: apt-get install chromium (make test does it)"
    seed_bias(conninfo, tmp_path / "bias", model=HOSTILE, hostile_term=HOSTILE, failed=False)
    add_account(conninfo, "olga", "ops")
    dialogs: list[str] = []
    with serve(db_url) as base, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 4300})
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        log_in(page, base, "olga", PW)
        _open(page, f"{base}/fairness")
        assert page.evaluate("window.__xss") is None and dialogs == []
        assert page.locator('a[href^="javascript:"]').count() == 0
        assert page.locator("strong", has_text="bold").count() == 0
        assert page.locator("svg a").count() == 0  # no Plotly link from a name
        charts = "\n".join(page.locator(".js-plotly-plot").all_text_contents())
        assert "<script>window.__xss=1</script> **bold**" in charts  # shown as typed
        text = page.inner_text("body").replace("\u2060", "")
        assert f"model {HOSTILE}" in text  # the run's line, plain text
        browser.close()

"""The dashboard in a real browser: Debian's chromium driven by Playwright.

Starts ``diffwatch app`` on a seeded test database, opens every page, checks that its
charts rendered (Plotly's SVG is in the page) and saves a screenshot of each under
``test-results/screenshots`` (or ``$DIFFWATCH_SCREENSHOTS``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.app.accounts import PW, add_account
from tests.app.dataset import seed, seed_bulk
from tests.app.server import CHROMIUM, REPO, log_in, serve
from tests.app.test_drift_page import DriftIds, seed_drift

PAGES = [  # url path, title, least charts (Overview is the default page, at /)
    ("", "Overview", 1),
    ("overview", "Overview", 1),  # the default page answers at its own path too
    ("cost", "Cost", 2),
    ("latency", "Latency & throughput", 4),
    ("gpu", "GPU", 3),
    ("quality", "Quality & safety", 3),
    ("versions", "Model versions", 1),
    ("explorer?q=thing", "Generation explorer", 0),
    ("drift?range=30d", "Drift", 2),  # drift runs are days apart: a month
]


@pytest.fixture
def served(db_url: str, conninfo: str, tmp_path: Path) -> Iterator[str]:
    seed(conninfo, tmp_path / "images")
    seed_bulk(conninfo)
    add_account(conninfo, "olga", "ops")
    with serve(db_url) as base:
        yield base


@pytest.fixture
def drift_ids(served: str, conninfo: str, tmp_path: Path) -> DriftIds:
    """Drift runs of every kind, seeded after the dashboard data (its scores would clash)."""
    return seed_drift(conninfo, tmp_path / "drift")


@pytest.mark.slow
def test_every_page_renders_its_charts_in_chromium(served: str, drift_ids: DriftIds) -> None:
    from playwright.sync_api import sync_playwright

    assert CHROMIUM, "Debian's chromium is needed: apt-get install chromium (make test does it)"
    shots = Path(os.environ.get("DIFFWATCH_SCREENSHOTS", REPO / "test-results" / "screenshots"))
    shots.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        # Streamlit scrolls inside its main block, so a tall window shows the whole page.
        page = browser.new_page(viewport={"width": 1400, "height": 2400})
        log_in(page, served, "olga", PW)
        for path, title, least in PAGES:
            sep = "&" if "?" in path else "?"
            rng = "" if "range=" in path else f"{sep}range=24h"
            page.goto(f"{served}/{path}{rng}", wait_until="networkidle")
            page.get_by_role("heading", name=title).first.wait_for(timeout=60_000)
            if least:
                # Each plot has several .main-svg layers: wait for the last plot's own.
                plot = page.locator(".js-plotly-plot").nth(least - 1)
                plot.locator(".main-svg").first.wait_for(timeout=60_000)
            page.wait_for_timeout(800)  # let Plotly finish its transitions
            assert page.locator("[data-testid='stException']").count() == 0, path
            assert page.get_by_text("Page not found").count() == 0, path
            assert page.locator(".js-plotly-plot").count() >= least, path
            name = path.split("?")[0] or "overview"
            page.screenshot(path=str(shots / f"{name}.png"))
        # Drift drill-down: a re-generated item, its original and re-generated images.
        item = f"drift?run={drift_ids.regenerate}&item={drift_ids.flagged_item}&range=30d"
        page.goto(f"{served}/{item}", wait_until="networkidle")
        page.get_by_role("heading", name="Side by side").first.wait_for(timeout=60_000)
        page.locator("[data-testid='stImage'] img").nth(1).wait_for(timeout=60_000)
        assert page.locator("[data-testid='stException']").count() == 0
        # Streamlit scrolls inside its main block: bring the run's figures to the top.
        page.get_by_role("heading", name="One run").first.evaluate("e => e.scrollIntoView()")
        page.wait_for_timeout(800)
        page.screenshot(path=str(shots / "drift-output.png"))
        # Hostile prompts render as inert text: no script ran, no link was made.
        dialogs: list[str] = []
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        for path in ("quality?range=24h", "explorer?q=xss-probe&range=24h", item, "drift"):
            page.goto(f"{served}/{path}", wait_until="networkidle")
            # st.text: the prompt as plain text (the Drift page has it in a hidden tab too)
            shown = page.locator("[data-testid='stText']:visible", has_text="xss-probe <script>")
            shown.first.wait_for(timeout=60_000)
            page.wait_for_timeout(1000)
            assert page.evaluate("window.__xss") is None, path
            links = page.locator('a[href^="javascript:"], a[href^="data:"], a[href*="alert("]')
            assert links.count() == 0, path
            assert page.locator("img[src='x'], svg[onload], script:has-text('__xss')").count() == 0
            if path.startswith("quality"):  # the gallery shows every hostile prompt
                md = page.locator("[data-testid='stText']", has_text="**bold** _it_ # heading")
                assert md.count() >= 1, path
        assert dialogs == []
        # The filters live in the URL: a shared link reopens the same view.
        page.goto(f"{served}/?range=6h&version=v2", wait_until="networkidle")
        page.get_by_role("heading", name="Overview").first.wait_for(timeout=60_000)
        page.wait_for_timeout(500)
        assert "version=v2" in page.url and "range=6h" in page.url
        browser.close()


@pytest.mark.slow
def test_login_survives_a_reload_and_a_rater_sees_only_the_review_pages(
    db_url: str, conninfo: str, tmp_path: Path
) -> None:
    """The real browser: the login page for strangers, the session cookie across reloads,
    a rater's three-page navigation, typed URLs of other pages, and logging out."""
    from playwright.sync_api import sync_playwright

    seed(conninfo, tmp_path / "images")
    add_account(conninfo, "rita", "rater")
    with serve(db_url) as base, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"{base}/cost", wait_until="networkidle")
        page.get_by_role("heading", name="Log in to diffwatch").wait_for(timeout=60_000)
        assert page.get_by_role("heading", name="Cost").count() == 0
        assert page.locator("[data-testid='stSidebarNavLink']").count() == 0
        log_in(page, base, "rita", PW)
        page.get_by_role("heading", name="Review queue").wait_for(timeout=60_000)
        cookie = {c["name"]: c for c in page.context.cookies()}["diffwatch_session"]
        assert cookie["sameSite"] == "Strict" and len(cookie["value"]) >= 40
        links = page.locator("[data-testid='stSidebarNavLink']")
        assert sorted(links.all_inner_texts()) == ["My ratings", "Review queue", "Side-by-side"]
        for path in ("cost", "admin", "ratings", "overview"):
            page.goto(f"{base}/{path}", wait_until="networkidle")  # a reload: new session
            page.get_by_text("Logged in as rita (rater)").wait_for(timeout=60_000)
            page.get_by_text(f"Not allowed: page '{path}'").wait_for(timeout=60_000)
            assert page.get_by_role("heading").count() == 0, path  # nothing of the page
            assert page.locator("[data-testid='stSidebarNavLink']").count() == 3, path
        page.get_by_role("button", name="Log out").click()
        page.get_by_text("You are logged out.").wait_for(timeout=60_000)
        page.wait_for_timeout(500)
        page.goto(f"{base}/my-ratings", wait_until="networkidle")
        page.get_by_role("heading", name="Log in to diffwatch").wait_for(timeout=60_000)
        assert page.get_by_role("heading", name="My ratings").count() == 0
        browser.close()

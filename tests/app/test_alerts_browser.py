"""The Alerts page in a real browser: Debian's chromium driven by Playwright.

Seeds rules in every state, some history and a failed email, opens the page as an admin,
checks that the states, rules and deliveries are drawn, and saves a screenshot under
``test-results/screenshots`` (or ``$DIFFWATCH_SCREENSHOTS``, e.g. docs/screenshots).
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest

from tests.app.accounts import PW, add_account
from tests.app.server import CHROMIUM, REPO, log_in, serve
from tests.app.test_alerts_page import NOW, add_event, add_rule, failed_delivery, rule, set_state

WAIT_MS = 60_000


def seed_alerts(conninfo: str) -> None:
    """Five rules: firing, pending, no data (with an error), normal and never evaluated."""
    hot = add_rule(
        conninfo,
        rule("canary p95 latency", deployments=["canary"], severity="critical",
             recipients=["oncall@example.com", "ml-ops@example.com"]),
    )  # fmt: skip
    nsfw = add_rule(conninfo, rule("NSFW rate", metric="nsfw_rate", threshold=0.05, **{"for": 0}))
    ratings = add_rule(
        conninfo,
        rule("human ratings drop", metric="human_rating_mean", comparison="<", threshold=3.2,
             window="1d", alert_on_no_data=True, severity="info"),
    )  # fmt: skip
    idle = add_rule(
        conninfo, rule("GPU idle share", metric="gpu_idle_share", threshold=0.4, window="1h")
    )
    add_rule(conninfo, rule("fleet cost per image", metric="cost_per_image_fleet",
                            threshold=0.004, window="6h"))  # fmt: skip
    set_state(conninfo, hot, "firing", 6120.0, since=NOW - timedelta(minutes=12))
    set_state(conninfo, nsfw, "pending", 0.071, since=NOW - timedelta(minutes=3))
    set_state(conninfo, ratings, "no_data", None, error="no ratings in the last 1d")
    set_state(conninfo, idle, "normal", 0.18, since=NOW - timedelta(hours=5))
    for minutes, frm, to, value in ((30, "normal", "pending", 5300), (22, "pending", "firing",
                                    6120), (8, "firing", "firing", 6350)):  # fmt: skip
        add_event(conninfo, hot, NOW - timedelta(minutes=minutes), frm, to, value)
    failed_delivery(conninfo, hot, "canary p95 latency")
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("UPDATE alert_events SET note = 'repeat email' WHERE from_state = to_state")


@pytest.mark.slow
def test_alerts_page_renders_states_and_failed_emails_in_chromium(
    db_url: str, conninfo: str
) -> None:
    from playwright.sync_api import sync_playwright

    assert CHROMIUM, "Debian's chromium is needed: apt-get install chromium (make test does it)"
    seed_alerts(conninfo)
    add_account(conninfo, "ada", "admin")
    shots = Path(os.environ.get("DIFFWATCH_SCREENSHOTS", REPO / "test-results" / "screenshots"))
    shots.mkdir(parents=True, exist_ok=True)
    with serve(db_url) as base, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        # Streamlit scrolls inside its main block, so a tall window shows the whole page.
        page = browser.new_page(viewport={"width": 1500, "height": 2300})
        log_in(page, base, "ada", PW)
        page.goto(f"{base}/alerts", wait_until="networkidle")
        page.get_by_role("heading", name="Alerts").first.wait_for(timeout=WAIT_MS)
        page.get_by_role("heading", name="Email deliveries").wait_for(timeout=WAIT_MS)
        page.locator("[data-testid='stDataFrame']").nth(3).wait_for(timeout=WAIT_MS)
        page.wait_for_timeout(1500)  # the data grids draw on a canvas after they mount
        assert page.locator("[data-testid='stException']").count() == 0
        assert page.get_by_text("Page not found").count() == 0
        metrics = page.locator("[data-testid='stMetricValue']").all_inner_texts()
        assert metrics[:4] == ["1", "1", "1", "5"]  # firing, pending, no data, rules
        assert page.get_by_text("1 email delivery failed").count() == 1
        assert page.get_by_role("button", name="Retry now").count() == 1
        # Glide data grids keep their cells in an accessible table beside the canvas.
        grid = page.locator("[data-testid='stDataFrame']").first
        cells = grid.locator("[role='gridcell']").all_inner_texts()
        assert "▲ FIRING" in cells and "6,120 ms" in cells and "> 5,000 ms" in cells
        assert "○ no data" in cells and "no ratings in the last 1d" in cells
        page.screenshot(path=str(shots / "alerts.png"), full_page=True)
        browser.close()

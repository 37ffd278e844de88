"""Every dashboard page on a small but complete ``diffwatch demo`` database, in Chromium.

The demo runs through the CLI as ``make demo`` runs it (its own ``DIFFWATCH_HOME``, default
image roots, no real CLIP weights, so the demo CLIP scores), then a real ``diffwatch app``
serves it. Admin visits every page in its default view and each one must show data: no
"n/a", "not measured", "not configured", "Page not found", no error, no "nothing in this
range" notice. Where a 2-hour demo deliberately has none, the exception is listed in
``ALLOWED`` with the reason.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from diffwatch.db import migrate
from diffwatch.db.engine import raw_conninfo
from tests.app.server import CHROMIUM, REPO, log_in, serve

DEMO = ["--hours", "2", "--rate", "20", "--score-limit", "300", "--seed", "5"]
DEMO_TIMEOUT_S = 1200  # 3 min on 2 busy cores (2 of them the drift checks' tiny pipeline),
# plus the demo CLIP's training on the session's first demo run (tests/conftest.py shares it)

# Anywhere on a page, these say that something is missing or broke.
FORBIDDEN = {
    "n/a": re.compile(r"\bn/a\b"),
    "not measured": re.compile(r"not measured", re.I),
    "not configured": re.compile(r"not configured", re.I),
    "page not found": re.compile(r"Page not found"),
    "error": re.compile(r"Something went wrong|error id|Traceback"),
    "empty range": re.compile(r"in this (time )?range"),
    "not yet": re.compile(r"\byet\b"),
    "no data": re.compile(r"no data", re.I),
    "not enough data": re.compile(r"not enough data"),
    "not scored": re.compile(r"Not scored"),
    "image unavailable": re.compile(r"image unavailable"),
}
# (page, forbidden key): why the demo deliberately shows it there.
ALLOWED = {
    # The verdict needs 100 CLIP scores, 200 NSFW results and 50 rated images a side; a
    # 2-hour demo scores 300 images (about 35 of the canary) and rates about 80. Latency,
    # errors and cost have their verdicts (checked below).
    ("versions", "not enough data"): "the 2-hour demo is too small for scores and ratings",
    # "No data" is a state and its count tile on the Alerts page, and "Alert on no data" a
    # rule option: always there, whatever the states.
    ("alerts", "no data"): "a tile, a column and a rule option are named so",
    # The default view shows the newest generation; the even scoring sample of 300 in 2,600
    # rarely holds it. A rated generation is checked below: it must show scores.
    ("explorer", "not yet"): "the newest generation is rarely in the scoring sample",
    ("explorer", "not scored"): "the newest generation is rarely in the scoring sample",
    # NSFW precision and recall need a flagged image; NudeNet flags about 0.5 % of the
    # demo's drawings, so 300 scores of a 2-hour demo usually hold none ("–", "undefined").
    ("ratings", "metric –"): "no NSFW-flagged image among 300 scores",
}
PAGES: list[tuple[str, str, int]] = [  # url path, title, least Plotly charts
    ("", "Overview", 1),
    ("overview", "Overview", 1),  # the default page also answers at its own path
    ("cost", "Cost", 2),
    ("latency", "Latency & throughput", 4),
    ("gpu", "GPU", 3),
    ("quality", "Quality & safety", 4),
    ("versions", "Model versions", 1),
    ("explorer", "Generation explorer", 0),
    ("drift", "Drift", 2),
    ("alerts", "Alerts", 0),
    ("ratings", "Rating analytics", 2),
    ("review", "Review queue", 0),
    ("admin", "Accounts & audit log", 0),
]


def run_demo(home: Path, db_url: str) -> dict[str, Any]:
    """``diffwatch demo`` in a subprocess with its own home; its JSON summary."""
    env = os.environ | {
        "DIFFWATCH_HOME": str(home),
        "HF_HUB_CACHE": str(home / "hf"),  # no real CLIP weights: the demo CLIP scores
        "HF_HUB_OFFLINE": "1",
    }
    env.pop("DIFFWATCH_IMAGE_ROOTS", None)  # the defaults, as after `make demo`
    res = subprocess.run(
        [sys.executable, "-m", "diffwatch.cli", "demo", *DEMO, "--database-url", db_url,
         "--json"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=DEMO_TIMEOUT_S,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-4000:]
    return json.loads(res.stdout.strip().splitlines()[-1])


def passwords(credentials: Path) -> dict[str, str]:
    """username → password from the demo's credentials file."""
    rows = [ln.split() for ln in credentials.read_text().splitlines()]
    return {r[0]: r[2] for r in rows if len(r) == 3 and r[1] in ("admin", "ops", "rater")}


def settle(page: Any, timeout_s: float = 90) -> None:
    """Wait until Streamlit has finished running the page's script (and stays so: a page
    that writes its filters to the URL reruns once)."""
    deadline = time.monotonic() + timeout_s
    calm = 0
    while calm < 4:
        assert time.monotonic() < deadline, "the page kept running"
        state = page.evaluate(
            "() => document.querySelector('[data-testid=stApp]')"
            "?.getAttribute('data-test-script-state')"
        )
        calm = calm + 1 if state == "notRunning" else 0
        page.wait_for_timeout(300)


def open_page(page: Any, url: str, title: str, least: int) -> str:
    """Open ``url``, wait for its title, charts and the end of the run; its main text."""
    page.goto(url, wait_until="networkidle")
    page.get_by_role("heading", name=title).first.wait_for(timeout=90_000)
    if least:
        page.locator(".js-plotly-plot").nth(least - 1).locator(".main-svg").first.wait_for(
            timeout=90_000
        )
    settle(page)
    return page.locator("[data-testid='stMain']").inner_text()


def problems(name: str, text: str) -> list[str]:
    """What the page shows that says something is missing, less its allowed exceptions."""
    return [
        f"{name}: {key}: ...{text[max(0, m.start() - 80) : m.end() + 80]}..."
        for key, rx in FORBIDDEN.items()
        if (name, key) not in ALLOWED
        for m in [rx.search(text)]
        if m
    ]


def metric_values(page: Any) -> list[str]:
    """The values of the metric tiles shown (a hidden tab's are left out)."""
    return page.locator("[data-testid='stMetricValue']:visible").all_inner_texts()


def check_pages(base: str, pw: dict[str, str], rated: str) -> list[str]:
    """Visit every page as admin (and My ratings as rater1); what shows something missing."""
    from playwright.sync_api import sync_playwright

    found: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 2400})
        log_in(page, base, "admin", pw["admin"])
        texts: dict[str, str] = {}
        metrics: dict[str, list[str]] = {}
        for path, title, least in PAGES:
            name = path or "overview"
            text = texts[path] = open_page(page, f"{base}/{path}", title, least)
            assert page.locator("[data-testid='stException']").count() == 0, path
            assert page.locator(".js-plotly-plot").count() >= least, path
            found += problems(name, text)
            values = metrics[path] = metric_values(page)
            if ("–" in values or "n/a" in values) and (name, "metric –") not in ALLOWED:
                found.append(f"{name}: a metric shows no value: {values}")
            if path == "overview":
                assert page.url.split("?")[0].rstrip("/") == base  # opens the default page
        # Figures that exist only when the demo filled them.
        assert len(metrics[""]) == 9, metrics[""]  # 8 figures and the open alerts
        assert int(metrics[""][-1]) >= 1  # the canary's latency alert fires
        assert "CLIP scores by demo CLIP trained on the demo's synthetic scenes" in texts["quality"]
        assert "Lowest CLIP scores" in texts["quality"]
        # The canary's regression: it is 1.4x slower and garbles a quarter of its images. On
        # the test's 2 hours the latency interval depends on the hour of the day (the demo's
        # traffic is diurnal: 165 canary requests at 23 UTC left the median inconclusive),
        # so any of its regressions may hold the rollout.
        assert "P50 latency:" in texts["versions"]
        assert re.search(
            r"Verdict: hold the rollout of canary — .*(latency|CLIP score|human rating)",
            texts["versions"],
        ), texts["versions"][-600:]
        assert "CLIP score:" in texts["versions"] and "Human quality:" in texts["versions"]
        # The trending topic: every one of its prompts says "night" ("starry" only a third,
        # and on a 2-hour window whether it makes the term list depends on the hour).
        assert "What moved" in texts["drift"] and "night" in texts["drift"]
        assert int(metrics["alerts"][0]) >= 1  # firing
        assert "CLIP scores by demo CLIP" in texts["ratings"]  # calibration has CLIP scores
        assert "held for you" in texts["review"]  # an item to rate
        m = re.search(r"([0-9,]+) rows, newest first", texts["admin"])
        assert m and int(m.group(1).replace(",", "")) > 50  # accounts, logins, ratings

        # The explorer's default view lists the newest generations, which the even scoring
        # sample mostly leaves unscored; a rated one shows its scores and ratings.
        text = open_page(page, f"{base}/explorer?q={rated}", "Generation explorer", 0)
        found += problems("explorer (rated)", text)
        assert "CLIP scores by demo CLIP" in text and "Not in the review queue" not in text
        assert page.locator("[data-testid='stImage'] img").count() >= 1

        # Drift, output tab: the re-generation and golden-set runs and one item side by side.
        page.goto(f"{base}/drift", wait_until="networkidle")
        page.get_by_role("tab", name="Output drift (re-generation & golden set)").click()
        page.get_by_role("heading", name="Side by side").first.wait_for(timeout=90_000)
        settle(page)
        text = page.locator("[data-testid='stMain']").inner_text()
        # The newest run is the golden set's first: it stores its baselines and compares
        # nothing, so its mean cosine reads "–" and a notice says why.
        assert "compared nothing" in text
        found += problems("drift output", text)
        if "image unavailable" not in text:  # else it is among the problems found
            assert page.locator("[data-testid='stImage'] img:visible").count() >= 2

        # The demo's admin rates nothing; a simulated rater has ratings.
        page.get_by_role("button", name="Log out").click()
        page.get_by_text("You are logged out.").wait_for(timeout=60_000)
        log_in(page, base, "rater1", pw["rater1"])
        text = open_page(page, f"{base}/my-ratings", "My ratings", 0)
        found += problems("my-ratings (rater1)", text)
        values = metric_values(page)
        assert all(v not in ("0", "–") for v in values[2:]), values
        browser.close()
    return found


@pytest.mark.slow
@pytest.mark.timeout(1800)  # the demo CLIP's training (first demo of the session) and the demo
def test_every_page_shows_the_demo_data_in_chromium(
    empty_db_factory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert CHROMIUM, "Debian's chromium is needed: apt-get install chromium (make test does it)"
    # A fresh install, as `make demo` makes one: migrated, with the shipped GPU prices (the
    # shared test database has every table emptied, prices too).
    db_url = empty_db_factory("demo_pages")
    migrate.upgrade(db_url)
    home = tmp_path / "home"
    summary = run_demo(home, db_url)
    assert summary["scoring"]["clip"].startswith("diffwatch-demo-clip/")
    pw = passwords(home / "demo" / "credentials.txt")
    with psycopg.connect(raw_conninfo(db_url)) as conn:  # a rated generation, for the explorer
        [(rated,)] = conn.execute(
            "SELECT g.request_id FROM review_ratings r JOIN review_items i ON i.id = r.item_id"
            " JOIN generations g ON g.id = i.generation_id ORDER BY r.id LIMIT 1"
        ).fetchall()
    monkeypatch.setenv("DIFFWATCH_HOME", str(home))  # the server's default image roots
    monkeypatch.delenv("DIFFWATCH_IMAGE_ROOTS", raising=False)
    with serve(db_url) as base:
        found = check_pages(base, pw, rated)
    assert not found, "\n".join(found)

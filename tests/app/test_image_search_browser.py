"""Image search and image drift in a real browser: Debian's chromium driven by Playwright.

Starts ``diffwatch app`` on a pgvector database whose demo scenes were scored by the trained
demo CLIP (the worker stored their embeddings), with the search CLIP set to that CLIP, and
image-drift runs stored beside them. Searches the explorer by a scene's description, checks
that the scene's images come first, opens its similar images, then the Drift page's image
tab; saves ``explorer-search.png`` and ``drift-images.png`` under ``test-results/screenshots``
(or ``$DIFFWATCH_SCREENSHOTS``, e.g. docs/screenshots).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from diffwatch.db.engine import raw_conninfo
from diffwatch.rollups import refresh_once
from tests.app.accounts import PW, add_account
from tests.app.image_drift_seed import HOSTILE, ImageRuns, seed_image_runs
from tests.app.image_search_seed import QUERY, Seeded, flag_nsfw, search_env, seed_scenes
from tests.app.server import CHROMIUM, REPO, log_in, serve

WAIT_MS = 90_000


@pytest.fixture
def served(
    vector_db_url: str, demo_clip, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[str, Seeded, ImageRuns]]:
    conninfo = raw_conninfo(vector_db_url)
    seeded = seed_scenes(conninfo, tmp_path / "scenes", demo_clip)
    flag_nsfw(conninfo, seeded.planted[-1])
    runs = seed_image_runs(conninfo, tmp_path / "drift")
    refresh_once(conninfo)  # the sidebar's filter choices come from the rollups
    add_account(conninfo, "olga", "ops")
    for k, v in search_env(demo_clip).items():  # the app process inherits them
        monkeypatch.setenv(k, v)
    with serve(vector_db_url) as base:
        yield base, seeded, runs


def _gallery_prompts(page) -> list[str]:
    """The plain-text prompts under the gallery's images, in order."""
    texts = page.locator("[data-testid='stText']").all_inner_texts()
    return [texts[i + 1] for i, t in enumerate(texts[:-1]) if t.startswith("similarity ")]


@pytest.mark.slow
def test_search_and_image_drift_in_chromium(served) -> None:
    from playwright.sync_api import sync_playwright

    base, _, runs = served
    assert CHROMIUM, "Debian's chromium is needed: apt-get install chromium (make test does it)"
    shots = Path(os.environ.get("DIFFWATCH_SCREENSHOTS", REPO / "test-results" / "screenshots"))
    shots.mkdir(parents=True, exist_ok=True)
    dialogs: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 1500})
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        log_in(page, base, "olga", PW)
        # Text → images: the description of a scene finds its images first.
        page.goto(f"{base}/explorer?find=images&iq={quote(QUERY)}&range=24h",
                  wait_until="networkidle")  # fmt: skip
        page.get_by_role("heading", name="Generation explorer").first.wait_for(timeout=WAIT_MS)
        page.locator("[data-testid='stImage'] img").nth(11).wait_for(timeout=WAIT_MS)
        page.wait_for_timeout(1000)
        assert page.locator("[data-testid='stException']").count() == 0
        assert _gallery_prompts(page)[:4] == [QUERY] * 4
        assert page.get_by_role("button", name="Reveal (flagged NSFW)").count() == 1
        assert page.get_by_text("demo CLIP trained on the demo").count() >= 1
        page.screenshot(path=str(shots / "explorer-search.png"))
        # Image → similar images, from the first result's button.
        page.get_by_role("button", name="Similar images").first.click()
        page.get_by_role("heading", name="Images similar to generation").wait_for(timeout=WAIT_MS)
        page.locator("[data-testid='stImage'] img").nth(4).wait_for(timeout=WAIT_MS)
        assert "similar=" in page.url and "find=images" in page.url
        assert "star on a blue background" in _gallery_prompts(page)[0]  # its scene, or the
        # same star in another colour: the nearest picture, not the nearest words
        # Image drift: the newest run, its verdict, what moved, with its example images.
        page.set_viewport_size({"width": 1400, "height": 3000})
        page.goto(f"{base}/drift?run={runs.newest}&range=30d", wait_until="networkidle")
        page.get_by_role("heading", name="One image-drift run").wait_for(timeout=WAIT_MS)
        page.locator(".js-plotly-plot").nth(1).locator(".main-svg").first.wait_for(timeout=WAIT_MS)
        page.locator("[data-testid='stImage'] img").nth(3).wait_for(timeout=WAIT_MS)
        page.wait_for_timeout(1200)  # let Plotly finish its transitions
        assert page.locator("[data-testid='stException']").count() == 0
        assert page.get_by_text("Drifted.").count() == 1
        assert page.get_by_text("The model changed: on the same prompts").count() == 1
        hostile = page.locator("[data-testid='stText']:visible", has_text="xss-probe <script>")
        assert hostile.count() == 1 and hostile.inner_text() == HOSTILE
        assert page.evaluate("window.__xss") is None
        assert page.locator('a[href^="javascript:"]').count() == 0
        page.screenshot(path=str(shots / "drift-images.png"))
        browser.close()
    assert dialogs == []

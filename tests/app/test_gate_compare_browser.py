"""A rater votes on a release gate's pairs, blind, in Chromium with the keyboard only.

Starts ``diffwatch app`` on a finished gate run whose pairs are enqueued (one prompt is
hostile HTML/Markdown, one pair NSFW-flagged), logs in as a rater, opens the Side-by-side
page, votes by keys 1 / 2 / 3, skips one pair by S, and checks that the stored votes are the
keys pressed, mapped through the hidden side assignment, and that no model label, side name
or image path ever reaches the page. Saves a screenshot under ``test-results/screenshots``
(or ``$DIFFWATCH_SCREENSHOTS``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import psycopg
import pytest

from diffwatch.app.views.compare import _token
from diffwatch.gate.human import enqueue_pairs
from diffwatch.gate.pairs import left_side, outcome
from tests.app.accounts import PW, add_account
from tests.app.server import CHROMIUM, REPO, log_in, serve
from tests.gate_pairs_seed import BASELINE_LABEL, CANDIDATE_LABEL, prompts, seed_finished_run

WAIT_MS = 30_000
HOSTILE = "gate-probe <script>window.__xss='g'</script> **bold** [x](javascript:alert(1))"
PROMPTS = [*prompts(4), HOSTILE]
NSFW_AT = 1  # the candidate image of this prompt is NSFW-flagged: blurred on either side
KEYS = {"1": "left", "2": "same", "3": "right"}
NEVER = (CANDIDATE_LABEL, BASELINE_LABEL, "candidate", "baseline", "Zephyr", "Quokka")


def shown_prompt(page: Any) -> str:
    """The prompt on screen (one of ``PROMPTS``), once the page shows one."""
    texts = page.locator("[data-testid='stText']")
    for _ in range(WAIT_MS // 100):
        found = [t for t in texts.all_inner_texts() if t in PROMPTS]
        if found:
            return found[0]
        page.wait_for_timeout(100)
    raise AssertionError(f"no prompt shown; texts: {texts.all_inner_texts()}")


def ready(page: Any, run_id: int, key: str) -> None:
    """Wait until this pair's vote buttons (which own the keys) are drawn."""
    page.locator(f".st-key-compare-right-{_token(run_id, key)} button").wait_for(timeout=WAIT_MS)
    page.locator(f".st-key-compare-skip-{_token(run_id, key)} button").wait_for(timeout=WAIT_MS)


def blind_checks(page: Any, images: Path) -> None:
    """Nothing that tells the models apart is on the page, and the hostile prompt is text."""
    body = page.inner_text("body")
    html = page.content()
    for word in NEVER:
        assert word.lower() not in body.lower(), word
        assert word not in html, word
    assert str(images) not in html and "-s0.png" not in html  # no image path either
    assert page.evaluate("window.__xss") is None
    assert page.locator("strong", has_text="bold").count() == 0


def votes(conninfo: str) -> list[tuple]:
    with psycopg.connect(conninfo) as conn:
        return conn.execute(
            "SELECT key, rater_username, left_side, vote FROM gate_votes ORDER BY voted_at"
        ).fetchall()


@pytest.mark.slow
def test_a_rater_votes_blind_by_keyboard(db_url: str, conninfo: str, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    assert CHROMIUM, "Debian's chromium is needed: apt-get install chromium (make test does it)"
    run_id = seed_finished_run(conninfo, tmp_path / "img", PROMPTS, nsfw_at=NSFW_AT)
    assert enqueue_pairs(conninfo, run_id, len(PROMPTS), seed=0) == len(PROMPTS)
    key_of = {p: f"p{i:03d}-s0" for i, p in enumerate(PROMPTS)}
    add_account(conninfo, "kim", "rater")
    shots = Path(os.environ.get("DIFFWATCH_SCREENSHOTS", REPO / "test-results" / "screenshots"))
    shots.mkdir(parents=True, exist_ok=True)
    pressed: list[tuple[str, str]] = []  # (pair key, key pressed)
    with serve(db_url) as base, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 1200})
        log_in(page, base, "kim", PW)
        page.get_by_role("link", name="Side-by-side").click()  # in the rater's navigation
        heading = page.get_by_role("heading", name="Side-by-side").first
        heading.wait_for(timeout=WAIT_MS)
        seen: set[str] = set()
        for key_pressed in ("1", "3", "s", "2", "1"):
            prompt = shown_prompt(page)
            assert prompt not in seen, "a pair came back after a vote or a skip"
            seen.add(prompt)
            ready(page, run_id, key_of[prompt])
            blind_checks(page, tmp_path / "img")
            if prompt == PROMPTS[NSFW_AT]:
                assert page.get_by_role("button", name="Reveal images").count() == 1
            if prompt == HOSTILE:
                page.screenshot(path=str(shots / "gate-compare.png"))
            heading.click()  # the focus on the page, not the vanished login form
            page.wait_for_timeout(300)
            page.keyboard.press(key_pressed)
            pressed.append((key_of[prompt], key_pressed))
            if len(seen) < len(PROMPTS):
                page.wait_for_function(
                    "p => ![...document.querySelectorAll(\"[data-testid='stText']\")]"
                    ".some(e => e.innerText === p)",
                    arg=prompt, timeout=WAIT_MS,
                )  # fmt: skip
        page.get_by_text("No pairs to rate").wait_for(timeout=WAIT_MS)
        blind_checks(page, tmp_path / "img")
        assert page.locator("[data-testid='stException']").count() == 0
        browser.close()
    expect = [(k, "kim", left_side(run_id, k, "kim"), KEYS[p]) for k, p in pressed if p != "s"]
    assert votes(conninfo) == expect
    assert len(expect) == 4 and {k for k, p in pressed if p == "s"}.isdisjoint(
        {k for k, *_ in votes(conninfo)}
    )
    # what the votes say about the models, as gate report reads them
    said = [outcome(side, v) for _, _, side, v in votes(conninfo)]
    assert said == [outcome(left_side(run_id, k, "kim"), KEYS[p]) for k, p in pressed if p != "s"]

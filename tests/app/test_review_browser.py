"""A rater works through the review queue in Chromium with the keyboard only.

Starts ``diffwatch app`` on a seeded queue, logs in as a rater, rates three items by key
presses (scores, a flag, reveal, clear, submit), types a comment whose letters must not
trigger the shortcuts, and checks the stored rows. Saves a screenshot of the rater view
under ``test-results/screenshots`` (or ``$DIFFWATCH_SCREENSHOTS``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.app.accounts import PW, add_account
from tests.app.review_dataset import NSFW_AT, PROMPTS, seed_review
from tests.app.server import CHROMIUM, REPO, log_in, serve

WAIT_MS = 30_000


def next_digit(page: Any, what: str) -> None:
    """Wait until the page says which score the next digit sets."""
    page.get_by_text(f"Next digit sets: {what}").wait_for(timeout=WAIT_MS)


def chosen(page: Any, key: str) -> Any:
    """The button with this widget key (a score: ``review-quality-4``), drawn as chosen."""
    *_, field, n = key.split("-")
    if field in ("quality", "adherence"):
        return page.locator(
            f".st-key-review-row-{field} [data-testid='stBaseButton-primary']", has_text=n
        )
    return page.locator(f".st-key-{key} [data-testid='stBaseButton-primary']")


def showing(page: Any, prompt: str) -> None:
    """Wait until the item with this prompt is shown."""
    page.locator("[data-testid='stText']", has_text=prompt).wait_for(timeout=WAIT_MS)


def press(page: Any, key: str) -> None:
    page.keyboard.press(key)


def rows(conninfo: str) -> list[tuple]:
    with psycopg.connect(conninfo) as conn:
        return conn.execute(
            "SELECT g.prompt, r.rater_username, r.quality, r.adherence, r.flags, r.comment"
            " FROM review_ratings r JOIN review_items i ON i.id = r.item_id"
            " JOIN generations g ON g.id = i.generation_id ORDER BY r.id"
        ).fetchall()


@pytest.mark.slow
def test_a_rater_rates_three_items_by_keyboard(db_url: str, conninfo: str, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    assert CHROMIUM, "Debian's chromium is needed: apt-get install chromium (make test does it)"
    assert NSFW_AT == 2  # the third item is blurred
    seed_review(conninfo, tmp_path / "images")
    add_account(conninfo, "kim", "rater")
    shots = Path(os.environ.get("DIFFWATCH_SCREENSHOTS", REPO / "test-results" / "screenshots"))
    shots.mkdir(parents=True, exist_ok=True)
    with serve(db_url) as base, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        log_in(page, base, "kim", PW)
        # A rater's first page is the review queue (the login lands there).
        page.get_by_role("heading", name="Review queue").first.wait_for(timeout=WAIT_MS)

        # Item 1: quality 4, adherence 2, flag artifacts (A), submit (Enter).
        showing(page, PROMPTS[0])
        next_digit(page, "overall quality")
        # On a loaded machine the text can arrive before the buttons that own the keys: wait
        # for the last of them, and put the focus on the page (not the vanished login form).
        page.locator(".st-key-review-submit button, .st-key-review-skip button").first.wait_for(
            timeout=WAIT_MS
        )
        page.get_by_role("heading", name="Review queue").first.click()
        page.wait_for_timeout(500)
        press(page, "4")
        next_digit(page, "prompt adherence")
        chosen(page, "review-quality-4").wait_for(timeout=WAIT_MS)
        press(page, "2")
        next_digit(page, "overall quality")
        chosen(page, "review-adherence-2").wait_for(timeout=WAIT_MS)
        press(page, "a")
        chosen(page, "review-flag-artifacts").wait_for(timeout=WAIT_MS)
        press(page, "Enter")
        showing(page, PROMPTS[1])
        assert rows(conninfo) == [(PROMPTS[0], "kim", 4, 2, ["artifacts"], None)]

        # Item 2: a comment full of shortcut letters and digits triggers nothing.
        box = page.get_by_label("Comment (optional)")
        box.click()
        page.keyboard.type("nasty 5 banding on sky v2")
        press(page, "Backspace")
        press(page, "Enter")  # keeps the comment; must not submit
        page.wait_for_timeout(1500)
        assert box.input_value() == "nasty 5 banding on sky v"
        assert page.locator("[data-testid='stBaseButton-primary']").count() == 1  # Submit only
        next_digit(page, "overall quality")
        press(page, "Escape")  # leave the text box; the keys work again
        page.wait_for_timeout(300)
        press(page, "5")
        next_digit(page, "prompt adherence")
        press(page, "3")
        chosen(page, "review-adherence-3").wait_for(timeout=WAIT_MS)
        page.screenshot(path=str(shots / "review.png"))
        press(page, "Enter")
        showing(page, PROMPTS[2])
        assert rows(conninfo)[1] == (PROMPTS[1], "kim", 5, 3, [], "nasty 5 banding on sky v")

        # Item 3 (NSFW-flagged): blurred until V; Backspace clears a slip; flag N; submit.
        reveal = page.locator(".st-key-review-reveal button")
        reveal.wait_for(timeout=WAIT_MS)
        press(page, "v")
        reveal.wait_for(state="detached", timeout=WAIT_MS)
        press(page, "2")
        chosen(page, "review-quality-2").wait_for(timeout=WAIT_MS)
        press(page, "Backspace")
        next_digit(page, "overall quality")
        chosen(page, "review-quality-2").wait_for(state="detached", timeout=WAIT_MS)
        press(page, "1")
        next_digit(page, "prompt adherence")
        press(page, "5")
        next_digit(page, "overall quality")
        press(page, "n")
        chosen(page, "review-flag-nsfw").wait_for(timeout=WAIT_MS)
        press(page, "Enter")
        showing(page, PROMPTS[3])
        assert page.locator("[data-testid='stException']").count() == 0
        browser.close()
    assert rows(conninfo) == [
        (PROMPTS[0], "kim", 4, 2, ["artifacts"], None),
        (PROMPTS[1], "kim", 5, 3, [], "nasty 5 banding on sky v"),
        (PROMPTS[2], "kim", 1, 5, ["nsfw"], None),
    ]

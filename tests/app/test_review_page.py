"""The rater pages in Streamlit AppTest, logged in through the real app on real Postgres."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest
from streamlit.testing.v1 import AppTest

from diffwatch.app.review_keys import Choice
from tests.app.accounts import add_account, as_user, texts
from tests.app.review_dataset import HOSTILE, NSFW_AT, PROMPTS, seed_review


@pytest.fixture
def queue(conninfo: str, tmp_path: Path) -> str:
    seed_review(conninfo, tmp_path / "images")
    return conninfo


def ratings(conninfo: str) -> list[tuple]:
    with psycopg.connect(conninfo) as conn:
        return conn.execute(
            "SELECT g.prompt, r.rater_username, r.quality, r.adherence, r.flags, r.comment"
            " FROM review_ratings r JOIN review_items i ON i.id = r.item_id"
            " JOIN generations g ON g.id = i.generation_id ORDER BY r.id"
        ).fetchall()


def shown_prompts(at: AppTest) -> list[str]:
    return [t.value for t in at.text]


def click(at: AppTest, key: str) -> AppTest:
    at.button(key=key).click().run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def score(at: AppTest, field: str, n: int) -> Any:
    """The 1–5 button ``n`` of a score row (the row the next digit sets has the digit keys)."""
    keys = {b.key for b in at.button}
    return at.button(key=f"review-{field}-{n}" if f"review-{field}-{n}" in keys else
                     f"review-digit-{n}")  # fmt: skip


def click_score(at: AppTest, field: str, n: int) -> AppTest:
    score(at, field, n).click().run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def rate_current(at: AppTest, quality: int, adherence: int, *flags: str) -> None:
    click_score(at, "quality", quality)
    click_score(at, "adherence", adherence)
    for f in flags:
        click(at, f"review-flag-{f}")
    click(at, "review-submit")


def test_rater_rates_with_the_buttons_and_gets_the_next_item(
    queue: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    uid = add_account(queue, "rita", "rater")
    at = as_user(queue, monkeypatch, uid, page="review")
    assert at.title[0].value == "Review queue"
    assert PROMPTS[0] in shown_prompts(at)
    assert "held for you until" in texts(at)
    assert "low_clip" not in texts(at) and "random" not in texts(at)  # no reasons shown
    click_score(at, "quality", 4)
    assert score(at, "quality", 4).proto.type == "primary"
    assert "Next digit sets: **prompt adherence**" in texts(at)
    click_score(at, "adherence", 2)
    click(at, "review-flag-artifacts")
    click(at, "review-flag-other")
    click(at, "review-flag-other")  # toggled off again
    at.text_input(key=f"review-comment-{at.session_state['review_item_id']}").input("hands")
    click(at, "review-submit")
    assert ratings(queue) == [(PROMPTS[0], "rita", 4, 2, ["artifacts"], "hands")]
    assert "stored" in texts(at)
    assert PROMPTS[1] in shown_prompts(at)  # the next item at once
    assert score(at, "quality", 4).proto.type == "secondary"  # choices reset


def test_submit_without_both_scores_stores_nothing(
    queue: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    uid = add_account(queue, "rita", "rater")
    at = as_user(queue, monkeypatch, uid, page="review")
    click(at, "review-submit")
    assert "choose the overall quality and the prompt adherence" in texts(at)
    click_score(at, "quality", 3)
    click(at, "review-submit")
    assert "choose the prompt adherence" in texts(at)
    assert ratings(queue) == []
    assert PROMPTS[0] in shown_prompts(at)  # still the same item, choices kept
    assert score(at, "quality", 3).proto.type == "primary"


def test_a_second_submit_of_the_same_item_adds_no_row(
    queue: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    uid = add_account(queue, "rita", "rater")
    at = as_user(queue, monkeypatch, uid, page="review")
    first = at.session_state["review_item_id"]
    click_score(at, "quality", 5)
    click_score(at, "adherence", 5)
    click(at, "review-submit")
    assert len(ratings(queue)) == 1
    # A second submit for the item already rated (a double click, a stale tab).
    at.session_state["review_item_id"] = first
    at.session_state["review_choice"] = Choice(quality=1, adherence=1)
    click(at, "review-submit")
    assert ratings(queue) == [(PROMPTS[0], "rita", 5, 5, [], None)]
    assert "already rated" in texts(at)


def test_skip_serves_the_next_item_and_never_that_one_again(
    queue: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    uid = add_account(queue, "rita", "rater")
    at = as_user(queue, monkeypatch, uid, page="review")
    click(at, "review-skip")
    assert PROMPTS[1] in shown_prompts(at) and PROMPTS[0] not in shown_prompts(at)
    at = as_user(queue, monkeypatch, uid, page="review")  # a new session: still not served
    assert PROMPTS[1] in shown_prompts(at)
    assert ratings(queue) == []
    with psycopg.connect(queue) as conn:
        assert conn.execute("SELECT rater_username FROM review_skips").fetchall() == [("rita",)]


@pytest.fixture
def served_media(monkeypatch: pytest.MonkeyPatch) -> dict[str, bytes]:
    """The bytes of every media file the app hands to the browser, by URL (a spy on
    Streamlit's media file manager: the files are still stored and served as usual)."""
    from streamlit.runtime.media_file_manager import MediaFileManager

    seen: dict[str, bytes] = {}
    real = MediaFileManager.add

    def add(self: MediaFileManager, path_or_data: bytes | str, *a: object, **k: object) -> str:
        url = real(self, path_or_data, *a, **k)  # type: ignore[arg-type]
        if isinstance(path_or_data, bytes):
            seen[url] = path_or_data
        return url

    monkeypatch.setattr(MediaFileManager, "add", add)
    return seen


def image_pixels(at: AppTest, media: dict[str, bytes]) -> np.ndarray:
    """The pixels of the page's (only) image, as the browser gets them."""
    import io

    from PIL import Image

    (url,) = at.get("image")[0].value
    return np.asarray(Image.open(io.BytesIO(media[url])).convert("RGB"), dtype=np.float64)


def roughness(px: np.ndarray) -> float:
    """Mean absolute difference of neighbouring pixels (0–255): the coarse noise is rough,
    blurred it is smooth."""
    return float(np.abs(np.diff(px, axis=1)).mean())


def test_an_nsfw_flagged_image_is_blurred_until_revealed(
    queue: str, monkeypatch: pytest.MonkeyPatch, served_media: dict[str, bytes]
) -> None:
    uid = add_account(queue, "rita", "rater")
    at = as_user(queue, monkeypatch, uid, page="review")
    sharp = image_pixels(at, served_media)
    assert not [b for b in at.button if b.key == "review-reveal"]  # not flagged: no blur
    for _ in range(NSFW_AT):
        click(at, "review-skip")
    assert PROMPTS[NSFW_AT] in shown_prompts(at)
    assert "Blurred" in texts(at)
    blurred = image_pixels(at, served_media)
    click(at, "review-reveal")
    revealed = image_pixels(at, served_media)
    assert not [b for b in at.button if b.key == "review-reveal"]
    assert roughness(blurred) < roughness(revealed) / 4
    assert roughness(revealed) > roughness(sharp) / 2


def test_empty_queue_says_how_it_is_filled(conninfo: str, monkeypatch: pytest.MonkeyPatch) -> None:
    uid = add_account(conninfo, "rita", "rater")
    at = as_user(conninfo, monkeypatch, uid, page="review")
    assert "diffwatch review enqueue" in texts(at)
    assert at.button(key="review-check-again")
    click(at, "review-check-again")
    assert "diffwatch review enqueue" in texts(at)
    assert not at.get("imgs")


def test_a_hostile_prompt_is_plain_text(queue: str, monkeypatch: pytest.MonkeyPatch) -> None:
    uid = add_account(queue, "rita", "rater")
    at = as_user(queue, monkeypatch, uid, page="review")
    for _ in range(PROMPTS.index(HOSTILE)):
        click(at, "review-skip")
    assert HOSTILE in shown_prompts(at)
    assert not any("review-probe" in m.value for m in at.markdown)
    assert not any("review-probe" in str(e.value) for e in at.caption)


def test_my_ratings_shows_only_my_own(queue: str, monkeypatch: pytest.MonkeyPatch) -> None:
    a = add_account(queue, "anna", "rater")
    b = add_account(queue, "bert", "rater")
    for uid, comment, score in ((a, "anna says hi", 4), (b, "bert secret note", 1)):
        at = as_user(queue, monkeypatch, uid, page="review")
        at.text_input(key=f"review-comment-{at.session_state['review_item_id']}").input(comment)
        rate_current(at, score, score)
    assert len(ratings(queue)) == 2
    for params in ({}, {"rater": "bert"}):
        at = as_user(queue, monkeypatch, a, page="my-ratings", **params)
        assert at.title[0].value == "My ratings"
        table = at.dataframe[0].value
        assert list(table["comment"]) == ["anna says hi"]
        assert list(table["quality"]) == [4]
        shown = texts(at) + table.to_string()
        assert "bert" not in shown and "secret" not in shown
        assert [m.value for m in at.metric][:3] == ["1", "1", "1"]
        assert at.metric[3].value == "4.00"

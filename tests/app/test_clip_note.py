"""Pages that show CLIP scores name the CLIP that made them, and the demo CLIP as what it is
(a CLIP trained on the demo's synthetic scenes, not a real CLIP). AppTest, whole app."""

from __future__ import annotations

from pathlib import Path

import psycopg

from diffwatch.db.queries.rollups import rebuild, refresh
from diffwatch.model.clip_labels import DEMO_CLIP_LABEL
from tests.app.accounts import add_account, as_user, shown, texts
from tests.app.dataset import seed, seed_bulk
from tests.app.ratings_dataset import seed_ratings

DEMO_VERSION = "diffwatch-demo-clip/r1-0123abcd"


def _rescore_with(conninfo: str, version: str) -> None:
    """Relabel every CLIP score as made by ``version`` and roll the quality up again."""
    with psycopg.connect(conninfo) as conn:
        conn.execute(
            "UPDATE scorer_results SET scorer_version = %s WHERE scorer = 'clip'", (version,)
        )
        conn.commit()
        rebuild(conn)
        refresh(conn)


def test_quality_overview_and_versions_name_the_clip_version(conninfo, tmp_path: Path, monkeypatch):
    seed(conninfo, tmp_path / "images")
    seed_bulk(conninfo)
    uid = add_account(conninfo, "olga", "ops")
    for page in ("quality", "overview", "versions"):
        at = as_user(conninfo, monkeypatch, uid, page=page)
        notes = [shown(c.value) for c in at.caption if "CLIP scores by" in c.value]
        assert len(notes) == 1, (page, texts(at))
        assert notes[0].startswith("CLIP scores by c (1,") and "scores)" in notes[0], notes
        assert "demo CLIP" not in texts(at), page
    at = as_user(conninfo, monkeypatch, uid, page="explorer", q="req-3")  # one generation
    assert [shown(c.value) for c in at.caption if "CLIP scores by" in c.value] == [
        "CLIP scores by c (1 score)."
    ]


def test_the_demo_clip_is_labelled_on_every_page_that_shows_its_scores(
    conninfo, tmp_path: Path, monkeypatch
):
    seed(conninfo, tmp_path / "images")
    seed_bulk(conninfo)
    _rescore_with(conninfo, DEMO_VERSION)
    uid = add_account(conninfo, "olga", "ops")
    for page in ("quality", "overview", "versions"):
        at = as_user(conninfo, monkeypatch, uid, page=page)
        notes = [shown(i.value) for i in at.info if "CLIP scores by" in i.value]
        assert len(notes) == 1, (page, texts(at))
        assert DEMO_CLIP_LABEL in notes[0] and DEMO_VERSION in notes[0], notes
        assert "not a real CLIP" in notes[0]
    at = as_user(conninfo, monkeypatch, uid, page="explorer", q="req-3")
    assert any(DEMO_CLIP_LABEL in shown(i.value) for i in at.info), texts(at)


def test_rating_analytics_names_the_clip_of_the_rated_items(conninfo, monkeypatch):
    seed_ratings(conninfo)
    uid = add_account(conninfo, "olga", "ops")
    at = as_user(conninfo, monkeypatch, uid, page="ratings")
    notes = [shown(c.value) for c in at.caption if "CLIP scores by" in c.value]
    assert len(notes) == 1 and notes[0].startswith("CLIP scores by clip-test ("), texts(at)
    assert "rated items)" in notes[0]
    _rescore_with(conninfo, DEMO_VERSION)
    at = as_user(conninfo, monkeypatch, uid, page="ratings")
    notes = [shown(i.value) for i in at.info if "CLIP scores by" in i.value]
    assert len(notes) == 1 and DEMO_CLIP_LABEL in notes[0], texts(at)

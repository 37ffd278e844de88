"""Overview's changes against the previous period, only where the history covers it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg

from diffwatch.db.queries.rollups import refresh
from tests.app.test_pages import run_page


def _seed(conninfo: str, *hours_ago: float) -> None:
    """Ten generations at each of ``hours_ago`` (hours before now), rolled up."""
    now = datetime.now(UTC)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        for k, h in enumerate(hours_ago):
            conn.execute(
                "INSERT INTO generations (request_id, ts, model, model_version, prompt, status,"
                " batch_size, total_ms, inference_ms, deployment)"
                " SELECT 'r-' || %(k)s || '-' || i, %(ts)s, 'sdxl', 'v1', 'p', 'ok', 1,"
                " 1000 + i, 900 + i, 'stable' FROM generate_series(1, 10) i",
                {"k": k, "ts": now - timedelta(hours=h)},
            )
        refresh(conn)


def test_a_history_that_covers_the_previous_period_shows_changes(conninfo, monkeypatch):
    _seed(conninfo, 50, 30, 1)  # the previous 24 h are covered from their start
    at = run_page("overview", conninfo, monkeypatch)
    images = next(m for m in at.metric if m.label == "Images")
    assert images.value == "10" and images.delta == "+0"  # 10 in each period
    assert not [c for c in at.caption if "No change against" in c.value]


def test_a_history_younger_than_the_previous_period_shows_no_changes(conninfo, monkeypatch):
    _seed(conninfo, 30, 1)  # a demo's first day: the previous period holds its first hours
    at = run_page("overview", conninfo, monkeypatch)
    images = next(m for m in at.metric if m.label == "Images")
    assert images.value == "10" and not images.delta  # not "+10 against 10"
    [note] = [c.value for c in at.caption if "No change against" in c.value]
    assert "the history starts at" in note

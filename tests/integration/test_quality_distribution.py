"""CLIP score distributions from the quality rollups equal the raw scores' histogram."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import psycopg

from diffwatch.db.queries.quality_dist import clip_distribution
from diffwatch.db.queries.rollups import refresh
from diffwatch.model.filters import Filters


def test_distribution_per_version_matches_the_raw_scores_across_refreshes(conninfo) -> None:
    t0 = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=3)
    scores = {"v1": [12.3, 12.9, 30.0, 99.99, 100.0, 0.0], "v2": [30.5, 30.2, 55.0]}
    with psycopg.connect(conninfo) as conn:
        i = 0
        for version, values in scores.items():
            for k, value in enumerate(values):
                i += 1
                conn.execute(
                    "INSERT INTO generations (request_id, ts, model, model_version, prompt,"
                    " status) VALUES (%s, %s, 'm', %s, 'p', 'ok')",
                    (f"r{i}", t0 + timedelta(minutes=7 * k), version),
                )
                conn.execute(
                    "INSERT INTO scorer_results (generation_id, scorer, scorer_version, value)"
                    " SELECT id, 'clip', 'c', %s FROM generations WHERE request_id = %s",
                    (value, f"r{i}"),
                )
                conn.execute(  # NSFW scores must not enter the CLIP histogram
                    "INSERT INTO scorer_results (generation_id, scorer, scorer_version, value)"
                    " SELECT id, 'nsfw', 'n', 0.7 FROM generations WHERE request_id = %s",
                    (f"r{i}",),
                )
                if k == 2:  # a refresh in the middle: buckets are merged, not replaced
                    conn.commit()
                    refresh(conn)
        conn.commit()
        refresh(conn)
        for width in (60, 3600):
            f = Filters(t0 - timedelta(hours=1), t0 + timedelta(hours=2), width_s=width)
            got = Counter({(b.group, b.score): b.n for b in clip_distribution(conn, f)})
            want = Counter((f"m/{v}", int(x)) for v, xs in scores.items() for x in xs)
            assert got == want
        only_v2 = Filters(t0, t0 + timedelta(hours=2), versions=("v2",))
        assert {b.group for b in clip_distribution(conn, only_v2)} == {"m/v2"}

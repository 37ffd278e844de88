"""Near-duplicate share per version from the stored embeddings: the Quality page's figure and
the alert metric agree, and match a planted set exactly."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import psycopg
import pytest

from diffwatch.db.engine import raw_conninfo
from diffwatch.db.queries import alert_metrics
from diffwatch.embeddings.duplicates import duplicate_report
from diffwatch.model.alert_rules import Rule
from diffwatch.model.filters import Filters
from tests.embedding_seed import Gen, seed, unit_rows

T = datetime(2026, 12, 1, 12, tzinfo=UTC)
ALL = Filters(T - timedelta(days=1), T + timedelta(days=1))


def _rule(**kw) -> Rule:
    return Rule(name="dups", metric="duplicate_share", comparison=">", threshold=0.05,
                window=86400, recipients=("ops@example.com",), **kw)  # fmt: skip


def _planted(url: str) -> dict[str, list[int]]:
    """v1: 200 distinct images + 10 near-copies of 10 of them (other seeds) → 20 of 210 are
    near-duplicates. v2: 50 images with 25 exact repeats (same prompt and seed: deliberate
    repeats, not counted) and 5 near-copies under another prompt → 10 of 80."""
    rng = np.random.default_rng(1)
    base = unit_rows(rng, 200, 64)
    gens = [Gen(e, "v1", f"p{i}", i) for i, e in enumerate(base)]
    for k in range(10):
        near = base[k] + 0.01 * rng.normal(size=64).astype(np.float32)
        gens.append(Gen(near / np.linalg.norm(near), "v1", f"p{k}", 10_000 + k))
    two = unit_rows(rng, 50, 64)
    gens += [Gen(e, "v2", f"q{i}", i) for i, e in enumerate(two)]
    gens += [Gen(two[i], "v2", f"q{i}", i) for i in range(25)]  # repeats
    gens += [Gen(two[30 + i], "v2", f"other {i}", 7) for i in range(5)]
    ids = seed(url, gens)
    return {"v1": ids[:210], "v2": ids[210:]}


def test_planted_share_per_version_and_the_alert_metric(vector_db_url):
    ids = _planted(vector_db_url)
    with psycopg.connect(raw_conninfo(vector_db_url), autocommit=True) as conn:
        rows = {r.model_version: r for r in duplicate_report(conn, ALL)}
        assert set(rows) == {"v1", "v2"}
        v1, v2 = rows["v1"].report, rows["v2"].report
        assert (v1.n, v1.n_duplicates) == (210, 20) and v1.share == pytest.approx(20 / 210)
        assert (v2.n, v2.n_duplicates) == (80, 10)
        assert v1.ci_low < v1.share < v1.ci_high
        planted = {frozenset((ids["v1"][k], ids["v1"][200 + k])) for k in range(10)}
        assert {frozenset((a, b)) for a, b, _ in v1.examples} <= planted
        assert len(v1.examples) == 6 and all(c > 0.95 for _, _, c in v1.examples)
        rule = _rule()
        value = alert_metrics.value(conn, rule, T + timedelta(hours=1))
        assert value == pytest.approx(30 / 290)
        only_v2 = _rule(versions=("v2",))
        assert alert_metrics.value(conn, only_v2, T + timedelta(hours=1)) == pytest.approx(10 / 80)


def test_a_sample_cap_reads_at_most_that_many(vector_db_url):
    _planted(vector_db_url)
    with psycopg.connect(raw_conninfo(vector_db_url), autocommit=True) as conn:
        rows = {r.model_version: r for r in duplicate_report(conn, ALL, max_images=100)}
    assert rows["v1"].report.n == 100 and rows["v1"].sampled
    assert rows["v2"].report.n == 80 and not rows["v2"].sampled


def test_without_pgvector_there_is_no_figure_and_no_error(db_url):
    with psycopg.connect(raw_conninfo(db_url), autocommit=True) as conn:
        if conn.execute("SELECT to_regclass('image_embeddings')").fetchone()[0] is not None:
            pytest.fail("this test needs DIFFWATCH_TEST_DATABASE_URL on a server without pgvector")
        assert duplicate_report(conn, ALL) == []
        rule = _rule()
        assert alert_metrics.value(conn, rule, T) is None

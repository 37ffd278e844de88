"""Nearest-neighbour search over stored image embeddings, through pgvector's HNSW index."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import psycopg
import pytest

from diffwatch.db.engine import raw_conninfo
from diffwatch.db.queries import embedding_reads as reads
from diffwatch.db.queries import embeddings as emb
from diffwatch.model.filters import Filters
from tests.embedding_seed import VERSION, Gen, seed, unit_rows

ALL = Filters(datetime(2026, 1, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC))


@pytest.fixture
def conn(vector_db_url):
    with psycopg.connect(raw_conninfo(vector_db_url), autocommit=True) as c:
        emb.register(c)
        yield c


def _space(conn) -> emb.Space:
    sp = emb.space(conn, VERSION)
    assert sp is not None
    return sp


def test_planted_near_copy_comes_first_through_the_index(vector_db_url, conn):
    rng = np.random.default_rng(3)
    base = unit_rows(rng, 600, 48)
    target = base[17]
    near = target + 0.02 * rng.normal(size=48).astype(np.float32)
    ids = seed(vector_db_url, [Gen(e, seed=i) for i, e in enumerate(base)] + [Gen(near, seed=9999)])
    sp = _space(conn)
    plan = conn.execute(
        "EXPLAIN SELECT generation_id FROM image_embeddings WHERE scorer_version = %s"
        " ORDER BY embedding::vector(48) <=> %s::vector(48) LIMIT 5",
        (VERSION, target), prepare=False,
    ).fetchall()
    assert any(emb.index_name(VERSION) in r[0] for r in plan), plan  # the HNSW index is used
    hits = reads.search(conn, sp, target, ALL, k=5, exclude=ids[17])
    assert hits[0].generation_id == ids[-1] and hits[0].similarity > 0.99
    exact = reads.search(conn, sp, target, ALL, k=5, exclude=ids[17], exact=True)
    assert [h.generation_id for h in exact][:1] == [ids[-1]]
    # Brute force agrees on the whole top 5.
    truth = np.argsort(-(np.vstack([base, near]) @ target))
    want = [ids[i] for i in truth if i != 17][:5]
    assert [h.generation_id for h in exact] == want


def test_filters_apply_and_a_narrow_filter_still_fills_k(vector_db_url, conn):
    rng = np.random.default_rng(4)
    rows = unit_rows(rng, 400, 32)
    gens = [Gen(e, model_version="v2" if i % 50 == 0 else "v1", seed=i) for i, e in enumerate(rows)]
    ids = seed(vector_db_url, gens)
    sp = _space(conn)
    only_v2 = Filters(ALL.start, ALL.end, versions=("v2",))
    hits = reads.search(conn, sp, rows[0], only_v2, k=8)
    assert len(hits) == 8 and {h.model_version for h in hits} == {"v2"}
    assert hits[0].generation_id == ids[0]
    assert [h.similarity for h in hits] == sorted((h.similarity for h in hits), reverse=True)


def test_bad_vectors_are_refused_with_a_reason(vector_db_url, conn):
    seed(vector_db_url, [Gen(unit_rows(np.random.default_rng(0), 1, 16)[0])])
    sp = _space(conn)
    with pytest.raises(ValueError, match=r"has 8 values; scorer version .* stores 16"):
        reads.search(conn, sp, np.ones(8), ALL)
    with pytest.raises(ValueError, match="finite and not all zeros"):
        reads.search(conn, sp, np.zeros(16), ALL)


def test_window_sample_is_even_and_carries_what_analyses_need(vector_db_url, conn):
    rng = np.random.default_rng(5)
    rows = unit_rows(rng, 300, 16)
    gens = [Gen(e, prompt=f"p{i}", seed=i, ts=datetime(2026, 12, 1 + i // 100, tzinfo=UTC))
            for i, e in enumerate(rows)]  # fmt: skip
    seed(vector_db_url, gens)
    sp = _space(conn)
    full = reads.window(conn, sp, ALL)
    assert len(full) == 300 and full.embeddings.shape == (300, 16)
    by_id = dict(zip(full.ids.tolist(), full.prompts, strict=True))
    assert np.allclose(full.embeddings[[full.prompts.index("p7")]], rows[7], atol=1e-3)
    assert len(set(by_id.values())) == 300
    sample = reads.window(conn, sp, ALL, limit=90)
    days = [int(p[1:]) // 100 for p in sample.prompts]
    assert len(sample) == 90 and all(20 <= days.count(d) <= 40 for d in range(3))  # spread


def test_embeddings_not_yet_indexed_are_found_and_indexing_keeps_the_answer(vector_db_url, conn):
    rng = np.random.default_rng(8)
    rows = unit_rows(rng, 300, 32)
    old = seed(vector_db_url, [Gen(e, seed=i) for i, e in enumerate(rows[:200])])
    new = seed(vector_db_url, [Gen(e, seed=i) for i, e in enumerate(rows[200:])], indexed=False)
    ids = old + new
    sp = _space(conn)
    assert emb.spaces(conn)[0].images == 300 and emb.pending_count(conn) == 100
    truth = [ids[i] for i in np.argsort(-(rows @ rows[250]))[:10]]
    before = [h.generation_id for h in reads.search(conn, sp, rows[250], ALL, k=10)]
    assert before[0] == ids[250] and before == truth
    assert len(reads.window(conn, sp, ALL)) == 300
    while emb.index_pending(conn, 40):
        pass
    assert emb.pending_count(conn) == 0
    after = [h.generation_id for h in reads.search(conn, sp, rows[250], ALL, k=10)]
    assert after == truth

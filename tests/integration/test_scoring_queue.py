"""The scoring work queue on a real Postgres: disjoint claims, leases, stale writers refused."""

from __future__ import annotations

import threading
import time

import psycopg
import pytest

from diffwatch.db.queries import scoring as q
from tests.helpers import numbered_line

CLIP = q.ScorerKey("clip", "tiny/v1")
NSFW = q.ScorerKey("nsfw", "320n/0.5")


def seed_generations(conninfo: str, n: int, tmp_path) -> None:
    from diffwatch.collectors.logs.collector import LogCollector

    log = tmp_path / "gen.jsonl"
    log.write_bytes(b"".join(numbered_line(i, image_uri=f"/img/{i}.png") for i in range(n)))
    assert LogCollector(conninfo, [str(log)]).run_once().ingested == n


def claim(conn, keys, token, limit=10, lease_s=60.0, max_attempts=3, order="oldest"):
    return q.claim(
        conn,
        keys,
        worker=token,
        token=token,
        limit=limit,
        lease_s=lease_s,
        max_attempts=max_attempts,
        order=order,
    )


def test_claims_are_disjoint_and_results_end_the_work(tmp_path, conninfo, sql) -> None:
    seed_generations(conninfo, 25, tmp_path)
    with (
        psycopg.connect(conninfo, autocommit=True) as a,
        psycopg.connect(conninfo, autocommit=True) as b,
    ):
        got_a = claim(a, [CLIP, NSFW], "A")
        got_b = claim(b, [CLIP, NSFW], "B")
        ids_a = {c.generation_id for c in got_a}
        ids_b = {c.generation_id for c in got_b}
        assert len(ids_a) == len(ids_b) == 10 and not ids_a & ids_b
        assert all(set(c.missing) == {str(CLIP), str(NSFW)} for c in got_a)
        w = q.write(
            a,
            [CLIP, NSFW],
            "A",
            sorted(ids_a),
            [q.ResultRow(g, CLIP, 30.0) for g in ids_a],
            [],
            "A",
        )
        assert (w.results, w.stale) == (10, ())
        # A's generations still miss NSFW: they come back, asking for NSFW only.
        again = claim(a, [CLIP, NSFW], "A2", limit=100)
        assert {c.generation_id for c in again} == set(range(1, 26)) - ids_b
        assert {c.missing for c in again if c.generation_id in ids_a} == {(str(NSFW),)}
        # Re-running clip alone finds only what clip has not scored.
        assert {c.generation_id for c in claim(b, [CLIP], "B2", limit=100)} == set(
            range(1, 26)
        ) - ids_a
    assert sql("SELECT count(*) FROM scorer_results") == [(10,)]


def test_an_expired_lease_is_taken_over_and_the_stale_writer_refused(tmp_path, conninfo, sql):
    seed_generations(conninfo, 3, tmp_path)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        first = claim(conn, [CLIP], "slow", lease_s=0.2)
        assert len(first) == 3
        assert claim(conn, [CLIP], "eager") == []  # leased: nothing to take yet
        time.sleep(0.3)
        second = claim(conn, [CLIP], "fast")
        assert [c.generation_id for c in second] == [c.generation_id for c in first]
        ids = [c.generation_id for c in first]
        late = q.write(
            conn, [CLIP], "slow", ids, [q.ResultRow(g, CLIP, 1.0) for g in ids], [], "slow"
        )
        assert late.results == 0 and late.stale == tuple(ids)
        on_time = q.write(
            conn, [CLIP], "fast", ids, [q.ResultRow(g, CLIP, 2.0) for g in ids], [], "fast"
        )
        assert on_time.results == 3
    assert sql("SELECT worker, value FROM scorer_results ORDER BY 1") == [("fast", 2.0)] * 3
    assert sql("SELECT count(*) FROM scoring_leases") == [(0,)]


def test_failures_permanent_ones_stop_transient_ones_retry_until_the_limit(
    tmp_path, conninfo, sql
) -> None:
    seed_generations(conninfo, 2, tmp_path)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        got = claim(conn, [CLIP], "w", max_attempts=3)
        fails = [
            q.FailureRow(1, CLIP, "missing", "gone", transient=False),
            q.FailureRow(2, CLIP, "io_error", "timeout", transient=True, attempts=2),
        ]
        q.write(conn, [CLIP], "w", [c.generation_id for c in got], [], fails, "w")
        again = claim(conn, [CLIP], "w2", max_attempts=3)
        assert [c.generation_id for c in again] == [2]  # 2 attempts < 3
        q.write(conn, [CLIP], "w2", [2], [], [fails[1]], "w2")
        assert claim(conn, [CLIP], "w3", max_attempts=3) == []  # 4 attempts: given up
    assert sql("SELECT generation_id, kind, attempts FROM scoring_errors ORDER BY 1") == [
        (1, "missing", 1),
        (2, "io_error", 4),
    ]


def test_concurrent_claims_from_many_threads_never_overlap(tmp_path, conninfo) -> None:
    seed_generations(conninfo, 400, tmp_path)
    seen: list[list[int]] = []
    lock = threading.Lock()

    def worker(name: str) -> None:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            while got := claim(conn, [CLIP], name, limit=7):
                with lock:
                    seen.append([c.generation_id for c in got])

    threads = [threading.Thread(target=worker, args=(f"t{i}",)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    flat = [g for batch in seen for g in batch]
    assert sorted(flat) == list(range(1, 401))  # every one claimed, none twice


def test_claim_orders_oldest_newest_and_an_even_spread(tmp_path, conninfo) -> None:
    seed_generations(conninfo, 200, tmp_path)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        oldest = [c.generation_id for c in claim(conn, [CLIP], "o", limit=5)]
        newest = [c.generation_id for c in claim(conn, [CLIP], "n", limit=5, order="newest")]
        spread = [c.generation_id for c in claim(conn, [CLIP], "s", limit=40, order="spread")]
        with pytest.raises(ValueError, match="not one of oldest, newest, spread, balanced"):
            claim(conn, [CLIP], "x", limit=1, order="random; DROP TABLE generations")
    assert oldest == [1, 2, 3, 4, 5]
    assert sorted(newest) == [196, 197, 198, 199, 200]  # (returned in id order)
    # 40 of the 190 left, taken evenly: every fifth of the id range holds some of them.
    assert len(set(spread)) == 40 and not set(spread) & set(oldest + newest)
    assert {(g - 1) * 5 // 200 for g in spread} == {0, 1, 2, 3, 4}


def test_a_balanced_claim_takes_the_versions_in_turn_each_spread_over_its_span(
    tmp_path, conninfo
) -> None:
    """A canary on every tenth generation (20 of 200): the first 30 claimed 'balanced' hold
    about 15 of each version, where 'spread' gives it its share (about 3)."""
    log = tmp_path / "gen.jsonl"
    log.write_bytes(
        b"".join(
            numbered_line(i, image_uri=f"/img/{i}.png", model_version="rc" if i % 10 == 0 else "v1")
            for i in range(200)
        )
    )
    from diffwatch.collectors.logs.collector import LogCollector

    assert LogCollector(conninfo, [str(log)]).run_once().ingested == 200
    with psycopg.connect(conninfo, autocommit=True) as conn:
        canary = {
            r[0] for r in conn.execute("SELECT id FROM generations WHERE model_version = 'rc'")
        }
        assert len(canary) == 20
        spread = [c.generation_id for c in claim(conn, [CLIP], "s", limit=30, order="spread")]
        conn.execute("DELETE FROM scoring_leases")
        balanced = [c.generation_id for c in claim(conn, [CLIP], "b", limit=30, order="balanced")]
        rest = [c.generation_id for c in claim(conn, [CLIP], "r", limit=200, order="balanced")]
    assert len(set(spread) & canary) <= 8
    took = set(balanced) & canary
    assert 12 <= len(took) <= 18 and len(set(balanced)) == 30
    # each version's part is spread over its span: every half of the id range holds some
    for part in (took, set(balanced) - canary):
        assert {(g - 1) * 2 // 200 for g in part} == {0, 1}
    # and the claims still take every generation once
    assert sorted(balanced + rest) == list(range(1, 201))

"""The scoring frontier: claims skip settled generations, and never skip an unsettled one."""

from __future__ import annotations

import threading
import uuid

import psycopg

from diffwatch.db.queries.scoring import ScorerKey, advance_frontier, claim

KEYS = [ScorerKey("nsfw", "n1")]


def add(conn: psycopg.Connection, n: int, start: int = 0) -> None:
    conn.execute(
        "INSERT INTO generations (request_id, ts, model, model_version, prompt, status,"
        " image_uri) SELECT 'r' || i, now(), 'm', 'v', 'p', 'ok', '/img/' || i"
        " FROM generate_series(%s::int, %s::int) i",
        (start, start + n - 1),
    )


def score_all(conn: psycopg.Connection, below: int | None = None) -> None:
    conn.execute(
        "INSERT INTO scorer_results (generation_id, scorer, scorer_version, value, flagged)"
        " SELECT id, 'nsfw', 'n1', 0.1, false FROM generations g"
        " WHERE (%s::bigint IS NULL OR id < %s) ON CONFLICT DO NOTHING",
        (below, below),
    )


def claim_ids(conn: psycopg.Connection, limit: int = 100) -> list[int]:
    got = claim(
        conn, KEYS, worker="t", token=uuid.uuid4().hex, limit=limit, lease_s=60, max_attempts=3
    )
    return [c.generation_id for c in got]


def frontier(conn: psycopg.Connection) -> int:
    return conn.execute("SELECT settled_below FROM scoring_frontier").fetchone()[0]


def test_frontier_passes_settled_rows_and_stops_at_the_first_unsettled(conninfo) -> None:
    with psycopg.connect(conninfo, autocommit=True) as conn:
        add(conn, 50)
        score_all(conn, below=31)  # ids 1..30 scored
        conn.execute(
            "INSERT INTO scoring_errors (generation_id, scorer, scorer_version, kind, reason,"
            " transient, attempts) VALUES (31, 'nsfw', 'n1', 'missing', 'gone', false, 1),"
            " (32, 'nsfw', 'n1', 'io_error', 'flaky', true, 1)"
        )
        assert advance_frontier(conn, KEYS, 3) == 32  # 31 failed for good, 32 will retry
        assert claim_ids(conn) == list(range(32, 51))
        # A different --max-attempts has a frontier of its own.
        assert advance_frontier(conn, KEYS, 1) == 33


def test_frontier_waits_for_inserts_in_flight(conninfo) -> None:
    with (
        psycopg.connect(conninfo, autocommit=True) as conn,
        psycopg.connect(conninfo) as writer,
    ):
        add(conn, 10)
        score_all(conn)
        add(writer, 1, start=100)  # open transaction: its id is taken, its row not visible
        add(conn, 5, start=200)  # committed after it, with higher ids
        score_all(conn)
        assert advance_frontier(conn, KEYS, 3, lock_timeout_ms=100) is None
        assert conn.execute("SELECT count(*) FROM scoring_frontier").fetchone()[0] == 0
        done = threading.Event()

        def commit_soon() -> None:
            done.wait(0.3)
            writer.commit()

        threading.Thread(target=commit_soon).start()
        done.set()
        new = advance_frontier(conn, KEYS, 3, lock_timeout_ms=5000)
        writer_id = conn.execute("SELECT id FROM generations WHERE request_id = 'r100'").fetchone()
        assert new == writer_id[0]  # the late row is the first unsettled one
        assert claim_ids(conn) == [writer_id[0]]


def test_deleting_results_or_errors_moves_the_frontier_back(conninfo) -> None:
    with psycopg.connect(conninfo, autocommit=True) as conn:
        add(conn, 20)
        score_all(conn)
        assert advance_frontier(conn, KEYS, 3) == 21
        assert claim_ids(conn) == []
        conn.execute("DELETE FROM scorer_results WHERE generation_id IN (7, 12)")  # re-score
        assert frontier(conn) == 7
        assert claim_ids(conn) == [7, 12]
        conn.execute("DELETE FROM scoring_leases")
        score_all(conn)
        conn.execute("DELETE FROM scorer_results WHERE generation_id = 15")
        conn.execute(
            "INSERT INTO scoring_errors (generation_id, scorer, scorer_version, kind, reason,"
            " transient, attempts) VALUES (15, 'nsfw', 'n1', 'missing', 'gone', false, 1)"
        )
        assert advance_frontier(conn, KEYS, 3) == 21
        conn.execute("DELETE FROM scoring_errors")  # retry failures on purpose
        assert frontier(conn) == 15
        assert claim_ids(conn) == [15]
        conn.execute("DELETE FROM scorer_results WHERE generation_id = 99")  # nothing deleted
        assert frontier(conn) == 15

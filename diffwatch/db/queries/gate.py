"""SQL of the release gate: runs, their chunks of work under leases, and their items.

A run's items are split, per side, into chunks. A worker claims a pending chunk whose lease
is free or expired with ``FOR UPDATE SKIP LOCKED`` (concurrent workers take disjoint
chunks), renews the lease while it works, and completes the chunk in one transaction that
writes its items and marks it done, only while its lease still holds. A worker killed
mid-chunk leaves the chunk pending; once its lease expires another worker takes it. A done
chunk is never handed out again, so every (prompt, seed, side) is generated and stored once.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from diffwatch.db.queries.drift import pg_seed

SIDES = ("candidate", "baseline")
_RESULT_FIELDS = (
    "image_uri", "status", "error", "clip_score", "nsfw_score", "nsfw_flagged", "embedding",
    "seconds",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Claim:
    """A chunk of one side of a run, leased to ``owner``."""

    run_id: int
    chunk: int
    side: str
    owner: str
    attempts: int


def create_run(
    conn: psycopg.Connection,
    *,
    mode: str,
    candidate: dict[str, Any],
    baseline: dict[str, Any],
    policy: dict[str, Any],
    options: dict[str, Any],
    created_by: str | None = None,
) -> int:
    """Store a new running gate run; its id. ``candidate``/``baseline`` carry a ``label``."""
    row = conn.execute(
        "INSERT INTO gate_runs (status, mode, candidate_label, baseline_label, candidate,"
        " baseline, policy, options, created_by)"
        " VALUES ('running', %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
        (
            mode, candidate["label"], baseline["label"], Jsonb(candidate), Jsonb(baseline),
            Jsonb(policy), Jsonb(options), created_by,
        ),
    ).fetchone()  # fmt: skip
    assert row is not None
    return int(row[0])


def add_items(
    conn: psycopg.Connection,
    run_id: int,
    items: Sequence[dict[str, Any]],
    chunk_size: int,
    sides: Sequence[str] = SIDES,
) -> int:
    """Store each item once per side, ``chunk_size`` items a chunk; the number of chunks.

    An item is a dict of key, prompt, seed, category, source, params and, per side, an
    optional ``image_uri`` (``image_uri_candidate``/``image_uri_baseline``: images made
    elsewhere, given by a manifest).
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive integer, got {chunk_size}")
    n_chunks = (len(items) + chunk_size - 1) // chunk_size
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO gate_chunks (run_id, chunk, side) VALUES (%s, %s, %s)",
            [(run_id, c, s) for c in range(n_chunks) for s in sides],
        )
        cur.executemany(
            "INSERT INTO gate_items (run_id, key, side, chunk, prompt, seed, category, source,"
            " params, image_uri) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            [
                (
                    run_id, it["key"], s, i // chunk_size, it["prompt"], it["seed"],
                    it.get("category"), it["source"], Jsonb(it.get("params") or {}),
                    it.get(f"image_uri_{s}"),
                )
                for i, it in enumerate(items)
                for s in sides
            ],
        )  # fmt: skip
    return n_chunks


def claim(
    conn: psycopg.Connection, owner: str, lease_s: float, run_id: int | None = None
) -> Claim | None:
    """Lease the next pending chunk of a running run (of ``run_id`` if given) for
    ``lease_s`` seconds; None when no chunk is free."""
    row = conn.execute(
        "UPDATE gate_chunks c SET lease_owner = %(owner)s, attempts = c.attempts + 1,"
        " lease_until = now() + make_interval(secs => %(lease)s)"
        " WHERE (c.run_id, c.chunk, c.side) = ("
        "  SELECT k.run_id, k.chunk, k.side FROM gate_chunks k"
        "  JOIN gate_runs r ON r.id = k.run_id AND r.status = 'running'"
        "  WHERE k.status = 'pending' AND (k.lease_until IS NULL OR k.lease_until < now())"
        "   AND (%(run)s::bigint IS NULL OR k.run_id = %(run)s::bigint)"
        "  ORDER BY k.run_id, k.chunk, k.side LIMIT 1 FOR UPDATE OF k SKIP LOCKED)"
        " RETURNING c.run_id, c.chunk, c.side, c.attempts",
        {"owner": owner, "lease": float(lease_s), "run": run_id},
    ).fetchone()
    return None if row is None else Claim(row[0], row[1], row[2], owner, row[3])


def renew(conn: psycopg.Connection, c: Claim, lease_s: float) -> bool:
    """Extend a held lease by ``lease_s`` seconds from now; False when it was lost."""
    cur = conn.execute(
        "UPDATE gate_chunks SET lease_until = now() + make_interval(secs => %s)"
        " WHERE run_id = %s AND chunk = %s AND side = %s AND lease_owner = %s"
        " AND status = 'pending'",
        (float(lease_s), c.run_id, c.chunk, c.side, c.owner),
    )
    return cur.rowcount == 1


def next_run_with_work(conn: psycopg.Connection, run_id: int | None = None) -> int | None:
    """The oldest running run (or ``run_id``) with a chunk free to claim now; None if none."""
    row = conn.execute(
        "SELECT k.run_id FROM gate_chunks k JOIN gate_runs r ON r.id = k.run_id"
        " WHERE r.status = 'running' AND k.status = 'pending'"
        " AND (k.lease_until IS NULL OR k.lease_until < now())"
        " AND (%(run)s::bigint IS NULL OR k.run_id = %(run)s::bigint)"
        " ORDER BY k.run_id LIMIT 1",
        {"run": run_id},
    ).fetchone()
    return None if row is None else int(row[0])


def chunk_items(conn: psycopg.Connection, c: Claim) -> list[dict[str, Any]]:
    """The items of a claimed chunk, in key order."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT key, prompt, seed, category, source, params, image_uri FROM gate_items"
            " WHERE run_id = %s AND chunk = %s AND side = %s ORDER BY key",
            (c.run_id, c.chunk, c.side),
        ).fetchall()


def complete(conn: psycopg.Connection, c: Claim, results: Iterable[dict[str, Any]]) -> bool:
    """Write a chunk's item results and mark it done, if ``c`` still holds its lease
    (one transaction); False, writing nothing, when the lease was lost or it is done."""
    with conn.transaction():
        held = conn.execute(
            "SELECT 1 FROM gate_chunks WHERE run_id = %s AND chunk = %s AND side = %s"
            " AND lease_owner = %s AND status = 'pending' FOR UPDATE",
            (c.run_id, c.chunk, c.side, c.owner),
        ).fetchone()
        if held is None:
            return False
        with conn.cursor() as cur:
            cur.executemany(
                "UPDATE gate_items SET image_uri = %s, status = %s, error = %s, clip_score = %s,"
                " nsfw_score = %s, nsfw_flagged = %s, embedding = %s, seconds = %s,"
                " generations = generations + 1, worker = %s, done_at = now()"
                " WHERE run_id = %s AND key = %s AND side = %s",
                [
                    (*(r.get(f) for f in _RESULT_FIELDS), c.owner, c.run_id, r["key"], c.side)
                    for r in results
                ],
            )
        conn.execute(
            "UPDATE gate_chunks SET status = 'done', done_by = %s, done_at = now(),"
            " lease_until = NULL WHERE run_id = %s AND chunk = %s AND side = %s",
            (c.owner, c.run_id, c.chunk, c.side),
        )
    return True


def progress(conn: psycopg.Connection, run_id: int) -> tuple[int, int]:
    """(chunks done, chunks in all) of a run."""
    row = conn.execute(
        "SELECT count(*) FILTER (WHERE status = 'done'), count(*) FROM gate_chunks"
        " WHERE run_id = %s",
        (run_id,),
    ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def items(conn: psycopg.Connection, run_id: int) -> list[dict[str, Any]]:
    """Every item row of a run (both sides), in key then side order."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT key, side, prompt, seed, category, source, params, image_uri, status,"
            " error, clip_score, nsfw_score, nsfw_flagged, embedding, seconds, generations,"
            " worker FROM gate_items WHERE run_id = %s ORDER BY key, side",
            (run_id,),
        ).fetchall()


def finish(conn: psycopg.Connection, run_id: int, verdict: str, summary: dict[str, Any]) -> None:
    """Store a run's verdict and summary, and mark it done."""
    conn.execute(
        "UPDATE gate_runs SET status = 'done', verdict = %s, summary = %s, finished_at = now()"
        " WHERE id = %s",
        (verdict, Jsonb(summary), run_id),
    )


def fail(conn: psycopg.Connection, run_id: int, error: str) -> None:
    """Mark a run failed with the error a person reads."""
    conn.execute(
        "UPDATE gate_runs SET status = 'failed', error = %s, finished_at = now() WHERE id = %s",
        (error, run_id),
    )


_RUN_COLUMNS = (
    "id, created_at, finished_at, status, verdict, mode, candidate_label, baseline_label,"
    " candidate, baseline, policy, options, summary, error, created_by"
)


def run(conn: psycopg.Connection, run_id: int) -> dict[str, Any] | None:
    """One run's row, or None."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            f"SELECT {_RUN_COLUMNS} FROM gate_runs WHERE id = %s", (run_id,)
        ).fetchone()


def runs(conn: psycopg.Connection, limit: int = 200) -> list[dict[str, Any]]:
    """The latest runs, newest first, without their summaries' item lists."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT id, created_at, finished_at, status, verdict, mode, candidate_label,"
            " baseline_label, error, created_by FROM gate_runs ORDER BY id DESC LIMIT %s",
            (limit,),
        ).fetchall()


def production_sample(
    conn: psycopg.Connection, start: Any, end: Any, n: int, seed: int = 0
) -> list[dict[str, Any]]:
    """Up to ``n`` logged prompts of successful generations in [start, end) with a seed,
    stratified by model version and sampler: strata take turns (a random row of each, then
    a second of each…), so a rare version or sampler is not crowded out."""
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute("SELECT setseed(%s)", [pg_seed(seed)])
        cur.execute(
            "SELECT request_id, model_version, prompt, negative_prompt, seed, sampler, steps,"
            " cfg_scale, width, height"
            " FROM (SELECT g.*, row_number() OVER (PARTITION BY g.model_version, g.sampler"
            "                                      ORDER BY random()) AS turn"
            "       FROM generations g WHERE g.ts >= %(s)s AND g.ts < %(e)s"
            "         AND g.status = 'ok' AND g.seed IS NOT NULL) s"
            " WHERE turn <= %(n)s ORDER BY turn, model_version, sampler NULLS FIRST LIMIT %(n)s",
            {"s": start, "e": end, "n": n},
        )
        return [dict(r) for r in cur.fetchall()]

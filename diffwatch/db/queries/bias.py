"""SQL of the bias probe: runs, their chunks of work under leases, their items, and the
reads of the Fairness page and the alert metrics.

Chunks work as the release gate's do (``queries.gate``): a worker claims a pending chunk
whose lease is free or expired with ``FOR UPDATE SKIP LOCKED``, renews the lease while it
generates, and completes the chunk in one transaction, only while its lease still holds; a
done chunk is never handed out again, so every (prompt, seed) is generated and stored once.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

_RESULT_FIELDS = ("image_uri", "status", "error", "readings", "seconds")
_RUN_COLUMNS = (
    "id, created_at, finished_at, status, suite_name, model, model_version, options, summary,"
    " error, created_by"
)


@dataclass(frozen=True, slots=True)
class Claim:
    """A chunk of a probe run, leased to ``owner``."""

    run_id: int
    chunk: int
    owner: str
    attempts: int


def create_run(
    conn: psycopg.Connection,
    *,
    suite: dict[str, Any],
    model: str,
    model_version: str,
    pipeline: dict[str, Any],
    options: dict[str, Any],
    created_by: str | None = None,
) -> int:
    """Store a new running probe run; its id."""
    row = conn.execute(
        "INSERT INTO bias_runs (status, suite_name, model, model_version, suite, pipeline,"
        " options, created_by) VALUES ('running', %s, %s, %s, %s, %s, %s, %s) RETURNING id",
        (
            suite["name"], model, model_version, Jsonb(suite), Jsonb(pipeline), Jsonb(options),
            created_by,
        ),
    ).fetchone()  # fmt: skip
    assert row is not None
    return int(row[0])


def add_items(conn: psycopg.Connection, run_id: int, items: Sequence[Any], chunk_size: int) -> int:
    """Store a run's items (``suite.ProbeItem``), ``chunk_size`` a chunk; the number of chunks."""
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive integer, got {chunk_size}")
    n_chunks = (len(items) + chunk_size - 1) // chunk_size
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO bias_chunks (run_id, chunk) VALUES (%s, %s)",
            [(run_id, c) for c in range(n_chunks)],
        )
        cur.executemany(
            "INSERT INTO bias_items (run_id, key, chunk, prompt, term, seed, params)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s)",
            [
                (run_id, it.key, i // chunk_size, it.prompt, it.term, it.seed, Jsonb(it.params))
                for i, it in enumerate(items)
            ],
        )
    return n_chunks


def claim(
    conn: psycopg.Connection,
    owner: str,
    lease_s: float,
    run_id: int | None = None,
    source: str | None = None,
) -> Claim | None:
    """Lease the next pending chunk of a running run (of ``run_id`` if given; of a run
    probing the pipeline ``source`` if given, so a worker never generates for a model it
    has not loaded) for ``lease_s`` seconds; None when no chunk is free."""
    row = conn.execute(
        "UPDATE bias_chunks c SET lease_owner = %(owner)s, attempts = c.attempts + 1,"
        " lease_until = now() + make_interval(secs => %(lease)s)"
        " WHERE (c.run_id, c.chunk) = ("
        "  SELECT k.run_id, k.chunk FROM bias_chunks k"
        "  JOIN bias_runs r ON r.id = k.run_id AND r.status = 'running'"
        "  WHERE k.status = 'pending' AND (k.lease_until IS NULL OR k.lease_until < now())"
        "   AND (%(run)s::bigint IS NULL OR k.run_id = %(run)s::bigint)"
        "   AND (%(source)s::text IS NULL OR r.pipeline->>'source' = %(source)s::text)"
        "  ORDER BY k.run_id, k.chunk LIMIT 1 FOR UPDATE OF k SKIP LOCKED)"
        " RETURNING c.run_id, c.chunk, c.attempts",
        {"owner": owner, "lease": float(lease_s), "run": run_id, "source": source},
    ).fetchone()
    return None if row is None else Claim(row[0], row[1], owner, row[2])


def renew(conn: psycopg.Connection, c: Claim, lease_s: float) -> bool:
    """Extend a held lease by ``lease_s`` seconds from now; False when it was lost."""
    cur = conn.execute(
        "UPDATE bias_chunks SET lease_until = now() + make_interval(secs => %s)"
        " WHERE run_id = %s AND chunk = %s AND lease_owner = %s AND status = 'pending'",
        (float(lease_s), c.run_id, c.chunk, c.owner),
    )
    return cur.rowcount == 1


def chunk_items(conn: psycopg.Connection, c: Claim) -> list[dict[str, Any]]:
    """The items of a claimed chunk, in key order."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT key, prompt, term, seed, params FROM bias_items"
            " WHERE run_id = %s AND chunk = %s ORDER BY key",
            (c.run_id, c.chunk),
        ).fetchall()


def complete(conn: psycopg.Connection, c: Claim, results: Iterable[dict[str, Any]]) -> bool:
    """Write a chunk's item results and mark it done, if ``c`` still holds its lease
    (one transaction); False, writing nothing, when the lease was lost or it is done."""
    with conn.transaction():
        held = conn.execute(
            "SELECT 1 FROM bias_chunks WHERE run_id = %s AND chunk = %s AND lease_owner = %s"
            " AND status = 'pending' FOR UPDATE",
            (c.run_id, c.chunk, c.owner),
        ).fetchone()
        if held is None:
            return False
        rows = []
        for r in results:
            vals = [r.get(f) for f in _RESULT_FIELDS]
            vals[3] = None if vals[3] is None else Jsonb(vals[3])
            rows.append((*vals, c.owner, c.run_id, r["key"]))
        with conn.cursor() as cur:
            cur.executemany(
                "UPDATE bias_items SET image_uri = %s, status = %s, error = %s, readings = %s,"
                " seconds = %s, worker = %s, done_at = now() WHERE run_id = %s AND key = %s",
                rows,
            )
        conn.execute(
            "UPDATE bias_chunks SET status = 'done', done_by = %s, done_at = now(),"
            " lease_until = NULL WHERE run_id = %s AND chunk = %s",
            (c.owner, c.run_id, c.chunk),
        )
    return True


def progress(conn: psycopg.Connection, run_id: int) -> tuple[int, int]:
    """(chunks done, chunks in all) of a run."""
    row = conn.execute(
        "SELECT count(*) FILTER (WHERE status = 'done'), count(*) FROM bias_chunks"
        " WHERE run_id = %s",
        (run_id,),
    ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def items(conn: psycopg.Connection, run_id: int) -> list[dict[str, Any]]:
    """Every item of a run, in key order."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT key, prompt, term, seed, params, image_uri, status, error, readings,"
            " seconds, worker FROM bias_items WHERE run_id = %s ORDER BY key",
            (run_id,),
        ).fetchall()


def finish(conn: psycopg.Connection, run_id: int, summary: dict[str, Any]) -> None:
    """Mark a run done with its summary."""
    conn.execute(
        "UPDATE bias_runs SET status = 'done', finished_at = now(), summary = %s WHERE id = %s",
        (Jsonb(summary), run_id),
    )


def fail(conn: psycopg.Connection, run_id: int, error: str) -> None:
    """Mark a run failed with its error (its done chunks stay, for the record)."""
    conn.execute(
        "UPDATE bias_runs SET status = 'failed', finished_at = now(), error = %s WHERE id = %s",
        (error, run_id),
    )


def reopen(conn: psycopg.Connection, run_id: int) -> None:
    """Mark a failed (or stuck) run running again, so its pending chunks can be claimed."""
    conn.execute(
        "UPDATE bias_runs SET status = 'running', finished_at = NULL, error = NULL"
        " WHERE id = %s AND status <> 'done'",
        (run_id,),
    )


def run(conn: psycopg.Connection, run_id: int) -> dict[str, Any] | None:
    """One run with its suite and pipeline; None when there is none."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            f"SELECT {_RUN_COLUMNS}, suite, pipeline FROM bias_runs WHERE id = %s", (run_id,)
        ).fetchone()


def runs(
    conn: psycopg.Connection,
    *,
    suite: str | None = None,
    models: Sequence[str] = (),
    versions: Sequence[str] = (),
    status: str | None = None,
    since: Any = None,
    until: Any = None,
    limit: int = 200,
) -> list[dict[str, Any]]:
    """Runs, newest first (by finish, then creation), filtered as given; without items."""
    conds = ["TRUE"]
    if suite is not None:
        conds.append("suite_name = %(suite)s")
    if models:
        conds.append("model = ANY(%(models)s)")
    if versions:
        conds.append("model_version = ANY(%(versions)s)")
    if status is not None:
        conds.append("status = %(status)s")
    if since is not None:
        conds.append("finished_at >= %(since)s")
    if until is not None:
        conds.append("finished_at < %(until)s")
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            f"SELECT {_RUN_COLUMNS} FROM bias_runs WHERE {' AND '.join(conds)}"
            " ORDER BY finished_at DESC NULLS FIRST, id DESC LIMIT %(limit)s",
            {
                "suite": suite, "models": list(models), "versions": list(versions),
                "status": status, "since": since, "until": until, "limit": int(limit),
            },
        ).fetchall()  # fmt: skip


def previous_done(conn: psycopg.Connection, run_id: int) -> dict[str, Any] | None:
    """The newest done run of the same suite and model that finished before ``run_id``."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            f"SELECT {_RUN_COLUMNS} FROM bias_runs p WHERE p.status = 'done' AND p.id <> %(id)s"
            " AND (p.suite_name, p.model) = (SELECT suite_name, model FROM bias_runs"
            "  WHERE id = %(id)s)"
            " AND p.finished_at < coalesce((SELECT finished_at FROM bias_runs WHERE id = %(id)s),"
            "  now())"
            " ORDER BY p.finished_at DESC LIMIT 1",
            {"id": run_id},
        ).fetchone()


def examples(
    conn: psycopg.Connection, run_id: int, prompt: str, limit: int = 12
) -> list[dict[str, Any]]:
    """A prompt's images of a run, by seed: uri, seed and readings (for example grids)."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            "SELECT key, seed, image_uri, readings FROM bias_items WHERE run_id = %s"
            " AND prompt = %s AND status = 'done' ORDER BY seed LIMIT %s",
            (run_id, prompt, int(limit)),
        ).fetchall()


def filter_options(conn: psycopg.Connection) -> dict[str, list[str]]:
    """The suites, models and versions that have a done run (the page's filters)."""
    out: dict[str, list[str]] = {}
    for col in ("suite_name", "model", "model_version"):
        rows = conn.execute(
            f"SELECT DISTINCT {col} FROM bias_runs WHERE status = 'done' ORDER BY 1"
        ).fetchall()
        out[col] = [r[0] for r in rows]
    return out

"""SQL used by scoring workers: claim work under leases, store results and failures.

A worker claims generations for its *scorer set* (for example ``clip:ViT-B-32/laion2b|nsfw:
320n/0.5``) with ``FOR UPDATE SKIP LOCKED``, so concurrent workers take disjoint rows, and a
lease row with a random token and an expiry. Results are written only for leases the
token still holds; a worker whose lease expired and was taken over is refused.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from diffwatch.db.queries.embeddings import EmbeddingRow, PromptEmbeddingRow
from diffwatch.db.queries.embeddings import store as store_embeddings


@dataclass(frozen=True, slots=True)
class ScorerKey:
    """A scorer and the version of its model, weights and policy."""

    scorer: str
    version: str

    def __str__(self) -> str:
        return f"{self.scorer}:{self.version}"


def scorer_set(keys: Sequence[ScorerKey]) -> str:
    """The lease key for a set of scorers (order-independent)."""
    return "|".join(sorted(str(k) for k in keys))


@dataclass(frozen=True, slots=True)
class Claimed:
    """A generation leased to this worker, and which of its scorers it still needs."""

    generation_id: int
    image_uri: str
    prompt: str
    missing: tuple[str, ...]  # str(ScorerKey) of each scorer without a result yet


@dataclass(frozen=True, slots=True)
class ResultRow:
    """One score to store."""

    generation_id: int
    key: ScorerKey
    value: float | None
    flagged: bool | None = None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class FailureRow:
    """An image that could not be scored by ``key`` (attempts made in this claim)."""

    generation_id: int
    key: ScorerKey
    kind: str
    reason: str
    transient: bool
    attempts: int = 1


@dataclass(frozen=True, slots=True)
class WriteResult:
    """What a write did: rows stored, and generations refused because the lease was lost."""

    results: int
    failures: int
    stale: tuple[int, ...]


_NEEDS = """
    NOT EXISTS (SELECT 1 FROM scorer_results r WHERE r.generation_id = g.id
                AND r.scorer = w.scorer AND r.scorer_version = w.version)
    AND NOT EXISTS (SELECT 1 FROM scoring_errors e WHERE e.generation_id = g.id
                AND e.scorer = w.scorer AND e.scorer_version = w.version
                AND (NOT e.transient OR e.attempts >= %(max_attempts)s))
"""

# Every generation below it is settled for this scorer set (see advance_frontier).
_FRONTIER = """coalesce((SELECT settled_below FROM scoring_frontier
              WHERE scorer_set = %(set)s AND max_attempts = %(max_attempts)s), 0)"""

_CLAIM = f"""
WITH wanted(scorer, version) AS (
    SELECT * FROM unnest(%(scorers)s::text[], %(versions)s::text[])
), {{shares}} cand AS (
    SELECT g.id FROM generations g
    WHERE g.id >= {_FRONTIER}
      AND g.status = 'ok' AND g.image_uri IS NOT NULL
      AND EXISTS (SELECT 1 FROM wanted w WHERE {_NEEDS})
      AND NOT EXISTS (SELECT 1 FROM scoring_leases l WHERE l.generation_id = g.id
                      AND l.scorer_set = %(set)s AND l.expires_at > now())
    ORDER BY {{order}}
    LIMIT %(limit)s
    FOR UPDATE OF g SKIP LOCKED
), leased AS (
    INSERT INTO scoring_leases (generation_id, scorer_set, worker, token, expires_at)
    SELECT id, %(set)s, %(worker)s, %(token)s, now() + make_interval(secs => %(lease_s)s)
    FROM cand
    ON CONFLICT (generation_id, scorer_set) DO UPDATE
        SET worker = EXCLUDED.worker, token = EXCLUDED.token, expires_at = EXCLUDED.expires_at
        WHERE scoring_leases.expires_at <= now()
    RETURNING generation_id
)
SELECT generation_id FROM leased
"""

# The order a backlog is claimed in. 'spread' walks a fixed pseudo-random permutation of the
# ids (a multiplicative hash, a bijection mod 2^32), so the first N claimed are an even sample
# over the backlog's whole time span. 'balanced' is 'spread' within each model version, with
# the versions taking turns: a version's hashes are scaled by its share of the backlog, so
# the k-th item of every version gets about the same key (k · 2^32 / backlog) and the first N
# claimed hold about N / versions of each (all of a smaller one). A canary on 10 % of the
# traffic gets as many scores as the stable version to be compared with; the demo scores its
# sample this way.
_SPREAD = "(g.id * 2654435761) %% 4294967296"
CLAIM_ORDERS = {
    "oldest": "g.id",
    "newest": "g.id DESC",
    "spread": f"{_SPREAD}, g.id DESC",
    "balanced": f"{_SPREAD} * (SELECT s.share FROM version_share s"
    " WHERE s.model = g.model AND s.model_version = g.model_version), g.id DESC",
}
# Each version's share of the generations a claim may take (for 'balanced' only).
_VERSION_SHARE = f"""version_share AS MATERIALIZED (
    SELECT g.model, g.model_version, count(*)::float8 / sum(count(*)) OVER () AS share
    FROM generations g
    WHERE g.id >= {_FRONTIER} AND g.status = 'ok' AND g.image_uri IS NOT NULL
    GROUP BY g.model, g.model_version
),"""

# A claim statement's snapshot can predate another worker's write of the same generation
# (that worker claimed, scored and released it while this statement waited on locks).
# This second statement sees a fresh snapshot: it drops such leases and lists the rest.
_RECHECK = f"""
WITH wanted(scorer, version) AS (
    SELECT * FROM unnest(%(scorers)s::text[], %(versions)s::text[])
), done AS (
    DELETE FROM scoring_leases l USING generations g
    WHERE l.token = %(token)s AND l.scorer_set = %(set)s AND g.id = l.generation_id
      AND l.generation_id = ANY(%(ids)s)
      AND NOT EXISTS (SELECT 1 FROM wanted w WHERE {_NEEDS})
    RETURNING l.generation_id
)
SELECT g.id, g.image_uri, g.prompt,
       ARRAY(SELECT w.scorer || ':' || w.version FROM wanted w WHERE {_NEEDS})
FROM scoring_leases l JOIN generations g ON g.id = l.generation_id
WHERE l.token = %(token)s AND l.scorer_set = %(set)s AND l.generation_id = ANY(%(ids)s)
  AND l.generation_id NOT IN (SELECT generation_id FROM done)
ORDER BY g.id
"""


def _key_params(keys: Sequence[ScorerKey], max_attempts: int) -> dict[str, Any]:
    return {
        "scorers": [k.scorer for k in keys],
        "versions": [k.version for k in keys],
        "set": scorer_set(keys),
        "max_attempts": max_attempts,
    }


def claim(
    conn: psycopg.Connection,
    keys: Sequence[ScorerKey],
    *,
    worker: str,
    token: str,
    limit: int,
    lease_s: float,
    max_attempts: int,
    order: str = "oldest",
) -> list[Claimed]:
    """Lease up to ``limit`` generations that some scorer in ``keys`` has not scored yet,
    in ``order`` (a key of ``CLAIM_ORDERS``: oldest first, newest first, spread or balanced)."""
    if order not in CLAIM_ORDERS:
        raise ValueError(f"claim order: {order!r} is not one of {', '.join(CLAIM_ORDERS)}")
    params = _key_params(keys, max_attempts) | {
        "worker": worker,
        "token": token,
        "limit": limit,
        "lease_s": lease_s,
    }
    with conn.transaction():
        claim = _CLAIM.replace("{order}", CLAIM_ORDERS[order])
        claim = claim.replace("{shares}", _VERSION_SHARE if order == "balanced" else "")
        ids = [r[0] for r in conn.execute(claim, params)]
        if not ids:
            return []
        rows = conn.execute(_RECHECK, params | {"ids": ids}).fetchall()
    return [Claimed(gid, uri, prompt, tuple(missing)) for gid, uri, prompt, missing in rows]


def pending(conn: psycopg.Connection, keys: Sequence[ScorerKey], max_attempts: int) -> int:
    """How many generations some scorer in ``keys`` still has to score (for progress)."""
    sql = f"""
        WITH wanted(scorer, version) AS (
            SELECT * FROM unnest(%(scorers)s::text[], %(versions)s::text[]))
        SELECT count(*) FROM generations g
        WHERE g.id >= {_FRONTIER} AND g.status = 'ok' AND g.image_uri IS NOT NULL
          AND EXISTS (SELECT 1 FROM wanted w WHERE {_NEEDS})
    """
    return conn.execute(sql, _key_params(keys, max_attempts)).fetchone()[0]


def write(
    conn: psycopg.Connection,
    keys: Sequence[ScorerKey],
    token: str,
    generation_ids: Sequence[int],
    results: Sequence[ResultRow],
    failures: Sequence[FailureRow],
    worker: str,
    embeddings: Sequence[EmbeddingRow] = (),
    prompt_embeddings: Sequence[PromptEmbeddingRow] = (),
) -> WriteResult:
    """Store results, failures and embeddings for the generations whose lease ``token``
    still holds.

    The leases are locked, written through and released in one transaction, so an image's
    embedding is stored exactly when its score is (once per generation and scorer version).
    """
    with conn.transaction(), conn.cursor() as cur:
        held = {
            r[0]
            for r in cur.execute(
                "SELECT generation_id FROM scoring_leases WHERE scorer_set = %s AND token = %s"
                " AND generation_id = ANY(%s) FOR UPDATE",
                (scorer_set(keys), token, list(generation_ids)),
            )
        }
        ok_results = [r for r in results if r.generation_id in held]
        ok_failures = [f for f in failures if f.generation_id in held]
        stored = 0
        if ok_results:
            cur.executemany(
                "INSERT INTO scorer_results (generation_id, scorer, scorer_version, value,"
                " flagged, details, worker) VALUES (%s, %s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (generation_id, scorer, scorer_version) DO NOTHING",
                [
                    (
                        r.generation_id,
                        r.key.scorer,
                        r.key.version,
                        r.value,
                        r.flagged,
                        Jsonb(r.details),
                        worker,
                    )
                    for r in ok_results
                ],
            )
            stored = cur.rowcount  # rows really inserted (a duplicate is skipped)
            # A scorer that succeeds after transient failures leaves no error behind.
            cur.executemany(
                "DELETE FROM scoring_errors WHERE generation_id = %s AND scorer = %s"
                " AND scorer_version = %s",
                [(r.generation_id, r.key.scorer, r.key.version) for r in ok_results],
            )
        if embeddings:
            ok_ids = {r.generation_id for r in ok_results}
            store_embeddings(
                cur,
                [e for e in embeddings if e.generation_id in ok_ids],
                prompt_embeddings,
            )
        if ok_failures:
            cur.executemany(
                "INSERT INTO scoring_errors (generation_id, scorer, scorer_version, kind,"
                " reason, transient, attempts) VALUES (%s, %s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (generation_id, scorer, scorer_version) DO UPDATE SET"
                " kind = EXCLUDED.kind, reason = EXCLUDED.reason,"
                " transient = EXCLUDED.transient,"
                " attempts = scoring_errors.attempts + EXCLUDED.attempts,"
                " last_attempt_at = now()",
                [
                    (
                        f.generation_id,
                        f.key.scorer,
                        f.key.version,
                        f.kind,
                        f.reason,
                        f.transient,
                        f.attempts,
                    )
                    for f in ok_failures
                ],
            )
        cur.execute(
            "DELETE FROM scoring_leases WHERE scorer_set = %s AND token = %s"
            " AND generation_id = ANY(%s)",
            (scorer_set(keys), token, list(held)),
        )
    stale = tuple(sorted(set(generation_ids) - held))
    return WriteResult(stored, len(ok_failures), stale)


def release(conn: psycopg.Connection, keys: Sequence[ScorerKey], token: str) -> None:
    """Give back every lease ``token`` holds (a worker stopping cleanly mid-batch)."""
    conn.execute(
        "DELETE FROM scoring_leases WHERE scorer_set = %s AND token = %s",
        (scorer_set(keys), token),
    )


def advance_frontier(
    conn: psycopg.Connection,
    keys: Sequence[ScorerKey],
    max_attempts: int,
    *,
    lock_timeout_ms: int = 200,
) -> int | None:
    """Move the scorer set's frontier past the generations settled since the last call.

    First the highest id that can never gain a lower neighbour is read while no insert is
    in flight: ``LOCK generations IN SHARE MODE`` waits for inserting transactions (at most
    ``lock_timeout_ms``, else this call gives up and returns None) and is released at once.
    Then, holding the frontier row, the first unsettled generation from the frontier up to
    that id becomes the new frontier. A delete of results or errors that races with this
    waits for the frontier row and moves it back afterwards (trigger, migration 0005).
    Returns the new frontier. The scan is amortised: each settled id is passed once.
    """
    params = _key_params(keys, max_attempts)
    try:
        with conn.transaction():
            conn.execute(f"SET LOCAL lock_timeout = '{int(lock_timeout_ms)}ms'")
            conn.execute("LOCK TABLE generations IN SHARE MODE")
            bound = conn.execute("SELECT coalesce(max(id), 0) FROM generations").fetchone()[0]
    except psycopg.errors.LockNotAvailable:
        return None
    conn.execute(
        "INSERT INTO scoring_frontier (scorer_set, max_attempts) VALUES (%(set)s, %(max_attempts)s)"
        " ON CONFLICT DO NOTHING",
        params,
    )
    with conn.transaction():
        start = conn.execute(
            "SELECT settled_below FROM scoring_frontier"
            " WHERE scorer_set = %(set)s AND max_attempts = %(max_attempts)s FOR UPDATE",
            params,
        ).fetchone()[0]
        first = conn.execute(
            f"""
            WITH wanted(scorer, version) AS (
                SELECT * FROM unnest(%(scorers)s::text[], %(versions)s::text[]))
            SELECT g.id FROM generations g
            WHERE g.id >= %(start)s AND g.id <= %(bound)s
              AND g.status = 'ok' AND g.image_uri IS NOT NULL
              AND EXISTS (SELECT 1 FROM wanted w WHERE {_NEEDS})
            ORDER BY g.id LIMIT 1
            """,
            params | {"start": start, "bound": bound},
        ).fetchone()
        new = first[0] if first else max(start, bound + 1)
        if new != start:
            conn.execute(
                "UPDATE scoring_frontier SET settled_below = %(new)s, updated_at = now()"
                " WHERE scorer_set = %(set)s AND max_attempts = %(max_attempts)s",
                params | {"new": new},
            )
    return new

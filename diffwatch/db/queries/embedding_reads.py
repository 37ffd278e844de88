"""Reading image embeddings: a window's sample (drift, duplicates) and nearest neighbours
(search).

Search orders by cosine distance on a space's expression, ``embedding::<type>(<width>)``
restricted to its scorer version, so the planner can walk that space's HNSW index. An HNSW
scan filters *after* it finds candidates (pgvector before 0.8 has no iterative scan): with a
narrow filter it can return fewer than ``k`` rows, and then the same query runs again as an
exact scan, which is cheap precisely because the filter leaves few rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import psycopg
from psycopg import sql

from diffwatch.db.queries.embeddings import Space, space_expr
from diffwatch.model.filters import Filters

EF_SEARCH_MIN = 100  # HNSW candidates per scan (pgvector's default is 40)
# Every stored image embedding: the indexed ones and those scoring stored since the indexer
# last ran (``embeddings.index_pending``).
_ALL = (
    "(SELECT generation_id, scorer_version, embedding FROM image_embeddings"
    " UNION ALL SELECT generation_id, scorer_version, embedding FROM image_embeddings_pending)"
)

_FILTERS = """
  AND g.ts >= %(start)s AND g.ts < %(end)s
  AND (cardinality(%(models)s::text[]) = 0 OR g.model = ANY(%(models)s))
  AND (cardinality(%(versions)s::text[]) = 0 OR g.model_version = ANY(%(versions)s))
  AND (cardinality(%(deployments)s::text[]) = 0
       OR coalesce(g.deployment, '') = ANY(%(deployments)s))
  AND (cardinality(%(gpus)s::text[]) = 0 OR coalesce(g.gpu_type, '') = ANY(%(gpus)s))
"""


def _filter_params(f: Filters) -> dict[str, Any]:
    return {
        "start": f.start,
        "end": f.end,
        "models": list(f.models),
        "versions": list(f.versions),
        "deployments": list(f.deployments),
        "gpus": list(f.gpu_types),
    }


@dataclass(frozen=True, slots=True)
class SearchHit:
    """One generation found by similarity (cosine in [-1, 1], higher is closer)."""

    generation_id: int
    request_id: str
    ts: datetime
    model: str
    model_version: str
    prompt: str  # untrusted text: render as plain text only
    seed: int | None
    image_uri: str | None
    similarity: float
    nsfw_flagged: bool | None


def search(
    conn: psycopg.Connection,
    sp: Space,
    query: np.ndarray,
    f: Filters,
    *,
    k: int = 20,
    exclude: int | None = None,
    exact: bool = False,
) -> list[SearchHit]:
    """The ``k`` generations in the range and filters whose image embedding is nearest
    ``query`` (a ``sp.dims``-wide vector; normalised here), nearest first.

    ``exclude``: a generation id to leave out (image → similar images). ``exact``: scan
    every row instead of the index (the benchmark's baseline; also the fallback when a
    narrow filter leaves the index scan short).
    """
    q = np.asarray(query, dtype=np.float32).ravel()
    if q.shape[0] != sp.dims:
        raise ValueError(
            f"search vector has {q.shape[0]} values; scorer version {sp.scorer_version!r} "
            f"stores {sp.dims}"
        )
    norm = float(np.linalg.norm(q))
    if not np.isfinite(q).all() or norm == 0.0:
        raise ValueError("search vector must be finite and not all zeros")
    if not 1 <= k <= 1000:
        raise ValueError(f"search k: 1 to 1000, got {k}")
    hits = _search(conn, sp, q / norm, f, k, exclude, exact)
    if len(hits) < k and not exact:
        hits = _search(conn, sp, q / norm, f, k, exclude, True)
    # Not yet indexed: few rows (what scoring stored since the indexer last ran), scanned.
    hits += _search(conn, sp, q / norm, f, k, exclude, True, table="image_embeddings_pending")
    hits.sort(key=lambda h: (-h.similarity, h.generation_id))
    return hits[:k]


def _search(
    conn: psycopg.Connection,
    sp: Space,
    q: np.ndarray,
    f: Filters,
    k: int,
    exclude: int | None,
    exact: bool,
    table: str = "image_embeddings",
) -> list[SearchHit]:
    expr = space_expr(sp.vector_type, sp.dims)
    qexpr = sql.SQL("%(q)s::vector::{t}({d})").format(
        t=sql.SQL(sp.vector_type), d=sql.Literal(sp.dims)
    )
    query = sql.SQL(
        """
        SELECT g.id, g.request_id, g.ts, g.model, g.model_version, g.prompt, g.seed,
               g.image_uri, 1 - ({expr} <=> {q}),
               (SELECT bool_or(n.flagged) FROM scorer_results n
                 WHERE n.generation_id = g.id AND n.scorer = 'nsfw')
        FROM {table} e JOIN generations g ON g.id = e.generation_id
        WHERE e.scorer_version = %(version)s
          AND (%(exclude)s::bigint IS NULL OR e.generation_id <> %(exclude)s)
        """
        + _FILTERS
        + " ORDER BY {expr} <=> {q} LIMIT %(k)s"
    ).format(expr=expr, q=qexpr, table=sql.Identifier(table))
    params = _filter_params(f) | {
        "version": sp.scorer_version,
        "q": q,
        "k": k,
        "exclude": exclude,
    }
    with conn.transaction():
        if exact:
            conn.execute("SET LOCAL enable_indexscan = off")
        else:
            conn.execute(
                sql.SQL("SET LOCAL hnsw.ef_search = {n}").format(
                    n=sql.Literal(max(EF_SEARCH_MIN, 2 * k))
                )
            )
        # Never a generic plan: the partial index's predicate is proved from the value.
        rows = conn.execute(query, params, prepare=False).fetchall()
    return [SearchHit(*r[:8], float(r[8]), r[9]) for r in rows]


def embedding_of(conn: psycopg.Connection, sp: Space, generation_id: int) -> np.ndarray | None:
    """One generation's stored image embedding in a space (float32), or None."""
    row = conn.execute(
        f"SELECT embedding::vector FROM {_ALL} e"
        " WHERE generation_id = %s AND scorer_version = %s LIMIT 1",
        (generation_id, sp.scorer_version),
    ).fetchone()
    return None if row is None else np.asarray(row[0].to_numpy(), dtype=np.float32)


@dataclass(frozen=True)
class WindowSample:
    """A window's stored image embeddings with what the analyses need of each generation."""

    ids: np.ndarray  # int64 generation ids
    model_versions: tuple[str, ...]
    prompts: tuple[str, ...]
    seeds: tuple[int | None, ...]
    embeddings: np.ndarray  # (N, dims) float32, L2-normalised

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    def take(self, mask: np.ndarray | Sequence[int]) -> WindowSample:
        """The rows selected by a boolean mask or an index list."""
        idx = np.flatnonzero(mask) if np.asarray(mask).dtype == bool else np.asarray(mask)
        return WindowSample(
            self.ids[idx],
            tuple(self.model_versions[i] for i in idx),
            tuple(self.prompts[i] for i in idx),
            tuple(self.seeds[i] for i in idx),
            self.embeddings[idx],
        )


def window(
    conn: psycopg.Connection,
    sp: Space,
    f: Filters,
    *,
    limit: int | None = None,
) -> WindowSample:
    """The stored embeddings of the generations in ``f``'s range and filters.

    With ``limit``, an even sample of at most that many, taken over the whole range (a fixed
    pseudo-random order of ids, as the scoring queue's 'spread'), so the sample does not
    lean to the oldest or newest images.
    """
    query = (
        """
        SELECT g.id, g.model_version, g.prompt, g.seed, e.embedding::vector
        FROM """
        + _ALL
        + """ e JOIN generations g ON g.id = e.generation_id
        WHERE e.scorer_version = %(version)s
        """
        + _FILTERS
        + " ORDER BY (g.id * 2654435761) %% 4294967296, g.id"
        + (" LIMIT %(limit)s" if limit is not None else "")
    )
    params = _filter_params(f) | {"version": sp.scorer_version, "limit": limit}
    rows = conn.execute(query, params).fetchall()
    if not rows:
        return WindowSample(np.empty(0, np.int64), (), (), (), np.empty((0, sp.dims), np.float32))
    return WindowSample(
        np.array([r[0] for r in rows], dtype=np.int64),
        tuple(r[1] for r in rows),
        tuple(r[2] for r in rows),
        tuple(r[3] for r in rows),
        np.stack([r[4].to_numpy() for r in rows]).astype(np.float32, copy=False),
    )


def window_versions(conn: psycopg.Connection, sp: Space, f: Filters) -> list[str]:
    """The model versions with stored embeddings in the range and filters, by name."""
    rows = conn.execute(
        "SELECT DISTINCT g.model_version"
        f" FROM {_ALL} e JOIN generations g ON g.id = e.generation_id"
        " WHERE e.scorer_version = %(version)s" + _FILTERS + " ORDER BY 1",
        _filter_params(f) | {"version": sp.scorer_version},
    ).fetchall()
    return [r[0] for r in rows]


@dataclass(frozen=True, slots=True)
class Shown:
    """What a page shows of a generation found by id (an example image of an analysis)."""

    generation_id: int
    model_version: str
    prompt: str  # untrusted text
    image_uri: str | None
    nsfw_flagged: bool | None


def shown(conn: psycopg.Connection, ids: Sequence[int]) -> dict[int, Shown]:
    """Prompt, image and NSFW flag of each generation id (missing ids are left out)."""
    rows = conn.execute(
        "SELECT g.id, g.model_version, g.prompt, g.image_uri,"
        " (SELECT bool_or(n.flagged) FROM scorer_results n"
        "   WHERE n.generation_id = g.id AND n.scorer = 'nsfw')"
        " FROM generations g WHERE g.id = ANY(%s)",
        (list(ids),),
    ).fetchall()
    return {r[0]: Shown(*r) for r in rows}

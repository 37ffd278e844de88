"""Moving the image embeddings that scoring stored into the search index.

Scoring writes each image's embedding to ``image_embeddings_pending`` in the transaction of
its score: cheap, so storing embeddings barely slows a GPU worker. Maintaining an HNSW index
costs milliseconds a row, so that work happens here, off the scoring path: ``diffwatch
worker`` runs it every few seconds, ``diffwatch db index-embeddings`` on demand. Reads never
wait for it: search, drift and duplicates read pending rows too (scanned, not indexed).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import psycopg

from diffwatch.db.queries import embeddings as emb


def index_pending(
    conninfo: str,
    *,
    batch: int = emb.INDEX_BATCH,
    max_s: float | None = None,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Move pending embeddings into the index, a batch a transaction, until none is left
    (or ``max_s`` seconds have passed); returns the rows moved. 0 without pgvector."""
    if batch < 1:
        raise ValueError(f"index batch must be at least 1, got {batch}")
    t0 = time.monotonic()
    moved = 0
    with psycopg.connect(conninfo, autocommit=True) as conn:
        if not emb.support(conn).enabled:
            return 0
        while max_s is None or time.monotonic() - t0 < max_s:
            n = emb.index_pending(conn, batch)
            moved += n
            if progress and n:
                progress(n)
            if n < batch:
                break
    return moved

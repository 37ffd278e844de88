"""Moving the image embeddings that scoring stored into the search index.

Scoring writes each image's embedding to ``image_embeddings_pending`` in the transaction of
its score: cheap, so storing embeddings barely slows a GPU worker. Maintaining an HNSW index
costs milliseconds a row (about 6 ms for a 512-wide row on one core), so that work happens
here, off the scoring path, on as many connections as asked (the inserts run in parallel on
the database server's cores): ``diffwatch worker`` runs it every few seconds, ``diffwatch db
index-embeddings`` on demand. Reads never wait for it: search, drift and duplicates read
pending rows too (scanned, not indexed).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import psycopg

from diffwatch.db.queries import embeddings as emb

DEFAULT_BATCH = 500  # rows a transaction: small enough that parallel connections share work


def index_pending(
    conninfo: str,
    *,
    batch: int = DEFAULT_BATCH,
    connections: int = 1,
    max_s: float | None = None,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Move pending embeddings into the index, a batch a transaction on each of
    ``connections`` connections, until none is left (or ``max_s`` seconds have passed);
    returns the rows moved. 0 without pgvector."""
    if batch < 1:
        raise ValueError(f"index batch must be at least 1, got {batch}")
    if connections < 1:
        raise ValueError(f"index connections must be at least 1, got {connections}")
    with psycopg.connect(conninfo, autocommit=True) as conn:
        if not emb.support(conn).enabled:
            return 0
    deadline = None if max_s is None else time.monotonic() + max_s
    lock = threading.Lock()

    def drain() -> int:
        moved = 0
        with psycopg.connect(conninfo, autocommit=True) as conn:
            while deadline is None or time.monotonic() < deadline:
                n = emb.index_pending(conn, batch)
                moved += n
                if progress and n:
                    with lock:
                        progress(n)
                if n < batch:
                    break
        return moved

    if connections == 1:
        return drain()
    with ThreadPoolExecutor(connections, thread_name_prefix="index") as pool:
        return sum(pool.map(lambda _: drain(), range(connections)))

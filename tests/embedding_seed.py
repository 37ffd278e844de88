"""Generations with stored image embeddings, written straight to the tables (for tests of
what reads embeddings: search, duplicates, image drift; scoring's own path is tested apart)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import psycopg

from diffwatch.db.engine import raw_conninfo
from diffwatch.db.queries import embeddings as emb

VERSION = "test-clip/file-000000000000"


@dataclass(frozen=True)
class Gen:
    """One generation to seed: its embedding and what the analyses read."""

    embedding: np.ndarray
    model_version: str = "v1"
    prompt: str = "a photo"
    seed: int | None = 0
    ts: datetime = datetime(2026, 12, 1, 12, tzinfo=UTC)
    model: str = "sd"
    image_uri: str | None = None
    nsfw: bool | None = None


def unit_rows(rng: np.random.Generator, n: int, dims: int, centre: np.ndarray | None = None,
              spread: float = 1.0) -> np.ndarray:  # fmt: skip
    """``n`` L2-normalised rows: around ``centre`` (scaled by ``spread``), else uniform."""
    x = rng.normal(size=(n, dims)) * spread
    if centre is not None:
        x = x + centre
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def seed(
    db_url: str, gens: Sequence[Gen], version: str = VERSION, *, indexed: bool = True
) -> list[int]:
    """Insert the generations and their embeddings (as scoring does: pending), then move
    them into the index unless ``indexed`` is False; returns their ids in order."""
    dims = int(np.asarray(gens[0].embedding).shape[0])
    with psycopg.connect(raw_conninfo(db_url), autocommit=True) as conn:
        st = emb.support(conn)
        assert st.enabled, st.describe()
        emb.ensure_space(conn, version, dims, st.vector_type)
        emb.register(conn)
        start = conn.execute("SELECT count(*) FROM generations").fetchone()[0]
        ids = []
        with conn.transaction(), conn.cursor() as cur:
            for i, g in enumerate(gens):
                gid = cur.execute(
                    "INSERT INTO generations (request_id, ts, model, model_version, prompt,"
                    " status, seed, image_uri) VALUES (%s, %s, %s, %s, %s, 'ok', %s, %s)"
                    " RETURNING id",
                    (
                        f"seed-{start + i}",
                        g.ts,
                        g.model,
                        g.model_version,
                        g.prompt,
                        g.seed,
                        g.image_uri,
                    ),
                ).fetchone()[0]
                ids.append(gid)
                if g.nsfw is not None:
                    cur.execute(
                        "INSERT INTO scorer_results (generation_id, scorer, scorer_version,"
                        " value, flagged, worker) VALUES (%s, 'nsfw', 'n', 0, %s, 'seed')",
                        (gid, g.nsfw),
                    )
            emb.store(cur, [emb.EmbeddingRow(gid, version, g.embedding)
                            for gid, g in zip(ids, gens, strict=True)], [])  # fmt: skip
        while indexed and emb.index_pending(conn):
            pass
    return ids

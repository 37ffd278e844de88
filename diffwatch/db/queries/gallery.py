"""The worst-scoring generations of a range, for the Quality page's gallery.

A top-N lookup through ``scorer_results``, not an aggregate: it reads at most ``limit``
rows per scorer version after the index order, joined to their generations.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import psycopg

from diffwatch.model.filters import Filters


@dataclass(frozen=True, slots=True)
class GalleryItem:
    """One generation with its CLIP score and, when scored, its NSFW flag."""

    generation_id: int
    request_id: str
    ts: datetime
    model_version: str
    prompt: str  # untrusted text: render as plain text only
    image_uri: str | None
    clip_score: float
    nsfw_flagged: bool | None


def worst_clip(conn: psycopg.Connection, f: Filters, limit: int = 12) -> list[GalleryItem]:
    """The ``limit`` lowest CLIP scores among generations in the range and filters."""
    rows = conn.execute(
        """
        SELECT g.id, g.request_id, g.ts, g.model_version, g.prompt, g.image_uri, r.value,
               (SELECT bool_or(n.flagged) FROM scorer_results n
                 WHERE n.generation_id = g.id AND n.scorer = 'nsfw')
        FROM scorer_results r JOIN generations g ON g.id = r.generation_id
        WHERE r.scorer = 'clip' AND r.value IS NOT NULL
          AND g.ts >= %(start)s AND g.ts < %(end)s
          AND (cardinality(%(models)s::text[]) = 0 OR g.model = ANY(%(models)s))
          AND (cardinality(%(versions)s::text[]) = 0 OR g.model_version = ANY(%(versions)s))
          AND (cardinality(%(deployments)s::text[]) = 0
               OR coalesce(g.deployment, '') = ANY(%(deployments)s))
          AND (cardinality(%(gpus)s::text[]) = 0 OR coalesce(g.gpu_type, '') = ANY(%(gpus)s))
        ORDER BY r.value, g.id
        LIMIT %(limit)s
        """,
        {
            "start": f.start,
            "end": f.end,
            "models": list(f.models),
            "versions": list(f.versions),
            "deployments": list(f.deployments),
            "gpus": list(f.gpu_types),
            "limit": limit,
        },
    ).fetchall()
    return [GalleryItem(*r) for r in rows]

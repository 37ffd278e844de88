"""Near-duplicate share per model version: a mode-collapse signal from the stored CLIP image
embeddings (the Quality page; the alert metric ``duplicate_share`` counts the same way).

Each version's images in the range are read (an even sample of at most ``max_images`` over
the whole range), and an image counts when another image of the same version in that sample
is a near-duplicate of it from another seed or prompt (``diffwatch.model.near_duplicates``).
A sample finds fewer partners than the whole range holds, so on a version with more images
than ``max_images`` the share is a lower bound; raise ``max_images`` to tighten it.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

from diffwatch.analytics.duplicates import DEFAULT_THRESHOLD, DuplicateReport, near_duplicates
from diffwatch.db.queries import embedding_reads as reads
from diffwatch.db.queries import embeddings as emb
from diffwatch.model.filters import Filters

DEFAULT_MAX_IMAGES = 5000  # per version; about 10 MB of 512-wide embeddings to read


@dataclass(frozen=True, slots=True)
class VersionDuplicates:
    """One model version's near-duplicate share (its report) under a CLIP version."""

    model_version: str
    report: DuplicateReport
    scorer_version: str
    sampled: bool  # the version had more images than were examined


def duplicate_report(
    conn: psycopg.Connection,
    f: Filters,
    *,
    threshold: float = DEFAULT_THRESHOLD,
    max_images: int = DEFAULT_MAX_IMAGES,
    scorer_version: str | None = None,
    max_examples: int = 6,
) -> list[VersionDuplicates]:
    """Near-duplicate share of each model version in the range and filters (versions with
    fewer than 2 embedded images are left out). Empty without pgvector or embeddings.

    ``scorer_version``: which stored CLIP embeddings (default: the most filled space).
    """
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"near-duplicate threshold must be a cosine in (0, 1], got {threshold}")
    if max_images < 2:
        raise ValueError(f"max_images must be at least 2, got {max_images}")
    if not emb.support(conn).enabled:
        return []
    sp = _space(conn, scorer_version)
    if sp is None:
        return []
    emb.register(conn)
    versions = f.versions or tuple(reads.window_versions(conn, sp, f))
    out = []
    for version in versions:
        sample = reads.window(conn, sp, _only(f, version), limit=max_images + 1)
        sampled = len(sample) > max_images
        if sampled:
            sample = sample.take(list(range(max_images)))
        if len(sample) < 2:
            continue
        report = near_duplicates(
            sample.embeddings, sample.ids, sample.prompts, sample.seeds,
            threshold=threshold, max_examples=max_examples,
        )  # fmt: skip
        out.append(VersionDuplicates(version, report, sp.scorer_version, sampled))
    return out


def _only(f: Filters, version: str) -> Filters:
    return Filters(f.start, f.end, f.models, (version,), f.deployments, f.gpu_types)


def _space(conn: psycopg.Connection, wanted: str | None) -> emb.Space | None:
    spaces = emb.spaces(conn)
    if wanted is not None:
        return next((s for s in spaces if s.scorer_version == wanted), None)
    return spaces[0] if spaces and spaces[0].images else None

"""Which CLIP scorer versions made the scores a page shows, so the page can name them.

A mean of CLIP scores means something only with the CLIP that made them: a real
``ViT-B-32/laion2b_s34b_b79k``, or the demo's own CLIP, whose scores are meaningful only on
the demo's images (``diffwatch.model.clip_labels``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import psycopg

from diffwatch.db.queries.dashboard_filters import where
from diffwatch.db.queries.ratings_analytics import _JOIN, _params, _where
from diffwatch.model.filters import Filters


@dataclass(frozen=True, slots=True)
class ClipVersion:
    """A CLIP scorer version and how many scores it made (in the range asked about)."""

    version: str
    n: int


def clip_versions(conn: psycopg.Connection, f: Filters) -> list[ClipVersion]:
    """CLIP scorer versions of the scores in the range and filters, most scores first.

    Read from the quality rollups (as the Quality page's charts are), by generation time.
    """
    cond, params = where(f, f.width())
    rows = conn.execute(
        "SELECT scorer_version, sum(value_n) FROM rollup_quality"
        f" WHERE scorer = 'clip' AND value_n > 0 AND {cond}"
        " GROUP BY 1 ORDER BY 2 DESC, 1",
        params,
    ).fetchall()
    return [ClipVersion(v, int(n)) for v, n in rows]


def rated_clip_versions(
    conn: psycopg.Connection,
    start: datetime,
    end: datetime,
    versions: Sequence[str] | None = None,
) -> list[ClipVersion]:
    """CLIP scorer versions of the latest CLIP score of each item rated in ``[start, end)``
    (rating time), as the rating analytics' calibration reads them; most items first."""
    rows = conn.execute(
        "SELECT c.scorer_version, count(DISTINCT i.id)"
        f" {_JOIN}"
        " JOIN LATERAL (SELECT s.scorer_version FROM scorer_results s"
        "   WHERE s.generation_id = g.id AND s.scorer = 'clip' AND s.value IS NOT NULL"
        "   ORDER BY s.scored_at DESC, s.id DESC LIMIT 1) c ON true"
        f" WHERE {_where(versions)} GROUP BY 1 ORDER BY 2 DESC, 1",
        _params(start, end, versions),
    ).fetchall()
    return [ClipVersion(v, int(n)) for v, n in rows]

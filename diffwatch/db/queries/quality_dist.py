"""The distribution of CLIP scores per group, merged from the quality rollups' histograms."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import psycopg

from diffwatch.db.queries.dashboard_filters import Filters, GroupBy, group_sql, where

_MASK = 0xFFFFFFFF


@dataclass(frozen=True, slots=True)
class ScoreBin:
    """``n`` CLIP scores of ``group`` in [score, score + 1) (100: exactly 100)."""

    group: str
    score: int
    n: int


def clip_distribution(
    conn: psycopg.Connection, f: Filters, by: GroupBy = "version"
) -> list[ScoreBin]:
    """CLIP scores per group over the range, in 1-point bins (empty bins left out)."""
    cond, params = where(f, f.width())
    counts: dict[tuple[str, int], int] = defaultdict(int)
    for group, packed in conn.execute(
        f"SELECT {group_sql(by)}, h_value FROM rollup_quality"
        f" WHERE scorer = 'clip' AND cardinality(h_value) > 0 AND {cond}",
        params,
    ):
        for e in packed:
            counts[(group, e >> 32)] += e & _MASK
    return [ScoreBin(g, s, n) for (g, s), n in sorted(counts.items())]

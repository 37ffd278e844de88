"""The values the dashboard's filters offer, read from the hourly rollups (never raw rows)."""

from __future__ import annotations

from dataclasses import dataclass

import psycopg


@dataclass(frozen=True)
class FilterOptions:
    """Known models, versions ("model/version" pairs keep their model), deployments and
    GPU types, sorted. Unknown deployments and GPU types are stored as '' and left out."""

    models: tuple[str, ...] = ()
    versions: tuple[str, ...] = ()
    deployments: tuple[str, ...] = ()
    gpu_types: tuple[str, ...] = ()


def filter_options(conn: psycopg.Connection) -> FilterOptions:
    """Distinct values over the hourly buckets of every grouping level."""
    rows = conn.execute(
        "SELECT DISTINCT model, model_version, deployment, gpu_type"
        " FROM rollup_generations WHERE width_s = 3600"
    ).fetchall()

    def values(i: int) -> tuple[str, ...]:
        return tuple(sorted({r[i] for r in rows if r[i]}))

    return FilterOptions(values(0), values(1), values(2), values(3))

"""SQL of deploy markers (``diffwatch.model.deploy_markers``): store one, read a time range."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import psycopg

from diffwatch.model.deploy_markers import DeployMarker

_COLUMNS = "id, at, model_version, deployment, note, source, created_by"


def add(conn: psycopg.Connection, marker: DeployMarker) -> int:
    """Store a (validated) marker; its id."""
    row = conn.execute(
        "INSERT INTO deploy_markers (at, model_version, deployment, note, source, created_by)"
        " VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
        (
            marker.at,
            marker.version,
            marker.deployment,
            marker.note,
            marker.source,
            marker.created_by,
        ),
    ).fetchone()
    assert row is not None
    return int(row[0])


def between(
    conn: psycopg.Connection,
    start: datetime,
    end: datetime,
    deployments: Sequence[str] = (),
) -> list[DeployMarker]:
    """Markers in ``[start, end)``, oldest first. With ``deployments``, those of any of them
    and those of no particular deployment (a release everywhere)."""
    where = "at >= %(start)s AND at < %(end)s"
    if deployments:
        where += " AND (deployment IS NULL OR deployment = ANY(%(deployments)s))"
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM deploy_markers WHERE {where} ORDER BY at, id",
        {"start": start, "end": end, "deployments": list(deployments)},
    ).fetchall()
    # (at, version, deployment, note, source, created_by) in DeployMarker's order, then id
    return [DeployMarker(*r[1:], id=r[0]) for r in rows]

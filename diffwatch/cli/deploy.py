"""``diffwatch deploy``: mark rollouts done outside diffwatch, list the marks."""

# No ``from __future__ import annotations``: typer reads the annotations of the commands.
import getpass
from typing import Annotated

import typer

from diffwatch.cli.common import emit_summary, fail, iso_time, runtime
from diffwatch.cli.options import AsJson, DbUrl

app = typer.Typer(
    help="Deploy markers: record that a model version went out, and see it on every "
    "time-series chart of the dashboard (docs/deploy-markers.md).",
    no_args_is_help=True,
)


@app.command("mark")
def mark_cmd(
    version: Annotated[str, typer.Argument(help="The model version that went out.")],
    deployment: Annotated[
        str | None,
        typer.Option(help="Where it went (e.g. canary); leave out for a release everywhere."),
    ] = None,
    note: Annotated[
        str | None, typer.Option(help="A short note shown with the marker (a ticket, a reason).")
    ] = None,
    at: Annotated[
        str | None,
        typer.Option(help="When it went out, ISO 8601 with an offset [default: now]."),
    ] = None,
    as_json: AsJson = False,
    database_url: DbUrl = None,
) -> None:
    """Mark a rollout done outside diffwatch: VERSION reached --deployment at --at.

    The dashboard draws the marker on its latency, throughput, error, cost and quality
    charts, so a change in production can be read against the release that caused it.
    """
    import psycopg

    from diffwatch.db.queries import deploy_markers as q
    from diffwatch.model.clock import utcnow
    from diffwatch.model.deploy_markers import make_marker

    now = utcnow()
    try:
        marker = make_marker(
            version,
            at=iso_time(at, "--at") or now,
            now=now,
            deployment=deployment,
            note=note,
            created_by=getpass.getuser(),
        )
    except ValueError as exc:
        raise fail(str(exc), 2) from None
    rt = runtime(database_url)
    with psycopg.connect(rt.conninfo, autocommit=True) as conn:
        marker_id = q.add(conn, marker)
    d = {
        "id": marker_id,
        "at": marker.at.isoformat(),
        "version": marker.version,
        "deployment": marker.deployment,
        "note": marker.note,
    }
    where = f" to {marker.deployment}" if marker.deployment else " everywhere"
    emit_summary(d, as_json, f"marked {marker.version}{where} at {marker.at.isoformat()}")


@app.command("list")
def list_cmd(
    since: Annotated[
        str | None,
        typer.Option(help="Only markers from this time on (ISO 8601) [default: 30 days ago]."),
    ] = None,
    as_json: AsJson = False,
    database_url: DbUrl = None,
) -> None:
    """The deploy markers from --since to now, oldest first."""
    import json
    from datetime import timedelta

    import psycopg

    from diffwatch.db.queries import deploy_markers as q
    from diffwatch.model.clock import utcnow

    now = utcnow()
    start = iso_time(since, "--since") or now - timedelta(days=30)
    rt = runtime(database_url)
    with psycopg.connect(rt.conninfo) as conn:
        markers = q.between(conn, start, now + timedelta(days=1))
    rows = [
        {
            "id": m.id,
            "at": m.at.isoformat(),
            "version": m.version,
            "deployment": m.deployment,
            "note": m.note,
            "source": m.source,
            "created_by": m.created_by,
        }
        for m in markers
    ]
    if as_json:
        typer.echo(json.dumps(rows))
        return
    if not rows:
        typer.echo(f"no deploy markers since {start.isoformat()}")
    for r in rows:
        where = r["deployment"] or "everywhere"
        note = f"  ({r['note']})" if r["note"] else ""
        typer.echo(f"{r['at']}  {r['version']} -> {where}{note}  [{r['source']}]")


def register(root: typer.Typer, name: str) -> None:
    """Add this group to ``root`` as ``name`` (called by ``diffwatch.cli`` when it is run)."""
    root.add_typer(app, name=name)

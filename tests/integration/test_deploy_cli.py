"""``diffwatch deploy mark`` / ``list`` against a real Postgres, and the query by range."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import psycopg
from typer.testing import CliRunner

from diffwatch.cli import build
from diffwatch.db.queries import deploy_markers as q


def invoke(db_url: str, *args: str):
    return CliRunner().invoke(build(), ["deploy", *args, "--database-url", db_url])


def test_mark_stores_a_marker_and_list_shows_it(db_url, conninfo, sql):
    at = (datetime.now(UTC) - timedelta(hours=2)).replace(microsecond=0)
    res = invoke(db_url, "mark", "v1.5-rc1", "--deployment", "canary", "--note", "CHG-7",
                 "--at", at.isoformat(), "--json")  # fmt: skip
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert (out["version"], out["deployment"], out["note"]) == ("v1.5-rc1", "canary", "CHG-7")
    assert sql("SELECT model_version, deployment, at, source FROM deploy_markers") == [
        ("v1.5-rc1", "canary", at, "cli")
    ]
    res = invoke(db_url, "mark", "v2")  # now, everywhere
    assert res.exit_code == 0 and "marked v2 everywhere at" in res.stdout
    listed = invoke(db_url, "list")
    assert listed.exit_code == 0
    lines = listed.stdout.strip().splitlines()
    assert "v1.5-rc1 -> canary  (CHG-7)  [cli]" in lines[0] and "v2 -> everywhere" in lines[1]
    rows = json.loads(invoke(db_url, "list", "--json").stdout)
    assert [r["version"] for r in rows] == ["v1.5-rc1", "v2"]


def test_bad_input_exits_2_with_the_reason_and_stores_nothing(db_url, sql):
    for args, says in [
        (("mark", "v1", "--at", "yesterday"), "is not an ISO 8601 time"),
        (("mark", "v1", "--at", "2026-01-01T00:00:00"), "has no UTC offset"),
        (("mark", "v1", "--at", "2999-01-01T00:00:00+00:00"), "is in the future"),
        (("mark", "v1\x07"), "U+0007"),
        (("mark", " "), "the version must not be empty"),
        (("mark", "v1", "--deployment", "a\u202eb"), "U+202E"),
        (("mark", "v1", "--note", "n" * 501), "at most 500"),
        (("list", "--since", "last week"), "is not an ISO 8601 time"),
        (("list", "--since", "2026-12-01T00:00:00"), "has no UTC offset"),
    ]:
        res = invoke(db_url, *args)
        assert res.exit_code == 2 and says in res.output, (args, res.output)
    assert sql("SELECT count(*) FROM deploy_markers") == [(0,)]


def test_between_keeps_the_range_and_the_deployments_releases_everywhere_too(db_url, conninfo):
    from diffwatch.model.deploy_markers import make_marker

    t0 = datetime(2026, 12, 1, tzinfo=UTC)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        for hours, dep in [(1, "canary"), (2, None), (3, "stable"), (30, "canary")]:
            at = t0 + timedelta(hours=hours)
            q.add(conn, make_marker(f"v{hours}", at=at, now=at, deployment=dep))
        day = q.between(conn, t0, t0 + timedelta(days=1))
        canary = q.between(conn, t0, t0 + timedelta(days=1), ["canary"])
    assert [m.version for m in day] == ["v1", "v2", "v3"]
    assert [m.version for m in canary] == ["v1", "v2"]
    assert all(m.id is not None and m.source == "cli" for m in day)

"""``diffwatch rollups refresh/status`` as a user runs them."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from typer.testing import CliRunner

from diffwatch.cli import build


def run(db_url: str, *args: str) -> dict:
    res = CliRunner().invoke(build(), ["rollups", *args, "--json", "--database-url", db_url])
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout.strip().splitlines()[-1])


def test_refresh_once_then_status(db_url, sql) -> None:
    sql(
        "INSERT INTO generations (request_id, ts, model, model_version, prompt, status)"
        " SELECT 'r' || i, %s, 'm', 'v', 'p', 'ok' FROM generate_series(1, 25) i",
        (datetime.now(UTC),),
    )
    assert run(db_url, "status")["generations"]["pending"] == 25
    first = run(db_url, "refresh", "--once")
    assert first["rows"]["generations"] == 25 and first["refreshes"] == 1
    assert run(db_url, "refresh")["rows"]["generations"] == 0
    status = run(db_url, "status")["generations"]
    assert (status["rows_total"], status["pending"]) == (25, 0)
    assert sql("SELECT requests FROM rollup_generations WHERE width_s = 3600 AND lvl = 15") == [
        (25,)
    ]

"""``diffwatch alerts`` and ``diffwatch worker --once`` as a user runs them, on real Postgres.

Rules come from YAML files; evaluation runs on seeded generation rows at a fixed ``--at``;
emails go to an aiosmtpd server on loopback and every assertion on them is on what it got.
"""

from __future__ import annotations

import json
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from diffwatch.model.alert_rules import load_rules_file
from tests.alerts_seed import add_requests, base_time
from tests.helpers import cli_env, diffwatch_cmd
from tests.smtp import SmtpServer

TO = "oncall@example.com"

RULES = """\
defaults:
  recipients: [oncall@example.com]
  repeat: 1h
rules:
  - name: canary errors
    metric: error_rate
    deployments: [canary]
    window: 5m
    comparison: '>'
    threshold: 0.2
    for: 0
    severity: critical
  - name: slow stable
    metric: latency_p95_ms
    deployments: stable
    window: 15m
    comparison: '>'
    threshold: 5000
    for: 5m
"""


@pytest.fixture
def smtp_env(smtp: SmtpServer) -> dict[str, str]:
    return {
        "DIFFWATCH_SMTP_HOST": "127.0.0.1",
        "DIFFWATCH_SMTP_PORT": str(smtp.port),
        "DIFFWATCH_SMTP_SENDER": "alerts@diffwatch.test",
        "DIFFWATCH_SMTP_TIMEOUT_S": "3",
    }


def cli(db_url: str | None, *args: str, code: int = 0, env: dict[str, str] | None = None):
    from diffwatch.cli import build

    argv = [*args, "--database-url", db_url] if db_url else list(args)
    res = CliRunner().invoke(build(), argv, env=env)
    assert res.exit_code == code, res.output
    return res


def load(db_url: str, path: Path, *flags: str, code: int = 0) -> dict:
    res = cli(db_url, "alerts", "load", str(path), "--json", *flags, code=code)
    return json.loads(res.stdout.strip().splitlines()[-1])


def rules_in_db(sql) -> dict[str, tuple]:
    rows = sql("SELECT name, metric, threshold, window_s, for_s, source FROM alert_rules")
    return {r[0]: r[1:] for r in rows}


def test_load_creates_updates_prunes_and_audits(db_url, sql, tmp_path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(RULES)

    dry = load(db_url, path, "--dry-run")
    assert sorted(dry["created"]) == ["canary errors", "slow stable"] and dry["dry_run"]
    assert rules_in_db(sql) == {}  # a dry run stores nothing
    assert sql("SELECT count(*) FROM audit_log WHERE action = 'rule.load'") == [(0,)]

    first = load(db_url, path)
    assert sorted(first["created"]) == ["canary errors", "slow stable"]
    stored = rules_in_db(sql)
    assert stored["canary errors"] == ("error_rate", 0.2, 300, 0, f"yaml:{path}")
    assert stored["slow stable"] == ("latency_p95_ms", 5000.0, 900, 300, f"yaml:{path}")

    again = load(db_url, path)
    assert again["created"] == [] and again["updated"] == []
    assert sorted(again["unchanged"]) == ["canary errors", "slow stable"]

    path.write_text(RULES.replace("threshold: 5000", "threshold: 8000"))
    edited = load(db_url, path)
    assert edited["updated"] == ["slow stable"] and edited["unchanged"] == ["canary errors"]
    assert rules_in_db(sql)["slow stable"][1] == 8000.0

    # Dropped from the file: kept without --prune, deleted with it.
    doc = yaml.safe_load(path.read_text())
    doc["rules"] = [r for r in doc["rules"] if r["name"] != "canary errors"]
    path.write_text(yaml.safe_dump(doc))
    assert load(db_url, path)["removed"] == []
    assert set(rules_in_db(sql)) == {"canary errors", "slow stable"}
    assert load(db_url, path, "--prune", "--dry-run")["removed"] == ["canary errors"]
    assert set(rules_in_db(sql)) == {"canary errors", "slow stable"}
    assert load(db_url, path, "--prune")["removed"] == ["canary errors"]
    assert set(rules_in_db(sql)) == {"slow stable"}

    audits = sql(
        "SELECT action, target, details FROM audit_log WHERE action = 'rule.load' ORDER BY id"
    )
    assert len(audits) == 5 and {a[1] for a in audits} == {str(path)}
    assert sorted(audits[0][2]["created"]) == ["canary errors", "slow stable"]
    assert audits[-1][2]["removed"] == ["canary errors"]


def test_prune_finds_rules_loaded_through_another_spelling_of_the_path(
    db_url, sql, tmp_path, monkeypatch
) -> None:
    (tmp_path / "rules.yaml").write_text(RULES)
    monkeypatch.chdir(tmp_path)
    load(db_url, Path("rules.yaml"))
    assert {r[4] for r in rules_in_db(sql).values()} == {f"yaml:{tmp_path / 'rules.yaml'}"}
    doc = yaml.safe_load(RULES)
    doc["rules"] = doc["rules"][1:]
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(doc))
    monkeypatch.chdir("/")
    assert load(db_url, tmp_path / "rules.yaml", "--prune")["removed"] == ["canary errors"]
    assert set(rules_in_db(sql)) == {"slow stable"}


BROKEN = {
    "bad duration": (
        RULES.replace("window: 5m", "window: 5 minutes"),
        ["rule 1", "'canary errors'", "window", "5 minutes"],
    ),
    "unknown metric": (
        RULES.replace("metric: latency_p95_ms", "metric: latency_p99"),
        ["rule 2", "'slow stable'", "metric", "latency_p99"],
    ),
    "fleet metric with a deployment": (
        RULES.replace("metric: error_rate", "metric: gpu_idle_share"),
        ["rule 1", "'canary errors'", "gpu_idle_share", "deployment"],
    ),
    "not yaml": (RULES + "  - name: [unclosed\n", ["not valid YAML"]),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_a_broken_rules_file_exits_2_naming_the_problem_and_stores_nothing(
    db_url, sql, tmp_path, case
) -> None:
    text, expected = BROKEN[case]
    path = tmp_path / "broken.yaml"
    path.write_text(text)
    res = cli(db_url, "alerts", "load", str(path), code=2)
    err = res.stderr
    assert str(path) in err, err
    for needle in expected:
        assert needle in err, (needle, err)
    assert "Traceback" not in res.output
    assert rules_in_db(sql) == {}
    assert sql("SELECT count(*) FROM audit_log") == [(0,)]


def test_export_loads_back_to_the_same_rules(db_url, sql, tmp_path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(
        RULES
        + "  - name: idle fleet\n    metric: gpu_idle_share\n    window: 1h\n    comparison: '>='\n"
        "    threshold: 0.5\n    alert_on_no_data: true\n    enabled: false\n"
        "    description: GPUs held but doing nothing\n"
    )
    load(db_url, path)
    exported = tmp_path / "exported.yaml"
    exported.write_text(cli(db_url, "alerts", "export").stdout)

    def strip(rules):
        return {r.name: r.model_copy(update={"source": ""}) for r in rules}

    assert strip(load_rules_file(exported)) == strip(load_rules_file(path))
    # Loaded into an empty database, the export stores the same rules again.
    before = stored_rules(sql)
    sql("DELETE FROM alert_rules")
    assert sorted(load(db_url, exported)["created"]) == sorted(before)
    assert stored_rules(sql) == before


def stored_rules(sql) -> dict[str, tuple]:
    """Every stored rule's fields but its id and source, by name."""
    cols = "name, description, metric, models, versions, deployments, window_s, comparison, "
    cols += "threshold, for_s, repeat_s, severity, recipients, alert_on_no_data, enabled"
    return {r[0]: r[1:] for r in sql(f"SELECT {cols} FROM alert_rules")}


def test_evaluate_once_fires_and_delivers_then_list_and_outbox_show_it(
    db_url, conninfo, tmp_path, smtp, smtp_env
) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(RULES)
    load(db_url, path)
    listed = json.loads(cli(db_url, "alerts", "list", "--json").stdout)
    assert {r["name"]: r["state"] for r in listed} == {
        "canary errors": "never evaluated",
        "slow stable": "never evaluated",
    }

    t0 = base_time()
    add_requests(conninfo, t0 + timedelta(seconds=10), 10, errors=6, deployment="canary")
    add_requests(conninfo, t0 + timedelta(seconds=10), 10, errors=0, deployment="stable")
    at = (t0 + timedelta(seconds=59)).isoformat()
    res = cli(db_url, "alerts", "evaluate", "--once", "--at", at, "--json", env=smtp_env)
    report = json.loads(res.stdout.strip().splitlines()[-1])
    assert report["errors"] == [] and report["rules"] == 2
    assert report["states"].get("firing") == 1 and report["emails"] == {"firing": 1}
    assert report["delivery"]["sent"] == 1

    (msg,) = smtp.mailbox.for_recipient(TO)
    assert "FIRING: canary errors" in msg["Subject"]
    assert "60.00 %" in msg.get_body(("plain",)).get_content()

    listed = {r["name"]: r for r in json.loads(cli(db_url, "alerts", "list", "--json").stdout)}
    assert listed["canary errors"]["state"] == "firing"
    assert listed["canary errors"]["value"] == pytest.approx(0.6)
    assert listed["slow stable"]["state"] == "normal"

    outbox = json.loads(cli(db_url, "alerts", "outbox", "--json").stdout)
    assert [(o["status"], o["kind"], o["recipient"], o["rule_name"]) for o in outbox] == [
        ("sent", "firing", TO, "canary errors")
    ]
    assert json.loads(cli(db_url, "alerts", "outbox", "--status", "pending", "--json").stdout) == []
    cli(db_url, "alerts", "outbox", "--status", "bogus", code=2)

    # Evaluating the same moment again sends nothing more.
    cli(db_url, "alerts", "evaluate", "--once", "--at", at, env=smtp_env)
    assert len(smtp.mailbox.received) == 1


def test_evaluate_at_with_follow_is_refused(db_url) -> None:
    # A subprocess with a timeout: were it accepted, --follow would never return.
    res = subprocess.run(
        diffwatch_cmd("alerts", "evaluate", "--follow", "--at", "2026-01-01T00:00:00"),
        env=cli_env(db_url),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert res.returncode == 2, res.stderr
    assert "--at" in res.stderr and "--once" in res.stderr


def test_test_email_reaches_the_server_and_names_it_when_down(smtp, smtp_env) -> None:
    res = cli(None, "alerts", "test-email", "--to", "x@example.com", env=smtp_env)
    assert f"127.0.0.1:{smtp.port}" in res.stdout
    (msg,) = smtp.mailbox.for_recipient("x@example.com")
    assert "test email" in msg["Subject"]

    smtp.stop()
    res = cli(None, "alerts", "test-email", "--to", "x@example.com", code=1, env=smtp_env)
    assert f"127.0.0.1:{smtp.port}" in res.stderr and "Traceback" not in res.output
    assert len(smtp.mailbox.received) == 1


def test_worker_once_rolls_up_evaluates_and_emails(
    db_url, conninfo, sql, tmp_path, smtp, smtp_env
) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(RULES)
    load(db_url, path)
    # The worker evaluates at the wall clock: seed the minute that just ended.
    t = base_time(hours_ago=0) - timedelta(minutes=1)
    add_requests(conninfo, t + timedelta(seconds=5), 10, errors=8, deployment="canary")
    cli(db_url, "worker", "--once", env=smtp_env)

    assert sql("SELECT requests FROM rollup_generations WHERE width_s = 3600 AND lvl = 15") == [
        (10,)
    ]
    assert sql("SELECT rows_total FROM rollup_state WHERE source = 'generations'") == [(10,)]
    (msg,) = smtp.mailbox.for_recipient(TO)
    assert "FIRING: canary errors" in msg["Subject"]
    assert sql("SELECT status FROM alert_deliveries") == [("sent",)]

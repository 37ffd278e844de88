"""``diffwatch demo``'s alert step: the canary's latency regression fires a real email."""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime, timedelta
from pathlib import Path

from typer.testing import CliRunner

from diffwatch.cli import build


def run_demo(db_url: str, out: Path, *extra: str) -> str:
    end = (datetime.now(UTC) - timedelta(minutes=1)).replace(second=0, microsecond=0)
    res = CliRunner().invoke(
        build(),
        [
            "demo", "--hours", "3", "--rate", "20", "--seed", "3", "--end", end.isoformat(),
            "--out", str(out), "--database-url", db_url, "--no-drift", "--no-accounts",
            "--score-limit", "1", *extra,
        ],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    return res.stdout


def test_the_canary_regression_fires_one_alert_email_into_the_sink(tmp_path, db_url, sql):
    out = tmp_path / "demo"
    stdout = run_demo(db_url, out)
    line = next(ln for ln in stdout.splitlines() if ln.startswith("alerts:"))
    assert "canary median latency: firing" in line and "fleet error rate: normal" in line
    (eml,) = sorted((out / "mail").glob("*.eml"))
    msg = email.message_from_bytes(eml.read_bytes(), policy=email.policy.default)
    subject = str(msg["Subject"]).strip()
    assert subject.startswith("[diffwatch CRITICAL] FIRING: canary median latency")
    assert msg["To"] == "oncall@example.com"
    assert "deployment=canary" in msg.get_body(("plain",)).get_content()
    assert any(p.get_content_type() == "image/png" for p in msg.walk())
    assert sql("SELECT status, count(*) FROM alert_deliveries GROUP BY 1") == [("sent", 1)]
    # A second run keeps the rules (matched by name) and sends nothing new.
    stdout = run_demo(db_url, out, "--alert-to", "me@example.com")
    assert sql("SELECT count(*) FROM alert_rules") == [(3,)]
    assert sql("SELECT DISTINCT recipients FROM alert_rules") == [(["me@example.com"],)]
    assert len(list((out / "mail").glob("*.eml"))) == 1


def test_no_alerts_skips_the_step(tmp_path, db_url, sql):
    stdout = run_demo(db_url, tmp_path / "demo", "--no-alerts")
    assert "alerts:" not in stdout
    assert sql("SELECT count(*) FROM alert_rules") == [(0,)]

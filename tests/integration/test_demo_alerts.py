"""``diffwatch demo``'s alert step: the canary's latency regression fires a real email."""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime, timedelta
from pathlib import Path

from typer.testing import CliRunner

from diffwatch.cli import build
from diffwatch.demo.traffic import queue_spike

SEED = 3


def quiet_end(now: datetime) -> datetime:
    """The latest busy-hours end (13-20 UTC) in the last 40 hours whose hour before had no
    queue spike (the replay and its 15-minute error-rate window cover the last 45 minutes).

    The demo's traffic has spikes in a fifth of its hours, and their timeouts rightly push the
    fleet's error rate over its 5 % rule; an end chosen by the wall clock alone made this test
    fail whenever a spike fell in the replayed window.
    """
    top = now.replace(minute=0, second=0, microsecond=0)
    for back in range(40):
        end = top - timedelta(hours=back)
        hour = int(end.timestamp()) // 3600
        if 13 <= end.hour <= 20 and all(queue_spike(SEED, hour - k) == (0, 0) for k in (1,)):
            return end
    raise AssertionError(f"no quiet busy-hours end in the 40 hours before {now}")


def test_quiet_end_is_found_on_every_day_of_a_year():
    start = datetime(2027, 1, 1, tzinfo=UTC)
    ends = [quiet_end(start + timedelta(hours=h)) for h in range(0, 365 * 24, 7)]
    assert all(13 <= e.hour <= 20 for e in ends)


def run_demo(db_url: str, out: Path, *extra: str) -> str:
    end = quiet_end(datetime.now(UTC))
    res = CliRunner().invoke(
        build(),
        [
            "demo", "--hours", "3", "--rate", "20", "--seed", str(SEED), "--end", end.isoformat(),
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

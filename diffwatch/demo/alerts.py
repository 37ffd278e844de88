"""The demo's alert step: rules for its fleet, a replay of the last half hour, real emails.

The demo's canary (``v1.5-rc1``) is 1.3x slower. Its latency rule compares the canary's p95
with a threshold set 10 % above the stable fleet's own p95 over the last hour, so it fires
whatever the hour of day. The evaluator then runs once a minute over the last
``REPLAY_MIN`` minutes of history (the injected clock), as ``diffwatch worker`` would have,
and the emails go out through the real outbox and SMTP code: into a local sink that the demo
starts, or to a real server when ``DIFFWATCH_SMTP_HOST`` is set.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import psycopg

from alerts.deliver import deliver_due
from alerts.evaluate import evaluate_all
from alerts.rules import Rule
from alerts.smtp import SmtpSettings
from db.queries import alert_outbox
from db.queries import alert_rules as q
from db.queries.dashboard import kpis
from db.queries.dashboard_filters import Filters
from diffwatch.demo.traffic import CANARY, STABLE

REPLAY_MIN = 30  # minutes of evaluation ticks replayed
DEFAULT_TO = "oncall@example.com"
MAIL_DIR = "mail"


@dataclass
class AlertsReport:
    """The demo's alert step: rules, their states, emails and where they went."""

    rules: int
    states: dict[str, str]  # rule name -> state after the replay
    emails: dict[str, int]  # kind -> emails queued by the replay
    delivered: int
    failed: int
    smtp: str  # 'demo sink on 127.0.0.1:PORT' or the real server
    mail_files: list[str] = field(default_factory=list)
    latency_threshold_ms: float | None = None
    elapsed_s: float = 0.0


def demo_rules(threshold_ms: float, to: str) -> list[Rule]:
    """The demo's rules (loaded by name: a re-run updates them, never duplicates them)."""
    common = {"recipients": [to], "source": "demo"}
    return [
        Rule.model_validate(
            common
            | {
                "name": "canary p95 latency",
                "description": "The canary must not be more than 10 % slower than the stable "
                "fleet's p95 (the threshold was measured when the demo ran).",
                "metric": "latency_p95_ms",
                "deployments": [CANARY.deployment],
                "window": "1h",
                "comparison": ">",
                "threshold": threshold_ms,
                "for": "10m",
                "repeat": "4h",
                "severity": "critical",
            }
        ),
        Rule.model_validate(
            common
            | {
                "name": "fleet error rate",
                "metric": "error_rate",
                "window": "15m",
                "comparison": ">",
                "threshold": 0.05,
                "for": "5m",
                "repeat": "1h",
                "severity": "warning",
            }
        ),
        Rule.model_validate(
            common
            | {
                "name": "canary human rating",
                "description": "Raters' mean quality score of the canary's images.",
                "metric": "human_rating_mean",
                "deployments": [CANARY.deployment],
                "window": "1d",
                "comparison": "<",
                "threshold": 2.0,
                "severity": "warning",
            }
        ),
    ]


def _stable_p95(conninfo: str, end: datetime) -> float | None:
    with psycopg.connect(conninfo) as conn:
        f = Filters(end - timedelta(hours=1), end, deployments=(STABLE.deployment,))
        return kpis(conn, f).p95_ms


def run_demo_alerts(conninfo: str, out: Path, end: datetime, to: str = DEFAULT_TO) -> AlertsReport:
    """Load the demo rules, replay ``REPLAY_MIN`` minutes of evaluation up to ``end``, deliver.

    Rollups must be up to date (the evaluator refreshes them anyway).
    """
    from diffwatch.demo.mail_sink import MailSink

    t0 = time.perf_counter()
    p95 = _stable_p95(conninfo, end)
    threshold = round(1.1 * p95, -2) if p95 else 15000.0
    rules = demo_rules(threshold, to)
    with psycopg.connect(conninfo) as conn:
        q.upsert_rules(conn, rules, "demo", prune_source=None)
        conn.commit()
    real = bool(os.environ.get("DIFFWATCH_SMTP_HOST"))
    sink = None if real else MailSink(out / MAIL_DIR)
    emails: dict[str, int] = {}
    delivered = failed = 0
    settings = (
        SmtpSettings()
        if sink is None
        else SmtpSettings(
            host="127.0.0.1", port=sink.port, sender="diffwatch-demo@localhost", timeout_s=5
        )
    )
    with sink if sink is not None else contextlib.nullcontext():
        for i in range(REPLAY_MIN, -1, -1):
            now = end - timedelta(minutes=i)
            rep = evaluate_all(
                conninfo,
                now,
                dashboard_url="http://127.0.0.1:8501",
                message_domain=settings.message_id_domain,
                refresh_rollups=i == REPLAY_MIN,
            )
            for k, n in rep.emails.items():
                emails[k] = emails.get(k, 0) + n
            d = deliver_due(conninfo, settings, now)
            delivered, failed = delivered + d.sent, failed + d.failed
    with psycopg.connect(conninfo) as conn:
        states = {s.rule.name: s.state for s in q.statuses(conn) if s.rule.source == "demo"}
        failed_now = alert_outbox.counts(conn).get("failed", 0)
    return AlertsReport(
        rules=len(rules),
        states=states,
        emails=emails,
        delivered=delivered,
        failed=max(failed, failed_now),
        smtp=f"demo sink on 127.0.0.1:{sink.port}" if sink else settings.where,
        mail_files=[str(p) for p in sink.saved] if sink else [],
        latency_threshold_ms=threshold,
        elapsed_s=round(time.perf_counter() - t0, 2),
    )

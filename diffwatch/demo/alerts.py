"""The demo's alert step: rules for its fleet, a replay of the last half hour, real emails.

The demo's canary (``v1.5-rc1``) is 1.4x slower on the GPU. Its latency rule compares the
canary's median latency over the last three hours with a threshold set 10 % above the stable
fleet's median over the same window, so it fires whatever the hour of day. The median, not
the p95: in this fleet the p95 is set by queue spikes and stragglers that both versions share,
and over a few hundred canary requests it misses the regression about a third of the time
(measured over 8 seeds x 24 h of end times: the median rule over 3 h misses 0.1 % of them).
The evaluator then runs once a minute over the last ``REPLAY_MIN`` minutes of history (the
injected clock), as ``diffwatch worker`` would have, and the emails go out through the real
outbox and SMTP code: into a local sink that the demo starts, or to a real server when
``DIFFWATCH_SMTP_HOST`` is set.
"""

from __future__ import annotations

import contextlib
import os
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import psycopg

from diffwatch.alerts.deliver import deliver_due
from diffwatch.alerts.evaluate import evaluate_all
from diffwatch.alerts.smtp import SmtpSettings
from diffwatch.db.queries import alert_outbox
from diffwatch.db.queries import alert_rules as q
from diffwatch.db.queries.dashboard import kpis
from diffwatch.db.queries.demo import clip_count
from diffwatch.demo.traffic import CANARY, STABLE
from diffwatch.model.alert_rules import Rule
from diffwatch.model.filters import Filters

REPLAY_MIN = 30  # minutes of evaluation ticks replayed
LATENCY_WINDOW = timedelta(hours=3)  # the canary latency rule's window (and its baseline's)
QUALITY_WINDOW = timedelta(days=1)  # the canary CLIP rule's window (and its baseline's)
QUALITY_MARGIN = 3.0  # CLIPScore points below the stable fleet's mean that count as a drop
MIN_QUALITY_SCORES = 30  # stable CLIP scores needed to set the quality threshold
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


def demo_rules(threshold_ms: float, to: str, clip_threshold: float | None = None) -> list[Rule]:
    """The demo's rules (loaded by name: a re-run updates them, never duplicates them).

    The quality rule is there only when ``clip_threshold`` is (the demo scored enough
    images with a CLIP to set it).
    """
    common = {"recipients": [to], "source": "demo"}
    quality = (
        []
        if clip_threshold is None
        else [
            Rule.model_validate(
                common
                | {
                    "name": "canary CLIP score",
                    "description": "The canary's images must match their prompts as well as "
                    f"stable's: mean CLIPScore at most {QUALITY_MARGIN:g} points below stable's "
                    "(the threshold was measured when the demo ran).",
                    "metric": "clip_mean",
                    "deployments": [CANARY.deployment],
                    "window": "1d",
                    "comparison": "<",
                    "threshold": clip_threshold,
                    "repeat": "1d",
                    "severity": "warning",
                }
            )
        ]
    )
    return [
        Rule.model_validate(
            common
            | {
                "name": "canary median latency",
                "description": "The canary must not be more than 10 % slower than the stable "
                "fleet's median (the threshold was measured when the demo ran).",
                "metric": "latency_p50_ms",
                "deployments": [CANARY.deployment],
                "window": f"{int(LATENCY_WINDOW.total_seconds() // 3600)}h",
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
        *quality,
    ]


def _stable_p50(conninfo: str, end: datetime) -> float | None:
    with psycopg.connect(conninfo) as conn:
        f = Filters(end - LATENCY_WINDOW, end, deployments=(STABLE.deployment,))
        return kpis(conn, f).p50_ms


def _clip_threshold(conninfo: str, end: datetime) -> float | None:
    """Stable's mean CLIPScore over the quality window minus the margin (None: too few)."""
    with psycopg.connect(conninfo) as conn:
        k = kpis(conn, Filters(end - QUALITY_WINDOW, end, deployments=(STABLE.deployment,)))
        n = clip_count(conn, end - QUALITY_WINDOW, end, STABLE.deployment)
    if k.clip_mean is None or n < MIN_QUALITY_SCORES:
        return None
    return round(k.clip_mean - QUALITY_MARGIN, 1)


def run_demo_alerts(conninfo: str, out: Path, end: datetime, to: str = DEFAULT_TO) -> AlertsReport:
    """Load the demo rules, replay ``REPLAY_MIN`` minutes of evaluation up to ``end``, deliver.

    Rollups must be up to date (the evaluator refreshes them anyway).
    """
    from diffwatch.demo.mail_sink import MailSink

    t0 = time.perf_counter()
    p50 = _stable_p50(conninfo, end)
    threshold = round(1.1 * p50, -1) if p50 else 15000.0
    rules = demo_rules(threshold, to, _clip_threshold(conninfo, end))
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

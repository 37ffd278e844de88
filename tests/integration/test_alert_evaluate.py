"""Alert rules evaluated on real rollups with an injected clock; emails into a real SMTP server.

Each test walks a clock minute by minute over seeded generation rows: evaluate, then
deliver, as ``diffwatch worker`` does. The server is aiosmtpd on loopback; every assertion
is on what it received.
"""

from __future__ import annotations

import itertools
import re
from datetime import datetime, timedelta

import psycopg
import pytest

from diffwatch.alerts.deliver import deliver_due
from diffwatch.alerts.evaluate import evaluate_all
from diffwatch.alerts.smtp import SmtpSettings
from diffwatch.db.queries import alert_metrics, alert_outbox
from diffwatch.db.queries import alert_rules as q
from diffwatch.db.queries.dashboard import kpis
from diffwatch.model.alert_rules import Rule
from diffwatch.model.filters import Filters
from tests.alerts_seed import add_requests, base_time
from tests.smtp import SmtpServer

DASH = "https://dash.example"
TO = ("oncall@example.com", "lead@example.com")


@pytest.fixture
def settings(smtp_settings: SmtpSettings) -> SmtpSettings:
    return smtp_settings


def add_rule(conninfo: str, **kw) -> Rule:
    fields = dict(
        name="canary errors",
        metric="error_rate",
        deployments=["canary"],
        window="3m",
        comparison=">",
        threshold=0.2,
        recipients=list(TO),
        severity="critical",
    )
    rule = Rule.model_validate(fields | kw)
    with psycopg.connect(conninfo) as conn:
        rid = q.create_rule(conn, rule, "test")
        conn.commit()
    return rule.model_copy(update={"id": rid})


def tick(conninfo: str, settings: SmtpSettings, now: datetime) -> None:
    report = evaluate_all(conninfo, now, dashboard_url=DASH, message_domain="diffwatch.test")
    assert report.errors == []
    deliver_due(conninfo, settings, now)


def walk(conninfo, settings, t0, errors_by_minute, deployment="canary") -> list[datetime]:
    """Minute i: 10 canary requests with ``errors_by_minute[i]`` failures, then a tick."""
    times = []
    for i, errors in enumerate(errors_by_minute):
        t = t0 + timedelta(minutes=i)
        add_requests(conninfo, t + timedelta(seconds=10), errors=errors, deployment=deployment)
        add_requests(conninfo, t + timedelta(seconds=10), errors=0, deployment="stable")
        tick(conninfo, settings, t + timedelta(seconds=59))
        times.append(t)
    return times


def test_a_crossed_threshold_sends_one_email_after_the_pending_period(
    conninfo: str, smtp: SmtpServer, settings: SmtpSettings
) -> None:
    add_rule(conninfo, **{"for": "3m", "repeat": "1h"})
    t0 = base_time()
    walk(conninfo, settings, t0, [0] * 3 + [6] * 4)  # breach from minute 3 (window 3m)
    assert smtp.mailbox.received == []  # pending for minutes 3..5: nothing yet
    walk(conninfo, settings, t0 + timedelta(minutes=7), [6] * 10)
    assert len(smtp.mailbox.received) == 2  # one SMTP transaction per recipient, once
    for to in TO:
        (msg,) = smtp.mailbox.for_recipient(to)
        assert msg["Subject"].strip().startswith("[diffwatch CRITICAL] FIRING: canary errors")
        text = msg.get_body(("plain",)).get_content()
        assert "60.00 %" in text and "20.00 %" in text  # the value against the threshold
        html = msg.get_body(("html",)).get_content()
        assert "canary errors" in html
        link = re.search(r'href="([^"]+)"', html).group(1)
        assert link.startswith(f"{DASH}/latency?") and "deployment=canary" in link
        assert "from=" in link and "to=" in link
        pngs = [p for p in msg.walk() if p.get_content_type() == "image/png"]
        assert len(pngs) == 1 and pngs[0].get_content()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"cid:{pngs[0]['Content-ID'].strip('<>')}" in html
        assert msg["Message-ID"].startswith("<diffwatch.rule1-ep1-firing-")
    with psycopg.connect(conninfo) as conn:
        (status,) = q.statuses(conn)
        assert status.state == "firing" and status.value == pytest.approx(0.6)
        history = [(e.from_state, e.to_state) for e in q.events(conn)]
    assert history[::-1] == [("normal", "pending"), ("pending", "firing")]


def test_a_flapping_metric_sends_at_most_one_email_per_repeat_interval(
    conninfo: str, smtp: SmtpServer, settings: SmtpSettings
) -> None:
    add_rule(conninfo, window="1m", **{"for": 0, "repeat": "10m"})
    t0 = base_time()
    walk(conninfo, settings, t0, [6, 0] * 15)  # over and under the threshold every minute
    firing = [m for m in smtp.mailbox.for_recipient(TO[0]) if "RESOLVED" not in m["Subject"]]
    sent = sorted(
        datetime.fromisoformat(m["Date"]) if False else m["Date"].datetime for m in firing
    )
    assert 1 <= len(sent) <= 3  # 30 minutes, 10-minute repeat interval
    assert all(b - a >= timedelta(minutes=10) for a, b in itertools.pairwise(sent))


def test_an_open_episode_with_brief_clears_stays_one_alert(
    conninfo: str, smtp: SmtpServer, settings: SmtpSettings
) -> None:
    add_rule(conninfo, window="1m", **{"for": "2m", "repeat": "1h"})
    walk(conninfo, settings, base_time(), ([6] * 3 + [0]) * 6)  # clears shorter than 'for'
    subjects = [m["Subject"] for m in smtp.mailbox.for_recipient(TO[0])]
    assert len(subjects) == 1 and "FIRING" in subjects[0]


def test_a_resolved_email_follows_when_the_condition_clears_for_the_pending_period(
    conninfo: str, smtp: SmtpServer, settings: SmtpSettings
) -> None:
    add_rule(conninfo, window="1m", **{"for": "2m"})
    walk(conninfo, settings, base_time(), [6] * 4 + [0] * 4)
    subjects = [m["Subject"] for m in smtp.mailbox.for_recipient(TO[1])]
    assert len(subjects) == 2
    assert "FIRING" in subjects[0] and "RESOLVED" in subjects[1]
    with psycopg.connect(conninfo) as conn:
        assert q.statuses(conn)[0].state in ("resolved", "normal")


def test_smtp_down_while_firing_delivers_once_when_it_is_back(
    conninfo: str, smtp: SmtpServer, settings: SmtpSettings
) -> None:
    add_rule(conninfo, window="1m", **{"for": 0})
    smtp.stop()
    t0 = base_time()
    walk(conninfo, settings, t0, [6] * 5)  # fires at minute 0 while SMTP is down
    with psycopg.connect(conninfo) as conn:
        assert alert_outbox.counts(conn).get("pending") == 2
    smtp.start()
    tick(conninfo, settings, t0 + timedelta(hours=2))  # past any backoff
    tick(conninfo, settings, t0 + timedelta(hours=2, minutes=1))
    assert len(smtp.mailbox.received) == 2
    assert [len(smtp.mailbox.for_recipient(to)) for to in TO] == [1, 1]


def test_an_evaluator_crash_inside_the_pass_loses_nothing_and_queues_once(
    conninfo: str, sql, smtp: SmtpServer, settings: SmtpSettings
) -> None:
    add_rule(conninfo, window="1m", **{"for": 0})
    t0 = base_time()
    add_requests(conninfo, t0, errors=6, deployment="canary")
    # A real fault in the outbox insert: the state change must roll back with it.
    sql(
        "CREATE FUNCTION fail_once() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
        " RAISE EXCEPTION 'disk full (injected)'; END $$"
    )
    sql("CREATE TRIGGER boom BEFORE INSERT ON alert_notifications EXECUTE FUNCTION fail_once()")
    report = evaluate_all(conninfo, t0 + timedelta(seconds=30), dashboard_url=DASH)
    assert report.errors and "disk full" in report.errors[0]
    ((state, error),) = sql("SELECT state, error FROM alert_states")
    assert state == "normal" and "disk full" in error  # rolled back, the error noted
    assert sql("SELECT count(*) FROM alert_events") == [(0,)]
    sql("DROP TRIGGER boom ON alert_notifications")
    for s in (45, 50):  # the next pass fires; a second pass (a re-run) queues nothing more
        evaluate_all(conninfo, t0 + timedelta(seconds=s), dashboard_url=DASH)
    assert sql("SELECT count(*) FROM alert_notifications") == [(1,)]
    deliver_due(conninfo, settings, t0 + timedelta(minutes=1))
    assert len(smtp.mailbox.received) == 2


def test_no_data_is_shown_and_alerts_only_when_the_rule_says_so(
    conninfo: str, smtp: SmtpServer, settings: SmtpSettings
) -> None:
    add_rule(conninfo, name="quiet", window="1m")
    add_rule(conninfo, name="loud", window="1m", alert_on_no_data=True)
    t0 = base_time()
    for i in range(3):
        tick(conninfo, settings, t0 + timedelta(minutes=i))
    with psycopg.connect(conninfo) as conn:
        states = {s.rule.name: s.state for s in q.statuses(conn)}
    assert states == {"quiet": "no_data", "loud": "firing"}
    (msg,) = smtp.mailbox.for_recipient(TO[0])
    assert "loud" in msg["Subject"] and "no data" in msg.get_body(("plain",)).get_content()


def test_metrics_match_the_dashboard_for_the_same_filters(conninfo: str) -> None:
    t0 = base_time()
    for i in range(10):
        add_requests(conninfo, t0 + timedelta(minutes=i), errors=i % 3, total_ms=800 + 100 * i,
                     deployment="canary", version="v2")  # fmt: skip
        add_requests(conninfo, t0 + timedelta(minutes=i), total_ms=500, deployment="stable")
    now = t0 + timedelta(minutes=10)
    evaluate_all(conninfo, now)  # refreshes the rollups
    with psycopg.connect(conninfo) as conn:
        k = kpis(conn, Filters(now - timedelta(minutes=10), now, versions=("v2",)))
        for metric, expected in (("latency_p95_ms", k.p95_ms), ("error_rate", k.error_rate)):
            rule = Rule.model_validate(
                dict(
                    name="m",
                    metric=metric,
                    versions=["v2"],
                    window="10m",
                    comparison=">",
                    threshold=0,
                    recipients=["a@example.com"],
                )
            )
            assert alert_metrics.value(conn, rule, now) == pytest.approx(expected)
        assert k.error_rate == pytest.approx(9 / 100)
        assert k.p95_ms == pytest.approx(1700, rel=0.03)
        series = alert_metrics.series(conn, rule, now)
        assert len(series) == 10 and all(v is not None for _, v in series)


def test_drift_metrics_read_the_newest_finished_run_of_their_kinds(conninfo: str, sql) -> None:
    now = base_time()
    for kind, minutes_ago, effect in (
        ("prompts", 50, 0.55), ("prompts", 10, 0.71), ("regenerate", 20, 0.25),
        ("golden", 5, 0.4), ("prompts", 200, 0.9),  # outside the 1h window
    ):  # fmt: skip
        sql(
            "INSERT INTO drift_runs (kind, status, finished_at, effect_size)"
            " VALUES (%s, 'ok', %s, %s)",
            (kind, now - timedelta(minutes=minutes_ago), effect),
        )
    with psycopg.connect(conninfo) as conn:
        for metric, value, points in (("prompt_drift", 0.71, 2), ("regen_drift", 0.4, 2)):
            rule = Rule.model_validate(
                dict(
                    name="d",
                    metric=metric,
                    window="1h",
                    comparison=">",
                    threshold=0.6,
                    recipients=["a@example.com"],
                )
            )
            assert alert_metrics.value(conn, rule, now) == pytest.approx(value)
            assert len(alert_metrics.series(conn, rule, now)) == points

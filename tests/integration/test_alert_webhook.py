"""Webhook and Slack-compatible deliveries through the real outbox to a real HTTP server.

The server (``tests.http_sink.HttpSink``) runs on loopback and answers scripted status codes; the
deliverer runs on an injected clock, so backoff is exercised without waiting for it.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from diffwatch.alerts.deliver import Backoff, deliver_due
from diffwatch.alerts.email import compose
from diffwatch.alerts.notice import Notice
from diffwatch.alerts.signing import WebhookSettings
from diffwatch.alerts.smtp import SmtpSettings
from diffwatch.alerts.webhook import facts
from diffwatch.db.queries import alert_outbox
from diffwatch.model.alert_rules import Rule
from tests.http_sink import HttpSink
from tests.smtp import SmtpServer

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
SECRET = "T000/B000/s3cr3tpath"
BACKOFF = Backoff(base_s=30, factor=2, max_s=3600, max_attempts=12)


@pytest.fixture
def sink() -> Iterator[HttpSink]:
    s = HttpSink().start()
    yield s
    s.stop()


def closed_smtp() -> SmtpSettings:
    """Settings for an SMTP server that is not there (port 9 on loopback: refused)."""
    return SmtpSettings(host="127.0.0.1", port=9, sender="alerts@diffwatch.test", timeout_s=1)


def queue(sql, conninfo: str, targets: list[str], at: datetime = T0) -> str:
    """Store a rule with ``targets`` and queue its firing event; the idempotency key."""
    rule = Rule.model_validate(
        dict(name="canary errors", metric="error_rate", deployments=["canary"], window="5m",
             comparison=">", threshold=0.2, severity="critical", recipients=targets)
    )  # fmt: skip
    rule_id = sql(
        "INSERT INTO alert_rules (name, metric, window_s, comparison, threshold, severity, "
        "recipients, deployments) VALUES (%s, 'error_rate', 300, '>', 0.2, 'critical', %s, "
        "'{canary}') RETURNING id",
        (rule.name, list(rule.recipients)),
    )[0][0]
    rule = rule.model_copy(update={"id": rule_id})
    notice = Notice(
        kind="firing", rule=rule, value=0.6, at=at, window_start=at - timedelta(minutes=5),
        window_end=at, episode=1, state_since=at, firing_since=at, note="condition holds",
        link="https://dash.example/errors?deployment=canary",
    )  # fmt: skip
    mail = compose(notice)
    with psycopg.connect(conninfo) as conn:
        alert_outbox.enqueue(
            conn, key=notice.idempotency_key, message_id=notice.message_id("diffwatch.test"),
            rule_id=rule_id, rule_name=rule.name, kind="firing", severity="critical",
            created_at=at, value=0.6, threshold=0.2, subject=mail.subject,
            body_text=mail.text, body_html=mail.html, chart_png=mail.png, link=notice.link,
            recipients=targets, facts=facts(notice, mail.subject),
        )  # fmt: skip
    return notice.idempotency_key


def row(sql, target: str) -> tuple:
    (r,) = sql(
        "SELECT status, attempts, next_attempt_at, last_error, sent_at FROM alert_deliveries "
        "WHERE recipient = %s",
        (target,),
    )
    return r


def test_a_webhook_answering_500_is_retried_with_backoff_and_delivered_once(
    sql, conninfo: str, sink: HttpSink
) -> None:
    hook = f"webhook:{sink.url}/hook/{SECRET}"
    slack = f"slack:{sink.url}/services/{SECRET}"
    sink.script[f"/hook/{SECRET}"] = [500, 500, 500]  # then 200
    key = queue(sql, conninfo, [hook, slack])

    now = T0
    r = deliver_due(conninfo, closed_smtp(), now, backoff=BACKOFF)
    assert (r.claimed, r.sent, r.retry) == (2, 1, 1)  # Slack at once; the webhook got a 500
    status, attempts, next_at, error, _ = row(sql, hook)
    assert (status, attempts, next_at) == ("pending", 1, T0 + timedelta(seconds=30))
    assert "HTTP 500" in error and SECRET not in error  # visible, and the path stays secret
    assert all(SECRET not in e for e in r.errors)

    # Between retries nothing is due; each retry waits twice as long (30 s, 60 s, 120 s).
    waits = []
    while row(sql, hook)[0] != "sent":
        due = row(sql, hook)[2]
        assert deliver_due(conninfo, closed_smtp(), due - timedelta(seconds=1)).claimed == 0
        waits.append((due - now).total_seconds())
        now = due
        deliver_due(conninfo, closed_smtp(), now, backoff=BACKOFF)
    assert waits == [30, 60, 120]
    status, attempts, _, error, sent_at = row(sql, hook)
    assert (status, attempts, error, sent_at) == ("sent", 4, None, now)
    assert deliver_due(conninfo, closed_smtp(), now + timedelta(days=1)).claimed == 0

    tries = sink.at(f"/hook/{SECRET}")
    assert len(tries) == 4  # three 500s, one 200: delivered once
    assert {t.headers["Idempotency-Key"] for t in tries} == {key}
    assert {t.body for t in tries} == {tries[0].body}  # the very same request each time
    body = tries[0].json()
    assert body["idempotency_key"] == key and body["status"] == "firing"
    assert body["rule"]["name"] == "canary errors" and body["value"] == 0.6
    assert body["link"] == "https://dash.example/errors?deployment=canary"
    assert tries[0].headers["Content-Type"].startswith("application/json")

    (posted,) = sink.at(f"/services/{SECRET}")
    assert posted.headers["Idempotency-Key"] == key
    assert posted.json()["text"].startswith("*[diffwatch CRITICAL] FIRING: canary errors")


def test_4xx_fails_for_good_but_408_and_429_are_retried(sql, conninfo: str, sink: HttpSink) -> None:
    gone, busy, slow = (f"webhook:{sink.url}/{p}" for p in ("gone", "busy", "slow"))
    sink.script |= {"/gone": [404], "/busy": [429], "/slow": [408]}
    queue(sql, conninfo, [gone, busy, slow])
    r = deliver_due(conninfo, closed_smtp(), T0, backoff=BACKOFF)
    assert (r.sent, r.retry, r.failed) == (0, 2, 1)
    status, attempts, _, error, _ = row(sql, gone)
    assert (status, attempts) == ("failed", 1) and "HTTP 404" in error
    assert alert_outbox.counts(psycopg.connect(conninfo, autocommit=True))["failed"] == 1
    r = deliver_due(conninfo, closed_smtp(), T0 + timedelta(hours=1), backoff=BACKOFF)
    assert (r.claimed, r.sent) == (2, 2)  # the 404 is never tried again
    assert len(sink.at("/gone")) == 1 and row(sql, gone)[0] == "failed"


def test_redirects_are_not_followed(sql, conninfo: str, sink: HttpSink) -> None:
    moved = f"webhook:{sink.url}/moved"
    sink.script["/moved"] = [301]
    queue(sql, conninfo, [moved])
    deliver_due(conninfo, closed_smtp(), T0, backoff=BACKOFF)
    status, _, _, error, _ = row(sql, moved)
    assert status == "failed" and "redirects are not followed" in error


def test_unreachable_or_slow_endpoints_are_retried_and_do_not_block_email(
    sql, conninfo: str, sink: HttpSink, smtp: SmtpServer, smtp_settings: SmtpSettings
) -> None:
    sink.delay_s = 1.0
    refused = "webhook:http://127.0.0.1:9/nobody"
    slow = f"webhook:{sink.url}/slow"
    queue(sql, conninfo, [refused, "ops@example.com", slow])
    r = deliver_due(
        conninfo, smtp_settings, T0, backoff=BACKOFF, webhook=WebhookSettings(timeout_s=0.3)
    )
    assert (r.sent, r.retry, r.failed) == (1, 2, 0)
    assert "cannot connect" in row(sql, refused)[3]
    assert "no reply within 0.3 s" in row(sql, slow)[3] or "timed out" in row(sql, slow)[3]
    assert len(smtp.mailbox.for_recipient("ops@example.com")) == 1


def test_a_broken_smtp_server_does_not_hold_back_the_webhooks(
    sql, conninfo: str, sink: HttpSink
) -> None:
    hook = f"webhook:{sink.url}/hook"
    queue(sql, conninfo, ["ops@example.com", "lead@example.com", hook])
    r = deliver_due(conninfo, closed_smtp(), T0, backoff=BACKOFF)
    assert (r.sent, r.retry) == (1, 2)  # SMTP refused: both emails wait; the webhook went
    assert row(sql, hook)[0] == "sent" and len(sink.at("/hook")) == 1


class Crash(BaseException):
    """Stands for the process dying between the 2xx and the mark."""


def test_a_crash_after_the_post_resends_with_the_same_key_after_the_lease(
    sql, conninfo: str, sink: HttpSink
) -> None:
    hook = f"webhook:{sink.url}/hook"
    key = queue(sql, conninfo, [hook])

    def die(_: int) -> None:
        raise Crash

    with pytest.raises(Crash):
        deliver_due(conninfo, closed_smtp(), T0, after_send=die)
    assert row(sql, hook)[0] == "sending"
    assert deliver_due(conninfo, closed_smtp(), T0 + timedelta(minutes=4)).claimed == 0
    r = deliver_due(conninfo, closed_smtp(), T0 + timedelta(minutes=6))
    assert (r.resumed, r.sent) == (1, 1)
    tries = sink.at("/hook")
    assert len(tries) == 2 and {t.headers["Idempotency-Key"] for t in tries} == {key}


def test_downgrade_below_0019_refuses_while_a_rule_has_a_channel_target(
    empty_db_factory,
) -> None:
    from diffwatch.db import migrate
    from diffwatch.db.engine import raw_conninfo

    url = empty_db_factory("channel_rule")
    migrate.upgrade(url)
    with psycopg.connect(raw_conninfo(url)) as conn:
        conn.execute(
            "INSERT INTO alert_rules (name, metric, comparison, threshold, window_s, for_s,"
            " repeat_s, severity, recipients) VALUES ('errs', 'error_rate', '>', 0.1, 60, 0, 0,"
            " 'info', ARRAY['a@example.com', 'alertmanager:http://am:9093'])"
        )
    with pytest.raises(RuntimeError, match="1 alert rule"):
        migrate.downgrade(url, "0018")
    assert migrate.current_revision(url) == migrate.head_revision()
    with psycopg.connect(raw_conninfo(url)) as conn:
        conn.execute("UPDATE alert_rules SET recipients = ARRAY['a@example.com']")
    migrate.downgrade(url, "0018")  # nothing uses a channel now: the column goes
    with psycopg.connect(raw_conninfo(url)) as conn:
        cols = conn.execute(
            "SELECT column_name FROM information_schema.columns"
            " WHERE table_name = 'alert_notifications'"
        ).fetchall()
        assert ("facts",) not in cols
        assert conn.execute("SELECT recipients FROM alert_rules").fetchall() == [
            (["a@example.com"],)
        ]


def test_a_retry_after_longer_than_the_backoff_is_honoured(
    sql, conninfo: str, sink: HttpSink
) -> None:
    hook, slack = f"webhook:{sink.url}/busy", f"slack:{sink.url}/limited"
    sink.script |= {"/busy": [503], "/limited": [429, 429]}
    sink.headers |= {"/busy": {"Retry-After": "600"}, "/limited": {"Retry-After": "5"}}
    queue(sql, conninfo, [hook, slack])
    r = deliver_due(conninfo, closed_smtp(), T0, backoff=BACKOFF)
    assert (r.sent, r.retry) == (0, 2)
    # the server asked for 10 minutes: not before; a shorter ask keeps the backoff's 30 s
    assert row(sql, hook)[2] == T0 + timedelta(seconds=600)
    assert row(sql, slack)[2] == T0 + timedelta(seconds=30)
    assert deliver_due(conninfo, closed_smtp(), T0 + timedelta(seconds=599)).claimed == 1
    r = deliver_due(conninfo, closed_smtp(), T0 + timedelta(seconds=600), backoff=BACKOFF)
    assert r.sent == 1 and row(sql, hook)[0] == "sent" and len(sink.at("/busy")) == 2


def test_webhooks_are_signed_over_the_exact_body_and_slack_is_not(
    sql, conninfo: str, sink: HttpSink
) -> None:
    secret = "s" * 40
    hook, slack = f"webhook:{sink.url}/signed", f"slack:{sink.url}/plain"
    queue(sql, conninfo, [hook, slack])
    before = int(time.time())
    r = deliver_due(
        conninfo, closed_smtp(), T0, backoff=BACKOFF, webhook=WebhookSettings(secret=secret)
    )
    assert r.sent == 2
    (got,) = sink.at("/signed")
    fields = dict(part.split("=", 1) for part in got.headers["Diffwatch-Signature"].split(","))
    assert before <= int(fields["t"]) <= int(time.time())
    # what a receiver computes, with the standard library alone
    want = hmac.new(secret.encode(), fields["t"].encode() + b"." + got.body, hashlib.sha256)
    assert hmac.compare_digest(fields["v1"], want.hexdigest())
    (plain,) = sink.at("/plain")
    assert "Diffwatch-Signature" not in plain.headers


def test_an_unreadable_secret_holds_webhooks_back_rather_than_send_them_unsigned(
    sql, conninfo: str, sink: HttpSink, tmp_path
) -> None:
    hook, slack = f"webhook:{sink.url}/signed", f"slack:{sink.url}/plain"
    queue(sql, conninfo, [hook, slack])
    missing = WebhookSettings(secret_file=tmp_path / "nope")
    r = deliver_due(conninfo, closed_smtp(), T0, backoff=BACKOFF, webhook=missing)
    assert (r.sent, r.retry) == (1, 1) and sink.at("/signed") == []
    assert "cannot read the webhook secret file" in row(sql, hook)[3]
    (tmp_path / "nope").write_text("k" * 32 + "\n")  # fixed: the waiting webhook goes, signed
    r = deliver_due(conninfo, closed_smtp(), T0 + timedelta(seconds=30), webhook=missing)
    assert r.sent == 1 and "Diffwatch-Signature" in sink.at("/signed")[0].headers


def test_a_too_short_secret_holds_webhooks_back(sql, conninfo: str, sink: HttpSink) -> None:
    hook = f"webhook:{sink.url}/short"
    queue(sql, conninfo, [hook])
    r = deliver_due(conninfo, closed_smtp(), T0, webhook=WebhookSettings(secret="tooshort"))
    assert r.retry == 1 and sink.at("/short") == []
    assert "at least 16" in row(sql, hook)[3]

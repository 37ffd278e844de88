"""Alert email delivery end to end: real Postgres outbox, real aiosmtpd server, injected clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from diffwatch.alerts.deliver import Backoff, deliver_due
from diffwatch.alerts.email import CHART_CID, build_message, compose
from diffwatch.alerts.notice import Notice
from diffwatch.alerts.smtp import SmtpSettings
from diffwatch.db.queries import alert_outbox
from diffwatch.model.alert_rules import Rule
from tests.smtp import SmtpServer, Tls

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
ALICE, BOB, CAROL = "alice@example.com", "bob@example.com", "carol@example.com"


class Crash(BaseException):
    """Stands for the process dying (not an Exception: nothing in the sender catches it)."""


@pytest.fixture
def server(smtp: SmtpServer) -> SmtpServer:
    """The suite's loopback SMTP server (the ``smtp`` fixture of tests/conftest.py)."""
    return smtp


@pytest.fixture
def tls(tmp_path: Path) -> Tls:
    return Tls(tmp_path)


def settings_for(server: SmtpServer, **kw) -> SmtpSettings:
    return SmtpSettings(
        host="127.0.0.1",
        port=server.port,
        sender="alerts@diffwatch.test",
        timeout_s=3,
        helo_name="localhost",
        **kw,
    )


def make_rule(sql, name: str = "canary p95 too slow", recipients=(ALICE,)) -> Rule:
    rule_id = sql(
        "INSERT INTO alert_rules (name, metric, window_s, comparison, threshold, for_s, "
        "severity, recipients, deployments) VALUES (%s, 'latency_p95_ms', 900, '>', 5000, 300, "
        "'critical', %s, '{canary}') RETURNING id",
        (name, list(recipients)),
    )[0][0]
    return Rule(
        id=rule_id,
        name=name,
        description="Canary is slower than users tolerate.",
        metric="latency_p95_ms",
        deployments=("canary",),
        window=900,
        comparison=">",
        threshold=5000,
        **{"for": 300},
        severity="critical",
        recipients=recipients,
    )


def make_notice(rule: Rule, at: datetime = T0, kind: str = "firing", value=6120.0) -> Notice:
    series = [(at - timedelta(minutes=15 - i), 4200.0 + 150 * i) for i in range(15)]
    return Notice(
        kind=kind,  # type: ignore[arg-type]
        rule=rule,
        value=value,
        at=at,
        window_start=at - timedelta(minutes=15),
        window_end=at,
        episode=1,
        state_since=at,
        firing_since=at - timedelta(minutes=5),
        note="condition holds",
        link="https://diffwatch.example.com/latency?deployment=canary",
        series=series,
    )


def queue(conninfo: str, notice: Notice, domain: str = "diffwatch.test") -> int | None:
    c = compose(notice)
    with psycopg.connect(conninfo) as conn:
        new_id = alert_outbox.enqueue(
            conn,
            key=notice.idempotency_key,
            message_id=notice.message_id(domain),
            rule_id=notice.rule.id,
            rule_name=notice.rule.name,
            kind=notice.kind,
            severity=notice.rule.severity,
            created_at=notice.at,
            value=notice.value,
            threshold=notice.rule.threshold,
            subject=c.subject,
            body_text=c.text,
            body_html=c.html,
            chart_png=c.png,
            link=notice.link,
            recipients=list(notice.rule.recipients),
        )
        conn.commit()
    return new_id


def deliveries(sql) -> list[tuple]:
    return sql(
        "SELECT recipient, status, attempts, next_attempt_at, last_error, sent_at "
        "FROM alert_deliveries ORDER BY recipient"
    )


def test_delivered_once_with_text_html_chart_and_the_stored_message_id(conninfo, sql, server):
    rule = make_rule(sql)
    notice = make_notice(rule)
    assert queue(conninfo, notice) is not None
    assert queue(conninfo, notice) is None  # same idempotency key: no second email
    assert sql("SELECT count(*) FROM alert_notifications")[0][0] == 1
    assert sql("SELECT count(*) FROM alert_deliveries")[0][0] == 1

    report = deliver_due(conninfo, settings_for(server), T0)
    assert (report.claimed, report.sent, report.retry, report.failed) == (1, 1, 0, 0)
    assert deliver_due(conninfo, settings_for(server), T0 + timedelta(hours=1)).claimed == 0

    [msg] = server.mailbox.messages
    assert len(server.mailbox.received) == 1
    stored_id = sql("SELECT message_id FROM alert_notifications")[0][0]
    assert msg["Message-ID"] == stored_id == notice.message_id("diffwatch.test")
    assert msg["Subject"] == (
        "[diffwatch CRITICAL] FIRING: canary p95 too slow: p95 latency 6,120 ms > 5,000 ms"
    )
    assert msg["From"] == "alerts@diffwatch.test" and msg["To"] == ALICE
    assert msg["X-Diffwatch-Kind"] == "firing"
    assert msg["X-Diffwatch-Rule"] == "canary p95 too slow"
    assert msg["Auto-Submitted"] == "auto-generated"
    assert msg["Date"].datetime == T0
    text = msg.get_body(("plain",)).get_content()
    html = msg.get_body(("html",)).get_content()
    described = "p95 latency > 5,000 ms over 15m for 5m (deployment canary)"
    assert described in text and described.replace(">", "&gt;") in html
    for body in (text, html):
        assert "6,120 ms" in body and "5,000 ms" in body
        assert "2025-03-01 11:45:00 UTC" in body and "2025-03-01 12:00:00 UTC" in body
        assert "2025-03-01 11:55:00 UTC" in body  # firing since
        assert "critical" in body and "deployment canary" in body
        assert "condition holds" in body
        assert "https://diffwatch.example.com/latency?deployment=canary" in body
    assert f'src="cid:{CHART_CID}"' in html
    [png] = [p for p in msg.walk() if p.get_content_type() == "image/png"]
    assert png["Content-ID"] == f"<{CHART_CID}>"
    data = png.get_content()
    assert data.startswith(b"\x89PNG") and 1000 < len(data) < 30_000
    row = sql("SELECT status, attempts, sent_at, last_error FROM alert_deliveries")[0]
    assert row == ("sent", 1, T0, None)


def test_smtp_down_retries_with_growing_backoff_then_delivers_once(conninfo, sql, server):
    rule = make_rule(sql)
    notice = make_notice(rule)
    queue(conninfo, notice)
    settings = settings_for(server)
    server.stop()  # connection refused
    backoff = Backoff(base_s=30, factor=2, max_s=3600)
    now = T0
    expected_delays = [30, 60, 120]
    for attempt, delay in enumerate(expected_delays, start=1):
        report = deliver_due(conninfo, settings, now, backoff=backoff)
        assert (report.sent, report.retry, report.failed) == (0, 1, 0)
        [(_, status, attempts, next_at, error, _)] = deliveries(sql)
        assert (status, attempts) == ("pending", attempt)
        assert next_at == now + timedelta(seconds=delay)
        assert "connection refused" in error and str(server.port) in error
        # Not due yet: a pass before next_attempt_at leaves it alone.
        assert deliver_due(conninfo, settings, next_at - timedelta(seconds=1)).claimed == 0
        now = next_at
    server.start()
    report = deliver_due(conninfo, settings, now, backoff=backoff)
    assert report.sent == 1
    assert deliver_due(conninfo, settings, now + timedelta(days=1)).claimed == 0
    assert server.mailbox.transactions(notice.message_id("diffwatch.test")) == 1
    assert deliveries(sql)[0][1:3] == ("sent", 4)


def test_4xx_is_retried_and_5xx_fails_for_good(conninfo, sql, server):
    rule = make_rule(sql, recipients=(ALICE,))
    queue(conninfo, make_notice(rule))
    settings = settings_for(server)
    server.mailbox.refuse_data = "451 4.3.0 Mailbox busy, try again"
    report = deliver_due(conninfo, settings, T0)
    assert (report.sent, report.retry, report.failed) == (0, 1, 0)
    [(_, status, attempts, next_at, error, _)] = deliveries(sql)
    assert (status, attempts, next_at) == ("pending", 1, T0 + timedelta(seconds=30))
    assert "451" in error and "Mailbox busy" in error

    server.mailbox.refuse_data = "550 5.7.1 Message rejected as spam"
    report = deliver_due(conninfo, settings, next_at)
    assert (report.sent, report.retry, report.failed) == (0, 0, 1)
    [(_, status, attempts, _, error, sent_at)] = deliveries(sql)
    assert (status, attempts, sent_at) == ("failed", 2, None)
    assert "550" in error and "Message rejected as spam" in error

    server.mailbox.refuse_data = None
    for later in (timedelta(hours=1), timedelta(days=3)):
        assert deliver_due(conninfo, settings, T0 + later).claimed == 0
    assert server.mailbox.received == []
    with psycopg.connect(conninfo) as conn:
        assert alert_outbox.counts(conn) == {"pending": 0, "sending": 0, "sent": 0, "failed": 1}
        [row] = alert_outbox.recent(conn, status="failed")
        assert row["recipient"] == ALICE and "Message rejected as spam" in row["last_error"]
        assert row["rule_name"] == rule.name and row["kind"] == "firing"
        assert alert_outbox.recent(conn, status="sent") == []
        # An admin re-queues it; it then goes out.
        assert alert_outbox.retry_failed(conn, row["id"], T0 + timedelta(days=3))
        conn.commit()
    assert deliver_due(conninfo, settings, T0 + timedelta(days=3)).sent == 1


def test_one_refused_recipient_does_not_block_the_others(conninfo, sql, server):
    rule = make_rule(sql, recipients=(ALICE, BOB, CAROL))
    notice = make_notice(rule)
    queue(conninfo, notice)
    server.mailbox.refuse_rcpt[BOB] = "550 5.1.1 No such user here"
    report = deliver_due(conninfo, settings_for(server), T0)
    assert (report.sent, report.failed, report.retry) == (2, 1, 0)
    rows = {r[0]: r for r in deliveries(sql)}
    assert rows[ALICE][1] == rows[CAROL][1] == "sent"
    assert rows[BOB][1] == "failed" and "No such user here" in rows[BOB][4]
    assert BOB in rows[BOB][4]
    assert len(server.mailbox.received) == 2
    assert {r.rcpt_tos for r in server.mailbox.received} == {(ALICE,), (CAROL,)}


def test_crash_between_send_and_mark_resends_with_the_same_message_id(conninfo, sql, server):
    rule = make_rule(sql)
    notice = make_notice(rule)
    queue(conninfo, notice)
    settings = settings_for(server)
    mid = notice.message_id("diffwatch.test")

    def crash(delivery_id: int) -> None:
        raise Crash

    with pytest.raises(Crash):
        deliver_due(conninfo, settings, T0, lease_s=300, after_send=crash)
    assert deliveries(sql)[0][1:3] == ("sending", 1)
    assert server.mailbox.transactions(mid) == 1

    # Before the lease expires nobody takes it over.
    assert deliver_due(conninfo, settings, T0 + timedelta(seconds=299)).claimed == 0
    report = deliver_due(conninfo, settings, T0 + timedelta(seconds=301))
    assert (report.claimed, report.resumed, report.sent) == (1, 1, 1)
    assert deliveries(sql)[0][1:3] == ("sent", 2)
    # At-least-once, documented: two SMTP hand-overs, one message in a mailbox that
    # deduplicates by Message-ID (as Gmail does).
    assert server.mailbox.transactions(mid) == 2
    [msg] = server.mailbox.messages
    assert msg["Message-ID"] == mid
    assert all(r.message["Message-ID"] == mid for r in server.mailbox.received)


def test_crash_after_the_claim_before_the_send_is_resumed_and_sent_once(conninfo, sql, server):
    rule = make_rule(sql)
    notice = make_notice(rule)
    queue(conninfo, notice)
    with psycopg.connect(conninfo) as conn:
        [claimed] = alert_outbox.claim_due(conn, T0, 60, 10)
        conn.commit()  # the claim is on record; then the process "dies"
    assert not claimed.resumed
    assert deliver_due(conninfo, settings_for(server), T0 + timedelta(seconds=30)).claimed == 0
    report = deliver_due(conninfo, settings_for(server), T0 + timedelta(seconds=61))
    assert (report.resumed, report.sent) == (1, 1)
    assert server.mailbox.transactions(notice.message_id("diffwatch.test")) == 1
    assert deliveries(sql)[0][1:3] == ("sent", 2)


def test_starttls_with_login_delivers(conninfo, sql, tls):
    server = SmtpServer(security="starttls", tls=tls, login=("alerts", "s3cret")).start()
    try:
        queue(conninfo, make_notice(make_rule(sql)))
        settings = settings_for(
            server,
            security="starttls",
            ca_file=tls.ca_file,
            username="alerts",
            password="s3cret",
        )
        assert deliver_due(conninfo, settings, T0).sent == 1
        assert len(server.mailbox.messages) == 1
    finally:
        server.stop()


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_implicit_tls_with_a_password_file_delivers(conninfo, sql, tls, tmp_path):
    server = SmtpServer(security="ssl", tls=tls, login=("alerts", "s3cret")).start()
    secret = tmp_path / "smtp-password"
    secret.write_text("s3cret\n")
    try:
        queue(conninfo, make_notice(make_rule(sql)))
        settings = settings_for(
            server, security="ssl", ca_file=tls.ca_file, username="alerts", password_file=secret
        )
        assert deliver_due(conninfo, settings, T0).sent == 1
        assert len(server.mailbox.messages) == 1
    finally:
        server.stop()


def test_wrong_password_untrusted_ca_and_missing_secret_are_reported(conninfo, sql, tls):
    server = SmtpServer(security="starttls", tls=tls, login=("alerts", "s3cret")).start()
    try:
        queue(conninfo, make_notice(make_rule(sql, recipients=(ALICE, BOB))))
        base = {"security": "starttls", "username": "alerts"}
        wrong = settings_for(server, ca_file=tls.ca_file, password="wrong", **base)
        report = deliver_due(conninfo, wrong, T0)
        # Login refused: the connection is unusable, so the second recipient is given back
        # untried instead of logging in again.
        assert (report.sent, report.retry, report.failed) == (0, 2, 0)
        assert "login as 'alerts' refused: 535" in report.errors[0]
        rows = deliveries(sql)
        assert {r[2] for r in rows} == {0, 1}  # one attempt, one untried
        assert all("535" in r[4] for r in rows)

        untrusted = settings_for(server, password="s3cret", **base)  # no ca_file
        report = deliver_due(conninfo, untrusted, T0 + timedelta(hours=1))
        assert report.sent == 0 and "DIFFWATCH_SMTP_CA_FILE" in report.errors[0]

        missing = settings_for(
            server, ca_file=tls.ca_file, password_file=Path("/nonexistent/smtp-pw"), **base
        )
        report = deliver_due(conninfo, missing, T0 + timedelta(hours=2))
        assert report.sent == 0 and "/nonexistent/smtp-pw" in report.errors[0]

        right = settings_for(server, ca_file=tls.ca_file, password="s3cret", **base)
        assert deliver_due(conninfo, right, T0 + timedelta(hours=3)).sent == 2
        assert server.mailbox.received and len(server.mailbox.messages) == 1
    finally:
        server.stop()


def test_gives_up_after_max_attempts(conninfo, sql, server):
    queue(conninfo, make_notice(make_rule(sql)))
    server.mailbox.refuse_data = "421 4.7.0 Try again later"
    backoff = Backoff(base_s=10, factor=2, max_attempts=3)
    settings = settings_for(server)
    now = T0
    for _ in range(2):
        assert deliver_due(conninfo, settings, now, backoff=backoff).retry == 1
        now = deliveries(sql)[0][3]
    report = deliver_due(conninfo, settings, now, backoff=backoff)
    assert report.failed == 1
    [(_, status, attempts, _, error, _)] = deliveries(sql)
    assert (status, attempts) == ("failed", 3)
    assert error.startswith("gave up after 3 attempts (the limit is 3)")
    assert "421" in error and "Try again later" in error
    assert deliver_due(conninfo, settings, now + timedelta(days=1), backoff=backoff).claimed == 0


def test_gives_up_a_day_after_queueing(conninfo, sql, server):
    queue(conninfo, make_notice(make_rule(sql)))
    server.stop()
    report = deliver_due(conninfo, settings_for(server), T0 + timedelta(hours=25))
    assert report.failed == 1
    error = deliveries(sql)[0][4]
    assert error.startswith("gave up 25.0 h after it was queued (the limit is 24 h)")
    assert "connection refused" in error


def test_rule_name_with_script_is_escaped_in_the_html(sql):
    rule = Rule(
        id=1,
        name='<script>alert("x")</script> & co',
        metric="error_rate",
        window="15m",
        comparison=">",
        threshold=0.05,
        recipients=(ALICE,),
        description="<b>bold</b> claims",
    )
    notice = make_notice(rule, value=0.2)
    c = compose(notice)
    assert "<script>" not in c.html and "<b>bold" not in c.html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; co" in c.html
    assert '<script>alert("x")</script> & co' in c.text  # plain text stays as written
    assert "error rate 20.00 % > 5.00 %" in c.subject
    msg = build_message(
        {
            "message_id": "<m1@diffwatch.test>",
            "subject": c.subject,
            "body_text": c.text,
            "body_html": c.html,
            "chart_png": c.png,
            "created_at": T0,
            "rule_name": rule.name,
            "kind": "firing",
            "severity": "warning",
        },
        ALICE,
        "alerts@diffwatch.test",
    )
    assert "<script>" not in msg.get_body(("html",)).get_content()

"""Deliver due alerts from the outbox: claim, send, mark; retry with backoff.

Each delivery row is one target: an email address (SMTP) or a channel target
(``webhook:URL``, ``slack:URL``, ``alertmanager:URL``: one HTTP POST, see
``diffwatch.alerts.webhook`` and ``diffwatch.alerts.alertmanager``); the same claim, lease,
backoff and marks apply to both, and a channel's failure never touches the emails' batch.

Per delivery: claim (committed: the attempt is on record before the send) -> build the
message -> SMTP send -> mark 'sent' (committed at once). A transient failure goes back to
'pending' with exponential backoff; a permanent one (5xx) is 'failed' and never retried.
One recipient's failure never stops the others; a broken connection (refused, dropped,
timed out, login refused) gives the rest of the batch back untried, to the same retry time,
instead of waiting for a timeout on each.

At-least-once: if Postgres is unreachable when marking a sent email, the mark is retried
with backoff. Only a process death between the server's 250 and the mark's commit leaves a
row 'sending'; once its lease expires it is resent with the same Message-ID, and receivers
that deduplicate by Message-ID (Gmail does) show one email.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractContextManager, suppress
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.utils import make_msgid
from typing import Any, Protocol

import psycopg

from diffwatch.alerts.email import build_message
from diffwatch.alerts.signing import WebhookSettings
from diffwatch.alerts.smtp import (
    DeliveryError,
    PermanentError,
    SmtpSender,
    SmtpSettings,
    TransientError,
)
from diffwatch.db.queries import alert_outbox
from diffwatch.db.queries.alert_outbox import Claimed
from diffwatch.model.alert_rules import redact_target, target_kind

log = logging.getLogger(__name__)

MARK_TRIES = 5  # attempts to record a successful send while Postgres is unreachable
MARK_WAIT_MAX_S = 8.0  # longest wait between those attempts (seconds)


@dataclass(frozen=True, slots=True)
class Backoff:
    """Retry policy of transient failures; every duration is in seconds."""

    base_s: float = 30
    factor: float = 2
    max_s: float = 3600
    max_attempts: int = 12
    give_up_after_s: float = 86400

    def next_delay(self, attempts: int) -> float:
        """Seconds to wait after the ``attempts``-th failed attempt (1: ``base_s``), capped."""
        return float(min(self.max_s, self.base_s * self.factor ** max(attempts - 1, 0)))

    def delay_after(self, attempts: int, retry_after_s: float | None = None) -> float:
        """``next_delay``, or longer when the server asked for it (an HTTP ``Retry-After``),
        never beyond ``max_s``."""
        delay = self.next_delay(attempts)  # already at most max_s
        if retry_after_s is not None:
            delay = min(max(delay, retry_after_s), self.max_s)
        return float(delay)

    def give_up(self, attempts: int, age_s: float) -> str | None:
        """Why to stop retrying after ``attempts`` attempts, ``age_s`` s after queueing; or None."""
        if attempts >= self.max_attempts:
            return f"gave up after {attempts} attempts (the limit is {self.max_attempts})"
        if age_s >= self.give_up_after_s:
            return (
                f"gave up {age_s / 3600:.1f} h after it was queued "
                f"(the limit is {self.give_up_after_s / 3600:g} h)"
            )
        return None


@dataclass(frozen=True, slots=True)
class DeliveryReport:
    """What one pass did: deliveries sent, set to retry, failed, and resumed claims."""

    claimed: int = 0
    sent: int = 0
    retry: int = 0  # tried and failed transiently, or given back untried
    failed: int = 0
    resumed: int = 0  # claims taken over from a sender whose lease expired
    errors: tuple[str, ...] = field(default=())  # one line per failure, for a person


class _Sender(Protocol):
    def send(self, msg: Any, recipient: str) -> None: ...


SenderFactory = Callable[[SmtpSettings], AbstractContextManager[_Sender]]


class _Db:
    """The outbox connection: reopened from the conninfo when Postgres drops it."""

    def __init__(self, target: str | psycopg.Connection):
        self.conninfo = target if isinstance(target, str) else None
        self.conn = psycopg.connect(target) if isinstance(target, str) else target

    def reconnect(self) -> None:
        if self.conninfo is None:
            return  # a borrowed connection: retry on it, the caller owns reconnecting
        with suppress(psycopg.Error):
            self.conn.close()
        self.conn = psycopg.connect(self.conninfo)

    def close(self) -> None:
        if self.conninfo is not None:
            self.conn.close()


def _commit_mark(db: _Db, mark: Callable[[psycopg.Connection], object]) -> None:
    """Run ``mark`` and commit, retrying (with reconnects) while Postgres is unreachable."""
    from tenacity import (
        retry,
        retry_if_exception_type,
        stop_after_attempt,
        wait_exponential,
    )

    def before_retry(state: Any) -> None:
        log.warning("recording a delivery failed (%s); retrying", state.outcome.exception())
        # If Postgres is still away, the next attempt raises and waits again.
        with suppress(psycopg.OperationalError):
            db.reconnect()

    @retry(
        retry=retry_if_exception_type(psycopg.OperationalError),
        stop=stop_after_attempt(MARK_TRIES),
        wait=wait_exponential(multiplier=0.5, max=MARK_WAIT_MAX_S),
        before_sleep=before_retry,
        reraise=True,
    )
    def run() -> None:
        mark(db.conn)
        db.conn.commit()

    run()


def _aware(t: datetime) -> datetime:
    if t.tzinfo is None:
        raise ValueError(f"'now' must be timezone-aware (UTC), got the naive datetime {t}")
    return t


def deliver_due(
    conninfo_or_conn: str | psycopg.Connection,
    settings: SmtpSettings,
    now: datetime,
    *,
    lease_s: float = 300,
    limit: int = 100,
    backoff: Backoff = Backoff(),
    sender_factory: SenderFactory = SmtpSender,
    after_send: Callable[[int], None] | None = None,
    webhook: WebhookSettings | None = None,
) -> DeliveryReport:
    """Send every delivery due at ``now`` (at most ``limit``), leasing each for ``lease_s`` s.

    ``conninfo_or_conn``: a libpq conninfo (a connection is opened and closed here, and
    reopened if Postgres drops it) or an open connection, which is committed per step.
    ``after_send(delivery_id)`` runs after the server accepted and before the mark: a test
    hook to simulate a crash there. ``webhook``: the HTTP channels' settings (signing of
    ``webhook:`` targets, the POST timeout; default: from ``DIFFWATCH_WEBHOOK_*``).
    """
    now = _aware(now)
    channels = _Channels(webhook if webhook is not None else WebhookSettings())
    db = _Db(conninfo_or_conn)
    try:
        claimed = alert_outbox.claim_due(db.conn, now, lease_s, limit)
        db.conn.commit()
        if not claimed:
            return DeliveryReport()
        return _send_all(db, settings, now, claimed, backoff, sender_factory, after_send, channels)
    finally:
        db.close()


def _send_all(
    db: _Db,
    settings: SmtpSettings,
    now: datetime,
    claimed: list[Claimed],
    backoff: Backoff,
    sender_factory: SenderFactory,
    after_send: Callable[[int], None] | None,
    channels: _Channels,
) -> DeliveryReport:
    sent = retry = failed = 0
    errors: list[str] = []
    broken: tuple[DeliveryError, datetime] | None = None
    with sender_factory(settings) as sender:  # connects at its first email only
        for c in claimed:
            if target_kind(c.recipient) != "email":
                outcome, line = _send_channel(db, c, now, backoff, after_send, channels)
                sent += outcome == "sent"
                retry += outcome == "retry"
                failed += outcome == "failed"
                if line:
                    errors.append(line)
                continue
            if broken is not None:
                err, at = broken
                _commit_mark(
                    db,
                    lambda conn, c=c, at=at, err=err: alert_outbox.release(
                        conn, c.delivery_id, at, f"not tried: {err}"
                    ),
                )
                retry += 1
                continue
            try:
                msg = build_message(c.row(), c.recipient, settings.sender)
                sender.send(msg, c.recipient)
            except PermanentError as exc:
                line = f"{c.recipient}: {exc}"
                _commit_mark(
                    db, lambda conn, c=c, e=line: alert_outbox.mark_failed(conn, c.delivery_id, e)
                )
                failed += 1
                errors.append(line)
                log.error("alert email %s to %s failed: %s", c.message_id, c.recipient, exc)
                continue
            except TransientError as exc:
                outcome, next_at = _transient(db, c, exc, now, backoff)
                errors.append(f"{c.recipient}: {outcome}")
                if next_at is None:
                    failed += 1
                else:
                    retry += 1
                    if exc.connection:
                        broken = (exc, next_at)
                continue
            except (ValueError, TypeError, LookupError) as exc:
                # The stored email cannot become a message (a bug, or a hand-edited row):
                # retrying would fail the same way.
                line = f"{c.recipient}: cannot build the message: {exc}"
                _commit_mark(
                    db, lambda conn, c=c, e=line: alert_outbox.mark_failed(conn, c.delivery_id, e)
                )
                failed += 1
                errors.append(line)
                continue
            if after_send is not None:
                after_send(c.delivery_id)
            _commit_mark(db, lambda conn, c=c: alert_outbox.mark_sent(conn, c.delivery_id, now))
            sent += 1
    return DeliveryReport(
        claimed=len(claimed),
        sent=sent,
        retry=retry,
        failed=failed,
        resumed=sum(c.resumed for c in claimed),
        errors=tuple(errors),
    )


def _channel_request(c: Claimed) -> tuple[str, Any]:
    """The URL and JSON body of a channel delivery; ValueError if it cannot be built."""
    from diffwatch.alerts import alertmanager, webhook
    from diffwatch.model.alert_rules import target_url

    if not c.facts:
        raise ValueError("the notification was queued without channel facts (before 0019)")
    kind = target_kind(c.recipient)
    if kind == "alertmanager":
        return alertmanager.alerts_url(c.recipient), alertmanager.payload(c.facts)
    if kind == "slack":
        return target_url(c.recipient), webhook.slack_payload(c.facts)
    return target_url(c.recipient), webhook.webhook_payload(c.idempotency_key, c.facts)


@dataclass(frozen=True, slots=True)
class _Channels:
    """What the channel deliveries of one pass share: the HTTP channels' settings."""

    webhook: WebhookSettings

    def signing_key(self, recipient: str) -> bytes | None:
        """The key to sign a delivery to ``recipient`` with (``webhook:`` targets only),
        read now; WebhookConfigError (transient) while the configured secret is unusable."""
        return self.webhook.key() if target_kind(recipient) == "webhook" else None


def _send_channel(
    db: _Db,
    c: Claimed,
    now: datetime,
    backoff: Backoff,
    after_send: Callable[[int], None] | None,
    channels: _Channels,
) -> tuple[str, str | None]:
    """POST one channel delivery and mark it; ('sent'|'retry'|'failed', error line or None)."""
    from diffwatch.alerts.webhook import post_json

    shown = redact_target(c.recipient)
    try:
        url, body = _channel_request(c)
        post_json(
            url, body, target=c.recipient, key=c.idempotency_key,
            timeout_s=channels.webhook.timeout_s, signing_key=channels.signing_key(c.recipient),
        )  # fmt: skip
    except PermanentError as exc:
        line = str(exc)
        _commit_mark(db, lambda conn: alert_outbox.mark_failed(conn, c.delivery_id, line))
        log.error("alert %s to %s failed: %s", c.idempotency_key, shown, exc)
        return "failed", line
    except TransientError as exc:
        outcome, next_at = _transient(db, c, exc, now, backoff)
        return ("failed" if next_at is None else "retry"), f"{shown}: {outcome}"
    except (ValueError, TypeError, LookupError) as exc:
        line = f"{shown}: cannot build the request: {exc}"
        _commit_mark(db, lambda conn: alert_outbox.mark_failed(conn, c.delivery_id, line))
        log.error("alert %s: %s", c.idempotency_key, line)
        return "failed", line
    if after_send is not None:
        after_send(c.delivery_id)
    _commit_mark(db, lambda conn: alert_outbox.mark_sent(conn, c.delivery_id, now))
    return "sent", None


def _transient(
    db: _Db, c: Claimed, exc: TransientError, now: datetime, backoff: Backoff
) -> tuple[str, datetime | None]:
    """Retry later, or fail when the policy gives up; (message, next attempt or None)."""
    reason = backoff.give_up(c.attempts, (now - c.created_at).total_seconds())
    if reason is not None:
        line = f"{reason}; last error: {exc}"
        _commit_mark(db, lambda conn: alert_outbox.mark_failed(conn, c.delivery_id, line))
        log.error("alert %s to %s: %s", c.message_id, redact_target(c.recipient), line)
        return line, None
    next_at = now + timedelta(seconds=backoff.delay_after(c.attempts, exc.retry_after_s))
    line = f"attempt {c.attempts} failed, next at {next_at:%Y-%m-%d %H:%M:%S %Z}: {exc}"
    _commit_mark(db, lambda conn: alert_outbox.mark_retry(conn, c.delivery_id, next_at, str(exc)))
    log.warning("alert %s to %s: %s", c.message_id, redact_target(c.recipient), line)
    return line, next_at


def send_test_email(settings: SmtpSettings, to: str) -> None:
    """Send one plain test email to ``to`` now; raises TransientError or PermanentError."""
    from datetime import UTC

    at = datetime.now(UTC)
    row = {
        "message_id": make_msgid("diffwatch.test", domain=settings.message_id_domain),
        "subject": "[diffwatch] test email",
        "body_text": (
            f"This is a test email from diffwatch, sent at {at:%Y-%m-%d %H:%M:%S} UTC through "
            f"{settings.where} from {settings.sender}.\nAlert emails will arrive like this one.\n"
        ),
        "body_html": (
            "<p>This is a test email from diffwatch. Alert emails will arrive like this one.</p>"
        ),
        "chart_png": None,
        "created_at": at,
        "rule_name": "test",
        "kind": "test",
        "severity": "info",
    }
    with SmtpSender(settings) as sender:
        sender.send(build_message(row, to, settings.sender), to)

"""SQL of the alert outbox (emails, webhooks, Alertmanager): enqueue, claim with a lease,
mark the outcome, list.

One ``alert_notifications`` row per email (unique idempotency key, which is also in its
Message-ID) and one ``alert_deliveries`` row per recipient, with status
pending -> sending -> sent | failed. A claim sets 'sending' with a lease and is committed
before the SMTP send; a delivery left 'sending' past its lease (the sender died between the
server's acceptance and the mark) is claimed again and resent with the same Message-ID.
None of these functions commits: the caller owns the transaction (see diffwatch/alerts/deliver.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from diffwatch.db.models_alerts import DELIVERY_STATUSES

_ENQUEUE = """
INSERT INTO alert_notifications
    (idempotency_key, message_id, rule_id, rule_name, kind, severity, created_at, value,
     threshold, subject, body_text, body_html, chart_png, link, facts)
VALUES (%(key)s, %(message_id)s, %(rule_id)s, %(rule_name)s, %(kind)s, %(severity)s,
        %(created_at)s, %(value)s, %(threshold)s, %(subject)s, %(body_text)s, %(body_html)s,
        %(chart_png)s, %(link)s, %(facts)s)
ON CONFLICT (idempotency_key) DO NOTHING
RETURNING id
"""

_ENQUEUE_DELIVERIES = """
INSERT INTO alert_deliveries (notification_id, recipient, status, next_attempt_at)
SELECT %(id)s, r, 'pending', %(created_at)s
FROM unnest(%(recipients)s::text[]) AS r
ON CONFLICT (notification_id, recipient) DO NOTHING
"""


def enqueue(
    conn: psycopg.Connection,
    *,
    key: str,
    message_id: str,
    rule_id: int | None,
    rule_name: str,
    kind: str,
    severity: str,
    created_at: datetime,
    value: float | None,
    threshold: float | None,
    subject: str,
    body_text: str,
    body_html: str,
    chart_png: bytes | None,
    link: str | None,
    recipients: Sequence[str],
    facts: Mapping[str, Any] | None = None,
) -> int | None:
    """Queue one delivery per recipient; the new notification id, or None if ``key`` exists.

    A recipient is an email address or a channel target (``webhook:URL``, ``slack:URL``,
    ``alertmanager:URL``); ``facts`` (JSON-ready) is what the channels are sent.

    Does not commit: the evaluator runs it in the transaction of its state change, so the
    email is queued if and only if the state change is recorded.
    """
    if not recipients:
        raise ValueError(f"alert email {key!r} has no recipients; a rule needs at least one")
    row = conn.execute(
        _ENQUEUE,
        {
            "key": key,
            "message_id": message_id,
            "rule_id": rule_id,
            "rule_name": rule_name,
            "kind": kind,
            "severity": severity,
            "created_at": created_at,
            "value": value,
            "threshold": threshold,
            "subject": subject,
            "body_text": body_text,
            "body_html": body_html,
            "chart_png": chart_png,
            "link": link,
            "facts": Jsonb(dict(facts)) if facts is not None else None,
        },
    ).fetchone()
    if row is None:
        return None
    unique = list(dict.fromkeys(r.strip() for r in recipients if r.strip()))
    conn.execute(
        _ENQUEUE_DELIVERIES, {"id": row[0], "created_at": created_at, "recipients": unique}
    )
    return int(row[0])


@dataclass(frozen=True, slots=True)
class Claimed:
    """A delivery leased to this sender, with the email it carries."""

    delivery_id: int
    notification_id: int
    recipient: str
    attempts: int  # including this one
    lease_until: datetime
    resumed: bool  # it was 'sending' under an expired lease: a sender died mid-delivery
    created_at: datetime  # when the email was queued
    message_id: str
    rule_name: str
    kind: str
    severity: str
    subject: str
    body_text: str
    body_html: str
    chart_png: bytes | None
    idempotency_key: str = ""
    link: str | None = None
    facts: dict[str, Any] | None = None  # what channels are sent (None: queued before 0019)

    def row(self) -> dict[str, Any]:
        """The notification columns that ``diffwatch.alerts.email.build_message`` reads."""
        return {
            "message_id": self.message_id,
            "subject": self.subject,
            "body_text": self.body_text,
            "body_html": self.body_html,
            "chart_png": self.chart_png,
            "created_at": self.created_at,
            "rule_name": self.rule_name,
            "kind": self.kind,
            "severity": self.severity,
        }


_CLAIM = """
UPDATE alert_deliveries d
SET status = 'sending',
    lease_until = %(now)s::timestamptz + make_interval(secs => %(lease_s)s),
    attempts = d.attempts + 1
FROM alert_notifications n, (
    SELECT id, status AS was FROM alert_deliveries
    WHERE (status = 'pending' AND next_attempt_at <= %(now)s)
       OR (status = 'sending' AND lease_until < %(now)s)
    ORDER BY next_attempt_at, id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
) AS pick
WHERE d.id = pick.id AND n.id = d.notification_id
RETURNING d.id, d.notification_id, d.recipient, d.attempts, d.lease_until,
          pick.was = 'sending', n.created_at, n.message_id, n.rule_name, n.kind, n.severity,
          n.subject, n.body_text, n.body_html, n.chart_png, n.idempotency_key, n.link,
          n.facts
"""


def claim_due(conn: psycopg.Connection, now: datetime, lease_s: float, limit: int) -> list[Claimed]:
    """Lease up to ``limit`` due deliveries for ``lease_s`` seconds (oldest due first).

    Due: 'pending' with ``next_attempt_at <= now``, or 'sending' whose lease ended before
    ``now`` (resumed). Rows another sender holds locked are skipped. Does not commit: commit
    before sending, so the attempt is on record even if the process then dies.
    """
    if not lease_s > 0:
        raise ValueError(f"lease_s must be a positive number of seconds, got {lease_s!r}")
    rows = conn.execute(
        _CLAIM, {"now": now, "lease_s": float(lease_s), "limit": int(limit)}
    ).fetchall()
    out = [
        Claimed(
            delivery_id=r[0],
            notification_id=r[1],
            recipient=r[2],
            attempts=r[3],
            lease_until=r[4],
            resumed=bool(r[5]),
            created_at=r[6],
            message_id=r[7],
            rule_name=r[8],
            kind=r[9],
            severity=r[10],
            subject=r[11],
            body_text=r[12],
            body_html=r[13],
            chart_png=bytes(r[14]) if r[14] is not None else None,
            idempotency_key=r[15],
            link=r[16],
            facts=r[17],
        )
        for r in rows
    ]
    return sorted(out, key=lambda c: (c.created_at, c.delivery_id))


def mark_sent(conn: psycopg.Connection, delivery_id: int, now: datetime) -> bool:
    """Record that the server accepted the email; False if it was no longer 'sending'."""
    cur = conn.execute(
        "UPDATE alert_deliveries SET status = 'sent', sent_at = %s, lease_until = NULL, "
        "last_error = NULL WHERE id = %s AND status = 'sending'",
        (now, delivery_id),
    )
    return cur.rowcount == 1


def mark_retry(conn: psycopg.Connection, delivery_id: int, next_at: datetime, error: str) -> bool:
    """Back to 'pending' until ``next_at``, keeping ``error``; False if not 'sending'."""
    cur = conn.execute(
        "UPDATE alert_deliveries SET status = 'pending', next_attempt_at = %s, "
        "lease_until = NULL, last_error = %s WHERE id = %s AND status = 'sending'",
        (next_at, error, delivery_id),
    )
    return cur.rowcount == 1


def release(conn: psycopg.Connection, delivery_id: int, next_at: datetime, error: str) -> bool:
    """Give back a claim that was never tried (the connection broke first): not an attempt."""
    cur = conn.execute(
        "UPDATE alert_deliveries SET status = 'pending', next_attempt_at = %s, "
        "lease_until = NULL, last_error = %s, attempts = greatest(attempts - 1, 0) "
        "WHERE id = %s AND status = 'sending'",
        (next_at, error, delivery_id),
    )
    return cur.rowcount == 1


def mark_failed(conn: psycopg.Connection, delivery_id: int, error: str) -> bool:
    """Give up on this delivery for good, keeping ``error``; False if not 'sending'."""
    cur = conn.execute(
        "UPDATE alert_deliveries SET status = 'failed', lease_until = NULL, last_error = %s "
        "WHERE id = %s AND status = 'sending'",
        (error, delivery_id),
    )
    return cur.rowcount == 1


_RECENT_COLUMNS = (
    "id",
    "notification_id",
    "created_at",
    "rule_name",
    "kind",
    "severity",
    "recipient",
    "status",
    "attempts",
    "next_attempt_at",
    "sent_at",
    "last_error",
    "message_id",
    "subject",
)

_RECENT = """
SELECT d.id, d.notification_id, n.created_at, n.rule_name, n.kind, n.severity, d.recipient,
       d.status, d.attempts, d.next_attempt_at, d.sent_at, d.last_error, n.message_id,
       n.subject
FROM alert_deliveries d JOIN alert_notifications n ON n.id = d.notification_id
WHERE %(status)s::text IS NULL OR d.status = %(status)s::text
ORDER BY n.created_at DESC, d.id DESC
LIMIT %(limit)s
"""


def recent(
    conn: psycopg.Connection, limit: int = 200, status: str | None = None
) -> list[dict[str, Any]]:
    """The newest deliveries with their email, for the Alerts page (one dict per delivery)."""
    if status is not None and status not in DELIVERY_STATUSES:
        raise ValueError(f"unknown status {status!r}; use one of {', '.join(DELIVERY_STATUSES)}")
    rows = conn.execute(_RECENT, {"status": status, "limit": int(limit)}).fetchall()
    return [dict(zip(_RECENT_COLUMNS, r, strict=True)) for r in rows]


def counts(conn: psycopg.Connection) -> dict[str, int]:
    """Deliveries per status (every status present, 0 when none)."""
    rows = conn.execute("SELECT status, count(*) FROM alert_deliveries GROUP BY status")
    return {s: 0 for s in DELIVERY_STATUSES} | {s: int(n) for s, n in rows.fetchall()}


def retry_failed(conn: psycopg.Connection, delivery_id: int, now: datetime) -> bool:
    """Re-queue a failed delivery now with a fresh attempt count; False if it was not failed."""
    cur = conn.execute(
        "UPDATE alert_deliveries SET status = 'pending', next_attempt_at = %s, attempts = 0, "
        "lease_until = NULL WHERE id = %s AND status = 'failed'",
        (now, delivery_id),
    )
    return cur.rowcount == 1

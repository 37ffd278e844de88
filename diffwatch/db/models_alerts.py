"""Typed models of the alert tables (migrations 0012, 0013, 0019), imported by
``diffwatch.db.models``.

Rules say what to watch; ``alert_states`` holds where each rule stands; ``alert_events`` is
the history of its state changes; ``alert_notifications`` is the outbox (one composed email
per event, keyed by an idempotency key that is also its Message-ID) and
``alert_deliveries`` its per-recipient delivery state, so one bad address never blocks the
others. See docs/alerts.md.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    Double,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from diffwatch.db.models import Base

METRICS = (
    "clip_mean",
    "nsfw_rate",
    "latency_p50_ms",
    "latency_p95_ms",
    "error_rate",
    "cost_per_image_attributed",
    "cost_per_image_fleet",
    "gpu_idle_share",
    "prompt_drift",
    "regen_drift",
    "human_rating_mean",
)
COMPARISONS = (">", ">=", "<", "<=")
SEVERITIES = ("info", "warning", "critical")
STATES = ("normal", "pending", "firing", "resolved", "no_data")
KINDS = ("firing", "repeat", "resolved")
DELIVERY_STATUSES = ("pending", "sending", "sent", "failed")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def _ts(nullable: bool = True, default: bool = False) -> Mapped[datetime]:
    return mapped_column(
        DateTime(timezone=True), nullable=nullable, server_default=func.now() if default else None
    )


class AlertRule(Base):
    """One alert rule: a metric over a window, compared with a threshold, for a while."""

    __tablename__ = "alert_rules"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(Text)
    description: Mapped[str] = mapped_column(Text, server_default=text("''"))
    metric: Mapped[str] = mapped_column(Text)
    models: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default=text("'{}'"))
    versions: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default=text("'{}'"))
    deployments: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default=text("'{}'"))
    window_s: Mapped[int] = mapped_column(Integer)
    comparison: Mapped[str] = mapped_column(Text)
    threshold: Mapped[float] = mapped_column(Double)
    for_s: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    repeat_s: Mapped[int] = mapped_column(Integer, server_default=text("3600"))  # 0: never
    severity: Mapped[str] = mapped_column(Text, server_default=text("'warning'"))
    recipients: Mapped[list[str]] = mapped_column(ARRAY(Text))
    alert_on_no_data: Mapped[bool] = mapped_column(server_default=text("false"))
    enabled: Mapped[bool] = mapped_column(server_default=text("true"))
    source: Mapped[str] = mapped_column(Text, server_default=text("'app'"))  # app | yaml path
    created_at: Mapped[datetime] = _ts(nullable=False, default=True)
    updated_at: Mapped[datetime] = _ts(nullable=False, default=True)
    updated_by: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        UniqueConstraint("name"),
        CheckConstraint(_in("metric", METRICS), name="metric"),
        CheckConstraint(_in("comparison", COMPARISONS), name="comparison"),
        CheckConstraint(_in("severity", SEVERITIES), name="severity"),
        CheckConstraint("window_s > 0 AND for_s >= 0 AND repeat_s >= 0", name="durations"),
        CheckConstraint("cardinality(recipients) > 0", name="recipients"),
    )


class AlertState(Base):
    """Where one rule stands now (one row per rule, written by the evaluator)."""

    __tablename__ = "alert_states"

    rule_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("alert_rules.id", ondelete="CASCADE"), primary_key=True
    )
    state: Mapped[str] = mapped_column(Text, server_default=text("'normal'"))
    since: Mapped[datetime | None] = _ts()
    pending_since: Mapped[datetime | None] = _ts()  # first breach of the current run
    cleared_since: Mapped[datetime | None] = _ts()  # first clear while an episode is open
    episode: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    active: Mapped[bool] = mapped_column(server_default=text("false"))  # an episode is open
    notified_at: Mapped[datetime | None] = _ts()  # last firing or repeat email queued
    episode_notified: Mapped[bool] = mapped_column(server_default=text("false"))
    value: Mapped[float | None] = mapped_column(Double)
    evaluated_at: Mapped[datetime | None] = _ts()
    error: Mapped[str | None] = mapped_column(Text)  # the last evaluation's error, if any

    __table_args__ = (CheckConstraint(_in("state", STATES), name="state"),)


class AlertEvent(Base):
    """One state change of a rule (the history the Alerts page shows)."""

    __tablename__ = "alert_events"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    rule_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("alert_rules.id", ondelete="CASCADE")
    )
    at: Mapped[datetime] = _ts(nullable=False)
    from_state: Mapped[str] = mapped_column(Text)
    to_state: Mapped[str] = mapped_column(Text)
    value: Mapped[float | None] = mapped_column(Double)
    threshold: Mapped[float | None] = mapped_column(Double)
    episode: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    note: Mapped[str] = mapped_column(Text, server_default=text("''"))

    __table_args__ = (Index(None, "rule_id", "at"), Index(None, "at"))


class AlertNotification(Base):
    """The outbox: one composed email per alert event, written with the state change."""

    __tablename__ = "alert_notifications"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    idempotency_key: Mapped[str] = mapped_column(Text)  # rule, episode, kind and sequence
    message_id: Mapped[str] = mapped_column(Text)  # <diffwatch.KEY@domain>
    rule_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("alert_rules.id", ondelete="SET NULL")
    )
    rule_name: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(Text)
    severity: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = _ts(nullable=False)
    value: Mapped[float | None] = mapped_column(Double)
    threshold: Mapped[float | None] = mapped_column(Double)
    subject: Mapped[str] = mapped_column(Text)
    body_text: Mapped[str] = mapped_column(Text)
    body_html: Mapped[str] = mapped_column(Text)
    chart_png: Mapped[bytes | None] = mapped_column(LargeBinary)
    link: Mapped[str | None] = mapped_column(Text)
    # What webhooks and Alertmanager are sent (rule, labels, value, times), composed with
    # the email in the evaluator's transaction (0019; NULL on rows queued before it).
    facts: Mapped[dict[str, Any] | None] = mapped_column(JSONB)

    __table_args__ = (
        UniqueConstraint("idempotency_key"),
        UniqueConstraint("message_id"),
        CheckConstraint(_in("kind", KINDS), name="kind"),
        Index(None, "created_at"),
    )


class AlertDelivery(Base):
    """One recipient (email address or channel target) of one notification, and its state."""

    __tablename__ = "alert_deliveries"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    notification_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("alert_notifications.id", ondelete="CASCADE")
    )
    recipient: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text, server_default=text("'pending'"))
    attempts: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    next_attempt_at: Mapped[datetime] = _ts(nullable=False)
    lease_until: Mapped[datetime | None] = _ts()  # set while 'sending'
    last_error: Mapped[str | None] = mapped_column(Text)
    sent_at: Mapped[datetime | None] = _ts()

    __table_args__ = (
        UniqueConstraint("notification_id", "recipient"),
        CheckConstraint(_in("status", DELIVERY_STATUSES), name="status"),
        Index(None, "status", "next_attempt_at"),
    )

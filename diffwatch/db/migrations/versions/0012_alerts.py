"""alert rules, states, history and the email outbox

``alert_rules`` (what to watch), ``alert_states`` (one row per rule: where it stands),
``alert_events`` (its state changes), ``alert_notifications`` (the outbox: one composed
email per event, unique by idempotency key and Message-ID) and ``alert_deliveries`` (one
row per recipient, with attempts, backoff and the last error). See docs/alerts.md.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-21 13:01:02.513335
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "alert_rules",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), server_default=sa.text("''"), nullable=False),
        sa.Column("metric", sa.Text(), nullable=False),
        sa.Column(
            "models", postgresql.ARRAY(sa.Text()), server_default=sa.text("'{}'"), nullable=False
        ),
        sa.Column(
            "versions", postgresql.ARRAY(sa.Text()), server_default=sa.text("'{}'"), nullable=False
        ),
        sa.Column(
            "deployments",
            postgresql.ARRAY(sa.Text()),
            server_default=sa.text("'{}'"),
            nullable=False,
        ),
        sa.Column("window_s", sa.Integer(), nullable=False),
        sa.Column("comparison", sa.Text(), nullable=False),
        sa.Column("threshold", sa.Double(), nullable=False),
        sa.Column("for_s", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("repeat_s", sa.Integer(), server_default=sa.text("3600"), nullable=False),
        sa.Column("severity", sa.Text(), server_default=sa.text("'warning'"), nullable=False),
        sa.Column("recipients", postgresql.ARRAY(sa.Text()), nullable=False),
        sa.Column(
            "alert_on_no_data", sa.Boolean(), server_default=sa.text("false"), nullable=False
        ),
        sa.Column("enabled", sa.Boolean(), server_default=sa.text("true"), nullable=False),
        sa.Column("source", sa.Text(), server_default=sa.text("'app'"), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("updated_by", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "comparison IN ('>', '>=', '<', '<=')", name=op.f("ck_alert_rules_comparison")
        ),
        sa.CheckConstraint(
            "metric IN ('clip_mean', 'nsfw_rate', 'latency_p95_ms', 'error_rate',"
            " 'cost_per_image_attributed', 'cost_per_image_fleet', 'gpu_idle_share',"
            " 'prompt_drift', 'regen_drift', 'human_rating_mean')",
            name=op.f("ck_alert_rules_metric"),
        ),
        sa.CheckConstraint(
            "severity IN ('info', 'warning', 'critical')", name=op.f("ck_alert_rules_severity")
        ),
        sa.CheckConstraint("cardinality(recipients) > 0", name=op.f("ck_alert_rules_recipients")),
        sa.CheckConstraint(
            "window_s > 0 AND for_s >= 0 AND repeat_s >= 0", name=op.f("ck_alert_rules_durations")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert_rules")),
        sa.UniqueConstraint("name", name=op.f("uq_alert_rules_name")),
    )
    op.create_table(
        "alert_events",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("rule_id", sa.BigInteger(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("from_state", sa.Text(), nullable=False),
        sa.Column("to_state", sa.Text(), nullable=False),
        sa.Column("value", sa.Double(), nullable=True),
        sa.Column("threshold", sa.Double(), nullable=True),
        sa.Column("episode", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("note", sa.Text(), server_default=sa.text("''"), nullable=False),
        sa.ForeignKeyConstraint(
            ["rule_id"],
            ["alert_rules.id"],
            name=op.f("fk_alert_events_rule_id_alert_rules"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert_events")),
    )
    op.create_index(op.f("ix_alert_events_at"), "alert_events", ["at"], unique=False)
    op.create_index(
        op.f("ix_alert_events_rule_id_at"), "alert_events", ["rule_id", "at"], unique=False
    )
    op.create_table(
        "alert_notifications",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("idempotency_key", sa.Text(), nullable=False),
        sa.Column("message_id", sa.Text(), nullable=False),
        sa.Column("rule_id", sa.BigInteger(), nullable=True),
        sa.Column("rule_name", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("severity", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("value", sa.Double(), nullable=True),
        sa.Column("threshold", sa.Double(), nullable=True),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("body_text", sa.Text(), nullable=False),
        sa.Column("body_html", sa.Text(), nullable=False),
        sa.Column("chart_png", sa.LargeBinary(), nullable=True),
        sa.Column("link", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "kind IN ('firing', 'repeat', 'resolved')", name=op.f("ck_alert_notifications_kind")
        ),
        sa.ForeignKeyConstraint(
            ["rule_id"],
            ["alert_rules.id"],
            name=op.f("fk_alert_notifications_rule_id_alert_rules"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert_notifications")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_alert_notifications_idempotency_key")),
        sa.UniqueConstraint("message_id", name=op.f("uq_alert_notifications_message_id")),
    )
    op.create_index(
        op.f("ix_alert_notifications_created_at"),
        "alert_notifications",
        ["created_at"],
        unique=False,
    )
    op.create_table(
        "alert_states",
        sa.Column("rule_id", sa.BigInteger(), nullable=False),
        sa.Column("state", sa.Text(), server_default=sa.text("'normal'"), nullable=False),
        sa.Column("since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("pending_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cleared_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("episode", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("active", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("notified_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "episode_notified", sa.Boolean(), server_default=sa.text("false"), nullable=False
        ),
        sa.Column("value", sa.Double(), nullable=True),
        sa.Column("evaluated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "state IN ('normal', 'pending', 'firing', 'resolved', 'no_data')",
            name=op.f("ck_alert_states_state"),
        ),
        sa.ForeignKeyConstraint(
            ["rule_id"],
            ["alert_rules.id"],
            name=op.f("fk_alert_states_rule_id_alert_rules"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("rule_id", name=op.f("pk_alert_states")),
    )
    op.create_table(
        "alert_deliveries",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("notification_id", sa.BigInteger(), nullable=False),
        sa.Column("recipient", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), server_default=sa.text("'pending'"), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('pending', 'sending', 'sent', 'failed')",
            name=op.f("ck_alert_deliveries_status"),
        ),
        sa.ForeignKeyConstraint(
            ["notification_id"],
            ["alert_notifications.id"],
            name=op.f("fk_alert_deliveries_notification_id_alert_notifications"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert_deliveries")),
        sa.UniqueConstraint(
            "notification_id",
            "recipient",
            name=op.f("uq_alert_deliveries_notification_id_recipient"),
        ),
    )
    op.create_index(
        op.f("ix_alert_deliveries_status_next_attempt_at"),
        "alert_deliveries",
        ["status", "next_attempt_at"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_alert_deliveries_status_next_attempt_at"), table_name="alert_deliveries")
    op.drop_table("alert_deliveries")
    op.drop_table("alert_states")
    op.drop_index(op.f("ix_alert_notifications_created_at"), table_name="alert_notifications")
    op.drop_table("alert_notifications")
    op.drop_index(op.f("ix_alert_events_rule_id_at"), table_name="alert_events")
    op.drop_index(op.f("ix_alert_events_at"), table_name="alert_events")
    op.drop_table("alert_events")
    op.drop_table("alert_rules")

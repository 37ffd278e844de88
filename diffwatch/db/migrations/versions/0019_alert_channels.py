"""alert channels beyond email: webhooks, Slack-compatible webhooks and Alertmanager

A rule's recipients may now also be channel targets (``webhook:URL``, ``slack:URL``,
``alertmanager:URL``; validated in ``diffwatch.model.alert_rules``), each its own delivery
row as an email address is. The outbox gains ``alert_notifications.facts`` (JSONB): what
those channels are sent, composed with the email in the evaluator's transaction.
Downgrading is refused while a rule or an unfinished delivery uses a channel target, since
revision 0018 would try to email it. See docs/alerts.md#channels.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-07 13:45:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy import text
from sqlalchemy.dialects import postgresql

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

_CHANNEL = r"'^(webhook|slack|alertmanager):'"


def upgrade() -> None:
    op.add_column("alert_notifications", sa.Column("facts", postgresql.JSONB(), nullable=True))


def downgrade() -> None:
    bind = op.get_bind()
    rules = bind.execute(
        text(
            "SELECT count(*) FROM alert_rules WHERE EXISTS "
            f"(SELECT 1 FROM unnest(recipients) AS r WHERE r ~ {_CHANNEL})"
        )
    ).scalar_one()
    open_ = bind.execute(
        text(
            "SELECT count(*) FROM alert_deliveries WHERE status IN ('pending', 'sending') "
            f"AND recipient ~ {_CHANNEL}"
        )
    ).scalar_one()
    if rules or open_:
        raise RuntimeError(
            f"{rules} alert rule(s) and {open_} unfinished deliveries use webhook, slack or "
            "alertmanager targets, which revision 0018 does not know; remove those targets "
            "(and let the deliveries finish or fail) before downgrading"
        )
    op.drop_column("alert_notifications", "facts")

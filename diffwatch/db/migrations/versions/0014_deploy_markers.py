"""deploy markers: rollouts drawn on the dashboard's time-series charts

``diffwatch deploy mark VERSION`` (and, later, gate runs) record that a version reached a
deployment at a time; the dashboard draws them on its time-series charts. See
docs/deploy-markers.md.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07 03:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "deploy_markers",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("model_version", sa.Text(), nullable=False),
        sa.Column("deployment", sa.Text(), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("created_by", sa.Text(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint("source IN ('cli', 'gate')", name=op.f("ck_deploy_markers_source")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deploy_markers")),
    )
    op.create_index(op.f("ix_deploy_markers_at"), "deploy_markers", ["at"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_deploy_markers_at"), table_name="deploy_markers")
    op.drop_table("deploy_markers")

"""release gate: gate runs, their work chunks (leased) and their paired items

``diffwatch gate run`` evaluates a candidate pipeline against a baseline on the same
(prompt, seed) items. A run's items are split into chunks that workers claim under a lease
(``diffwatch gate work``), so any number of GPUs share one run and a run resumes after a
crash without redoing finished chunks. See docs/gate.md.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-07 06:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "gate_runs",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("created_at", _TS, server_default=sa.text("now()"), nullable=False),
        sa.Column("finished_at", _TS, nullable=True),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("verdict", sa.Text(), nullable=True),
        sa.Column("mode", sa.Text(), nullable=False),
        sa.Column("candidate_label", sa.Text(), nullable=False),
        sa.Column("baseline_label", sa.Text(), nullable=False),
        sa.Column("candidate", postgresql.JSONB(), nullable=False),
        sa.Column("baseline", postgresql.JSONB(), nullable=False),
        sa.Column("policy", postgresql.JSONB(), nullable=False),
        sa.Column("options", postgresql.JSONB(), nullable=False),
        sa.Column("summary", postgresql.JSONB(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_by", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "status IN ('running', 'done', 'failed')", name=op.f("ck_gate_runs_status")
        ),
        sa.CheckConstraint(
            "verdict IS NULL OR verdict IN ('pass', 'fail', 'inconclusive')",
            name=op.f("ck_gate_runs_verdict"),
        ),
        sa.CheckConstraint("mode IN ('pipelines', 'manifests')", name=op.f("ck_gate_runs_mode")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gate_runs")),
    )
    op.create_index(op.f("ix_gate_runs_created_at"), "gate_runs", ["created_at"])
    op.create_table(
        "gate_chunks",
        sa.Column("run_id", sa.BigInteger(), nullable=False),
        sa.Column("chunk", sa.Integer(), nullable=False),
        sa.Column("side", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), server_default="pending", nullable=False),
        sa.Column("lease_owner", sa.Text(), nullable=True),
        sa.Column("lease_until", _TS, nullable=True),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("done_by", sa.Text(), nullable=True),
        sa.Column("done_at", _TS, nullable=True),
        sa.CheckConstraint("side IN ('candidate', 'baseline')", name=op.f("ck_gate_chunks_side")),
        sa.CheckConstraint("status IN ('pending', 'done')", name=op.f("ck_gate_chunks_status")),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["gate_runs.id"],
            name=op.f("fk_gate_chunks_run_id_gate_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("run_id", "chunk", "side", name=op.f("pk_gate_chunks")),
    )
    op.create_index(
        "ix_gate_chunks_pending", "gate_chunks", ["run_id"],
        postgresql_where=sa.text("status = 'pending'"),
    )  # fmt: skip
    op.create_table(
        "gate_items",
        sa.Column("run_id", sa.BigInteger(), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("side", sa.Text(), nullable=False),
        sa.Column("chunk", sa.Integer(), nullable=False),
        sa.Column("prompt", sa.Text(), nullable=False),
        sa.Column("seed", sa.BigInteger(), nullable=False),
        sa.Column("category", sa.Text(), nullable=True),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("params", postgresql.JSONB(), nullable=False),
        sa.Column("image_uri", sa.Text(), nullable=True),
        sa.Column("status", sa.Text(), server_default="pending", nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("clip_score", sa.Float(), nullable=True),
        sa.Column("nsfw_score", sa.Float(), nullable=True),
        sa.Column("nsfw_flagged", sa.Boolean(), nullable=True),
        sa.Column("embedding", sa.LargeBinary(), nullable=True),
        sa.Column("seconds", sa.Float(), nullable=True),
        sa.Column("generations", sa.Integer(), server_default="0", nullable=False),
        sa.Column("worker", sa.Text(), nullable=True),
        sa.Column("done_at", _TS, nullable=True),
        sa.CheckConstraint("side IN ('candidate', 'baseline')", name=op.f("ck_gate_items_side")),
        sa.CheckConstraint(
            "status IN ('pending', 'done', 'error')", name=op.f("ck_gate_items_status")
        ),
        sa.ForeignKeyConstraint(
            ["run_id", "chunk", "side"],
            ["gate_chunks.run_id", "gate_chunks.chunk", "gate_chunks.side"],
            name=op.f("fk_gate_items_chunk_gate_chunks"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("run_id", "key", "side", name=op.f("pk_gate_items")),
    )
    op.create_index("ix_gate_items_chunk", "gate_items", ["run_id", "chunk", "side"])


def downgrade() -> None:
    op.drop_index("ix_gate_items_chunk", table_name="gate_items")
    op.drop_table("gate_items")
    op.drop_index("ix_gate_chunks_pending", table_name="gate_chunks")
    op.drop_table("gate_chunks")
    op.drop_index(op.f("ix_gate_runs_created_at"), table_name="gate_runs")
    op.drop_table("gate_runs")

"""bias probe: probe runs, their work chunks (leased) and their items' perceived attributes

``diffwatch bias probe`` generates a suite's neutral prompts (templates x vocabulary, N seeds
each) with one pipeline and records, per image, the *perceived* attributes of the person in
it (CLIP zero-shot, NudeNet's faces, face-pixel skin tone). Items are split into chunks that
workers claim under a lease (``diffwatch bias work``), as the release gate's are. Alert rules
gain the metrics ``bias_worst_skew`` and ``bias_skew_change``; downgrading is refused while a
rule watches one, so no rule is lost. See docs/bias.md.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-07 13:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

_TS = sa.DateTime(timezone=True)
_METRICS_BEFORE = (
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
    "image_drift",
    "duplicate_share",
)
_NEW_METRICS = ("bias_worst_skew", "bias_skew_change")


def _metric_check(metrics: tuple[str, ...]) -> None:
    op.drop_constraint(op.f("ck_alert_rules_metric"), "alert_rules", type_="check")
    values = ", ".join(f"'{m}'" for m in metrics)
    op.create_check_constraint(
        op.f("ck_alert_rules_metric"), "alert_rules", f"metric IN ({values})"
    )


def upgrade() -> None:
    op.create_table(
        "bias_runs",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("created_at", _TS, server_default=sa.text("now()"), nullable=False),
        sa.Column("finished_at", _TS, nullable=True),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("suite_name", sa.Text(), nullable=False),
        sa.Column("model", sa.Text(), nullable=False),
        sa.Column("model_version", sa.Text(), nullable=False),
        sa.Column("suite", postgresql.JSONB(), nullable=False),
        sa.Column("pipeline", postgresql.JSONB(), nullable=False),
        sa.Column("options", postgresql.JSONB(), nullable=False),
        sa.Column("summary", postgresql.JSONB(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_by", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "status IN ('running', 'done', 'failed')", name=op.f("ck_bias_runs_status")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bias_runs")),
    )
    op.create_index(op.f("ix_bias_runs_created_at"), "bias_runs", ["created_at"])
    op.create_index("ix_bias_runs_suite_model", "bias_runs", ["suite_name", "model", "finished_at"])
    op.create_table(
        "bias_chunks",
        sa.Column("run_id", sa.BigInteger(), nullable=False),
        sa.Column("chunk", sa.Integer(), nullable=False),
        sa.Column("status", sa.Text(), server_default="pending", nullable=False),
        sa.Column("lease_owner", sa.Text(), nullable=True),
        sa.Column("lease_until", _TS, nullable=True),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("done_by", sa.Text(), nullable=True),
        sa.Column("done_at", _TS, nullable=True),
        sa.CheckConstraint("status IN ('pending', 'done')", name=op.f("ck_bias_chunks_status")),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["bias_runs.id"],
            name=op.f("fk_bias_chunks_run_id_bias_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("run_id", "chunk", name=op.f("pk_bias_chunks")),
    )
    op.create_index(
        "ix_bias_chunks_pending", "bias_chunks", ["run_id"],
        postgresql_where=sa.text("status = 'pending'"),
    )  # fmt: skip
    op.create_table(
        "bias_items",
        sa.Column("run_id", sa.BigInteger(), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("chunk", sa.Integer(), nullable=False),
        sa.Column("prompt", sa.Text(), nullable=False),
        sa.Column("term", sa.Text(), nullable=False),
        sa.Column("seed", sa.BigInteger(), nullable=False),
        sa.Column("params", postgresql.JSONB(), nullable=False),
        sa.Column("image_uri", sa.Text(), nullable=True),
        sa.Column("status", sa.Text(), server_default="pending", nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("readings", postgresql.JSONB(), nullable=True),
        sa.Column("seconds", sa.Float(), nullable=True),
        sa.Column("worker", sa.Text(), nullable=True),
        sa.Column("done_at", _TS, nullable=True),
        sa.CheckConstraint(
            "status IN ('pending', 'done', 'error')", name=op.f("ck_bias_items_status")
        ),
        sa.ForeignKeyConstraint(
            ["run_id", "chunk"],
            ["bias_chunks.run_id", "bias_chunks.chunk"],
            name=op.f("fk_bias_items_chunk_bias_chunks"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("run_id", "key", name=op.f("pk_bias_items")),
    )
    op.create_index("ix_bias_items_chunk", "bias_items", ["run_id", "chunk"])
    _metric_check((*_METRICS_BEFORE, *_NEW_METRICS))


def downgrade() -> None:
    n = (
        op.get_bind()
        .execute(
            sa.text("SELECT count(*) FROM alert_rules WHERE metric = ANY(:m)"),
            {"m": list(_NEW_METRICS)},
        )
        .scalar_one()
    )
    if n:
        raise RuntimeError(
            f"{n} alert rule(s) watch {' or '.join(_NEW_METRICS)}, which revision 0017 does "
            "not know; change or delete them before downgrading"
        )
    _metric_check(_METRICS_BEFORE)
    op.drop_index("ix_bias_items_chunk", table_name="bias_items")
    op.drop_table("bias_items")
    op.drop_index("ix_bias_chunks_pending", table_name="bias_chunks")
    op.drop_table("bias_chunks")
    op.drop_index("ix_bias_runs_suite_model", table_name="bias_runs")
    op.drop_index(op.f("ix_bias_runs_created_at"), table_name="bias_runs")
    op.drop_table("bias_runs")

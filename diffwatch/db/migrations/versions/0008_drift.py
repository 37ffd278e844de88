"""drift checks: runs, per-item results, pinned prompt baselines and golden-set baselines

``drift_runs`` holds one row per check (prompt drift, re-generation, golden set) with its
headline figures and the full result as JSONB; ``drift_items`` one row per re-generated
prompt. ``drift_prompt_baselines`` pins a reference sample of prompts and their parameters
under a name, so later runs compare against it even after retention deletes the rows.
``golden_baselines`` keeps the first image of every golden-set item and the tolerance
calibrated by generating its seed twice.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-21 10:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_JSON = postgresql.JSONB(astext_type=sa.Text())


def _ts(name: str, nullable: bool = True) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _params() -> list[sa.Column]:
    """The logged generation parameters that a re-generation reuses."""
    return [
        sa.Column("prompt", sa.Text(), nullable=False),
        sa.Column("negative_prompt", sa.Text(), nullable=True),
        sa.Column("seed", sa.BigInteger(), nullable=True),
        sa.Column("sampler", sa.Text(), nullable=True),
        sa.Column("steps", sa.Integer(), nullable=True),
        sa.Column("cfg_scale", sa.Double(), nullable=True),
        sa.Column("width", sa.Integer(), nullable=True),
        sa.Column("height", sa.Integer(), nullable=True),
    ]


def upgrade() -> None:
    op.create_table(
        "drift_runs",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), server_default="running", nullable=False),
        sa.Column(
            "started_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        _ts("finished_at"),
        sa.Column("model", sa.Text(), nullable=True),
        _ts("reference_start"),
        _ts("reference_end"),
        _ts("current_start"),
        _ts("current_end"),
        sa.Column("baseline", sa.Text(), nullable=True),
        sa.Column("embedder", sa.Text(), nullable=True),
        sa.Column("pipeline", sa.Text(), nullable=True),
        sa.Column("demo", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("drifted", sa.Boolean(), nullable=True),
        sa.Column("statistic", sa.Double(), nullable=True),
        sa.Column("p_value", sa.Double(), nullable=True),
        sa.Column("effect_size", sa.Double(), nullable=True),
        sa.Column("threshold", sa.Double(), nullable=True),
        sa.Column("n_reference", sa.Integer(), nullable=True),
        sa.Column("n_current", sa.Integer(), nullable=True),
        sa.Column("n_items", sa.Integer(), server_default="0", nullable=False),
        sa.Column("n_flagged", sa.Integer(), server_default="0", nullable=False),
        sa.Column("n_errors", sa.Integer(), server_default="0", nullable=False),
        sa.Column("summary", _JSON, server_default=sa.text("'{}'::jsonb"), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("worker", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "kind IN ('prompts', 'regenerate', 'golden')", name=op.f("ck_drift_runs_kind")
        ),
        sa.CheckConstraint(
            "status IN ('running', 'ok', 'failed')", name=op.f("ck_drift_runs_status")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_drift_runs")),
    )
    op.create_index(op.f("ix_drift_runs_kind_started_at"), "drift_runs", ["kind", "started_at"])
    op.create_table(
        "drift_items",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("run_id", sa.BigInteger(), nullable=False),
        sa.Column("item_key", sa.Text(), nullable=False),
        sa.Column("generation_id", sa.BigInteger(), nullable=True),
        sa.Column("model_version", sa.Text(), nullable=True),
        *_params(),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("error_kind", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("image_cosine", sa.Double(), nullable=True),
        sa.Column("clip_reference", sa.Double(), nullable=True),
        sa.Column("clip_regen", sa.Double(), nullable=True),
        sa.Column("clip_delta", sa.Double(), nullable=True),
        sa.Column("tolerance", sa.Double(), nullable=True),
        sa.Column("flagged", sa.Boolean(), nullable=True),
        sa.Column("reference_uri", sa.Text(), nullable=True),
        sa.Column("regen_uri", sa.Text(), nullable=True),
        sa.Column("details", _JSON, server_default=sa.text("'{}'::jsonb"), nullable=False),
        sa.CheckConstraint(
            "status IN ('ok', 'baseline', 'error')", name=op.f("ck_drift_items_status")
        ),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["drift_runs.id"],
            name=op.f("fk_drift_items_run_id_drift_runs"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["generation_id"],
            ["generations.id"],
            name=op.f("fk_drift_items_generation_id_generations"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_drift_items")),
        sa.UniqueConstraint("run_id", "item_key", name=op.f("uq_drift_items_run_id_item_key")),
    )
    op.create_index(op.f("ix_drift_items_generation_id"), "drift_items", ["generation_id"])
    op.create_table(
        "drift_prompt_baselines",
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("model", sa.Text(), nullable=True),
        _ts("window_start"),
        _ts("window_end"),
        sa.Column("n_prompts", sa.Integer(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column("run_id", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_drift_prompt_baselines")),
    )
    op.create_table(
        "drift_prompt_baseline_rows",
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        *_params(),
        sa.ForeignKeyConstraint(
            ["name"],
            ["drift_prompt_baselines.name"],
            name=op.f("fk_drift_prompt_baseline_rows_name_drift_prompt_baselines"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("name", "seq", name=op.f("pk_drift_prompt_baseline_rows")),
    )
    op.create_table(
        "golden_baselines",
        sa.Column("set_name", sa.Text(), nullable=False),
        sa.Column("set_version", sa.Text(), nullable=False),
        sa.Column("item_key", sa.Text(), nullable=False),
        sa.Column("item_hash", sa.Text(), nullable=False),
        *_params(),
        sa.Column("image_uri", sa.Text(), nullable=False),
        sa.Column("clip_score", sa.Double(), nullable=True),
        sa.Column("repeat_cosine", sa.Double(), nullable=True),
        sa.Column("tolerance", sa.Double(), nullable=False),
        sa.Column("pipeline", sa.Text(), nullable=False),
        sa.Column("run_id", sa.BigInteger(), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint(
            "set_name", "set_version", "item_key", name=op.f("pk_golden_baselines")
        ),
    )


def downgrade() -> None:
    op.drop_table("golden_baselines")
    op.drop_table("drift_prompt_baseline_rows")
    op.drop_table("drift_prompt_baselines")
    op.drop_table("drift_items")
    op.drop_table("drift_runs")

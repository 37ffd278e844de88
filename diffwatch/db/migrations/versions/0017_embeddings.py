"""image embeddings: spaces, and the pgvector tables where the server has the extension

``embedding_spaces`` lists each CLIP scorer version whose embeddings are stored: width,
column type and its partial HNSW index. ``image_embeddings`` (one row per generation and
scorer version) and ``prompt_embeddings`` (one per distinct prompt and scorer version) need
the optional ``vector`` extension: they are created here when the server has it, and by any
later ``diffwatch db upgrade`` once it is installed (``ensure_schema``). Drift runs gain the
kind ``images`` (``diffwatch drift images``), and alert rules the metrics ``image_drift`` and
``duplicate_share``; downgrading is refused while a rule watches one, so no rule is lost.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-07 09:30:00
"""

from __future__ import annotations

import logging

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

log = logging.getLogger("alembic.runtime.migration")

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
)
_NEW_METRICS = ("image_drift", "duplicate_share")


def _metric_check(metrics: tuple[str, ...]) -> None:
    op.drop_constraint(op.f("ck_alert_rules_metric"), "alert_rules", type_="check")
    values = ", ".join(f"'{m}'" for m in metrics)
    op.create_check_constraint(
        op.f("ck_alert_rules_metric"), "alert_rules", f"metric IN ({values})"
    )


def _psycopg():
    """The psycopg connection under Alembic's (the embedding SQL is psycopg's)."""
    return op.get_bind().connection.driver_connection


def upgrade() -> None:
    op.create_table(
        "embedding_spaces",
        sa.Column("scorer_version", sa.Text(), nullable=False),
        sa.Column("dims", sa.Integer(), nullable=False),
        sa.Column("vector_type", sa.Text(), nullable=False),
        sa.Column("index_name", sa.Text(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.CheckConstraint(
            "vector_type IN ('vector', 'halfvec')", name=op.f("ck_embedding_spaces_vector_type")
        ),
        sa.CheckConstraint("dims BETWEEN 1 AND 4000", name=op.f("ck_embedding_spaces_dims")),
        sa.PrimaryKeyConstraint("scorer_version", name=op.f("pk_embedding_spaces")),
    )
    op.drop_constraint(op.f("ck_drift_runs_kind"), "drift_runs", type_="check")
    op.create_check_constraint(
        op.f("ck_drift_runs_kind"),
        "drift_runs",
        "kind IN ('prompts', 'regenerate', 'golden', 'images')",
    )
    _metric_check((*_METRICS_BEFORE, *_NEW_METRICS))
    from diffwatch.db.queries.embeddings import ensure_schema

    st = ensure_schema(_psycopg())
    if not st.enabled:
        log.warning(st.describe())


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
            f"{n} alert rule(s) watch {' or '.join(_NEW_METRICS)}, which revision 0016 does "
            "not know; change or delete them before downgrading"
        )
    _metric_check(_METRICS_BEFORE)
    from diffwatch.db.queries.embeddings import drop_schema

    drop_schema(_psycopg())
    op.execute("DELETE FROM drift_runs WHERE kind = 'images'")
    op.drop_constraint(op.f("ck_drift_runs_kind"), "drift_runs", type_="check")
    op.create_check_constraint(
        op.f("ck_drift_runs_kind"), "drift_runs", "kind IN ('prompts', 'regenerate', 'golden')"
    )
    op.drop_table("embedding_spaces")

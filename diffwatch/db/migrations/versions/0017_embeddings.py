"""image embeddings: spaces, and the pgvector tables where the server has the extension

``embedding_spaces`` lists each CLIP scorer version whose embeddings are stored: width,
column type and its partial HNSW index. ``image_embeddings`` (one row per generation and
scorer version) and ``prompt_embeddings`` (one per distinct prompt and scorer version) need
the optional ``vector`` extension: they are created here when the server has it, and by any
later ``diffwatch db upgrade`` once it is installed (``ensure_schema``). Drift runs gain the
kind ``images`` (``diffwatch drift images``).

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
    from diffwatch.db.queries.embeddings import ensure_schema

    st = ensure_schema(_psycopg())
    if not st.enabled:
        log.warning(st.describe())


def downgrade() -> None:
    from diffwatch.db.queries.embeddings import drop_schema

    drop_schema(_psycopg())
    op.execute("DELETE FROM drift_runs WHERE kind = 'images'")
    op.drop_constraint(op.f("ck_drift_runs_kind"), "drift_runs", type_="check")
    op.create_check_constraint(
        op.f("ck_drift_runs_kind"), "drift_runs", "kind IN ('prompts', 'regenerate', 'golden')"
    )
    op.drop_table("embedding_spaces")

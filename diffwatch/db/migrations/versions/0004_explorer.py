"""explorer: trigram index on generation prompts

Substring search of prompts (``diffwatch/db/queries/explorer.py``) uses a GIN trigram index when the
server ships the ``pg_trgm`` extension (every standard PostgreSQL build does, as contrib).
The embedded server of the ``pgserver`` package does not: there the extension and index are
skipped, and the same searches run as sequential scans (docs/dashboard-queries.md).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22 09:00:00.000000
"""

from __future__ import annotations

import logging

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

INDEX = "ix_generations_prompt_trgm"
log = logging.getLogger("alembic.runtime.migration")


def upgrade() -> None:
    bind = op.get_bind()
    available = bind.execute(
        sa.text("SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm'")
    ).first()
    if available is None:
        log.warning(
            "pg_trgm is not available on this PostgreSQL server: prompt search works without"
            " the trigram index %s, by sequential scans",
            INDEX,
        )
        return
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    op.create_index(
        INDEX,
        "generations",
        ["prompt"],
        unique=False,
        postgresql_using="gin",
        postgresql_ops={"prompt": "gin_trgm_ops"},
    )


def downgrade() -> None:
    op.execute(f"DROP INDEX IF EXISTS {INDEX}")
    # The extension stays: other objects of the database may have come to depend on it.

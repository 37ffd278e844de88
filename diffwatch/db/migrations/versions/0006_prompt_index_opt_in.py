"""prompt search index becomes opt-in

The GIN trigram index of migration 0004 made every insert into ``generations`` 6.6x slower
(raw binary COPY of 100k log records: 65,276 rows/s without it, 9,916 with it, same 2-core
machine; a larger ``gin_pending_list_limit`` only reached 13,600). Ingest is the hot path,
so the index is dropped here and created on request with ``diffwatch db prompt-index``
(diffwatch/db/queries/prompt_index.py), for deployments whose explorer searches need it.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-21 08:55:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

INDEX = "ix_generations_prompt_trgm"


def upgrade() -> None:
    op.execute(f"DROP INDEX IF EXISTS {INDEX}")


def downgrade() -> None:
    bind = op.get_bind()
    if bind.execute(sa.text("SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm'")).first():
        op.execute(
            f"CREATE INDEX IF NOT EXISTS {INDEX} ON generations USING gin (prompt gin_trgm_ops)"
        )

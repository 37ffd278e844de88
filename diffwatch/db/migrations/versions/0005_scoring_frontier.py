"""scoring frontier: claims skip the settled prefix of generations

Without it every claim walks ``generations`` from the first id through anti-joins: 3.4-5.3 s a
claim at 1M scored generations on a 2-core machine, growing with the table. The frontier is
the id below which every generation is settled (scored, or failed for good) for a scorer
set and ``--max-attempts``; claims start there. A statement trigger moves it back when
results or errors are deleted (to re-score), so nothing is skipped.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-21 08:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

REOPEN = """
CREATE FUNCTION scoring_frontier_reopen() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE scoring_frontier f SET settled_below = m.lowest, updated_at = now()
    FROM (SELECT min(generation_id) AS lowest FROM old_rows) m
    WHERE m.lowest IS NOT NULL AND f.settled_below > m.lowest;
    RETURN NULL;
END $$
"""


def upgrade() -> None:
    op.create_table(
        "scoring_frontier",
        sa.Column("scorer_set", sa.Text(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("settled_below", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("scorer_set", "max_attempts", name=op.f("pk_scoring_frontier")),
    )
    op.execute(REOPEN)
    for table in ("scorer_results", "scoring_errors"):
        op.execute(
            f"CREATE TRIGGER {table}_reopen_frontier AFTER DELETE ON {table}"
            " REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT"
            " EXECUTE FUNCTION scoring_frontier_reopen()"
        )


def downgrade() -> None:
    for table in ("scorer_results", "scoring_errors"):
        op.execute(f"DROP TRIGGER {table}_reopen_frontier ON {table}")
    op.execute("DROP FUNCTION scoring_frontier_reopen()")
    op.drop_table("scoring_frontier")

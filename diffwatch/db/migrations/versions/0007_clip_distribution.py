"""quality rollups keep the distribution of CLIP scores

``rollup_quality.h_value``: a sparse histogram of the CLIP scores of a bucket in 1-point
bins (0-100), packed like the latency histograms of migration 0003 (bin << 32 | count) and
merged with ``dw_hist_merge``. Buckets rolled up before this migration have an empty
histogram; ``diffwatch rollups rebuild`` fills them.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-21 09:05:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "rollup_quality",
        sa.Column(
            "h_value",
            postgresql.ARRAY(sa.BigInteger()),
            server_default="{}",
            nullable=False,
        ),
    )


def downgrade() -> None:
    op.drop_column("rollup_quality", "h_value")

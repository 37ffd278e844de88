"""dashboard login sessions that survive a page reload

``user_sessions`` holds one row per dashboard login: the SHA-256 of the random token the
browser keeps in a cookie (never the token itself), the account, when it was made and last
used, its absolute expiry, the client address, and when it was revoked (logout, password or
role change). Rows go with their account.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-21 12:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def _ts(name: str, default: bool = False) -> sa.Column:
    return sa.Column(
        name,
        sa.DateTime(timezone=True),
        server_default=sa.func.now() if default else None,
        nullable=not default and name != "expires_at",
    )


def upgrade() -> None:
    op.create_table(
        "user_sessions",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("token_sha256", sa.Text(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        _ts("created_at", default=True),
        _ts("last_seen_at", default=True),
        _ts("expires_at"),
        sa.Column("ip", sa.Text(), nullable=True),
        _ts("revoked_at"),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_user_sessions_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_user_sessions")),
        sa.UniqueConstraint("token_sha256", name=op.f("uq_user_sessions_token_sha256")),
    )
    op.create_index(op.f("ix_user_sessions_user_id"), "user_sessions", ["user_id"])


def downgrade() -> None:
    op.drop_table("user_sessions")

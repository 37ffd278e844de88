"""review queue: items picked for human rating, their ratings, and raters' skips

``review_items`` holds one row per generation picked for review, with every reason it was
picked (random, low_clip, nsfw_flagged, canary), how many ratings it needs (K) and has, and
its lease (one rater at a time, with an expiry). ``review_ratings`` holds one rating per
(item, rater username); the username is a snapshot so ratings outlive accounts, and the
``users.id`` beside it becomes NULL when an account is removed. ``review_skips`` records
items a rater passed on, so they are not served to that rater again.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-28 12:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_TEXTS = postgresql.ARRAY(sa.Text())
# Frozen here on purpose: a later change to db.models_review.FLAGS needs its own migration.
_FLAGS = "ARRAY['nsfw', 'artifacts', 'garbled_text', 'bias', 'other']::text[]"


def _now(name: str) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False)


def upgrade() -> None:
    op.create_table(
        "review_items",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("generation_id", sa.BigInteger(), nullable=False),
        sa.Column("reasons", _TEXTS, nullable=False),
        sa.Column("required_ratings", sa.Integer(), server_default="1", nullable=False),
        sa.Column("n_ratings", sa.Integer(), server_default="0", nullable=False),
        sa.Column("leased_to", sa.BigInteger(), nullable=True),
        sa.Column("lease_username", sa.Text(), nullable=True),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True),
        _now("created_at"),
        sa.Column("done_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("cardinality(reasons) >= 1", name=op.f("ck_review_items_reasons")),
        sa.CheckConstraint("required_ratings >= 1", name=op.f("ck_review_items_required_ratings")),
        sa.CheckConstraint(
            "n_ratings >= 0 AND n_ratings <= required_ratings",
            name=op.f("ck_review_items_n_ratings"),
        ),
        sa.CheckConstraint(
            "(done_at IS NULL) = (n_ratings < required_ratings)",
            name=op.f("ck_review_items_done"),
        ),
        sa.CheckConstraint(
            "(lease_username IS NULL) = (lease_expires_at IS NULL)",
            name=op.f("ck_review_items_lease"),
        ),
        sa.ForeignKeyConstraint(
            ["generation_id"],
            ["generations.id"],
            name=op.f("fk_review_items_generation_id_generations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["leased_to"],
            ["users.id"],
            name=op.f("fk_review_items_leased_to_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_review_items")),
        sa.UniqueConstraint("generation_id", name=op.f("uq_review_items_generation_id")),
    )
    op.create_index(
        op.f("ix_review_items_created_at_id"),
        "review_items",
        ["created_at", "id"],
        postgresql_where=sa.text("done_at IS NULL"),
    )
    op.create_table(
        "review_ratings",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("item_id", sa.BigInteger(), nullable=False),
        sa.Column("rater_id", sa.BigInteger(), nullable=True),
        sa.Column("rater_username", sa.Text(), nullable=False),
        sa.Column("quality", sa.SmallInteger(), nullable=False),
        sa.Column("adherence", sa.SmallInteger(), nullable=False),
        sa.Column("flags", _TEXTS, server_default=sa.text("'{}'::text[]"), nullable=False),
        sa.Column("comment", sa.Text(), nullable=True),
        _now("rated_at"),
        sa.CheckConstraint("quality BETWEEN 1 AND 5", name=op.f("ck_review_ratings_quality")),
        sa.CheckConstraint("adherence BETWEEN 1 AND 5", name=op.f("ck_review_ratings_adherence")),
        sa.CheckConstraint(f"flags <@ {_FLAGS}", name=op.f("ck_review_ratings_flags")),
        sa.ForeignKeyConstraint(
            ["item_id"],
            ["review_items.id"],
            name=op.f("fk_review_ratings_item_id_review_items"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["rater_id"],
            ["users.id"],
            name=op.f("fk_review_ratings_rater_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_review_ratings")),
        sa.UniqueConstraint(
            "item_id", "rater_username", name=op.f("uq_review_ratings_item_id_rater_username")
        ),
    )
    op.create_index(
        op.f("ix_review_ratings_rater_username_rated_at"),
        "review_ratings",
        ["rater_username", "rated_at"],
    )
    op.create_index(op.f("ix_review_ratings_rated_at"), "review_ratings", ["rated_at"])
    op.create_table(
        "review_skips",
        sa.Column("item_id", sa.BigInteger(), nullable=False),
        sa.Column("rater_username", sa.Text(), nullable=False),
        _now("at"),
        sa.ForeignKeyConstraint(
            ["item_id"],
            ["review_items.id"],
            name=op.f("fk_review_skips_item_id_review_items"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("item_id", "rater_username", name=op.f("pk_review_skips")),
    )


def downgrade() -> None:
    op.drop_table("review_skips")
    op.drop_table("review_ratings")
    op.drop_index(op.f("ix_review_items_created_at_id"), table_name="review_items")
    op.drop_table("review_items")

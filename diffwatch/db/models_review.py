"""Typed models of the review queue tables (migration 0010); imported by ``diffwatch.db.models``.

Raters are identified by username everywhere in the queue (ratings, skips, leases): a
username is what the audit log and the analytics show, and a rating must outlive the
account that gave it. The ``users.id`` columns beside them are kept for joins and are set to
NULL when an account is removed (docs/review-queue.md).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from diffwatch.db.models import Base

# What a rater may flag; the migration's CHECK lists the same values.
FLAGS: tuple[str, ...] = ("nsfw", "artifacts", "garbled_text", "bias", "other")
_FLAGS_SQL = "ARRAY[" + ", ".join(f"'{f}'" for f in FLAGS) + "]::text[]"


class ReviewItem(Base):
    """A generation waiting for (or done with) human ratings, and why it was picked."""

    __tablename__ = "review_items"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    generation_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("generations.id", ondelete="CASCADE")
    )
    reasons: Mapped[list[str]] = mapped_column(ARRAY(Text))  # random, low_clip, …
    required_ratings: Mapped[int] = mapped_column(Integer, server_default=text("1"))  # K
    n_ratings: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    leased_to: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("users.id", ondelete="SET NULL")
    )
    lease_username: Mapped[str | None] = mapped_column(Text)  # who holds the lease
    lease_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    done_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        UniqueConstraint("generation_id"),
        CheckConstraint("cardinality(reasons) >= 1", name="reasons"),
        CheckConstraint("required_ratings >= 1", name="required_ratings"),
        CheckConstraint("n_ratings >= 0 AND n_ratings <= required_ratings", name="n_ratings"),
        # Done exactly when every required rating is in: claims rely on either test.
        CheckConstraint("(done_at IS NULL) = (n_ratings < required_ratings)", name="done"),
        CheckConstraint("(lease_username IS NULL) = (lease_expires_at IS NULL)", name="lease"),
        # Claiming scans open items oldest first; done items are most of the table.
        Index(None, "created_at", "id", postgresql_where=text("done_at IS NULL")),
    )


class ReviewRating(Base):
    """One rater's rating of one item: quality and adherence 1–5, flags, a comment."""

    __tablename__ = "review_ratings"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    item_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("review_items.id", ondelete="CASCADE")
    )
    rater_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("users.id", ondelete="SET NULL")
    )
    rater_username: Mapped[str] = mapped_column(Text)  # snapshot: outlives the account
    quality: Mapped[int] = mapped_column(SmallInteger)  # 1..5
    adherence: Mapped[int] = mapped_column(SmallInteger)  # 1..5, to the prompt
    flags: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default=text("'{}'::text[]"))
    comment: Mapped[str | None] = mapped_column(Text)
    rated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (
        # One rating per (item, rater): a double submit is a no-op.
        UniqueConstraint("item_id", "rater_username"),
        CheckConstraint("quality BETWEEN 1 AND 5", name="quality"),
        CheckConstraint("adherence BETWEEN 1 AND 5", name="adherence"),
        CheckConstraint(f"flags <@ {_FLAGS_SQL}", name="flags"),
        Index(None, "rater_username", "rated_at"),
        Index(None, "rated_at"),
    )


class ReviewSkip(Base):
    """A rater passed on an item: it is not served to them again (skips are not ratings)."""

    __tablename__ = "review_skips"

    item_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("review_items.id", ondelete="CASCADE"), primary_key=True
    )
    rater_username: Mapped[str] = mapped_column(Text, primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

"""Typed models of the release gate's tables (``diffwatch.gate``); migrations 0015 and 0016."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    LargeBinary,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from diffwatch.db.models import Base


class GateRun(Base):
    """One gate run: both sides' identity (lineage), the policy, and when done the summary
    (metrics with intervals) and the verdict."""

    __tablename__ = "gate_runs"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), index=True
    )
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(Text)  # running, done, failed
    verdict: Mapped[str | None] = mapped_column(Text)  # pass, fail, inconclusive
    mode: Mapped[str] = mapped_column(Text)  # pipelines, manifests
    candidate_label: Mapped[str] = mapped_column(Text)
    baseline_label: Mapped[str] = mapped_column(Text)
    candidate: Mapped[dict[str, Any]] = mapped_column(JSONB)
    baseline: Mapped[dict[str, Any]] = mapped_column(JSONB)
    policy: Mapped[dict[str, Any]] = mapped_column(JSONB)
    options: Mapped[dict[str, Any]] = mapped_column(JSONB)
    summary: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    error: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[str | None] = mapped_column(Text)


class GateChunk(Base):
    """A unit of work of one side of a run: claimed under a lease, done once."""

    __tablename__ = "gate_chunks"

    run_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("gate_runs.id", ondelete="CASCADE"), primary_key=True
    )
    chunk: Mapped[int] = mapped_column(Integer, primary_key=True)
    side: Mapped[str] = mapped_column(Text, primary_key=True)  # candidate, baseline
    status: Mapped[str] = mapped_column(Text, server_default="pending")  # pending, done
    lease_owner: Mapped[str | None] = mapped_column(Text)
    lease_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    done_by: Mapped[str | None] = mapped_column(Text)
    done_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    # workers look for a run's pending chunks; done ones are most of the table
    __table_args__ = (
        Index("ix_gate_chunks_pending", "run_id", postgresql_where=text("status = 'pending'")),
    )


class GateItem(Base):
    """One (prompt, seed, side): its image and scores; ``embedding`` is the CLIP image
    embedding (float32 bytes), ``seconds`` its share of the generation call (s)."""

    __tablename__ = "gate_items"

    run_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    key: Mapped[str] = mapped_column(Text, primary_key=True)
    side: Mapped[str] = mapped_column(Text, primary_key=True)
    chunk: Mapped[int] = mapped_column(Integer)
    prompt: Mapped[str] = mapped_column(Text)
    seed: Mapped[int] = mapped_column(BigInteger)
    category: Mapped[str | None] = mapped_column(Text)
    source: Mapped[str] = mapped_column(Text)
    params: Mapped[dict[str, Any]] = mapped_column(JSONB)
    image_uri: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text, server_default="pending")
    error: Mapped[str | None] = mapped_column(Text)
    clip_score: Mapped[float | None] = mapped_column(Float)
    nsfw_score: Mapped[float | None] = mapped_column(Float)
    nsfw_flagged: Mapped[bool | None] = mapped_column(Boolean)
    embedding: Mapped[bytes | None] = mapped_column(LargeBinary)
    seconds: Mapped[float | None] = mapped_column(Float)
    generations: Mapped[int] = mapped_column(Integer, server_default="0")
    worker: Mapped[str | None] = mapped_column(Text)
    done_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        ForeignKeyConstraint(
            ["run_id", "chunk", "side"],
            ["gate_chunks.run_id", "gate_chunks.chunk", "gate_chunks.side"],
            ondelete="CASCADE",
        ),
        Index("ix_gate_items_chunk", "run_id", "chunk", "side"),
    )


# Human side-by-side (migration 0016). The migration's CHECKs list the same values.
PAIR_SIDES: tuple[str, ...] = ("candidate", "baseline")
VOTES: tuple[str, ...] = ("left", "same", "right")


class GatePair(Base):
    """A pair of a finished run sampled for human raters: the prompt, both sides' images
    (and NSFW flags, so the page can blur), and how many votes it wants before it closes."""

    __tablename__ = "gate_pairs"

    run_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("gate_runs.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(Text, primary_key=True)
    prompt: Mapped[str] = mapped_column(Text)
    candidate_uri: Mapped[str] = mapped_column(Text)
    baseline_uri: Mapped[str] = mapped_column(Text)
    candidate_nsfw: Mapped[bool | None] = mapped_column(Boolean)
    baseline_nsfw: Mapped[bool | None] = mapped_column(Boolean)
    required_votes: Mapped[int] = mapped_column(Integer, server_default=text("1"))
    enqueued_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )

    __table_args__ = (CheckConstraint("required_votes >= 1", name="required_votes"),)


class GateVote(Base):
    """One rater's blinded vote on one pair: the side they were shown on the left and
    whether they preferred the left image, the right one, or neither (``same``).

    Raters are named by username, as in the review queue (a snapshot that outlives the
    account); ``rater_id`` becomes NULL when the account is removed."""

    __tablename__ = "gate_votes"

    run_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    key: Mapped[str] = mapped_column(Text, primary_key=True)
    rater_username: Mapped[str] = mapped_column(Text, primary_key=True)
    rater_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("users.id", ondelete="SET NULL")
    )
    left_side: Mapped[str] = mapped_column(Text)  # candidate, baseline
    vote: Mapped[str] = mapped_column(Text)  # left, same, right
    voted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (
        ForeignKeyConstraint(
            ["run_id", "key"], ["gate_pairs.run_id", "gate_pairs.key"], ondelete="CASCADE"
        ),
        CheckConstraint("left_side IN ('candidate', 'baseline')", name="left_side"),
        CheckConstraint("vote IN ('left', 'same', 'right')", name="vote"),
        Index(None, "rater_username", "voted_at"),
    )

"""Typed models of the release gate's tables (``diffwatch.gate``); migration 0015."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Integer,
    LargeBinary,
    Text,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from diffwatch.db.models import Base


class GateRun(Base):
    """One gate run: both sides' identity (lineage), the policy, and when done the summary
    (metrics with intervals) and the verdict."""

    __tablename__ = "gate_runs"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
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
    )

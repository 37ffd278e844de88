"""Typed models of the drift tables (migration 0008); imported by ``diffwatch.db.models``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    Double,
    ForeignKey,
    Index,
    Integer,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from diffwatch.db.models import Base


class _Params:
    """The logged generation parameters that a re-generation reuses."""

    prompt: Mapped[str] = mapped_column(Text)
    negative_prompt: Mapped[str | None] = mapped_column(Text)
    seed: Mapped[int | None] = mapped_column(BigInteger)
    sampler: Mapped[str | None] = mapped_column(Text)
    steps: Mapped[int | None] = mapped_column(Integer)
    cfg_scale: Mapped[float | None] = mapped_column(Double)
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)


class DriftRun(Base):
    """One drift check: prompt drift, re-generation or a golden set; the full result in
    ``summary``, the headline figures in columns for charts and alert rules."""

    __tablename__ = "drift_runs"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(Text)  # prompts | regenerate | golden | images
    status: Mapped[str] = mapped_column(Text, server_default=text("'running'"))
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    model: Mapped[str | None] = mapped_column(Text)
    reference_start: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    reference_end: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    current_start: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    current_end: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    baseline: Mapped[str | None] = mapped_column(Text)
    embedder: Mapped[str | None] = mapped_column(Text)
    pipeline: Mapped[str | None] = mapped_column(Text)
    demo: Mapped[bool] = mapped_column(server_default=text("false"))
    drifted: Mapped[bool | None] = mapped_column()
    statistic: Mapped[float | None] = mapped_column(Double)
    p_value: Mapped[float | None] = mapped_column(Double)
    effect_size: Mapped[float | None] = mapped_column(Double)
    threshold: Mapped[float | None] = mapped_column(Double)
    n_reference: Mapped[int | None] = mapped_column(Integer)
    n_current: Mapped[int | None] = mapped_column(Integer)
    n_items: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    n_flagged: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    n_errors: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    summary: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    error: Mapped[str | None] = mapped_column(Text)
    worker: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        CheckConstraint("kind IN ('prompts', 'regenerate', 'golden', 'images')", name="kind"),
        CheckConstraint("status IN ('running', 'ok', 'failed')", name="status"),
        Index(None, "kind", "started_at"),
    )


class DriftItem(_Params, Base):
    """One re-generated prompt of a run, compared with its reference image (the logged
    original, or the golden baseline)."""

    __tablename__ = "drift_items"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("drift_runs.id", ondelete="CASCADE"))
    item_key: Mapped[str] = mapped_column(Text)
    generation_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("generations.id", ondelete="SET NULL")
    )
    model_version: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text)  # ok | baseline | error
    error_kind: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    image_cosine: Mapped[float | None] = mapped_column(Double)  # CLIP image–image, -1..1
    clip_reference: Mapped[float | None] = mapped_column(Double)  # CLIPScore 0..100
    clip_regen: Mapped[float | None] = mapped_column(Double)
    clip_delta: Mapped[float | None] = mapped_column(Double)  # regen − reference
    tolerance: Mapped[float | None] = mapped_column(Double)  # allowed 1 − cosine
    flagged: Mapped[bool | None] = mapped_column()
    reference_uri: Mapped[str | None] = mapped_column(Text)
    regen_uri: Mapped[str | None] = mapped_column(Text)
    details: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))

    __table_args__ = (
        CheckConstraint("status IN ('ok', 'baseline', 'error')", name="status"),
        UniqueConstraint("run_id", "item_key"),
        Index(None, "generation_id"),
    )


class DriftPromptBaseline(Base):
    """A pinned reference sample of prompts for ``drift prompts --baseline NAME``."""

    __tablename__ = "drift_prompt_baselines"

    name: Mapped[str] = mapped_column(Text, primary_key=True)
    model: Mapped[str | None] = mapped_column(Text)
    window_start: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    window_end: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    n_prompts: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    run_id: Mapped[int | None] = mapped_column(BigInteger)


class DriftPromptBaselineRow(_Params, Base):
    """One prompt (with its parameters) of a pinned baseline."""

    __tablename__ = "drift_prompt_baseline_rows"

    name: Mapped[str] = mapped_column(
        Text, ForeignKey("drift_prompt_baselines.name", ondelete="CASCADE"), primary_key=True
    )
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)


class GoldenBaseline(_Params, Base):
    """The first image of a golden-set item and the tolerance calibrated for it."""

    __tablename__ = "golden_baselines"

    set_name: Mapped[str] = mapped_column(Text, primary_key=True)
    set_version: Mapped[str] = mapped_column(Text, primary_key=True)
    item_key: Mapped[str] = mapped_column(Text, primary_key=True)
    item_hash: Mapped[str] = mapped_column(Text)  # of prompt, seed and parameters
    image_uri: Mapped[str] = mapped_column(Text)
    clip_score: Mapped[float | None] = mapped_column(Double)
    repeat_cosine: Mapped[float | None] = mapped_column(Double)  # same seed twice
    tolerance: Mapped[float] = mapped_column(Double)
    pipeline: Mapped[str] = mapped_column(Text)
    run_id: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class EmbeddingSpace(Base):
    """A CLIP scorer version whose image embeddings are stored (migration 0017): its width,
    the pgvector column type and the name of its partial HNSW index. The embedding tables
    themselves need the optional pgvector extension and are created outside these models
    (``diffwatch.db.queries.embeddings.ensure_schema``)."""

    __tablename__ = "embedding_spaces"

    scorer_version: Mapped[str] = mapped_column(Text, primary_key=True)
    dims: Mapped[int] = mapped_column(Integer)
    vector_type: Mapped[str] = mapped_column(Text)
    index_name: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (
        CheckConstraint("vector_type IN ('vector', 'halfvec')", name="vector_type"),
        CheckConstraint("dims BETWEEN 1 AND 4000", name="dims"),
    )

"""SQLAlchemy 2.0 typed models. Alembic migrations in ``diffwatch/db/migrations`` must match
these."""

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
    MetaData,
    SmallInteger,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


INGEST_XID = text("(pg_current_xact_id())::text::bigint")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Generation(Base):
    """One request to the generation service, as logged (the log-record contract)."""

    __tablename__ = "generations"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    request_id: Mapped[str] = mapped_column(Text, unique=True)
    ts: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    model: Mapped[str] = mapped_column(Text)
    model_version: Mapped[str] = mapped_column(Text)
    prompt: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text)
    negative_prompt: Mapped[str | None] = mapped_column(Text)
    sampler: Mapped[str | None] = mapped_column(Text)
    steps: Mapped[int | None] = mapped_column(Integer)
    cfg_scale: Mapped[float | None] = mapped_column(Double)
    seed: Mapped[int | None] = mapped_column(BigInteger)
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    batch_size: Mapped[int | None] = mapped_column(Integer)
    queue_ms: Mapped[float | None] = mapped_column(Double)
    inference_ms: Mapped[float | None] = mapped_column(Double)
    total_ms: Mapped[float | None] = mapped_column(Double)
    gpu_type: Mapped[str | None] = mapped_column(Text)
    host: Mapped[str | None] = mapped_column(Text)
    gpu_index: Mapped[int | None] = mapped_column(Integer)
    image_uri: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    user_id: Mapped[str | None] = mapped_column(Text)
    deployment: Mapped[str | None] = mapped_column(Text)
    extra: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    source: Mapped[str | None] = mapped_column(Text)
    source_offset: Mapped[int | None] = mapped_column(BigInteger)
    ingested_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    # Top-level id of the inserting transaction: rollups refresh by xid ranges below the
    # oldest running transaction, which is what makes them exactly-once (docs/rollups.md).
    ingest_xid: Mapped[int] = mapped_column(BigInteger, server_default=INGEST_XID)

    __table_args__ = (
        CheckConstraint("status IN ('ok', 'error')", name="status"),
        # Dashboard and alert queries are time ranges narrowed by model/version/deployment.
        Index(None, "ts"),
        Index(None, "model", "model_version", "ts"),
        Index(None, "deployment", "ts"),
        Index(None, "ingest_xid"),
        # Prompt substring search may add ix_generations_prompt_trgm, on request only
        # (`diffwatch db prompt-index`, migration 0006); alembic check ignores it.
    )


class GpuSample(Base):
    """One reading of one GPU (or MIG instance) from NVML or dcgm-exporter."""

    __tablename__ = "gpu_samples"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    ts: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    host: Mapped[str] = mapped_column(Text)
    gpu_index: Mapped[int] = mapped_column(Integer)
    gpu_uuid: Mapped[str | None] = mapped_column(Text)
    gpu_name: Mapped[str | None] = mapped_column(Text)
    mig_instance: Mapped[str | None] = mapped_column(Text)
    util_pct: Mapped[float | None] = mapped_column(Double)
    mem_used_mib: Mapped[float | None] = mapped_column(Double)
    mem_total_mib: Mapped[float | None] = mapped_column(Double)
    power_w: Mapped[float | None] = mapped_column(Double)
    temp_c: Mapped[float | None] = mapped_column(Double)
    sm_clock_mhz: Mapped[float | None] = mapped_column(Double)
    source: Mapped[str] = mapped_column(Text)
    # Top-level id of the inserting transaction: rollups refresh by xid ranges below the
    # oldest running transaction, which is what makes them exactly-once (docs/rollups.md).
    ingest_xid: Mapped[int] = mapped_column(BigInteger, server_default=INGEST_XID)

    __table_args__ = (
        Index(None, "ts"),
        Index(None, "host", "gpu_index", "ts"),
        Index(None, "ingest_xid"),
    )


class RejectedRecord(Base):
    """A line a collector refused, kept with where it came from and why."""

    __tablename__ = "rejected_records"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(Text)
    source_key: Mapped[str] = mapped_column(Text)
    source_offset: Mapped[int] = mapped_column(BigInteger)
    line_no: Mapped[int | None] = mapped_column(BigInteger)
    raw: Mapped[str] = mapped_column(Text)
    raw_bytes: Mapped[int] = mapped_column(BigInteger)
    raw_truncated: Mapped[bool] = mapped_column(server_default=text("false"))
    reason: Mapped[str] = mapped_column(Text)
    rejected_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )

    __table_args__ = (
        # A replayed chunk must not store the same rejection twice.
        UniqueConstraint("source_key", "source_offset"),
        Index(None, "rejected_at"),
    )


class LogOffset(Base):
    """How far a log file has been consumed, keyed by a fingerprint of its first line.

    The fingerprint follows the content, not the name or inode: a file renamed by rotation
    keeps its offset, and a copytruncated file starts again from zero.
    """

    __tablename__ = "log_offsets"

    fingerprint: Mapped[str] = mapped_column(Text, primary_key=True)
    path: Mapped[str] = mapped_column(Text)
    device: Mapped[int | None] = mapped_column(BigInteger)
    inode: Mapped[int | None] = mapped_column(BigInteger)
    offset: Mapped[int] = mapped_column(BigInteger)
    line_no: Mapped[int] = mapped_column(BigInteger)
    first_seen: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class CollectorStatus(Base):
    """Running totals and last error per collector instance, for health checks."""

    __tablename__ = "collector_status"

    name: Mapped[str] = mapped_column(Text, primary_key=True)
    kind: Mapped[str] = mapped_column(Text)
    host: Mapped[str | None] = mapped_column(Text)
    ingested: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    duplicates: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    rejected: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    failures: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    last_error: Mapped[str | None] = mapped_column(Text)
    last_error_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class ScorerResult(Base):
    """One automatic score of one generation's image by one scorer at one version."""

    __tablename__ = "scorer_results"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    generation_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("generations.id", ondelete="CASCADE")
    )
    scorer: Mapped[str] = mapped_column(Text)  # "clip", "nsfw"
    scorer_version: Mapped[str] = mapped_column(Text)  # model + weights + policy
    value: Mapped[float | None] = mapped_column(Double)
    flagged: Mapped[bool | None] = mapped_column()
    details: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    worker: Mapped[str | None] = mapped_column(Text)
    scored_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    # Top-level id of the inserting transaction: rollups refresh by xid ranges below the
    # oldest running transaction, which is what makes them exactly-once (docs/rollups.md).
    ingest_xid: Mapped[int] = mapped_column(BigInteger, server_default=INGEST_XID)

    __table_args__ = (
        # Exactly one result per (generation, scorer, version): re-runs are no-ops.
        UniqueConstraint("generation_id", "scorer", "scorer_version"),
        Index(None, "scorer", "scorer_version", "scored_at"),
        Index(None, "ingest_xid"),
    )


class ScoringError(Base):
    """An image that could not be scored: why, how often it was tried, and if it may heal."""

    __tablename__ = "scoring_errors"

    generation_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("generations.id", ondelete="CASCADE"), primary_key=True
    )
    scorer: Mapped[str] = mapped_column(Text, primary_key=True)
    scorer_version: Mapped[str] = mapped_column(Text, primary_key=True)
    kind: Mapped[str] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(Text)
    transient: Mapped[bool] = mapped_column(server_default=text("false"))
    attempts: Mapped[int] = mapped_column(Integer, server_default=text("1"))
    last_attempt_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )


class ScoringLease(Base):
    """A worker's claim on a generation for a set of scorers, valid until ``expires_at``.

    A worker may write results only while its ``token`` still holds the lease: a stale
    worker whose lease expired and was taken over is refused.
    """

    __tablename__ = "scoring_leases"

    generation_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("generations.id", ondelete="CASCADE"), primary_key=True
    )
    scorer_set: Mapped[str] = mapped_column(Text, primary_key=True)
    worker: Mapped[str] = mapped_column(Text)
    token: Mapped[str] = mapped_column(Text)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (Index(None, "expires_at"),)


class ScoringFrontier(Base):
    """Every generation with an id below ``settled_below`` is settled (scored, or failed for
    good) for ``scorer_set`` at ``max_attempts``; claims start there. Deleting results or
    errors moves it back (trigger ``scoring_frontier_reopen``, migration 0005)."""

    __tablename__ = "scoring_frontier"

    scorer_set: Mapped[str] = mapped_column(Text, primary_key=True)
    max_attempts: Mapped[int] = mapped_column(Integer, primary_key=True)
    settled_below: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


# -- Rollups (docs/rollups.md) ---------------------------------------------------------------
# Every rollup table has a ``width_s`` (60: minute buckets, kept for a limited window; 3600:
# hour buckets, kept forever) and a ``bucket`` (the bucket's start, UTC-aligned). Unknown
# deployment / gpu_type / gpu_name are stored as '' so that they can be part of a key.
def _key(**kw: Any) -> Any:
    return mapped_column(Text, primary_key=True, **kw)


class RollupGeneration(Base):
    """Counts, sums and latency histograms of generations per bucket and grouping level.

    ``lvl`` is SQL's GROUPING(model, model_version, deployment, gpu_type): a dimension whose
    bit is set was summed over and holds '*'. 0 is the full key, 15 the grand total.
    """

    __tablename__ = "rollup_generations"

    width_s: Mapped[int] = mapped_column(Integer, primary_key=True)
    lvl: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    bucket: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    model: Mapped[str] = _key()
    model_version: Mapped[str] = _key()
    deployment: Mapped[str] = _key()
    gpu_type: Mapped[str] = _key()
    requests: Mapped[int] = mapped_column(BigInteger)
    errors: Mapped[int] = mapped_column(BigInteger)
    images: Mapped[int] = mapped_column(BigInteger)  # sum of batch_size over ok requests
    queue_n: Mapped[int] = mapped_column(BigInteger)
    queue_sum_ms: Mapped[float] = mapped_column(Double)
    inference_n: Mapped[int] = mapped_column(BigInteger)
    inference_sum_ms: Mapped[float] = mapped_column(Double)
    total_n: Mapped[int] = mapped_column(BigInteger)
    total_sum_ms: Mapped[float] = mapped_column(Double)
    # Sparse log-spaced histograms, each element (bin << 32) | count (diffwatch/model/histogram.py).
    h_queue: Mapped[list[int]] = mapped_column(ARRAY(BigInteger))
    h_inference: Mapped[list[int]] = mapped_column(ARRAY(BigInteger))
    h_total: Mapped[list[int]] = mapped_column(ARRAY(BigInteger))


class RollupError(Base):
    """Failed requests per bucket, full key and error kind (the message's normalised head)."""

    __tablename__ = "rollup_errors"

    width_s: Mapped[int] = mapped_column(Integer, primary_key=True)
    bucket: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    model: Mapped[str] = _key()
    model_version: Mapped[str] = _key()
    deployment: Mapped[str] = _key()
    gpu_type: Mapped[str] = _key()
    kind: Mapped[str] = _key()
    n: Mapped[int] = mapped_column(BigInteger)


class RollupQuality(Base):
    """Scorer results per bucket of the *generation's* time, full key, scorer and version."""

    __tablename__ = "rollup_quality"

    width_s: Mapped[int] = mapped_column(Integer, primary_key=True)
    bucket: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    model: Mapped[str] = _key()
    model_version: Mapped[str] = _key()
    deployment: Mapped[str] = _key()
    gpu_type: Mapped[str] = _key()
    scorer: Mapped[str] = _key()
    scorer_version: Mapped[str] = _key()
    n: Mapped[int] = mapped_column(BigInteger)
    value_n: Mapped[int] = mapped_column(BigInteger)
    value_sum: Mapped[float] = mapped_column(Double)
    flag_n: Mapped[int] = mapped_column(BigInteger)  # results with a non-null flag
    flagged_n: Mapped[int] = mapped_column(BigInteger)
    # CLIP scores in 1-point bins, packed bin << 32 | count (migration 0007).
    h_value: Mapped[list[int]] = mapped_column(ARRAY(BigInteger), server_default=text("'{}'"))
    # CLIP scores in 1-point bins, packed bin << 32 | count (migration 0007).
    h_value: Mapped[list[int]] = mapped_column(ARRAY(BigInteger), server_default=text("'{}'"))


class RollupGpu(Base):
    """GPU readings per bucket and GPU (host, index, MIG instance, name)."""

    __tablename__ = "rollup_gpu"

    width_s: Mapped[int] = mapped_column(Integer, primary_key=True)
    bucket: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    host: Mapped[str] = _key()
    gpu_index: Mapped[int] = mapped_column(Integer, primary_key=True)
    mig_instance: Mapped[str] = _key()
    gpu_name: Mapped[str] = _key()
    n: Mapped[int] = mapped_column(BigInteger)
    util_n: Mapped[int] = mapped_column(BigInteger)
    util_sum: Mapped[float] = mapped_column(Double)  # % summed over readings
    idle_n: Mapped[int] = mapped_column(BigInteger)  # readings under the idle threshold
    mem_n: Mapped[int] = mapped_column(BigInteger)
    mem_used_sum_mib: Mapped[float] = mapped_column(Double)
    mem_total_sum_mib: Mapped[float] = mapped_column(Double)
    power_n: Mapped[int] = mapped_column(BigInteger)
    power_sum_w: Mapped[float] = mapped_column(Double)
    # Bit m set: a reading fell in minute m of the bucket. popcount × 60 s = time observed.
    minutes: Mapped[int] = mapped_column(BigInteger)


class RollupState(Base):
    """How far each raw table has been rolled up: every xid below ``xid_done`` is in."""

    __tablename__ = "rollup_state"

    source: Mapped[str] = mapped_column(Text, primary_key=True)
    xid_done: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    rows_total: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    refreshed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class GpuPrice(Base):
    """What one GPU costs per hour (USD), keyed by the name NVML reports (= gpu_type)."""

    __tablename__ = "gpu_prices"

    gpu_type: Mapped[str] = mapped_column(Text, primary_key=True)
    usd_per_hour: Mapped[float] = mapped_column(Double)
    note: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


# The drift, account, review, deploy, gate and bias tables live in their own modules; importing
# registers them.
from diffwatch.db import models_accounts as _models_accounts  # noqa: E402, F401
from diffwatch.db import models_alerts as _models_alerts  # noqa: E402, F401
from diffwatch.db import models_bias as _models_bias  # noqa: E402, F401
from diffwatch.db import models_deploy as _models_deploy  # noqa: E402, F401
from diffwatch.db import models_drift as _models_drift  # noqa: E402, F401
from diffwatch.db import models_gate as _models_gate  # noqa: E402, F401
from diffwatch.db import models_review as _models_review  # noqa: E402, F401

"""The generation-log record contract (see ARCHITECTURE.md) as a msgspec type.

msgspec checks types and ranges in C, which keeps ingest close to raw COPY speed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

NonEmpty = Annotated[str, Meta(min_length=1)]
PositiveInt = Annotated[int, Meta(ge=1, le=2**31 - 1)]
NonNegInt = Annotated[int, Meta(ge=0, le=2**31 - 1)]
Millis = Annotated[float, Meta(ge=0)]
Int64 = Annotated[int, Meta(ge=-(2**63), le=2**63 - 1)]


class LogRecord(msgspec.Struct, forbid_unknown_fields=False):
    """One line of the generation service's JSON-lines log."""

    request_id: Annotated[str, Meta(min_length=1, max_length=512)]
    # msgspec parses RFC 3339 in C; other ISO 8601 spellings take a slower path in parse.py.
    timestamp: Annotated[datetime, Meta(tz=True)] | float
    model: NonEmpty
    model_version: NonEmpty
    prompt: str
    status: Literal["ok", "error"]
    negative_prompt: str | None = None
    sampler: str | None = None
    steps: PositiveInt | None = None
    cfg_scale: float | None = None
    seed: Int64 | None = None
    width: PositiveInt | None = None
    height: PositiveInt | None = None
    batch_size: PositiveInt | None = None
    queue_ms: Millis | None = None
    inference_ms: Millis | None = None
    total_ms: Millis | None = None
    gpu_type: str | None = None
    host: str | None = None
    gpu_index: NonNegInt | None = None
    image_uri: str | None = None
    error: str | None = None
    user_id: str | None = None
    deployment: str | None = None


class StrictLogRecord(LogRecord, forbid_unknown_fields=True):
    """The same record with no unknown keys: lets the parser's fast path decode in one go."""


FIELDS: tuple[str, ...] = LogRecord.__struct_fields__
# Fields without a default are required; msgspec keeps them first, in order.
REQUIRED: tuple[str, ...] = FIELDS[: len(FIELDS) - len(LogRecord.__struct_defaults__)]

# What each field must be, in the words an operator reads in a rejection reason.
EXPECTED: dict[str, str] = {
    "request_id": "a non-empty string of at most 512 characters",
    "timestamp": "an ISO 8601 string with a UTC offset, or epoch seconds",
    "model": "a non-empty string",
    "model_version": "a non-empty string",
    "prompt": "a string",
    "status": 'either "ok" or "error"',
    "steps": "a positive integer",
    "cfg_scale": "a finite number",
    "seed": "an integer that fits in 64 bits",
    "width": "a positive integer (pixels)",
    "height": "a positive integer (pixels)",
    "batch_size": "a positive integer",
    "queue_ms": "a non-negative number of milliseconds",
    "inference_ms": "a non-negative number of milliseconds",
    "total_ms": "a non-negative number of milliseconds",
    "gpu_index": "a non-negative integer",
}

# A parsed row is a tuple in ROW_COLUMNS order (the record's own field order, so that
# msgspec's C ``astuple`` builds it): cheap to make, and what COPY wants.
ROW_COLUMNS: tuple[str, ...] = (
    *("ts" if f == "timestamp" else f for f in FIELDS),
    "extra",
)

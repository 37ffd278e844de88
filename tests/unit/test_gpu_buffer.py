"""The bounded reading buffer: oldest dropped past the limit, with one warning per outage."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import pytest

from diffwatch.collectors.gpu.buffer import ReadingBuffer
from diffwatch.model.gpu import GpuReading


def reading(i: int) -> GpuReading:
    return GpuReading(ts=datetime(2026, 1, 1, tzinfo=UTC), host="h", gpu_index=i, source="t")


def test_keeps_the_newest_and_warns_once_per_outage(caplog):
    buf = ReadingBuffer(max_rows=5)
    with caplog.at_level(logging.WARNING, logger="diffwatch.collectors.gpu.buffer"):
        assert buf.extend(reading(i) for i in range(4)) == 0
        assert buf.extend(reading(i) for i in range(4, 8)) == 3
        assert buf.extend([reading(8)]) == 1
    assert [r.gpu_index for r in buf.head(10)] == [4, 5, 6, 7, 8]
    assert buf.dropped == 4
    warnings = [r for r in caplog.records if "buffer is full" in r.getMessage()]
    assert len(warnings) == 1

    buf.pop_head(2)
    assert [r.gpu_index for r in buf.head(2)] == [6, 7] and len(buf) == 3
    buf.pop_head(3)  # drained: the next overflow is a new outage and is reported again
    with caplog.at_level(logging.WARNING, logger="diffwatch.collectors.gpu.buffer"):
        buf.extend(reading(i) for i in range(7))
    assert len([r for r in caplog.records if "buffer is full" in r.getMessage()]) == 2
    assert buf.dropped == 6


def test_a_buffer_must_hold_something():
    with pytest.raises(ValueError, match="at least 1"):
        ReadingBuffer(0)

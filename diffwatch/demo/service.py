"""The simulated generation service: minute by minute, it draws images, logs and samples GPUs.

Memory stays bounded: one minute of requests at a time, lines streamed to the log, GPU
readings stored in batches.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from diffwatch.demo import fleet as fleet_mod
from diffwatch.demo.draw import render
from diffwatch.demo.files import ImageStore, RotatingLog
from diffwatch.demo.fleet import Fleet, GpuSlot, GpuState
from diffwatch.demo.records import log_line
from diffwatch.demo.store import GpuWriter
from diffwatch.demo.traffic import Minute, Trend, simulate_minute

MINUTES_PER_DAY = 1440


def minutes_to_simulate(start: int, end: int, stored: set[int]) -> list[range]:
    """Runs of minutes of [start, end) (minutes since the epoch) that are not in ``stored``."""
    ranges: list[range] = []
    run_start = None
    for m in range(start, end + 1):
        missing = m < end and m not in stored
        if missing and run_start is None:
            run_start = m
        elif not missing and run_start is not None:
            ranges.append(range(run_start, m))
            run_start = None
    return ranges


def rotation_minutes(minutes: Sequence[int]) -> set[int]:
    """Minutes before which the log rotates: each UTC midnight, or once halfway at least."""
    if len(minutes) < 2:
        return set(minutes)  # one minute: rotate before it (a restarted service)
    at = {m for m in minutes[1:] if m % MINUTES_PER_DAY == 0}
    return at or {minutes[len(minutes) // 2]}


@dataclass
class ServiceStats:
    """What the service produced (counts)."""

    minutes: int = 0
    requests: int = 0
    errors: int = 0
    broken_lines: int = 0
    images: int = 0
    log_lines: int = 0
    log_bytes: int = 0
    rotations: int = 0
    gpu_samples: int = 0


class SimulatedService:
    """Writes logs and images under ``out`` and GPU samples through ``gpu_writer``."""

    def __init__(
        self,
        out: Path,
        seed: int,
        rate_per_min: float,
        fleet: Fleet,
        gpu_writer: GpuWriter,
        on_minute: Callable[[Minute], None] | None = None,
        trend: Trend | None = None,
    ) -> None:
        self.seed = seed
        self.trend = trend
        self.rate = rate_per_min
        self.fleet = fleet
        self.gpu_writer = gpu_writer
        self.on_minute = on_minute
        self.log = RotatingLog(out / "logs")
        self.images = ImageStore(out / "images")
        self.stats = ServiceStats()
        self._gpu_state: dict[GpuSlot, GpuState] = {
            s: fleet_mod.initial_state(s.spec) for s in fleet.slots
        }

    def run(self, ranges: Sequence[range], stop: threading.Event) -> ServiceStats:
        """Simulate every minute of ``ranges`` in order, unless ``stop`` is set."""
        minutes = [m for r in ranges for m in r]
        rotate_at = rotation_minutes(minutes)
        try:
            for m in minutes:
                if stop.is_set():
                    break
                if m in rotate_at:
                    self.log.flush()
                    self.log.rotate()
                self._minute(simulate_minute(self.seed, m, self.rate, self.fleet, self.trend))
        finally:
            self.log.close()
            self.gpu_writer.flush()
            self.stats.rotations = self.log.rotations
            self.stats.log_lines = self.log.lines_written
            self.stats.log_bytes = self.log.bytes_written
            self.stats.images = self.images.written
            self.stats.gpu_samples = self.gpu_writer.stored
        return self.stats

    def _minute(self, minute: Minute) -> None:
        for req in minute.requests:
            uri = None
            if req.has_image:
                path = self.images.path_for(req.request_id, req.ts)
                self.images.save(
                    path, render(req.drawn, req.image_size, np.random.default_rng(req.seed))
                )
                uri = str(path)
            self.log.write(log_line(req, uri))
            self.stats.requests += 1
            self.stats.errors += req.status == "error"
            self.stats.broken_lines += req.defect is not None
        # Lines reach the OS before this minute's GPU samples reach the database: the
        # stored samples mark how far history was simulated (see db.queries.demo.stored_minutes).
        self.log.flush()
        self.gpu_writer.add(self._readings(minute))
        self.stats.minutes += 1
        if self.on_minute:
            self.on_minute(minute)

    def _readings(self, minute: Minute) -> list:
        rng = np.random.default_rng([self.seed, int(minute.start.timestamp()) // 60, 2])
        out = []
        for slot in self.fleet.slots:
            r, self._gpu_state[slot] = fleet_mod.reading(
                slot,
                minute.start,
                minute.busy_ms.get(slot, 0.0),
                minute.peak_mib.get(slot, 0.0),
                self._gpu_state[slot],
                rng,
            )
            out.append(r)
        return out


def minute_of(ts: datetime) -> int:
    """Minutes since the epoch (UTC) of ``ts``, rounded down."""
    return int(ts.astimezone(UTC).timestamp()) // 60

"""The GPU reading shared by the NVML and dcgm-exporter sources and the writer."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

# The measured fields of a reading (the rest identify the GPU). Units: %, MiB, MiB, W, °C, MHz.
MEASURES: tuple[str, ...] = (
    "util_pct",
    "mem_used_mib",
    "mem_total_mib",
    "power_w",
    "temp_c",
    "sm_clock_mhz",
)


@dataclass(frozen=True, slots=True)
class GpuReading:
    """One sample of one GPU (or MIG instance). Units: %, MiB, W, °C, MHz."""

    ts: datetime
    host: str
    gpu_index: int
    source: str  # "nvml" or the scraped URL
    gpu_uuid: str | None = None
    gpu_name: str | None = None
    mig_instance: str | None = None
    util_pct: float | None = None
    mem_used_mib: float | None = None
    mem_total_mib: float | None = None
    power_w: float | None = None
    temp_c: float | None = None
    sm_clock_mhz: float | None = None

    def has_measures(self) -> bool:
        """True when at least one measured field is present (else the reading is not stored)."""
        return any(getattr(self, f) is not None for f in MEASURES)


class SampleFailed(Exception):
    """One sample (a scrape or an NVML read) failed as a whole; nothing from it is kept.

    The message is one line for a person: the source, what went wrong.
    """

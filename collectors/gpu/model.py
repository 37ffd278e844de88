"""The GPU reading shared by the NVML and dcgm-exporter sources and the writer."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


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

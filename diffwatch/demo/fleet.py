"""The simulated GPU fleet: GPU types, hosts, and per-minute readings that follow the load.

Pure: readings are computed from the GPU time the traffic used in each minute and from the
GPU's previous state (temperature lags, the CUDA caching allocator keeps memory reserved).
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass, replace
from datetime import datetime

import numpy as np

from diffwatch.model.gpu import GpuReading

SOURCE = "demo"  # gpu_samples.source of every simulated reading


@dataclass(frozen=True, slots=True)
class GpuSpec:
    """A GPU type. Units: MiB, W, MHz, ms, °C."""

    key: str
    name: str  # as NVML reports it
    mem_total_mib: float
    idle_w: float
    tdp_w: float
    idle_clock_mhz: float
    boost_clock_mhz: float
    ms_per_step: float  # one UNet step at 512x512, batch 1 (ms)
    fixed_ms: float  # text encoder + VAE decode + safety checker at 512x512 (ms)
    model_mib: float  # weights and CUDA context once the pipeline is loaded (MiB)
    speed: float  # relative throughput, H100 = 1


H100 = GpuSpec(
    key="h100",
    name="NVIDIA H100 80GB HBM3",
    mem_total_mib=81559,
    idle_w=72,
    tdp_w=700,
    idle_clock_mhz=345,
    boost_clock_mhz=1980,
    ms_per_step=34,
    fixed_ms=70,
    model_mib=5200,
    speed=1.0,
)
A10G = GpuSpec(
    key="a10g",
    name="NVIDIA A10G",
    mem_total_mib=23028,
    idle_w=24,
    tdp_w=300,
    idle_clock_mhz=210,
    boost_clock_mhz=1710,
    ms_per_step=92,
    fixed_ms=190,
    model_mib=4300,
    speed=0.37,
)
SPECS = {s.key: s for s in (H100, A10G)}


@dataclass(frozen=True, slots=True)
class GpuSlot:
    """One GPU of one host, serving one deployment."""

    host: str
    index: int
    spec: GpuSpec
    deployment: str

    @property
    def uuid(self) -> str:
        """A stable NVML-style UUID for this host and index."""
        return f"GPU-{uuid.uuid5(uuid.NAMESPACE_DNS, f'{self.host}/{self.index}')}"


@dataclass(frozen=True, slots=True)
class Fleet:
    """The GPUs, and the share of requests each GPU type gets (by throughput)."""

    slots: tuple[GpuSlot, ...]
    type_share: dict[str, float]

    def pool(self, deployment: str, spec_key: str) -> tuple[GpuSlot, ...]:
        """GPUs of one type serving one deployment."""
        return tuple(s for s in self.slots if s.deployment == deployment and s.spec.key == spec_key)


# Mean GPU time of one request on an H100 (s), measured from the traffic model; used only
# to size the fleet so that peak utilisation lands near 60%.
MEAN_H100_GPU_S = 2.6


def build_fleet(rate_per_min: float) -> Fleet:
    """Two H100 hosts and one A10G host, with enough GPUs each for ``rate_per_min``.

    The last GPU of the second H100 host and of the A10G host serve the canary.
    """
    peak_gpu_s_per_min = rate_per_min * 1.55 * MEAN_H100_GPU_S
    h100_equiv = peak_gpu_s_per_min / 60 / 0.6
    per_host = min(8, max(2, math.ceil(h100_equiv / (2 + A10G.speed))))
    slots: list[GpuSlot] = []
    for host, spec in (("gen-h100-01", H100), ("gen-h100-02", H100), ("gen-a10g-01", A10G)):
        for i in range(per_host):
            canary = host != "gen-h100-01" and i == per_host - 1
            slots.append(GpuSlot(host, i, spec, "canary" if canary else "stable"))
    capacity = {k: sum(s.spec.speed for s in slots if s.spec.key == k) for k in SPECS}
    total = sum(capacity.values())
    return Fleet(tuple(slots), {k: v / total for k, v in capacity.items()})


@dataclass(frozen=True, slots=True)
class GpuState:
    """What carries over from one minute to the next (°C, MiB)."""

    temp_c: float
    reserved_mib: float


def initial_state(spec: GpuSpec) -> GpuState:
    """A warm, idle GPU with its pipeline loaded."""
    return GpuState(temp_c=34.0 if spec is H100 else 38.0, reserved_mib=spec.model_mib + 1500)


def reading(
    slot: GpuSlot,
    ts: datetime,
    busy_ms: float,
    peak_activation_mib: float,
    state: GpuState,
    rng: np.random.Generator,
) -> tuple[GpuReading, GpuState]:
    """One minute's sample of ``slot`` given its busy time (ms in the minute) and peak memory."""
    spec = slot.spec
    util = min(100.0, 100.0 * busy_ms / 60_000)
    util = float(np.clip(util + rng.normal(0, 1.5) if util > 0 else 0.0, 0, 100))
    load = util / 100
    power = spec.idle_w + (spec.tdp_w - spec.idle_w) * load**0.85
    power = float(np.clip(power * rng.normal(1, 0.03), spec.idle_w * 0.9, spec.tdp_w))
    # Temperature follows power with a lag of a couple of minutes.
    target = 30 + 50 * power / spec.tdp_w
    temp = state.temp_c + 0.45 * (target - state.temp_c) + float(rng.normal(0, 0.3))
    clock = spec.idle_clock_mhz + (spec.boost_clock_mhz - spec.idle_clock_mhz) * min(1, 3 * load)
    if temp > 78:
        clock -= (temp - 78) * 25  # thermal throttling
    # PyTorch's caching allocator keeps what it reserved; now and then it gives some back.
    reserved = max(state.reserved_mib, spec.model_mib + peak_activation_mib)
    if rng.random() < 0.01:
        reserved = spec.model_mib + 1500
    reserved = min(reserved, spec.mem_total_mib - 300)
    r = GpuReading(
        ts=ts,
        host=slot.host,
        gpu_index=slot.index,
        source=SOURCE,
        gpu_uuid=slot.uuid,
        gpu_name=spec.name,
        util_pct=round(util, 1),
        mem_used_mib=round(reserved + float(rng.uniform(0, 64))),
        mem_total_mib=spec.mem_total_mib,
        power_w=round(power, 1),
        temp_c=round(temp),
        sm_clock_mhz=round(clock / 15) * 15,
    )
    return r, replace(state, temp_c=temp, reserved_mib=reserved)

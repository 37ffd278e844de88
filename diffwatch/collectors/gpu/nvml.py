"""Read this host's GPUs through NVML (nvidia-ml-py). ``pynvml`` is imported only when used."""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable
from datetime import datetime
from types import ModuleType
from typing import Any

from diffwatch.model.clock import utcnow
from diffwatch.model.gpu import GpuReading, SampleFailed

log = logging.getLogger(__name__)

SOURCE = "nvml"
MIB = 1024 * 1024


class NvmlUnavailable(RuntimeError):
    """NVML cannot be used on this host; the message says what was tried and what to do."""


def unavailable_message(problem: str) -> str:
    """The one error a person gets when NVML is missing: what failed, why, what to do."""
    return (
        f"--source nvml: NVML is not usable on {socket.gethostname()} ({problem}). "
        "diffwatch tried to load NVML (libnvidia-ml.so.1) through the nvidia-ml-py package; "
        "that library ships with the NVIDIA driver, so this needs a GPU host with the driver "
        "installed and loaded (check with `nvidia-smi`). Without the driver here, scrape a "
        "dcgm-exporter instead: --source http://GPU_HOST:9400/metrics"
    )


def load_nvml() -> ModuleType:
    """The ``pynvml`` module, imported now; NvmlUnavailable if the package is missing."""
    try:
        import pynvml
    except ImportError as exc:
        raise NvmlUnavailable(
            unavailable_message(f"the nvidia-ml-py package is not installed: {exc}")
        ) from None
    return pynvml


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class _Reader:
    """Calls NVML per metric, turning a per-metric NVML error into None (logged once)."""

    def __init__(self, nv: ModuleType, warned: set[tuple[int, str]]) -> None:
        self.nv = nv
        self.warned = warned

    def get(self, index: int, metric: str, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except self.nv.NVMLError as exc:
            if (index, metric) not in self.warned:
                self.warned.add((index, metric))
                log.info("NVML: GPU %d has no %s (%s); storing it as empty", index, metric, exc)
            return None


def read_devices(
    nv: ModuleType, host: str, ts: datetime, warned: set[tuple[int, str]] | None = None
) -> list[GpuReading]:
    """One reading per GPU that NVML lists (NVML must be initialised). Units: %, MiB, W, °C, MHz.

    A metric the GPU does not support (NVMLError_NotSupported, ...) is None. A GPU that
    cannot be opened is skipped with a warning. SampleFailed when NVML cannot count GPUs,
    or when there are GPUs but none could be read.
    """
    warned = set() if warned is None else warned
    try:
        count = nv.nvmlDeviceGetCount()
    except nv.NVMLError as exc:
        raise SampleFailed(f"NVML could not list the GPUs: {exc}") from None
    rd = _Reader(nv, warned)
    readings: list[GpuReading] = []
    for i in range(count):
        try:
            h = nv.nvmlDeviceGetHandleByIndex(i)
        except nv.NVMLError as exc:
            log.warning("NVML: cannot open GPU %d (%s); skipping it this sample", i, exc)
            continue
        util = rd.get(i, "utilisation", lambda h=h: nv.nvmlDeviceGetUtilizationRates(h).gpu)
        mem = rd.get(i, "memory info", lambda h=h: nv.nvmlDeviceGetMemoryInfo(h))
        power_mw = rd.get(i, "power reading", lambda h=h: nv.nvmlDeviceGetPowerUsage(h))
        temp = rd.get(
            i, "temperature", lambda h=h: nv.nvmlDeviceGetTemperature(h, nv.NVML_TEMPERATURE_GPU)
        )
        sm = rd.get(i, "SM clock", lambda h=h: nv.nvmlDeviceGetClockInfo(h, nv.NVML_CLOCK_SM))
        uuid = rd.get(i, "UUID", lambda h=h: nv.nvmlDeviceGetUUID(h))
        name = rd.get(i, "name", lambda h=h: nv.nvmlDeviceGetName(h))
        r = GpuReading(
            ts=ts,
            host=host,
            gpu_index=i,
            source=SOURCE,
            gpu_uuid=_text(uuid) if uuid is not None else None,
            gpu_name=_text(name) if name is not None else None,
            util_pct=float(util) if util is not None else None,
            mem_used_mib=mem.used / MIB if mem is not None else None,
            mem_total_mib=mem.total / MIB if mem is not None else None,
            power_w=power_mw / 1000.0 if power_mw is not None else None,  # NVML reports mW
            temp_c=float(temp) if temp is not None else None,
            sm_clock_mhz=float(sm) if sm is not None else None,
        )
        if r.has_measures():
            readings.append(r)
    if count and not readings:
        raise SampleFailed(f"NVML lists {count} GPU(s) but none of them could be read")
    return readings


class NvmlSource:
    """Samples every GPU of this host through NVML; initialises NVML once, on creation."""

    name = SOURCE

    def __init__(
        self,
        host: str | None = None,
        clock: Callable[[], datetime] = utcnow,
        nvml: ModuleType | None = None,
    ) -> None:
        self.nv = nvml if nvml is not None else load_nvml()
        self.host = host or socket.gethostname()
        self.clock = clock
        self._warned: set[tuple[int, str]] = set()
        try:
            self.nv.nvmlInit()
        except self.nv.NVMLError as exc:
            # LibraryNotFound, DriverNotLoaded, NoPermission, ...: all mean "not here".
            raise NvmlUnavailable(unavailable_message(f"nvmlInit failed: {exc}")) from None
        except OSError as exc:
            raise NvmlUnavailable(unavailable_message(f"loading NVML failed: {exc}")) from None

    def sample(self) -> list[GpuReading]:
        """One reading per GPU, stamped now (UTC); SampleFailed if NVML fails as a whole."""
        return read_devices(self.nv, self.host, self.clock(), self._warned)

    def close(self) -> None:
        """Shut NVML down (errors ignored: we are leaving anyway)."""
        try:
            self.nv.nvmlShutdown()
        except Exception as exc:  # NVMLError or a driver gone away
            log.debug("nvmlShutdown failed: %s", exc)

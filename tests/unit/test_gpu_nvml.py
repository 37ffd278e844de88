"""NVML reads: unit conversion and per-metric errors, against a stand-in for the driver.

The stand-in replaces only libnvidia-ml (through the ``nvml`` argument) and raises
nvidia-ml-py's own exception classes; everything of ours runs as in production. The real
library is exercised by tests/gpu/test_nvml.py on a GPU machine.
"""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

import pynvml
import pytest

from diffwatch.collectors.gpu.nvml import NvmlSource, NvmlUnavailable, read_devices
from diffwatch.model.gpu import SampleFailed

TS = datetime(2026, 11, 21, tzinfo=UTC)
GIB = 1024**3


def fake_nvml(devices: list[dict], init_error: Exception | None = None) -> SimpleNamespace:
    """A libnvidia-ml stand-in: one dict per GPU; a value that is an exception is raised."""
    calls: list[str] = []

    def value(i: int, k: str):
        v = devices[i][k]
        if isinstance(v, Exception):
            raise v
        return v

    def init():
        calls.append("init")
        if init_error is not None:
            raise init_error

    def handle(i: int):
        if isinstance(devices[i].get("handle"), Exception):
            raise devices[i]["handle"]
        return i

    return SimpleNamespace(
        calls=calls,
        NVMLError=pynvml.NVMLError,
        NVML_TEMPERATURE_GPU=pynvml.NVML_TEMPERATURE_GPU,
        NVML_CLOCK_SM=pynvml.NVML_CLOCK_SM,
        nvmlInit=init,
        nvmlShutdown=lambda: calls.append("shutdown"),
        nvmlDeviceGetCount=lambda: len(devices),
        nvmlDeviceGetHandleByIndex=handle,
        nvmlDeviceGetUtilizationRates=lambda h: SimpleNamespace(gpu=value(h, "util"), memory=3),
        nvmlDeviceGetMemoryInfo=lambda h: value(h, "mem"),
        nvmlDeviceGetPowerUsage=lambda h: value(h, "power_mw"),
        nvmlDeviceGetTemperature=lambda h, s: value(h, "temp") if s == 0 else -1,
        nvmlDeviceGetClockInfo=lambda h, c: value(h, "sm") if c == 1 else -1,
        nvmlDeviceGetUUID=lambda h: value(h, "uuid"),
        nvmlDeviceGetName=lambda h: value(h, "name"),
    )


def gpu(**over) -> dict:
    d = {
        "util": 87,
        "mem": SimpleNamespace(total=80 * GIB, used=12 * GIB + 512 * 1024**2, free=0),
        "power_mw": 312_456,
        "temp": 61,
        "sm": 1980,
        "uuid": "GPU-8b2281de-6d3c-22ed-0ec8-d3b864870b8b",
        "name": "NVIDIA H100 80GB HBM3",
    }
    d.update(over)
    return d


def test_units_are_converted_mw_to_w_and_bytes_to_mib():
    (r,) = read_devices(fake_nvml([gpu()]), "gpu-host-1", TS)
    assert (r.host, r.gpu_index, r.source, r.ts) == ("gpu-host-1", 0, "nvml", TS)
    assert r.power_w == pytest.approx(312.456)
    assert (r.mem_total_mib, r.mem_used_mib) == (81920.0, 12800.0)
    assert (r.util_pct, r.temp_c, r.sm_clock_mhz) == (87.0, 61.0, 1980.0)
    assert r.gpu_uuid.startswith("GPU-") and r.gpu_name == "NVIDIA H100 80GB HBM3"
    assert r.mig_instance is None


def test_a_metric_the_gpu_does_not_support_is_none_not_a_crash():
    nv = fake_nvml(
        [
            gpu(power_mw=pynvml.NVMLError_NotSupported(), util=pynvml.NVMLError_NotSupported()),
            gpu(temp=pynvml.NVMLError_Unknown(), name=b"Tesla T4"),
        ]
    )
    a, b = read_devices(nv, "h", TS)
    assert a.power_w is None and a.util_pct is None and a.temp_c == 61.0
    assert b.temp_c is None and b.power_w == pytest.approx(312.456)
    assert b.gpu_name == "Tesla T4"  # bytes from older bindings are decoded


def test_a_gpu_that_cannot_be_opened_is_skipped_and_all_failing_is_a_failed_sample():
    nv = fake_nvml([gpu(handle=pynvml.NVMLError_GpuIsLost()), gpu()])
    assert [r.gpu_index for r in read_devices(nv, "h", TS)] == [1]
    with pytest.raises(SampleFailed, match="none of them could be read"):
        read_devices(fake_nvml([gpu(handle=pynvml.NVMLError_GpuIsLost())]), "h", TS)


def test_driver_not_loaded_is_one_actionable_error():
    nv = fake_nvml([], init_error=pynvml.NVMLError_DriverNotLoaded())
    with pytest.raises(NvmlUnavailable) as info:
        NvmlSource(nvml=nv)  # type: ignore[arg-type]
    msg = str(info.value)
    assert "Driver Not Loaded" in msg and "NVIDIA driver" in msg and "--source http" in msg


def test_source_samples_with_its_clock_and_shuts_nvml_down():
    nv = fake_nvml([gpu(), gpu()])
    src = NvmlSource(host="h", clock=lambda: TS, nvml=nv)  # type: ignore[arg-type]
    assert [(r.gpu_index, r.ts) for r in src.sample()] == [(0, TS), (1, TS)]
    src.close()
    assert nv.calls == ["init", "shutdown"]

"""dcgm-exporter ``/metrics`` text → GPU readings. Pure: no network, no database, no clock."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from prometheus_client.parser import text_string_to_metric_families

from diffwatch.model.gpu import GpuReading, SampleFailed

# dcgm-exporter metric → reading field. FB values are MiB, power W, clocks MHz, temperature °C.
METRICS: Mapping[str, str] = {
    "DCGM_FI_DEV_GPU_UTIL": "util_pct",
    "DCGM_FI_DEV_FB_USED": "mem_used_mib",
    "DCGM_FI_DEV_FB_FREE": "fb_free_mib",
    "DCGM_FI_DEV_POWER_USAGE": "power_w",
    "DCGM_FI_DEV_GPU_TEMP": "temp_c",
    "DCGM_FI_DEV_SM_CLOCK": "sm_clock_mhz",
}
# Label spellings differ across exporter versions; the first one present wins.
HOST_LABELS = ("Hostname", "hostname")
MIG_ID_LABELS = ("GPU_I_ID", "gpu_instance_id")

# DCGM marks a missing value with a sentinel instead of omitting it (exporters before 3.x
# print it). DCGM_FP64_IS_BLANK(v) is v >= 2**47; the int64 blanks start at
# 0x7ffffffffffffff0 (~9.22e18), which this bound covers too. No real reading comes close:
# 2**47 MiB is 128 EiB.
DCGM_FP64_BLANK = 140737488355328.0
DCGM_INT64_BLANK = 0x7FFFFFFFFFFFFFF0
_DEVICE = re.compile(r"nvidia(\d+)\Z")


class MalformedMetrics(SampleFailed):
    """The body is cut off or is not Prometheus text; nothing from it may be stored."""


def usable(field: str, value: float) -> float | None:
    """The value, or None for a DCGM blank, NaN, infinity or an impossible number.

    Impossible: negative, or a utilisation over 100 % (DCGM has been seen reporting
    4294967295 % for one sample: https://github.com/NVIDIA/DCGM/issues/199).
    """
    v = float(value)
    if not math.isfinite(v) or v >= DCGM_FP64_BLANK or v < 0:
        return None
    if field == "util_pct" and v > 100:
        return None
    return v


def check_complete(text: str) -> None:
    """Raise MalformedMetrics unless ``text`` looks like a whole exposition.

    The text format ends every line, the last one included, with a newline, so a body
    without its final newline was cut off mid-line (its last number may be cut short).
    """
    if not text.strip():
        raise MalformedMetrics("the response body is empty")
    if not text.endswith("\n"):
        tail = text.rsplit("\n", 1)[-1]
        raise MalformedMetrics(
            f"the response was cut off mid-line (no final newline; last line starts {tail[:60]!r})"
        )


def _gpu_index(labels: Mapping[str, str]) -> int | None:
    raw = labels.get("gpu", "").strip()
    if raw.isdigit():
        return int(raw)
    m = _DEVICE.match(labels.get("device", "").strip())
    return int(m.group(1)) if m else None


def _first(labels: Mapping[str, str], names: tuple[str, ...]) -> str | None:
    for name in names:
        value = labels.get(name, "").strip()
        if value:
            return value
    return None


@dataclass
class _Group:
    """What one scrape says about one (host, GPU, MIG instance)."""

    gpu_uuid: str | None = None
    gpu_name: str | None = None
    values: dict[str, float | None] = field(default_factory=dict)


def parse_dcgm(text: str, *, ts: datetime, source: str, default_host: str) -> list[GpuReading]:
    """Readings in ``text``, one per (host, GPU index, MIG instance), sorted by that key.

    ``ts`` is the scrape time (tz-aware); ``default_host`` is used when the exporter sends
    no ``Hostname``/``hostname`` label (2.0.x). Blank and NaN values become None; a reading
    left with no value is dropped. Raises MalformedMetrics when the text is cut off or does
    not parse, and SampleFailed when it holds no DCGM GPU metric at all.
    """
    check_complete(text)
    groups: dict[tuple[str, int, str | None], _Group] = {}
    try:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                name = METRICS.get(sample.name)
                index = _gpu_index(sample.labels) if name else None
                if name is None or index is None:
                    continue  # not ours, or no GPU to file it under
                host = _first(sample.labels, HOST_LABELS) or default_host
                key = (host, index, _first(sample.labels, MIG_ID_LABELS))
                g = groups.setdefault(key, _Group())
                g.gpu_uuid = g.gpu_uuid or _first(sample.labels, ("UUID", "uuid"))
                g.gpu_name = g.gpu_name or _first(sample.labels, ("modelName",))
                g.values[name] = usable(name, sample.value)
    except ValueError as exc:  # the parser's way of saying "not Prometheus text"
        raise MalformedMetrics(f"the response is not valid Prometheus text: {exc}") from None
    if not groups:
        raise SampleFailed(
            "the response holds no DCGM GPU metric (DCGM_FI_DEV_GPU_UTIL, _FB_USED, ...): "
            "is this a dcgm-exporter /metrics endpoint, with those counters enabled?"
        )
    readings = []
    for (host, index, mig), g in sorted(groups.items(), key=lambda kv: _sort_key(kv[0])):
        v = g.values
        used, free = v.get("mem_used_mib"), v.get("fb_free_mib")
        r = GpuReading(
            ts=ts,
            host=host,
            gpu_index=index,
            source=source,
            gpu_uuid=g.gpu_uuid,
            gpu_name=g.gpu_name,
            mig_instance=mig,
            util_pct=v.get("util_pct"),
            mem_used_mib=used,
            mem_total_mib=used + free if used is not None and free is not None else None,
            power_w=v.get("power_w"),
            temp_c=v.get("temp_c"),
            sm_clock_mhz=v.get("sm_clock_mhz"),
        )
        if r.has_measures():
            readings.append(r)
    return readings


def _sort_key(key: tuple[str, int, str | None]) -> tuple[str, int, int, str]:
    host, index, mig = key
    if mig is None:
        return host, index, -1, ""
    return host, index, int(mig) if mig.isdigit() else 1 << 30, mig

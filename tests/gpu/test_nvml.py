"""Real NVML on a GPU machine: readings in sane ranges, and ``--once`` stores them.

Run on the device machine: ``pytest -m gpu tests/gpu/test_nvml.py``.
"""

from __future__ import annotations

import json
import socket
from datetime import UTC, datetime

import pytest
from typer.testing import CliRunner

from diffwatch.cli import build
from diffwatch.collectors.gpu.nvml import NvmlSource

pytestmark = pytest.mark.gpu


def check_sane(r) -> None:
    assert r.source == "nvml" and r.host == socket.gethostname()
    assert r.gpu_name, "NVML gave no GPU name"
    assert r.gpu_uuid and r.gpu_uuid.startswith("GPU-"), r.gpu_uuid
    assert r.util_pct is not None and 0 <= r.util_pct <= 100
    assert r.mem_total_mib is not None and r.mem_total_mib > 1024  # MiB; any GPU has > 1 GiB
    assert r.mem_used_mib is not None and 0 <= r.mem_used_mib <= r.mem_total_mib
    assert r.power_w is not None and 0 < r.power_w < 2000  # W, not mW
    assert r.temp_c is not None and 0 < r.temp_c < 120
    assert r.sm_clock_mhz is not None and 0 < r.sm_clock_mhz < 5000


def test_real_nvml_readings_are_in_sane_ranges():
    src = NvmlSource()
    try:
        before = datetime.now(UTC)
        readings = src.sample()
    finally:
        src.close()
    assert readings, "NVML listed no GPU"
    assert [r.gpu_index for r in readings] == list(range(len(readings)))
    assert len({r.gpu_uuid for r in readings}) == len(readings)
    for r in readings:
        assert before <= r.ts <= datetime.now(UTC)
        check_sane(r)


def test_once_stores_real_nvml_rows(db_url, sql):
    res = CliRunner().invoke(
        build(),
        ["collect", "gpu", "--source", "nvml", "--once", "--json", "--database-url", db_url],
    )
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout.strip().splitlines()[-1])
    assert summary["samples_stored"] >= 1 and summary["failed_scrapes"] == 0
    rows = sql(
        "SELECT gpu_uuid, gpu_name, util_pct, mem_used_mib, mem_total_mib, power_w, temp_c,"
        " sm_clock_mhz FROM gpu_samples WHERE source = 'nvml' ORDER BY gpu_index"
    )
    assert len(rows) == summary["samples_stored"]
    for uuid, name, util, used, total, power, temp, sm in rows:
        assert uuid.startswith("GPU-") and name
        assert 0 <= util <= 100 and 0 <= used <= total
        assert 0 < power < 2000 and 0 < temp < 120 and 0 < sm < 5000
    assert sql("SELECT kind, ingested, failures FROM collector_status") == [
        ("gpu", summary["samples_stored"], 0)
    ]

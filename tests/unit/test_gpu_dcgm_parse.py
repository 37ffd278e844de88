"""dcgm-exporter text → readings, on /metrics bodies from several exporter versions."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from diffwatch.collectors.gpu.dcgm import MalformedMetrics, parse_dcgm
from diffwatch.model.gpu import SampleFailed

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "dcgm"
TS = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
BLANK = "9223372036854775794"  # DCGM_INT64_NOT_SUPPORTED, as 2.x exporters print it


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text(encoding="utf-8")


def parse(text: str, host: str = "node-from-url"):
    return parse_dcgm(text, ts=TS, source="http://x:9400/metrics", default_host=host)


def set_value(text: str, metric: str, gpu: str, value: str) -> str:
    """``text`` with the value of ``metric`` for GPU ``gpu`` replaced (labels untouched)."""
    pattern = re.compile(rf'^({metric}\{{gpu="{gpu}",[^\n]*\}}) \S+$', re.M)
    new, n = pattern.subn(rf"\g<1> {value}", text)
    assert n, f"no {metric} sample for gpu {gpu}"
    return new


def key(r):
    return (r.host, r.gpu_index, r.mig_instance)


def test_v2_without_hostname_uses_the_url_host_and_reads_spaced_labels():
    (r,) = parse(fixture("v2.0.13-no-hostname.prom"))
    assert key(r) == ("node-from-url", 0, None)
    assert r.gpu_uuid == "GPU-604ac76c-d9cf-fef3-62e9-d92044ab6e52"
    assert r.gpu_name is None  # 2.0 had no modelName label
    assert (r.util_pct, r.mem_used_mib, r.mem_total_mib) == (0.0, 0.0, 15109.0)
    assert (r.power_w, r.temp_c, r.sm_clock_mhz) == (14.977, 34.0, 139.0)
    assert r.ts == TS and r.source == "http://x:9400/metrics"


def test_v3_hostname_label_names_the_host_of_every_gpu():
    rs = parse(fixture("v3.3-v100-hostname.prom"))
    assert [key(r) for r in rs] == [("r6i3n0", i, None) for i in range(4)]
    assert {r.gpu_name for r in rs} == {"Tesla V100-SXM2-32GB"}
    assert rs[1].gpu_uuid == "GPU-8d5053b3-9280-7d1a-751b-4fd2fdd547c5"
    assert [r.power_w for r in rs] == [42.869, 41.356, 44.118, 40.962]
    assert all(r.mem_total_mib == 32494.0 and r.sm_clock_mhz == 135.0 for r in rs)


def test_mig_instances_are_separate_readings_without_gpu_util():
    rs = parse(fixture("v3.x-a30-mig-Hostname.prom"))
    host = "yg-data-k8s-gpu-a30-node-test-test0003.mt"
    assert [key(r) for r in rs] == [(host, g, gi) for g in (0, 1) for gi in ("3", "4", "5", "6")]
    assert all(r.util_pct is None for r in rs)  # DCGM has no GPU_UTIL for MIG instances
    assert all((r.mem_used_mib, r.mem_total_mib) == (3.0, 5951.0) for r in rs)
    by_key = {key(r): r for r in rs}
    assert by_key[(host, 0, "5")].power_w == 52.746
    assert by_key[(host, 1, "3")].power_w == 56.121
    assert by_key[(host, 1, "3")].gpu_uuid == "GPU-2d20791a-b4a6-ba59-97f1-e95b99fe5b49"


def test_lowercase_hostname_mixed_mig_and_out_of_order_gpus():
    rs = parse(fixture("v4-mixed-mig-lowercase-hostname.prom"))
    host = "dcgm-exporter-wwwjh"
    assert [key(r) for r in rs] == [(host, 0, "3"), (host, 0, "6"), (host, 1, None), (host, 2, "3")]
    rtx = rs[2]
    assert rtx.gpu_name == "NVIDIA RTX 2000 Ada Generation"
    assert (rtx.util_pct, rtx.mem_used_mib, rtx.mem_total_mib) == (37.0, 4749.0, 16024.0)
    assert (rtx.power_w, rtx.temp_c, rtx.sm_clock_mhz) == (38.125, 44.0, 2130.0)
    assert rs[1].mem_used_mib == 3744.0 and rs[1].temp_c == 50.0
    assert rs[3].gpu_uuid == "GPU-63bc0b91-2265-1b94-831c-15c41fe92675"
    assert rs[3].mem_total_mib == 2207.0 + 3744.0


def test_extra_labels_driver_version_and_pods_do_not_split_a_gpu():
    rs = parse(fixture("v4-h100-driver-label-pods.prom"))
    host = "computeinstance-e00c1p6dpy98xytphp"
    assert [key(r) for r in rs] == [(host, i, None) for i in range(4)]
    assert rs[0].power_w == 389.446 and rs[0].mem_used_mib == 1813.0
    # used + free, as specified; FB_RESERVED is not added
    assert all(r.mem_total_mib == 81035.0 for r in rs)


def test_blank_sentinels_and_nan_become_empty_fields():
    text = fixture("v3.3-v100-hostname.prom")
    text = set_value(text, "DCGM_FI_DEV_POWER_USAGE", "0", BLANK)
    text = set_value(text, "DCGM_FI_DEV_GPU_TEMP", "0", "NaN")
    text = set_value(text, "DCGM_FI_DEV_FB_FREE", "1", BLANK)
    text = set_value(text, "DCGM_FI_DEV_SM_CLOCK", "1", "140737488355328.000000")  # FP64 blank
    text = set_value(text, "DCGM_FI_DEV_GPU_UTIL", "2", "4294967295")  # DCGM/issues/199
    rs = {r.gpu_index: r for r in parse(text)}
    assert rs[0].power_w is None and rs[0].temp_c is None
    assert rs[0].sm_clock_mhz == 135.0 and rs[0].mem_used_mib == 0.0
    assert rs[1].mem_used_mib == 0.0 and rs[1].mem_total_mib is None
    assert rs[1].sm_clock_mhz is None
    assert rs[2].util_pct is None and rs[2].temp_c == 33.0


def test_a_reading_with_every_field_blank_is_not_returned():
    text = fixture("v3.3-v100-hostname.prom")
    for metric in (
        "DCGM_FI_DEV_GPU_UTIL",
        "DCGM_FI_DEV_FB_USED",
        "DCGM_FI_DEV_FB_FREE",
        "DCGM_FI_DEV_POWER_USAGE",
        "DCGM_FI_DEV_GPU_TEMP",
        "DCGM_FI_DEV_SM_CLOCK",
    ):
        text = set_value(text, metric, "3", BLANK if metric != "DCGM_FI_DEV_GPU_TEMP" else "NaN")
    assert [r.gpu_index for r in parse(text)] == [0, 1, 2]


def test_a_body_cut_mid_line_is_rejected_even_when_it_still_parses():
    text = fixture("v3.3-v100-hostname.prom")
    cut = text[: text.index('DCGM_FI_DEV_FB_USED{gpu="3"')]
    cut += 'DCGM_FI_DEV_FB_USED{gpu="3",UUID="GPU-bd94f0f5-8c2f-bc95-74ad-5f99fdc33d01"} 12'
    with pytest.raises(MalformedMetrics, match="cut off mid-line"):
        parse(cut)
    with pytest.raises(MalformedMetrics, match="not valid Prometheus text"):
        parse(text[: text.index('UUID="GPU-a9079f15')] + "\n")


def test_an_empty_body_and_a_body_without_dcgm_metrics_fail():
    with pytest.raises(MalformedMetrics, match="empty"):
        parse("")
    node_exporter = "# TYPE node_load1 gauge\nnode_load1 0.21\n"
    with pytest.raises(SampleFailed, match="no DCGM GPU metric"):
        parse(node_exporter)


def test_older_mig_label_spelling_and_device_label_fallback():
    # Label aliases only: the metric lines of a real exporter, relabelled.
    line = (
        'DCGM_FI_DEV_FB_USED{device="nvidia5",gpu_instance_id="2",mig_profile="3g.40gb",'
        'hostname="h"} 100\n'
    )
    (r,) = parse(line)
    assert key(r) == ("h", 5, "2") and r.mem_used_mib == 100.0

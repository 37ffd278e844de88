"""The simulated traffic, fleet and log lines: realistic, deterministic, and within the contract."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from diffwatch.collectors.logs.parse import Rejected, parse_line
from diffwatch.demo import fleet as fleet_mod
from diffwatch.demo.fleet import build_fleet, initial_state, reading
from diffwatch.demo.records import log_line, log_record
from diffwatch.demo.traffic import (
    CANARY,
    STABLE,
    SimRequest,
    simulate_minute,
    traffic_multiplier,
)
from diffwatch.model.log_record import ROW_COLUMNS

SEED = 3
# 2026-11-02 00:00 UTC in minutes since the epoch: a whole day of traffic follows.
DAY0 = int(datetime(2026, 11, 2, tzinfo=UTC).timestamp()) // 60
NOW = datetime(2026, 11, 3, tzinfo=UTC)
FLEET = build_fleet(20)


@pytest.fixture(scope="module")
def day() -> list[SimRequest]:
    """One simulated day at 20 requests/min (about 29,000 requests)."""
    return [
        r for m in range(DAY0, DAY0 + 1440) for r in simulate_minute(SEED, m, 20, FLEET).requests
    ]


def _mean(values) -> float:
    values = list(values)
    return sum(values) / len(values)


def test_a_minute_is_the_same_whatever_run_it_is_part_of():
    a = simulate_minute(SEED, DAY0 + 600, 20, FLEET)
    b = simulate_minute(SEED, DAY0 + 600, 20, build_fleet(20))
    assert a == b and len(a.requests) > 5
    other = simulate_minute(SEED + 1, DAY0 + 600, 20, FLEET)
    assert {r.request_id for r in other.requests}.isdisjoint(r.request_id for r in a.requests)
    assert [r.ts for r in a.requests] == sorted(r.ts for r in a.requests)
    assert all(a.start <= r.ts < a.start + timedelta(minutes=1) for r in a.requests)


def test_traffic_follows_a_daily_curve(day):
    by_hour = Counter(r.ts.hour for r in day)
    assert by_hour[15] > 2.5 * by_hour[3]
    assert traffic_multiplier(datetime(2026, 1, 1, 15, tzinfo=UTC)) == pytest.approx(1.55)
    assert 20 * 1440 * 0.95 < len(day) < 20 * 1440 * 1.05


def test_the_canary_gets_a_tenth_of_traffic_and_is_about_30_percent_slower(day):
    canary = [r for r in day if r.version is CANARY]
    assert 0.08 < len(canary) / len(day) < 0.12

    def mean_ms(version, gpu_type):
        return _mean(
            r.inference_ms
            for r in day
            if r.version is version
            and r.slot.spec.key == gpu_type
            and r.status == "ok"
            and r.steps == 20
            and (r.width, r.height, r.batch_size) == (512, 512, 1)
        )

    for gpu_type in ("h100", "a10g"):
        assert 1.15 < mean_ms(CANARY, gpu_type) / mean_ms(STABLE, gpu_type) < 1.5, gpu_type
    # Both deployments see the same GPU mix, so the raw averages tell the same story.
    assert (
        1.15
        < _mean(r.inference_ms for r in canary if r.status == "ok")
        / _mean(r.inference_ms for r in day if r.version is STABLE and r.status == "ok")
        < 1.5
    )


def test_about_a_quarter_of_canary_images_are_off_prompt(day):
    def off(version):
        images = [r for r in day if r.version is version and r.has_image]
        return sum(r.drawn != r.scene for r in images) / len(images)

    assert 0.2 < off(CANARY) < 0.3
    assert off(STABLE) < 0.02


def test_latencies_have_a_long_tail_and_add_up(day):
    ok = [r for r in day if r.status == "ok"]
    inference = np.array([r.inference_ms for r in ok])
    p50, p99 = np.percentile(inference, [50, 99])
    assert p99 > 3 * p50
    queue = np.array([r.queue_ms for r in day])
    assert np.percentile(queue, 50) < 100 and queue.max() > 5000  # spikes
    for r in ok:
        assert r.total_ms >= r.queue_ms + r.inference_ms
        assert r.total_ms < r.queue_ms + r.inference_ms + 500
    h100 = [r.inference_ms for r in ok if r.slot.spec.key == "h100" and r.width == 512]
    a10g = [r.inference_ms for r in ok if r.slot.spec.key == "a10g" and r.width == 512]
    assert _mean(a10g) > 2 * _mean(h100)


def test_a_few_realistic_errors(day):
    errors = [r for r in day if r.status == "error"]
    assert 0.008 < len(errors) / len(day) < 0.025
    kinds = Counter(r.error.split(":")[0].split(".")[0] for r in errors)
    assert set(kinds) == {"CUDA out of memory", "timeout", "NSFW filter", "invalid prompt"}
    assert all(not r.has_image for r in errors)
    # Out-of-memory errors come mostly from the 24 GB A10G.
    oom = [r for r in errors if r.error.startswith("CUDA out of memory")]
    assert sum(r.slot.spec.key == "a10g" for r in oom) > len(oom) / 2


def test_log_lines_follow_the_contract_and_keep_unknown_keys_in_extra(day):
    col = {name: i for i, name in enumerate(ROW_COLUMNS)}
    good = [r for r in day if r.defect is None][:2000]
    for r in good:
        raw = log_line(r, f"/demo/images/{r.request_id}.png" if r.has_image else None)
        assert raw.endswith(b"\n")
        row = parse_line(raw[:-1], NOW)
        assert not isinstance(row, Rejected), row
        assert row[col["ts"]] == r.ts and row[col["ts"]].utcoffset() == timedelta(0)
        assert row[col["extra"]] == {"client": r.client, "region": r.region}
        assert row[col["deployment"]] in ("stable", "canary")
    rec = log_record(good[0], "/x.png")
    assert "+00:00" in rec["timestamp"]
    assert set(rec) >= {
        "request_id", "timestamp", "model", "model_version", "prompt", "status",
        "negative_prompt", "sampler", "steps", "cfg_scale", "seed", "width", "height",
        "batch_size", "queue_ms", "inference_ms", "total_ms", "gpu_type", "host",
        "gpu_index", "image_uri", "error", "user_id", "deployment",
    }  # fmt: skip
    assert {r.sampler for r in day} >= {"DPM++ 2M Karras", "Euler a", "DDIM", "UniPC"}
    assert {r.slot.spec.name for r in day} == {"NVIDIA H100 80GB HBM3", "NVIDIA A10G"}


def test_about_two_in_a_thousand_lines_are_broken_and_the_collector_says_why(day):
    broken = [r for r in day if r.defect]
    assert 0.001 < len(broken) / len(day) < 0.004
    expected = {
        "truncated": "not valid JSON",
        "naive_timestamp": "has no UTC offset",
        "bad_status": '"status" must be either "ok" or "error"',
    }
    seen = set()
    for r in broken:
        res = parse_line(log_line(r, None)[:-1], NOW)
        assert isinstance(res, Rejected)
        assert expected[r.defect] in res.reason
        seen.add(r.defect)
    assert seen == set(expected)


def test_log_line_json_is_one_object_per_line(day):
    r = next(r for r in day if r.status == "error" and r.defect is None)
    line = log_line(r, None)
    assert line.count(b"\n") == 1
    rec = json.loads(line)
    assert rec["status"] == "error" and rec["error"] and rec["image_uri"] is None


def test_gpu_readings_follow_load_and_stay_physical():
    slot = next(s for s in FLEET.slots if s.spec is fleet_mod.H100)
    rng = np.random.default_rng(0)
    ts = datetime(2026, 11, 2, tzinfo=UTC)
    state = initial_state(slot.spec)
    idle, state = reading(slot, ts, 0, 0, state, rng)
    temps = []
    for _ in range(10):
        busy, state = reading(slot, ts, 45_000, 6000, state, rng)
        temps.append(busy.temp_c)
    assert idle.util_pct == 0 and 70 < busy.util_pct < 80
    assert busy.power_w > 3 * idle.power_w and busy.power_w <= slot.spec.tdp_w
    assert temps[0] < temps[-1] < 95  # warms up with a lag
    assert busy.sm_clock_mhz > idle.sm_clock_mhz
    assert idle.mem_used_mib < busy.mem_used_mib <= busy.mem_total_mib
    assert (busy.gpu_name, busy.source, busy.host) == (slot.spec.name, "demo", slot.host)


def test_fleet_has_several_hosts_and_a_canary_on_each_gpu_type():
    fleet = build_fleet(20)
    assert len({s.host for s in fleet.slots}) >= 3 and len(fleet.slots) >= 6
    canary = {s.spec.key for s in fleet.slots if s.deployment == "canary"}
    assert canary == {"h100", "a10g"}
    assert len({s.uuid for s in fleet.slots}) == len(fleet.slots)
    assert len(build_fleet(200).slots) > len(fleet.slots)


def test_utilisation_is_consistent_with_the_traffic():
    busy_by_hour: Counter[int] = Counter()
    for m in range(DAY0, DAY0 + 1440, 5):
        minute = simulate_minute(SEED, m, 20, FLEET)
        busy_by_hour[minute.start.hour] += sum(minute.busy_ms.values())
    gpu_minutes = len(FLEET.slots) * 12  # 12 sampled minutes an hour
    peak = busy_by_hour[15] / (gpu_minutes * 60_000)
    night = busy_by_hour[3] / (gpu_minutes * 60_000)
    assert 0.25 < peak < 0.8 and night < peak / 2


def test_a_trend_climbs_to_its_share_and_changes_nothing_but_the_scenes():
    from diffwatch.demo.traffic import Trend

    end = DAY0 + 1440
    trend = Trend(peak=end, ramp_min=360, share=0.5)
    assert trend.share_at(end - 400) == 0.0 and trend.share_at(end - 180) == 0.25
    assert trend.share_at(end) == trend.share_at(end + 10) == 0.5

    def share(minutes, with_trend):
        reqs = [
            r
            for m in minutes
            for r in simulate_minute(SEED, m, 20, FLEET, trend if with_trend else None).requests
        ]
        return sum(any(w in r.prompt.split() for w in ("night",)) for r in reqs) / len(reqs)

    assert share(range(end - 60, end), True) > 0.4
    assert share(range(end - 900, end - 600), True) == share(range(end - 60, end), False) == 0.0
    # Request ids and which images come out garbled are the same with or without the trend.
    a = simulate_minute(SEED, end - 30, 20, FLEET, trend).requests
    b = simulate_minute(SEED, end - 30, 20, FLEET).requests
    assert [r.request_id for r in a] == [r.request_id for r in b]
    assert [r.drawn == r.scene for r in a] == [r.drawn == r.scene for r in b]
    assert any(r.scene != s.scene for r, s in zip(a, b, strict=True))

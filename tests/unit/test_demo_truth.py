"""The demo's ground truth is recomputed from the simulation, request by request."""

from __future__ import annotations

from datetime import UTC, datetime

from diffwatch.demo.fleet import build_fleet
from diffwatch.demo.traffic import CANARY, STABLE, simulate_minute
from diffwatch.demo.truth import SceneTruth


def test_truth_matches_what_the_service_drew_and_the_canary_is_garbled_more():
    truth, fleet = SceneTruth(seed=5, rate_per_min=60), build_fleet(60)
    start = int(datetime(2026, 12, 1, tzinfo=UTC).timestamp()) // 60
    seen = {STABLE.deployment: [], CANARY.deployment: []}
    for minute in range(start, start + 120):
        for r in simulate_minute(5, minute, 60, fleet).requests:
            on = truth.on_prompt(r.request_id, r.ts)
            assert on is (r.drawn == r.scene)
            seen[r.version.deployment].append(on)
    garbled = {k: 1 - sum(v) / len(v) for k, v in seen.items()}
    assert garbled[STABLE.deployment] < 0.05 < 0.15 < garbled[CANARY.deployment]


def test_another_seed_or_an_unknown_request_has_no_truth():
    r = simulate_minute(5, 29_000_000, 60, build_fleet(60)).requests[0]
    assert SceneTruth(6, 60).on_prompt(r.request_id, r.ts) is None
    assert SceneTruth(5, 60).on_prompt("not-a-request", r.ts) is None

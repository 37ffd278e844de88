"""The demo's simulated raters (pure): ranges, determinism, following the truth, bias."""

from __future__ import annotations

import random

from scipy.stats import spearmanr

from diffwatch.db.models_review import FLAGS
from diffwatch.demo.raters import (
    DEMO_RATERS,
    ItemFeatures,
    RaterProfile,
    rater_rng,
    simulate_rating,
)

RATER1, RATER2 = DEMO_RATERS


def items(n: int = 400, seed: int = 1) -> list[ItemFeatures]:
    rng = random.Random(seed)
    return [
        ItemFeatures(
            generation_id=i,
            on_prompt=rng.random() > 0.2,
            nsfw_flagged=rng.random() < 0.1,
            canary=rng.random() < 0.1,
        )
        for i in range(1, n + 1)
    ]


def rate_all(rater: RaterProfile, feats: list[ItemFeatures], seed: int = 0) -> dict:
    out = {}
    for f in feats:
        r = simulate_rating(f, rater, rater_rng(seed, rater.username, f.generation_id), seed)
        out[f.generation_id] = r
    return out


def test_ratings_are_valid_for_the_queue():
    for rater in DEMO_RATERS:
        for r in rate_all(rater, items()).values():
            if r is None:
                continue
            assert 1 <= r.quality <= 5 and 1 <= r.adherence <= 5
            assert isinstance(r.quality, int) and isinstance(r.adherence, int)
            assert set(r.flags) <= set(FLAGS) and list(r.flags) == sorted(set(r.flags))
            assert r.comment is None or 0 < len(r.comment) < 60


def test_deterministic_for_a_seed_and_different_for_another():
    feats = items()
    assert rate_all(RATER1, feats, seed=3) == rate_all(RATER1, feats, seed=3)
    assert rate_all(RATER1, feats, seed=3) != rate_all(RATER1, feats, seed=4)
    # the order items come in does not change a rating
    assert rate_all(RATER1, feats[::-1], seed=3) == rate_all(RATER1, feats, seed=3)


def test_adherence_follows_the_truth_and_raters_agree_more_than_chance():
    feats = items()
    r1, r2 = rate_all(RATER1, feats), rate_all(RATER2, feats)
    on = [r1[f.generation_id].adherence for f in feats if r1[f.generation_id] and f.on_prompt]
    off = [r1[f.generation_id].adherence for f in feats if r1[f.generation_id] and not f.on_prompt]
    assert sum(on) / len(on) > 4.0 and sum(off) / len(off) < 2.5
    truth = [(f.on_prompt, r1[f.generation_id].quality) for f in feats if r1[f.generation_id]]
    assert spearmanr(*zip(*truth, strict=True)).statistic > 0.3
    both = [g for g in r1 if r1[g] and r2[g]]
    rho = spearmanr([r1[g].adherence for g in both], [r2[g].adherence for g in both]).statistic
    assert rho > 0.5


def test_rater2_is_harsher_and_skips_and_flags_happen():
    feats = items()
    r1, r2 = rate_all(RATER1, feats), rate_all(RATER2, feats)

    def mean(rs):
        vals = [r.adherence + r.quality for r in rs.values() if r]
        return sum(vals) / len(vals)

    assert mean(r2) < mean(r1) - 0.5
    skips = sum(r is None for r in r1.values()) + sum(r is None for r in r2.values())
    assert 2 <= skips <= 40
    flagged = {f.generation_id for f in feats if f.nsfw_flagged}
    human = [("nsfw" in r.flags) for g, r in r1.items() if r and g in flagged]
    assert 0.6 < sum(human) / len(human) < 1.0  # mostly agrees with NudeNet, not always
    others = [("nsfw" in r.flags) for g, r in r1.items() if r and g not in flagged]
    assert sum(others) / len(others) < 0.05
    all_flags = [f for r in r1.values() if r for f in r.flags]
    assert "artifacts" in all_flags and "garbled_text" in all_flags


def test_with_the_truth_unknown_the_canary_is_rated_lower():
    feats = [ItemFeatures(i, None, False, canary=i % 2 == 0) for i in range(1, 401)]
    rs = rate_all(RATER1, feats)
    canary = [r.adherence for g, r in rs.items() if r and g % 2 == 0]
    stable = [r.adherence for g, r in rs.items() if r and g % 2 == 1]
    assert sum(canary) / len(canary) < sum(stable) / len(stable)


def test_rating_times_follow_their_images_spread_over_the_day_and_stop_at_the_end():
    from datetime import UTC, datetime, timedelta

    from diffwatch.demo.raters import RATING_DELAY_MIN, rating_time

    end = datetime(2026, 11, 2, 16, 0, tzinfo=UTC)
    generated = [end - timedelta(minutes=7 * i) for i in range(1, 201)]  # the last 23 hours
    times = [rating_time(3, "rater1", gid, ts, end) for gid, ts in enumerate(generated)]
    waited = [t - ts >= RATING_DELAY_MIN for ts, t in zip(generated, times, strict=True)]
    assert sum(waited) > 150  # all but those too close to the end to wait that long
    assert all(ts <= t < end for ts, t in zip(generated, times, strict=True))
    assert sum(t >= end - timedelta(minutes=1) for t in times) <= 2  # no pile at the end
    assert len({t.replace(minute=0, second=0, microsecond=0) for t in times}) >= 20
    assert times == [rating_time(3, "rater1", gid, ts, end) for gid, ts in enumerate(generated)]
    other = [rating_time(3, "rater2", gid, ts, end) for gid, ts in enumerate(generated)]
    assert other != times  # each rater keeps their own pace
    # An image generated in the demo's last second is rated in that second.
    last = end - timedelta(seconds=1)
    assert last <= rating_time(3, "rater1", 1, last, end) < end

"""analytics.ratings against numbers worked out by hand."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from diffwatch.analytics.ratings import (
    clip_vs_adherence,
    nsfw_vs_human,
    rater_stats,
    ratings_over_time,
)

T975_1 = 12.706204736174698  # Student t, 97.5th percentile, 1 degree of freedom
DAY1 = datetime(2026, 11, 18, 10, 0, tzinfo=UTC)  # a Wednesday


# --- CLIP against adherence ------------------------------------------------------------


def test_spearman_monotone_and_anti_monotone():
    up = clip_vs_adherence([10, 20, 30, 40, 50], [1, 2, 3, 4, 5])
    down = clip_vs_adherence([10, 20, 30, 40, 50], [5, 4, 3, 2, 1])
    assert up.rho == pytest.approx(1.0) and up.n == 5 and up.reason is None
    assert down.rho == pytest.approx(-1.0)
    assert up.p_value == pytest.approx(0.0, abs=1e-6)


def test_spearman_two_swaps():
    # d = (-1, 1, -1, 1, 0): rho = 1 - 6 * 4 / (5 * 24) = 0.8
    res = clip_vs_adherence([1, 2, 3, 4, 5], [2, 1, 4, 3, 5])
    assert res.rho == pytest.approx(0.8)


def test_binned_table_quantile_edges_means_and_ci():
    clip = [10, 20, 30, 40, 50, 60, 70, 80, 90, 100]
    adh = [1, 3, 2, 2, 3, 3, 4, 4, 5, 5]
    res = clip_vs_adherence(clip, adh, bins=5)
    # np.quantile (linear) at 0, .2, .4, .6, .8, 1 → 10, 28, 46, 64, 82, 100
    assert [b.lo for b in res.bins] == pytest.approx([10, 28, 46, 64, 82])
    assert [b.hi for b in res.bins] == pytest.approx([28, 46, 64, 82, 100])
    assert [b.n for b in res.bins] == [2] * 5
    assert [b.mean_adherence for b in res.bins] == pytest.approx([2, 2, 3, 4, 5])
    # first bin: values 1 and 3, sd = sqrt(2), se = 1 → 2 ± t(0.975, 1)
    assert res.bins[0].ci_low == pytest.approx(2 - T975_1)
    assert res.bins[0].ci_high == pytest.approx(2 + T975_1)
    assert res.bins[1].ci_low == pytest.approx(2.0) and res.bins[1].ci_high == pytest.approx(2.0)
    json.dumps(res.to_dict())


def test_clip_degenerate_cases():
    few = clip_vs_adherence([10, 20], [1, 2])
    assert few.rho is None and few.p_value is None and "at least 3" in few.reason
    assert few.n == 2
    flat = clip_vs_adherence([30, 30, 30, 30], [1, 2, 3, 4])
    assert flat.rho is None and "CLIP scores are equal" in flat.reason
    assert len(flat.bins) == 1 and flat.bins[0].n == 4 and flat.bins[0].lo == 30
    same = clip_vs_adherence([10, 20, 30], [3, 3, 3])
    assert same.rho is None and "adherence" in same.reason
    # None and NaN pairs are dropped, not counted
    mixed = clip_vs_adherence([10, None, 30, float("nan"), 50, 60], [1, 2, None, 4, 5, 6])
    assert mixed.n == 3 and mixed.rho == pytest.approx(1.0)
    empty = clip_vs_adherence([], [])
    assert empty.n == 0 and empty.bins == () and empty.rho is None
    json.dumps(empty.to_dict())
    with pytest.raises(ValueError, match="one CLIP score and one adherence"):
        clip_vs_adherence([1, 2], [1])


# --- NSFW against human ----------------------------------------------------------------


def test_nsfw_precision_recall_on_hand_confusion():
    human = [True, True, True, False, False, False, False, True]
    auto = [True, True, False, True, False, False, False, False]
    res = nsfw_vs_human([None] * 8, auto, human, threshold=0.5)
    assert (res.tp, res.fp, res.fn, res.tn) == (2, 1, 2, 3)
    assert res.precision == pytest.approx(2 / 3)
    assert res.recall == pytest.approx(1 / 2)
    assert res.f1 == pytest.approx(4 / 7)
    assert res.threshold == 0.5 and res.n == 8
    # no scores at all: no suggestion, and why
    assert res.suggested_threshold is None and "no items with an NSFW score" in (
        res.suggestion_reason
    )
    json.dumps(res.to_dict())


def test_nsfw_suggested_threshold_obvious_best_f1():
    scores = [0.9, 0.8, 0.7, 0.6, 0.3, 0.1, 0.0]
    human = [True, True, True, False, False, False, False]
    auto = [s >= 0.5 for s in scores]  # current threshold 0.5 also flags the 0.6 negative
    res = nsfw_vs_human(scores, auto, human, threshold=0.5)
    assert (res.tp, res.fp, res.fn, res.tn) == (3, 1, 0, 3)
    assert res.suggested_threshold == pytest.approx(0.7)
    assert (res.suggested_precision, res.suggested_recall, res.suggested_f1) == (1.0, 1.0, 1.0)


def test_nsfw_suggested_threshold_target_recall():
    # thresholds 0.9: P 1, R .5, F .667 | 0.7: P .5, R .5 | 0.5: P 2/3, R 1, F .8 | 0.2: P .5
    scores = [0.9, 0.5, 0.7, 0.2]
    human = [True, True, False, False]
    best = nsfw_vs_human(scores, [None] * 4, human, threshold=0.6)
    assert (best.tp, best.fp, best.fn, best.tn) == (1, 1, 1, 1)  # derived from score >= 0.6
    assert best.suggested_threshold == 0.5 and best.suggested_f1 == pytest.approx(0.8)
    half = nsfw_vs_human(scores, [None] * 4, human, threshold=0.6, target_recall=0.5)
    assert half.suggested_threshold == 0.9 and half.suggested_precision == 1.0
    full = nsfw_vs_human(scores, [None] * 4, human, threshold=0.6, target_recall=1.0)
    assert full.suggested_threshold == 0.5 and full.suggested_recall == 1.0


def test_nsfw_degenerate_cases():
    none_pos = nsfw_vs_human([0.1, 0.7], [False, True], [False, False], threshold=0.5)
    assert none_pos.recall is None and none_pos.f1 is None
    assert none_pos.precision == 0.0
    assert "no human-flagged items" in none_pos.reason
    assert none_pos.suggested_threshold is None and "recall undefined" in (
        none_pos.suggestion_reason
    )
    none_neg = nsfw_vs_human([0.1, 0.7], [False, True], [True, True], threshold=0.5)
    assert none_neg.precision == 1.0 and none_neg.recall == 0.5
    assert none_neg.suggested_threshold is None
    assert "no human-negative items" in none_neg.suggestion_reason
    no_auto = nsfw_vs_human([0.1, 0.2], [False, False], [True, False], threshold=0.5)
    assert no_auto.precision is None and "precision undefined" in no_auto.reason
    assert no_auto.suggested_threshold == 0.1  # flags the positive, F1 = 2/3
    # no flag and no score: dropped
    dropped = nsfw_vs_human([None, 0.9], [None, True], [True, True], threshold=0.5)
    assert dropped.n == 1
    with pytest.raises(ValueError, match="target_recall"):
        nsfw_vs_human([0.1], [False], [True], 0.5, target_recall=0.0)
    with pytest.raises(ValueError, match="one value per item"):
        nsfw_vs_human([0.1], [False, True], [True], 0.5)


# --- raters ----------------------------------------------------------------------------


def _ratings():
    h = timedelta(hours=1)
    return [
        # item, rater, quality, adherence, rated_at
        (1, "alice", 4, 5, DAY1),
        (2, "alice", 3, 3, DAY1 + h / 2),
        (1, "bob", 2, 3, DAY1),
        (2, "bob", 3, 4, DAY1 + h),
        (3, "bob", 5, 5, DAY1 + 23 * h),  # next day, alone
        (1, "carol", 3, 4, DAY1),
    ]


def test_rater_stats_deviation_and_throughput():
    stats = {s.rater: s for s in rater_stats(_ratings())}
    a, b, c = stats["alice"], stats["bob"], stats["carol"]
    # alice: item 1: 4 - mean(2, 3) = +1.5; item 2: 3 - 3 = 0 → +0.75
    assert a.quality_deviation == pytest.approx(0.75)
    # adherence: 5 - mean(3, 4) = +1.5; 3 - 4 = -1 → +0.25
    assert a.adherence_deviation == pytest.approx(0.25)
    assert a.n_overlap_items == 2 and a.n_ratings == 2
    assert a.ratings_per_hour == pytest.approx(4.0)  # 2 ratings in 0.5 h
    assert a.mean_quality == pytest.approx(3.5) and a.mean_adherence == pytest.approx(4.0)
    # bob: 2 - 3.5 = -1.5, 3 - 3 = 0; item 3 has no other rater
    assert b.quality_deviation == pytest.approx(-0.75)
    assert b.adherence_deviation == pytest.approx(-0.25)  # 3 - 4.5, 4 - 3
    assert b.n_overlap_items == 2 and b.active_days == 2
    assert b.active_hours == pytest.approx(1.0) and b.ratings_per_hour == pytest.approx(2.0)
    assert c.quality_deviation == 0.0 and c.n_overlap_items == 1
    assert c.ratings_per_hour is None  # one rating: no duration
    json.dumps([s.to_dict() for s in stats.values()])


def test_rater_stats_accepts_dicts_and_handles_no_overlap():
    rows = [
        {"item_id": 1, "rater_username": "x", "quality": 2, "adherence": 2, "rated_at": DAY1},
        {"item_id": 2, "rater_username": "y", "quality": 4, "adherence": 5, "rated_at": DAY1},
    ]
    stats = rater_stats(rows)
    assert [s.rater for s in stats] == ["x", "y"]
    assert all(s.quality_deviation is None and s.n_overlap_items == 0 for s in stats)
    assert rater_stats([]) == []


# --- over time -------------------------------------------------------------------------


def test_ratings_over_time_by_day_and_week():
    rows = [
        (DAY1, "v1", 4, 5),
        (DAY1 + timedelta(hours=2), "v1", 2, 3),
        (DAY1, "v2", 3, 3),
        (DAY1 + timedelta(days=1), "v1", 5, 5),
    ]
    day = [r.to_dict() for r in ratings_over_time(rows, "day")]
    assert day == [
        {
            "bucket": "2026-11-18T00:00:00+00:00",
            "model_version": "v1",
            "n": 2,
            "mean_quality": 3.0,
            "mean_adherence": 4.0,
        },
        {
            "bucket": "2026-11-18T00:00:00+00:00",
            "model_version": "v2",
            "n": 1,
            "mean_quality": 3.0,
            "mean_adherence": 3.0,
        },
        {
            "bucket": "2026-11-19T00:00:00+00:00",
            "model_version": "v1",
            "n": 1,
            "mean_quality": 5.0,
            "mean_adherence": 5.0,
        },
    ]
    week = ratings_over_time(rows, "week")
    assert [(r.bucket.isoformat(), r.model_version, r.n) for r in week] == [
        ("2026-11-16T00:00:00+00:00", "v1", 3),  # Monday
        ("2026-11-16T00:00:00+00:00", "v2", 1),
    ]
    assert week[0].mean_quality == pytest.approx(11 / 3)
    assert len(ratings_over_time(rows, "hour")) == 4
    with pytest.raises(ValueError, match="bucket"):
        ratings_over_time(rows, "month")


# --- human ratings per group, alpha bootstrap --------------------------------------------


def test_human_summary_per_image_means_and_intervals():
    from diffwatch.analytics.human_ratings import human_summary

    rows = [
        ("v1", 1, 2, 3.0, 2.0, True),
        {"group": "v1", "item_id": 2, "n_ratings": 1, "mean_quality": 5.0,
         "mean_adherence": 4.0, "human_nsfw": False},
        ("v2", 3, 3, 2.0, 1.0, False),
    ]  # fmt: skip
    v1, v2 = human_summary(rows)
    assert (v1.group, v1.n_items, v1.n_ratings) == ("v1", 2, 3)
    assert v1.mean_quality == 4.0 and v1.mean_adherence == 3.0 and v1.nsfw_share == 0.5
    # sd of (3, 5) is sqrt(2); half-width t(0.975, 1) * sqrt(2) / sqrt(2)
    assert v1.quality_low == pytest.approx(4.0 - T975_1)
    assert v1.quality_high == pytest.approx(4.0 + T975_1)
    assert (v2.n_items, v2.quality_low, v2.adherence_high) == (1, None, None)
    assert human_summary([]) == []
    json.dumps(v1.to_dict())


def test_human_diff_welch_interval():
    from scipy import stats

    from diffwatch.analytics.human_ratings import human_diff

    a, b = [3.0, 4.0, 5.0], [2.0, 2.0, 3.0, 3.0]
    est, low, high = human_diff(a, b)
    assert est == pytest.approx(2.5 - 4.0)
    res = stats.ttest_ind(b, a, equal_var=False).confidence_interval(0.95)
    assert (low, high) == pytest.approx((res.low, res.high))
    assert human_diff([3.0], b) is None


def test_alpha_bootstrap_brackets_alpha_and_is_repeatable():
    from diffwatch.analytics.agreement import alpha_bootstrap, krippendorff_alpha

    triples = [(i, r, 1 + (i + (r == "c" and i % 3 == 0)) % 5) for i in range(30) for r in "abc"]
    alpha = krippendorff_alpha(triples).alpha
    lo, hi = alpha_bootstrap(triples)
    assert lo <= alpha <= hi and hi <= 1.0 and lo < hi
    assert alpha_bootstrap(triples) == (lo, hi)  # seeded
    assert alpha_bootstrap(triples[:12]) is None  # 4 items: too few
    perfect = [(i, r, 1 + i % 5) for i in range(10) for r in "ab"]
    assert alpha_bootstrap(perfect) == (1.0, 1.0)

"""The gate's human side-by-side, pure part: blinding, sampling and the human win rate."""

from __future__ import annotations

import math
import random
from collections import Counter
from statistics import NormalDist

import pytest

from diffwatch.db.queries.gate_review import PairToRate
from diffwatch.gate.pairs import blind, human_metric, left_side, outcome, sample_pairs, tally
from diffwatch.gate.policy import GatePolicy, HumanPolicy

RATERS = [f"rater{i}" for i in range(40)]
KEYS = [f"p{i:03d}-s{i % 3}" for i in range(100)]


def test_the_side_shown_left_is_stable_per_rater_and_pair() -> None:
    for run in (1, 7):
        for key in KEYS[:20]:
            for rater in RATERS[:10]:
                first = left_side(run, key, rater)
                assert first in ("candidate", "baseline")
                assert left_side(run, key, rater) == first
                assert left_side(run, key, f"  {rater.upper()} ") == first  # usernames: lower
    # it depends on each of run, pair and rater
    assert {left_side(1, KEYS[0], r) for r in RATERS} == {"candidate", "baseline"}
    assert {left_side(1, k, RATERS[0]) for k in KEYS} == {"candidate", "baseline"}
    assert {left_side(r, KEYS[0], RATERS[0]) for r in range(1, 40)} == {"candidate", "baseline"}


def test_the_side_shown_left_is_balanced_over_many() -> None:
    sides = Counter(left_side(3, k, r) for k in KEYS for r in RATERS)  # 4000 draws
    assert abs(sides["candidate"] / 4000 - 0.5) < 0.03  # about 4 standard errors
    for r in RATERS[:10]:  # each rater sees the candidate on the left about half the time
        mine = Counter(left_side(3, k, r) for k in KEYS)
        assert 30 <= mine["candidate"] <= 70, r
    for k in KEYS[:10]:  # and each pair is laid out both ways across raters
        per_pair = Counter(left_side(3, k, r) for r in RATERS)
        assert 8 <= per_pair["candidate"] <= 32, k


@pytest.mark.parametrize(("left", "vote", "expect"), [
    ("candidate", "left", "candidate"), ("candidate", "right", "baseline"),
    ("baseline", "left", "baseline"), ("baseline", "right", "candidate"),
    ("candidate", "same", "same"), ("baseline", "same", "same"),
])  # fmt: skip
def test_a_vote_maps_back_to_the_model_it_prefers(left, vote, expect) -> None:
    assert outcome(left, vote) == expect


def test_bad_sides_and_votes_are_refused() -> None:
    with pytest.raises(ValueError, match="left side must be one of candidate, baseline"):
        outcome("Candidate", "left")
    with pytest.raises(ValueError, match="vote must be one of left, same, right, got 'up'"):
        outcome("candidate", "up")


def test_a_blinded_pair_has_the_candidate_where_left_side_says() -> None:
    for key in KEYS[:30]:
        p = PairToRate(
            5, key, "a cat", f"/c/{key}.png", f"/b/{key}.png", True, None, votes=0, required_votes=1
        )
        for r in RATERS[:5]:
            b = blind(p, r)
            fields = set(vars(b) if hasattr(b, "__dict__") else b.__slots__)
            assert not any("candidate" in f or "baseline" in f for f in fields)
            if left_side(5, key, r) == "candidate":
                assert (b.left_uri, b.right_uri, b.left_nsfw, b.right_nsfw) == (
                    p.candidate_uri, p.baseline_uri, True, False)  # fmt: skip
            else:
                assert (b.left_uri, b.right_uri, b.left_nsfw, b.right_nsfw) == (
                    p.baseline_uri, p.candidate_uri, False, True)  # fmt: skip


def _pairs(n: int) -> list[dict]:
    return [{"key": f"k{i:02d}", "prompt": f"prompt {i}", "candidate_uri": f"/c/{i}",
             "baseline_uri": f"/b/{i}", "delta": -i} for i in range(n)]  # fmt: skip


def test_the_sample_is_seeded_order_free_and_skips_what_cannot_be_shown() -> None:
    pairs = _pairs(20)
    a = sample_pairs(pairs, 5, seed=3)
    assert len(a) == 5 and a == sample_pairs(list(reversed(pairs)), 5, seed=3)
    assert [p["key"] for p in a] == sorted(p["key"] for p in a)
    assert a != sample_pairs(pairs, 5, seed=4)
    more = sample_pairs(pairs, 5, seed=3, exclude=[p["key"] for p in a])
    assert not {p["key"] for p in more} & {p["key"] for p in a}
    assert len(sample_pairs(pairs, 50, seed=0)) == 20  # capped at what there is
    broken = [*pairs[:3], {**pairs[3], "baseline_uri": None}, {"prompt": "no key"}]
    assert [p["key"] for p in sample_pairs(broken, 10, 0)] == ["k00", "k01", "k02"]
    with pytest.raises(ValueError, match="0 or more"):
        sample_pairs(pairs, -1, 0)


def test_the_sample_is_uniform_not_the_worst_pairs() -> None:
    """Summaries list pairs worst first; each pair must be as likely to be rated as any."""
    pairs = _pairs(20)
    hits = Counter(p["key"] for s in range(400) for p in sample_pairs(pairs, 5, seed=s))
    assert len(hits) == 20
    assert all(60 <= n <= 140 for n in hits.values()), hits  # 100 expected each
    first = sample_pairs(pairs, 5, seed=0)
    assert [p["key"] for p in first] != [p["key"] for p in pairs[:5]]


def _direct(votes: list[dict], level: float) -> tuple[int, float, float, float]:
    """Rated pairs, estimate and Wilson interval, computed here from first principles."""
    wins = ties = 0
    for v in votes:
        if v["vote"] == "same":
            ties += 1
        elif (v["vote"] == "left") == (v["left_side"] == "candidate"):
            wins += 1
    n = len({v["key"] for v in votes})
    p = (wins + 0.5 * ties) / n
    z = NormalDist().inv_cdf(0.5 + level / 2)
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return n, p, centre - half, centre + half


def _seeded_votes(n: int, p_candidate: float, p_same: float, seed: int) -> list[dict]:
    """One vote per pair by a random rater, preferring the candidate with p_candidate."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        key, rater = f"k{i:03d}", rng.choice(RATERS)
        side = left_side(9, key, rater)
        u = rng.random()
        better = "same" if u < p_same else "candidate" if u < p_same + p_candidate else "baseline"
        vote = "same" if better == "same" else "left" if better == side else "right"
        out.append({"key": key, "rater_username": rater, "left_side": side, "vote": vote})
    return out


@pytest.mark.parametrize(("n", "p_cand", "p_same", "seed"), [
    (80, 0.6, 0.2, 1), (80, 0.2, 0.2, 2), (120, 0.4, 0.2, 3), (60, 0.45, 0.1, 4),
])  # fmt: skip
def test_the_human_win_rate_is_wins_plus_half_ties_with_wilsons_interval(
    n, p_cand, p_same, seed
) -> None:
    policy = GatePolicy(human=HumanPolicy(min_pairs=50, min_win_rate=0.45, blocks=True))
    votes = _seeded_votes(n, p_cand, p_same, seed)
    m = human_metric(votes, policy)
    rated, p, low, high = _direct(votes, 0.95)
    assert m["n"] == rated == n and m["votes"] == n
    assert m["estimate"] == pytest.approx(p, abs=1e-12)
    assert m["low"] == pytest.approx(low, abs=1e-9)
    assert m["high"] == pytest.approx(high, abs=1e-9)
    expect = "pass" if low >= 0.45 else "fail" if high < 0.45 else "inconclusive"
    assert m["verdict"] == expect
    assert (m["name"], m["title"], m["unit"]) == ("human", "Human side-by-side",
                                                  "candidate win rate")  # fmt: skip
    assert m["blocks"] is True and m["threshold"] == 0.45
    assert sum(m["counts"].values()) == n


def test_the_seeded_cases_reach_every_verdict() -> None:
    policy = GatePolicy(human=HumanPolicy(min_pairs=50, min_win_rate=0.45))
    verdicts = {
        human_metric(_seeded_votes(n, pc, ps, s), policy)["verdict"]
        for n, pc, ps, s in ((80, 0.6, 0.2, 1), (80, 0.2, 0.2, 2), (120, 0.4, 0.2, 3))
    }
    assert verdicts == {"pass", "fail", "inconclusive"}


def test_below_min_pairs_it_is_inconclusive_and_says_how_many_more() -> None:
    policy = GatePolicy(human=HumanPolicy(min_pairs=50))
    votes = _seeded_votes(38, 1.0, 0.0, 5)  # every vote for the candidate
    m = human_metric(votes, policy)
    assert m["verdict"] == "inconclusive" and m["estimate"] == 1.0
    assert m["note"] == "needs 12 more rated pairs (38 of 50)"
    empty = human_metric([], policy)
    assert empty["n"] == 0 and empty["estimate"] is None
    assert empty["note"] == "needs 50 more rated pairs (0 of 50)"


def test_several_votes_on_one_pair_are_averaged_not_counted_as_pairs() -> None:
    votes = [
        {"key": "a", "rater_username": "x", "left_side": "candidate", "vote": "left"},  # 1
        {"key": "a", "rater_username": "y", "left_side": "baseline", "vote": "left"},  # 0
        {"key": "a", "rater_username": "z", "left_side": "baseline", "vote": "same"},  # ½
        {"key": "b", "rater_username": "x", "left_side": "baseline", "vote": "right"},  # 1
    ]
    t = tally(votes)
    assert (t.rated_pairs, t.votes, t.raters) == (2, 4, 3)
    assert t.wins == pytest.approx(0.5 + 1.0)
    assert (t.candidate, t.same, t.baseline) == (2, 1, 1)

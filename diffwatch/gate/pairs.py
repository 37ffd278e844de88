"""Human side-by-side for the release gate, the pure part: blinding, sampling and the win rate.

- **Blinding.** Raters never see which image is the candidate's. Which side a rater sees on
  the left is decided per (run, pair, rater) by a hash (``left_side``): random-looking, so
  neither model sits on one side (raters favour a side), yet stable, so a reload shows the
  same layout and the stored vote can be mapped back. The page gets a ``BlindPair``
  (left/right only); the side is recomputed when the vote is stored.
- **Sampling.** The pairs raters see are a seeded uniform random sample of the run's pairs
  (``sample_pairs``), not the worst ones the report lists first: the human win rate is then
  an unbiased estimate of the candidate's win rate over the whole suite. The pairs that
  moved most would overstate how often people prefer either side.
- **Win rate.** Each vote maps back to candidate better (1), the same (½) or baseline
  better (0). A pair's score is the mean of its votes, and the rated pairs are the trials:
  wins = the sum of the pair scores, n = the pairs with at least one vote. Votes on one
  pair are not independent trials (the same two images), so they are averaged rather than
  counted, and with one vote per pair this is exactly wins + ½·ties over rated pairs. The
  interval is Wilson's at the policy's level (as ``analytics.gate_stats.win_rate``), and
  ``verdict.human_verdict`` decides against ``[human] min_win_rate`` once ``min_pairs``
  pairs are rated.
"""

from __future__ import annotations

import hashlib
import random
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from diffwatch.analytics.intervals import wilson
from diffwatch.db.models_gate import PAIR_SIDES, VOTES
from diffwatch.gate.policy import GatePolicy
from diffwatch.gate.verdict import human_verdict

Side = Literal["candidate", "baseline"]
Outcome = Literal["candidate", "same", "baseline"]
SCORE: dict[str, float] = {"candidate": 1.0, "same": 0.5, "baseline": 0.0}  # candidate's


def left_side(run_id: int, key: str, rater: str) -> Side:
    """The side this rater sees on the left for this pair: a bit of sha256(run, key, rater)."""
    name = (rater or "").strip().lower()  # usernames are lower-cased, as stored
    digest = hashlib.sha256(f"{int(run_id)}\x1f{key}\x1f{name}".encode()).digest()
    return "candidate" if digest[0] & 1 else "baseline"


def outcome(left: str, vote: str) -> Outcome:
    """What a vote says about the models: ``left`` is the side shown on the left, ``vote``
    the rater's left, same or right."""
    if left not in PAIR_SIDES:
        raise ValueError(f"left side must be one of {', '.join(PAIR_SIDES)}, got {left!r}")
    if vote not in VOTES:
        raise ValueError(f"vote must be one of {', '.join(VOTES)}, got {vote!r}")
    if vote == "same":
        return "same"
    other = "baseline" if left == "candidate" else "candidate"
    return left if vote == "left" else other  # type: ignore[return-value]


@dataclass(frozen=True, slots=True)
class BlindPair:
    """A pair as the rater's page sees it: left and right, never which model is which.
    ``prompt`` is untrusted text: render it as plain text only."""

    run_id: int
    key: str
    prompt: str
    left_uri: str
    right_uri: str
    left_nsfw: bool
    right_nsfw: bool


def blind(pair: Any, rater: str) -> BlindPair:
    """``pair`` (run_id, key, prompt, candidate_/baseline_ uri and nsfw) laid out for
    ``rater`` by ``left_side``."""
    order = ("candidate", "baseline")
    if left_side(pair.run_id, pair.key, rater) == "baseline":
        order = ("baseline", "candidate")
    lft, rgt = order
    return BlindPair(
        run_id=int(pair.run_id), key=str(pair.key), prompt=str(pair.prompt),
        left_uri=getattr(pair, f"{lft}_uri"), right_uri=getattr(pair, f"{rgt}_uri"),
        left_nsfw=bool(getattr(pair, f"{lft}_nsfw")),
        right_nsfw=bool(getattr(pair, f"{rgt}_nsfw")),
    )  # fmt: skip


def sample_pairs(
    pairs: Sequence[Mapping[str, Any]], n: int, seed: int, exclude: Iterable[str] = ()
) -> list[dict[str, Any]]:
    """A seeded uniform random sample of up to ``n`` pairs that have both images, leaving
    out the keys in ``exclude`` (already enqueued). The same pairs, seed and n give the same
    sample whatever order the pairs come in; the result is in key order."""
    if n < 0:
        raise ValueError(f"the number of pairs must be 0 or more, got {n}")
    skip = set(exclude)
    usable = sorted(
        (dict(p) for p in pairs
         if isinstance(p, Mapping) and p.get("key") is not None and str(p["key"]) not in skip
         and p.get("candidate_uri") and p.get("baseline_uri")),
        key=lambda p: str(p["key"]),
    )  # fmt: skip
    picked = random.Random(seed).sample(usable, min(n, len(usable)))
    return sorted(picked, key=lambda p: str(p["key"]))


@dataclass(frozen=True, slots=True)
class Tally:
    """Votes on a run's pairs, counted: the candidate's wins (ties ½, votes on one pair
    averaged) over rated pairs, and the votes by outcome."""

    rated_pairs: int
    votes: int
    wins: float  # sum over rated pairs of the mean candidate score, 0..rated_pairs
    candidate: int  # votes for the candidate
    same: int
    baseline: int
    raters: int


def tally(votes: Iterable[Mapping[str, Any]]) -> Tally:
    """Count votes (dicts with key, left_side, vote and rater_username)."""
    by_pair: dict[str, list[float]] = defaultdict(list)
    seen: dict[str, int] = {"candidate": 0, "same": 0, "baseline": 0}
    raters = set()
    for v in votes:
        o = outcome(str(v["left_side"]), str(v["vote"]))
        seen[o] += 1
        by_pair[str(v["key"])].append(SCORE[o])
        raters.add(v.get("rater_username"))
    wins = sum(sum(s) / len(s) for s in by_pair.values())
    return Tally(len(by_pair), sum(seen.values()), wins, seen["candidate"], seen["same"],
                 seen["baseline"], len(raters))  # fmt: skip


def human_metric(votes: Iterable[Mapping[str, Any]], policy: GatePolicy) -> dict[str, Any]:
    """The gate's ``human`` metric from a run's votes under the policy's ``[human]``
    section: the candidate's win rate (0..1) with its Wilson interval and the verdict."""
    h = policy.human
    t = tally(votes)
    verdict, reason = human_verdict(t.wins, t.rated_pairs, h, policy.level)
    metric: dict[str, Any] = {
        "name": "human", "title": "Human side-by-side", "verdict": verdict, "blocks": h.blocks,
        "estimate": None, "low": None, "high": None, "unit": "candidate win rate",
        "threshold": h.min_win_rate,
        "rule": f"win rate ≥ {h.min_win_rate:g} (ties ½), from {h.min_pairs} rated pairs",
        "n": t.rated_pairs, "votes": t.votes, "raters": t.raters,
        "counts": {"candidate": t.candidate, "same": t.same, "baseline": t.baseline},
    }  # fmt: skip
    if t.rated_pairs:
        ci = wilson(t.wins, t.rated_pairs, policy.level)  # type: ignore[arg-type]  # ½ wins
        metric.update(estimate=ci.estimate, low=ci.low, high=ci.high)
    if t.rated_pairs < h.min_pairs:
        metric["note"] = reason  # "needs N more rated pairs (n of min_pairs)"
    else:
        metric["note"] = f"{t.rated_pairs} rated pairs, {t.votes} votes by {t.raters} raters"
    return metric

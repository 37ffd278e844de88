"""Rating analytics for the review queue: calibration of automatic scores, raters, trends.

Pure functions over plain rows (tuples, dicts, named tuples or numpy arrays) as returned by
``diffwatch.db.queries.ratings_analytics``; results are frozen dataclasses whose ``to_dict()`` is
JSON-safe (no NaN, datetimes as ISO 8601 strings). Undefined statistics are ``None`` with a
``reason`` string instead of raising or returning NaN, so pages can show why.

Human ratings are the ground truth: adherence and quality are on a 1–5 scale; an item
counts as human-NSFW when *any* of its raters flagged it ``nsfw``.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime
from typing import Any

import numpy as np

BUCKETS = ("hour", "day", "week")


def _json(value: Any) -> Any:
    """Make dataclass fields JSON-safe (datetimes to ISO strings, tuples to lists)."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json(v) for v in value]
    return value


def _get(row: Any, name: str, index: int, alias: str | None = None) -> Any:
    """Field ``name`` (or ``alias``) of a mapping, an object with attributes, or a tuple."""
    for key in (name, alias) if alias else (name,):
        if isinstance(row, Mapping) and key in row:
            return row[key]
        if not isinstance(row, Mapping) and hasattr(row, key):
            return getattr(row, key)
    if isinstance(row, Mapping):
        raise KeyError(f"rating row has no {name!r} field: {sorted(row)}")
    return row[index]


# --- CLIP score against human adherence ------------------------------------------------


@dataclass(frozen=True, slots=True)
class ClipBin:
    """One CLIP-score bin: ``[lo, hi)`` (the last bin includes ``hi``), CLIP units 0..100."""

    lo: float
    hi: float
    n: int
    mean_adherence: float  # mean human adherence, 1..5
    ci_low: float | None  # 95% t-interval of the mean; None when n < 2
    ci_high: float | None


@dataclass(frozen=True, slots=True)
class ClipCalibration:
    """Spearman rank correlation of CLIP score and mean human adherence, and a binned table.

    ``rho``/``p_value`` are None with ``reason`` set when undefined (n < 3, constant input).
    """

    rho: float | None
    p_value: float | None
    n: int  # items with both a CLIP score and a human adherence
    bins: tuple[ClipBin, ...]
    reason: str | None = None

    def to_dict(self) -> dict:
        """Plain JSON-safe dict."""
        return _json(asdict(self))


def _mean_ci(values: np.ndarray) -> tuple[float | None, float | None]:
    """95% t-interval of the mean of ``values``; (None, None) for fewer than 2 values."""
    if len(values) < 2:
        return None, None
    from scipy import stats

    half = stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / math.sqrt(len(values))
    mean = float(values.mean())
    return mean - float(half), mean + float(half)


def clip_vs_adherence(
    clip_scores: Sequence[float | None] | np.ndarray,
    adherence: Sequence[float | None] | np.ndarray,
    bins: int = 5,
) -> ClipCalibration:
    """Spearman rho (scipy.stats.spearmanr, ties averaged) and a quantile-binned table.

    ``clip_scores[i]`` (0..100) and ``adherence[i]`` (mean human adherence, 1..5) belong to
    one item; pairs with a None/NaN on either side are dropped. Bins are ``bins`` quantile
    bins of the CLIP score; tied quantile edges are merged, so heavy ties give fewer bins.
    """
    if len(clip_scores) != len(adherence):
        raise ValueError(
            f"clip_scores has {len(clip_scores)} values but adherence has {len(adherence)}; "
            "pass one CLIP score and one adherence per item."
        )
    if bins < 1:
        raise ValueError(f"bins must be at least 1, got {bins}")
    pairs = [
        (float(c), float(a))
        for c, a in zip(clip_scores, adherence, strict=True)
        if c is not None and a is not None and math.isfinite(c) and math.isfinite(a)
    ]
    n = len(pairs)
    if n == 0:
        return ClipCalibration(None, None, 0, (), "no items with both a CLIP score and a rating")
    x = np.array([p[0] for p in pairs])
    y = np.array([p[1] for p in pairs])

    edges = np.unique(np.quantile(x, np.linspace(0.0, 1.0, bins + 1)))
    # Interior edges only: values equal to an edge go to the bin above, the max to the last.
    which = np.searchsorted(edges[1:-1], x, side="right") if len(edges) > 1 else np.zeros(n, int)
    table = []
    for b in range(max(len(edges) - 1, 1)):
        ys = y[which == b]
        if len(ys) == 0:
            continue
        hi = float(edges[min(b + 1, len(edges) - 1)])
        table.append(ClipBin(float(edges[b]), hi, len(ys), float(ys.mean()), *_mean_ci(ys)))

    if n < 3:
        return ClipCalibration(None, None, n, tuple(table), f"n = {n}: need at least 3 items")
    if np.all(x == x[0]) or np.all(y == y[0]):
        which_const = "CLIP scores" if np.all(x == x[0]) else "adherence ratings"
        return ClipCalibration(None, None, n, tuple(table), f"all {which_const} are equal")
    from scipy import stats

    # Finite here: n >= 3 and neither side is constant (the cases where spearmanr gives NaN).
    res = stats.spearmanr(x, y)
    return ClipCalibration(float(res.statistic), float(res.pvalue), n, tuple(table))


# --- NSFW flag against the human nsfw flag --------------------------------------------


@dataclass(frozen=True, slots=True)
class NsfwCalibration:
    """The automatic NSFW flag against the human one (ground truth: any rater flagged nsfw).

    Counts are items. ``precision`` is None with no automatic positives, ``recall`` None
    with no human positives, ``f1`` None when either is. The suggested threshold (flag when
    score >= threshold, as the scorer does) is None with ``suggestion_reason`` when the data
    cannot support one.
    """

    threshold: float | None  # the current threshold, score units 0..1
    n: int  # items with an automatic decision
    tp: int
    fp: int
    fn: int
    tn: int
    precision: float | None
    recall: float | None
    f1: float | None
    suggested_threshold: float | None
    suggested_precision: float | None
    suggested_recall: float | None
    suggested_f1: float | None
    target_recall: float | None  # None: the suggestion maximises F1
    reason: str | None = None
    suggestion_reason: str | None = None

    def to_dict(self) -> dict:
        """Plain JSON-safe dict."""
        return _json(asdict(self))


def _prf(tp: int, fp: int, fn: int) -> tuple[float | None, float | None, float | None]:
    """Precision, recall, F1; None where the denominator is zero (F1 is 0 when p = r = 0)."""
    p = tp / (tp + fp) if tp + fp else None
    r = tp / (tp + fn) if tp + fn else None
    f1 = None if p is None or r is None else (2 * p * r / (p + r) if p + r else 0.0)
    return p, r, f1


def nsfw_vs_human(
    scores: Sequence[float | None],
    auto_flagged: Sequence[bool | None],
    human_flagged: Sequence[bool],
    threshold: float | None,
    target_recall: float | None = None,
) -> NsfwCalibration:
    """Precision/recall/F1 of the automatic flag, and a suggested threshold.

    Per item: ``scores`` is the NSFW scorer's value (highest policy-label score, 0..1),
    ``auto_flagged`` its flag (None: derived as ``score >= threshold``), ``human_flagged``
    whether any rater flagged nsfw. Items with neither an automatic flag nor a score are
    dropped. The suggestion scans every observed positive score as a threshold and keeps
    the best F1 (ties: the higher threshold, which flags fewer images) or, with
    ``target_recall``, the highest threshold whose recall is at least the target.
    """
    if not len(scores) == len(auto_flagged) == len(human_flagged):
        raise ValueError(
            f"scores ({len(scores)}), auto_flagged ({len(auto_flagged)}) and human_flagged "
            f"({len(human_flagged)}) must have one value per item"
        )
    if target_recall is not None and not 0.0 < target_recall <= 1.0:
        raise ValueError(f"target_recall must be in (0, 1], got {target_recall}")
    items: list[tuple[float | None, bool, bool]] = []
    for s, a, h in zip(scores, auto_flagged, human_flagged, strict=True):
        s = None if s is None or not math.isfinite(float(s)) else float(s)
        if a is None:
            if s is None or threshold is None:
                continue
            a = s >= threshold
        items.append((s, bool(a), bool(h)))

    tp = sum(a and h for _, a, h in items)
    fp = sum(a and not h for _, a, h in items)
    fn = sum(h and not a for _, a, h in items)
    tn = len(items) - tp - fp - fn
    p, r, f1 = _prf(tp, fp, fn)
    reasons = []
    if tp + fn == 0:
        reasons.append("no human-flagged items: recall undefined")
    if tp + fp == 0:
        reasons.append("no automatically flagged items: precision undefined")

    best: tuple[float, float | None, float | None, float | None] | None = None
    scored = [(s, h) for s, _, h in items if s is not None]
    n_pos = sum(h for _, h in scored)
    why = None
    if not scored:
        why = "no items with an NSFW score"
    elif n_pos == 0:
        why = "no human-flagged items among scored ones: recall undefined at any threshold"
    elif n_pos == len(scored):
        why = "no human-negative items among scored ones: false positives cannot be measured"
    else:
        # A threshold of 0 flags every image (the scorer writes 0 when nothing is detected),
        # and the NSFW policy requires a threshold in (0, 1], so 0 is not a candidate.
        for t in sorted({s for s, _ in scored if s > 0}, reverse=True):
            ttp = sum(s >= t and h for s, h in scored)
            tfp = sum(s >= t and not h for s, h in scored)
            cp, cr, cf = _prf(ttp, tfp, n_pos - ttp)
            if target_recall is not None:
                if cr is not None and cr >= target_recall:
                    best = (t, cp, cr, cf)  # highest threshold reaching the target
                    break
            elif cf is not None and (best is None or cf > (best[3] or 0.0)):
                best = (t, cp, cr, cf)  # strict '>': ties keep the higher threshold
        if best is None:
            why = (
                f"no threshold above 0 reaches recall {target_recall}"
                if target_recall is not None
                else "no threshold above 0 flags a human-flagged item"
            )
    st, sp, sr, sf = best if best is not None else (None, None, None, None)
    # Positional, in field order: threshold, n, confusion, current P/R/F1, suggestion.
    return NsfwCalibration(
        threshold, len(items), tp, fp, fn, tn, p, r, f1, st, sp, sr, sf, target_recall,
        "; ".join(reasons) or None, why,
    )  # fmt: skip


# --- raters ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RaterStats:
    """Throughput and deviation of one rater.

    ``ratings_per_hour``: ratings on days with at least two ratings, divided by the summed
    hours between the first and last rating of each such day (UTC days); days with a single
    rating have no duration and are left out of both. None when no day has two ratings.
    ``*_deviation``: mean over the rater's overlapping items of (rater's score − mean of
    the other raters' scores on that item), in scale points; None without overlap.
    """

    rater: str
    n_ratings: int
    active_days: int
    active_hours: float
    ratings_per_hour: float | None
    mean_quality: float
    mean_adherence: float
    quality_deviation: float | None
    adherence_deviation: float | None
    n_overlap_items: int

    def to_dict(self) -> dict:
        """Plain JSON-safe dict."""
        return _json(asdict(self))


def _utc(ts: datetime) -> datetime:
    """``ts`` in UTC; naive datetimes are taken to be UTC already."""
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def rater_stats(ratings: Iterable[Any]) -> list[RaterStats]:
    """Per-rater statistics, sorted by rater name.

    Each rating row has ``item_id, rater, quality, adherence, rated_at`` (by name in a
    mapping or named tuple, else in that order). ``rater_username`` is accepted for
    ``rater``, as the query names it.
    """
    rows = [
        (
            _get(row, "item_id", 0),
            str(_get(row, "rater", 1, alias="rater_username")),
            float(_get(row, "quality", 2)),
            float(_get(row, "adherence", 3)),
            _utc(_get(row, "rated_at", 4)),
        )
        for row in ratings
    ]
    by_item: dict[Any, dict[str, tuple[float, float]]] = defaultdict(dict)
    by_rater: dict[str, list[tuple[Any, float, float, datetime]]] = defaultdict(list)
    for item, rater, q, a, ts in rows:
        by_item[item][rater] = (q, a)
        by_rater[rater].append((item, q, a, ts))

    out = []
    for rater in sorted(by_rater):
        mine = by_rater[rater]
        days: dict[date, list[datetime]] = defaultdict(list)
        for *_, ts in mine:
            days[ts.date()].append(ts)
        spans = [(len(t), (max(t) - min(t)).total_seconds() / 3600) for t in days.values()]
        hours = sum(h for c, h in spans if c >= 2 and h > 0)
        counted = sum(c for c, h in spans if c >= 2 and h > 0)
        dq, da = [], []
        for item, q, a, _ in mine:
            others = [v for r, v in by_item[item].items() if r != rater]
            if others:
                dq.append(q - sum(v[0] for v in others) / len(others))
                da.append(a - sum(v[1] for v in others) / len(others))
        out.append(
            RaterStats(
                rater=rater,
                n_ratings=len(mine),
                active_days=len(days),
                active_hours=hours,
                ratings_per_hour=counted / hours if hours > 0 else None,
                mean_quality=sum(m[1] for m in mine) / len(mine),
                mean_adherence=sum(m[2] for m in mine) / len(mine),
                quality_deviation=sum(dq) / len(dq) if dq else None,
                adherence_deviation=sum(da) / len(da) if da else None,
                n_overlap_items=len(dq),
            )
        )
    return out


# --- ratings over time -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RatingsBucket:
    """Ratings of one model version in one time bucket (start of the bucket, UTC)."""

    bucket: datetime
    model_version: str
    n: int
    mean_quality: float
    mean_adherence: float

    def to_dict(self) -> dict:
        """Plain JSON-safe dict."""
        return _json(asdict(self))


def ratings_over_time(rows: Iterable[Any], bucket: str = "day") -> list[RatingsBucket]:
    """Tidy rows per (bucket, model_version), sorted by both.

    Each row has ``rated_at, model_version, quality, adherence`` (by name in a mapping or
    named tuple, else in that order). ``bucket`` is "hour", "day" or "week" (weeks start
    on Monday 00:00 UTC).
    """
    if bucket not in BUCKETS:
        raise ValueError(f"bucket: {bucket!r} is not one of {', '.join(BUCKETS)}")
    acc: dict[tuple[datetime, str], list[float]] = {}
    for row in rows:
        ts = _utc(_get(row, "rated_at", 0))
        start = ts.replace(minute=0, second=0, microsecond=0)
        if bucket != "hour":
            start = start.replace(hour=0)
        if bucket == "week":
            start = datetime.fromordinal(start.toordinal() - start.weekday()).replace(tzinfo=UTC)
        key = (start, str(_get(row, "model_version", 1)))
        s = acc.setdefault(key, [0, 0.0, 0.0])
        s[0] += 1
        s[1] += float(_get(row, "quality", 2))
        s[2] += float(_get(row, "adherence", 3))
    return [RatingsBucket(b, v, int(n), q / n, a / n) for (b, v), (n, q, a) in sorted(acc.items())]

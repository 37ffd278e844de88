"""Drift of generation parameters between two windows (pure, deterministic).

Categorical parameters (sampler, resolution, and steps when it takes few values) get a
chi-square test of homogeneity on a 2 × k table with Cramér's V as effect size; continuous
ones (cfg_scale, and steps when it takes many values) get a two-sample Kolmogorov–Smirnov
test with D as effect size. ``drifted`` uses a Bonferroni level, alpha / parameters tested.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

NONE = "(none)"  # category of a missing value
OTHER = "(other)"  # category of merged rare values
MIN_EXPECTED = 5.0  # chi-square needs about 5 expected per cell to trust its p-value
SUMMARY_TOP = 8  # categories shown in a summary before the rest become "(other)"
STEPS_CATEGORICAL_MAX = 12  # steps with at most this many distinct values is categorical


@dataclass(frozen=True, slots=True)
class ParamTest:
    """One parameter's drift test between the reference and the current window."""

    parameter: str  # "sampler", "steps", "cfg_scale", "resolution"
    test: str  # "chi2" or "ks"
    statistic: float  # chi-square statistic, or KS D
    p_value: float
    effect_size: float  # Cramér's V for chi2 (0..1), KS D for ks (0..1)
    effect_size_name: str  # "cramers_v" or "ks_d"
    drifted: bool  # p_value <= alpha_corrected
    n_reference: int  # rows of the window (missing values included for chi2, not for ks)
    n_current: int
    reference_summary: dict  # categorical: value -> share; numeric: median, p10, p90, mean
    current_summary: dict
    alpha_corrected: float = 0.05  # Bonferroni level: alpha / number of parameters tested

    def to_dict(self) -> dict:
        """Plain JSON-serialisable dict (no numpy scalars; NaN becomes None)."""
        return {k: _plain(v) for k, v in asdict(self).items()}


def parameter_drift(
    reference: Sequence[Mapping[str, Any]],
    current: Sequence[Mapping[str, Any]],
    *,
    alpha: float = 0.05,
) -> list[ParamTest]:
    """Tests of sampler, steps, cfg_scale and resolution, reference vs current rows.

    Rows are dicts with keys sampler, steps, cfg_scale, width, height (any may be missing or
    None). A parameter is skipped when either window has no value for it at all.
    """
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must lie strictly between 0 and 1, got {alpha!r}; use 0.05")
    tests: list[dict[str, Any]] = []
    for name, values in (
        ("sampler", _sampler),
        ("steps", _steps),
        ("cfg_scale", _cfg),
        ("resolution", _resolution),
    ):
        ref = [values("reference", i, r) for i, r in enumerate(reference)]
        cur = [values("current", i, r) for i, r in enumerate(current)]
        if all(v is None for v in ref) or all(v is None for v in cur):
            continue
        if name == "cfg_scale" or (
            name == "steps" and len({v for v in ref + cur if v is not None}) > STEPS_CATEGORICAL_MAX
        ):
            tests.append(_ks(name, ref, cur))
        else:
            tests.append(_chi2(name, ref, cur, numeric=name == "steps"))
    level = alpha / len(tests) if tests else alpha
    return [ParamTest(**t, drifted=t["p_value"] <= level, alpha_corrected=level) for t in tests]


def _chi2(name: str, ref: list[Any], cur: list[Any], *, numeric: bool) -> dict[str, Any]:
    from scipy.stats import chi2_contingency

    ref_cats = [NONE if v is None else _label(v) for v in ref]
    cur_cats = [NONE if v is None else _label(v) for v in cur]
    table = _merged_table(Counter(ref_cats), Counter(cur_cats))
    n_ref, n_cur = len(ref), len(cur)
    if table.shape[1] < 2:  # one category on both sides: nothing to test, nothing moved
        stat, p = 0.0, 1.0
    else:
        # No Yates correction: the merge above already keeps expected counts >= 5.
        res = chi2_contingency(table, correction=False)
        stat, p = float(res.statistic), float(res.pvalue)
    v = math.sqrt(stat / (n_ref + n_cur)) if table.shape[1] >= 2 else 0.0
    return {
        "parameter": name,
        "test": "chi2",
        "statistic": stat,
        "p_value": p,
        "effect_size": v,
        "effect_size_name": "cramers_v",
        "n_reference": n_ref,
        "n_current": n_cur,
        "reference_summary": _summary(ref, ref_cats, numeric),
        "current_summary": _summary(cur, cur_cats, numeric),
    }


def _ks(name: str, ref: list[Any], cur: list[Any]) -> dict[str, Any]:
    from scipy.stats import ks_2samp

    a = np.array([v for v in ref if v is not None], float)
    b = np.array([v for v in cur if v is not None], float)
    res = ks_2samp(a, b)
    return {
        "parameter": name,
        "test": "ks",
        "statistic": float(res.statistic),
        "p_value": float(res.pvalue),
        "effect_size": float(res.statistic),
        "effect_size_name": "ks_d",
        "n_reference": int(a.size),
        "n_current": int(b.size),
        "reference_summary": _numeric_summary(ref),
        "current_summary": _numeric_summary(cur),
    }


def _merged_table(ref: Counter[str], cur: Counter[str]) -> np.ndarray:
    """2 × k counts with rare categories merged so every expected count is at least 5."""
    n_ref, n_cur = sum(ref.values()), sum(cur.values())
    total = n_ref + n_cur
    # Expected count of a category in the smaller window is its pooled count · n_small / N.
    needed = MIN_EXPECTED * total / min(n_ref, n_cur)
    pooled = ref + cur
    order = sorted(pooled, key=lambda c: (-pooled[c], c))
    kept = [c for c in order if pooled[c] >= needed]
    rare = [c for c in order if pooled[c] < needed]
    # Fold the smallest kept categories into the merged one until it is large enough too.
    while rare and sum(pooled[c] for c in rare) < needed and kept:
        rare.append(kept.pop())
    columns = [[ref[c] for c in kept], [cur[c] for c in kept]]
    if rare:
        columns[0].append(sum(ref[c] for c in rare))
        columns[1].append(sum(cur[c] for c in rare))
    return np.array(columns, dtype=float)


def _summary(values: list[Any], cats: list[str], numeric: bool) -> dict:
    if numeric:
        return _numeric_summary(values)
    counts = Counter(cats)
    n = len(cats)
    top = sorted(counts.items(), key=lambda t: (-t[1], t[0]))
    out = {c: k / n for c, k in top[:SUMMARY_TOP]}
    rest = sum(k for _, k in top[SUMMARY_TOP:])
    if rest:
        out[OTHER] = rest / n
    return out


def _numeric_summary(values: list[Any]) -> dict:
    x = np.array([v for v in values if v is not None], float)
    missing = (len(values) - x.size) / len(values) if values else 0.0
    if x.size == 0:
        return {"median": None, "p10": None, "p90": None, "mean": None, "missing": missing}
    p10, median, p90 = np.percentile(x, [10, 50, 90])
    return {
        "median": float(median),
        "p10": float(p10),
        "p90": float(p90),
        "mean": float(x.mean()),
        "missing": float(missing),
    }


def _label(value: Any) -> str:
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def _sampler(side: str, i: int, row: Mapping[str, Any]) -> str | None:
    v = row.get("sampler")
    if v is None:
        return None
    if not isinstance(v, str):
        raise ValueError(
            f"{side} row {i}: 'sampler' must be a string or None, got {v!r}; "
            f"pass the sampler name as logged"
        )
    return v.strip() or None  # an empty name is as good as no name


def _number(side: str, i: int, row: Mapping[str, Any], key: str, *, integer: bool) -> Any:
    v = row.get(key)
    if v is None:
        return None
    ok = isinstance(v, int | float | np.integer | np.floating) and not isinstance(v, bool)
    if ok and math.isnan(float(v)):
        return None  # NaN is how pandas spells a missing value
    if not ok or (integer and not float(v).is_integer()):
        kind = "an integer" if integer else "a number"
        raise ValueError(
            f"{side} row {i}: {key!r} must be {kind} or None, got {v!r}; "
            f"fix the value or pass None for unknown"
        )
    return int(v) if integer else float(v)


def _steps(side: str, i: int, row: Mapping[str, Any]) -> int | None:
    return _number(side, i, row, "steps", integer=True)


def _cfg(side: str, i: int, row: Mapping[str, Any]) -> float | None:
    return _number(side, i, row, "cfg_scale", integer=False)


def _resolution(side: str, i: int, row: Mapping[str, Any]) -> str | None:
    w = _number(side, i, row, "width", integer=True)
    h = _number(side, i, row, "height", integer=True)
    return None if w is None or h is None else f"{w}x{h}"


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, bool | str | int) or value is None:
        return value
    value = float(value)
    return value if math.isfinite(value) else None

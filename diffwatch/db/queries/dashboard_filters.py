"""What every dashboard query takes: a time range and filters, and how they map onto rollups.

Rollups are read, never raw rows. A bucket belongs to a range when its *start* lies in
``[start, end)``: ranges resolve to whole minutes (ranges up to 6 h that lie within the
minute tier's retention) or whole hours (anything else).
"""

from __future__ import annotations

from typing import Any, Literal

from diffwatch.model.filters import Filters

GroupBy = Literal["version", "deployment", "gpu_type"] | None
# Grouping level of rollup_generations for (model/version, deployment, gpu type) needed.
_LEVELS = {
    (False, False, False): 15,
    (True, False, False): 3,
    (False, True, False): 13,
    (False, False, True): 14,
    (True, True, False): 1,
    (True, False, True): 2,
}


def level(f: Filters, by: GroupBy, need_gpu: bool = False) -> int:
    """The rollup_generations level that holds the dimensions filtered or grouped on."""
    m = bool(f.models or f.versions) or by == "version"
    d = bool(f.deployments) or by == "deployment"
    g = bool(f.gpu_types) or by == "gpu_type" or need_gpu
    return _LEVELS.get((m, d, g), 0)


def where(f: Filters, width: int, alias: str = "") -> tuple[str, dict[str, Any]]:
    """WHERE conditions (without lvl) on a rollup table with the usual key columns."""
    a = f"{alias}." if alias else ""
    conds = [f"{a}width_s = %(w)s", f"{a}bucket >= %(start)s", f"{a}bucket < %(end)s"]
    params: dict[str, Any] = {"w": width, "start": f.start, "end": f.end}
    for col, values in (
        ("model", f.models),
        ("model_version", f.versions),
        ("deployment", f.deployments),
        ("gpu_type", f.gpu_types),
    ):
        if values:
            conds.append(f"{a}{col} = ANY(%({col})s)")
            params[col] = list(values)
    return " AND ".join(conds), params


def group_sql(by: GroupBy, alias: str = "") -> str:
    """SQL expression of a row's group label ('' when not grouped)."""
    a = f"{alias}." if alias else ""
    if by == "version":
        return f"{a}model || '/' || {a}model_version"
    if by == "deployment":
        return f"{a}deployment"
    if by == "gpu_type":
        return f"{a}gpu_type"
    return "''"


def point_sql(step_s: int | None, alias: str = "") -> str:
    """SQL expression of a bucket's time-series point (%(start)s for one point per range)."""
    a = f"{alias}." if alias else ""
    if step_s is None:
        return "%(start)s::timestamptz"
    return f"date_bin(make_interval(secs => {int(step_s)}), {a}bucket, %(start)s::timestamptz)"


def rate(num: float, den: float) -> float | None:
    """``num / den``, or None when ``den`` is 0 or None (sums of bigint arrive as Decimal)."""
    return float(num) / float(den) if den else None

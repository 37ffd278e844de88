"""Reads for the Releases page: release-gate runs, one run, and its summary as table rows.

One short connection per query (``diffwatch.app.data._run``), results kept 30 s. Runs are
read through ``diffwatch.db.queries.gate``. A finished run's ``summary`` (written by
``diffwatch.gate.evaluate``) is stored JSON: the shaping functions here read it defensively,
so a missing or mistyped field shows as "–" instead of breaking the page. Everything they
return is plain data (dicts, lists, strings, numbers); no Streamlit element is drawn here.
"""

from __future__ import annotations

import json
import math
from datetime import UTC
from typing import Any

import streamlit as st

from diffwatch.app.data import TTL_S, _run

RUNS_LIMIT = 200  # newest runs listed on the page
SIDES = ("candidate", "baseline")
VERDICT_MARKS = {"pass": "✓ pass", "fail": "✗ fail", "inconclusive": "? inconclusive"}
# Lineage fields in the order a person compares them, (label, where in the side's identity).
LINEAGE_FIELDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("label", ("label",)),
    ("source", ("source",)),
    ("manifest", ("manifest",)),
    ("manifest sha256", ("manifest_sha256",)),
    ("weights sha256", ("weights_sha256",)),
    ("pipeline", ("pipeline",)),
    ("scheduler", ("scheduler",)),
    ("precision", ("precision",)),
    ("overrides", ("overrides",)),
    ("load time (s)", ("load_s",)),
    ("GPU", ("environment", "gpu")),
    ("driver", ("environment", "driver")),
    ("torch", ("environment", "torch")),
    ("CUDA", ("environment", "cuda")),
    ("diffusers", ("environment", "diffusers")),
    ("transformers", ("environment", "transformers")),
    ("open-clip-torch", ("environment", "open-clip-torch")),
    ("diffwatch", ("environment", "diffwatch")),
    ("python", ("environment", "python")),
)


# -- reads ---------------------------------------------------------------------------------


@st.cache_data(ttl=TTL_S, show_spinner=False)
def runs(limit: int = RUNS_LIMIT) -> list[dict[str, Any]]:
    """The newest ``limit`` gate runs, newest first, without their summaries."""
    from diffwatch.db.queries.gate import runs as q

    return [dict(r) for r in _run(lambda c: q(c, limit))]


@st.cache_data(ttl=TTL_S, show_spinner=False)
def run(run_id: int) -> dict[str, Any] | None:
    """One gate run with its summary, or None when there is no such run."""
    from diffwatch.db.queries.gate import run as q

    row = _run(lambda c: q(c, run_id))
    return None if row is None else dict(row)


@st.cache_data(ttl=TTL_S, show_spinner=False)
def progress(run_id: int) -> tuple[int, int]:
    """(chunks done, chunks in all) of a run still in progress."""
    from diffwatch.db.queries.gate import progress as q

    return _run(lambda c: q(c, run_id))


# -- defensive readers of stored JSON ---------------------------------------------------------


def as_dict(v: Any) -> dict[str, Any]:
    """``v`` if it is a dict, else an empty one."""
    return v if isinstance(v, dict) else {}


def as_list(v: Any) -> list[Any]:
    """``v`` if it is a list, else an empty one."""
    return v if isinstance(v, list) else []


def num(v: Any) -> float | None:
    """``v`` as a finite float, None when it is missing, not a number, NaN or infinite."""
    if isinstance(v, bool) or not isinstance(v, int | float):
        return None
    return float(v) if math.isfinite(v) else None


def fmt(v: Any, digits: int = 3) -> str:
    """A number with ``digits`` significant digits ("–" when missing); text as it is."""
    x = num(v)
    if x is None:
        return "–" if v is None or isinstance(v, int | float) else str(v)
    if x == int(x) and abs(x) < 1e6:
        return str(int(x))
    return f"{x:.{digits}g}"


def interval(low: Any, high: Any, digits: int = 3) -> str:
    """An interval as "low to high", "–" when either end is missing."""
    if num(low) is None or num(high) is None:
        return "–"
    return f"{fmt(low, digits)} to {fmt(high, digits)}"


def level(summary: dict[str, Any]) -> float:
    """The confidence level of the run's intervals (the policy's, default 0.95)."""
    x = num(as_dict(summary.get("policy")).get("level"))
    return x if x is not None and 0 < x < 1 else 0.95


def verdict_mark(verdict: Any) -> str:
    """A verdict with a marker that reads without colour ("–" when there is none)."""
    return VERDICT_MARKS.get(str(verdict), "–" if verdict is None else str(verdict))


# -- shaping ----------------------------------------------------------------------------------


def run_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The run list as table rows (text cells: labels are shown as typed)."""
    out = []
    for r in rows:
        started, finished = r.get("created_at"), r.get("finished_at")
        minutes = (finished - started).total_seconds() / 60 if started and finished else None
        out.append(
            {
                "run": r.get("id"),
                "started (UTC)": started.astimezone(UTC).strftime("%Y-%m-%d %H:%M")
                if started
                else "?",
                "candidate": r.get("candidate_label"),
                "baseline": r.get("baseline_label"),
                "mode": r.get("mode"),
                "status": r.get("status"),
                "verdict": verdict_mark(r.get("verdict")) if r.get("status") == "done" else "–",
                "minutes": None if minutes is None else round(minutes, 1),
                "by": r.get("created_by"),
                "error": r.get("error"),
            }
        )
    return out


def metrics(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """The summary's metrics that are dicts with a name."""
    return [m for m in as_list(summary.get("metrics")) if isinstance(m, dict) and m.get("name")]


def _details(m: dict[str, Any]) -> str:
    """A metric's extras in a few words (win rate, p-value, flags, departed items, ...)."""
    parts = []
    win = as_dict(m.get("win_rate"))
    if num(win.get("estimate")) is not None:
        parts.append(
            f"win rate {fmt(win['estimate'])} ({interval(win.get('low'), win.get('high'))})"
        )
    if num(m.get("p_value")) is not None:
        parts.append(f"p = {fmt(m['p_value'])}")
    if "flagged_candidate" in m or "flagged_baseline" in m:
        parts.append(
            f"flagged {fmt(m.get('flagged_candidate'))} vs {fmt(m.get('flagged_baseline'))}, "
            f"{len(as_list(m.get('new_flags')))} newly"
        )
    if "departed" in m:
        parts.append(f"{len(as_list(m.get('departed')))} departed")
    peak = as_dict(m.get("peak_mib"))
    if peak:
        parts.append(f"peak {fmt(peak.get('candidate'), 5)} vs {fmt(peak.get('baseline'), 5)} MiB")
    if m.get("note"):
        parts.append(str(m["note"]))
    return "; ".join(parts)


def metric_rows(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """One table row per metric: verdict, estimate, interval, unit, whether it blocks, its
    rule (which names the threshold), n, and its extras in words."""
    ci = f"{level(summary) * 100:g} % interval"
    return [
        {
            "metric": str(m.get("title") or m.get("name")),
            "verdict": verdict_mark(m.get("verdict")),
            "estimate": fmt(m.get("estimate")),
            ci: interval(m.get("low"), m.get("high")),
            "unit": m.get("unit") or "",
            "gates": "blocks release" if m.get("blocks") else "advisory",
            "rule": m.get("rule") or "",
            "n": fmt(m.get("n")),
            "details": _details(m),
        }
        for m in metrics(summary)
    ]


def chart_metrics(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """Metrics with an estimate and a threshold, for the interval chart: title, unit,
    estimate, low, high (None when there is no interval), threshold, verdict, and whether
    higher is better (the rule reads "≥")."""
    out = []
    for m in metrics(summary):
        est, thr = num(m.get("estimate")), num(m.get("threshold"))
        if est is None or thr is None:
            continue
        low, high = num(m.get("low")), num(m.get("high"))
        has_ci = low is not None and high is not None
        out.append(
            {
                "title": str(m.get("title") or m.get("name")),
                "unit": str(m.get("unit") or ""),
                "estimate": est,
                "low": low if has_ci else None,
                "high": high if has_ci else None,
                "threshold": thr,
                "verdict": str(m.get("verdict")),
                "higher_better": "≥" in str(m.get("rule") or ""),
            }
        )
    return out


def blocking_by_verdict(summary: dict[str, Any], verdict: str) -> list[str]:
    """Titles of the blocking metrics with ``verdict``."""
    return [
        str(m.get("title") or m["name"])
        for m in metrics(summary)
        if m.get("blocks") and m.get("verdict") == verdict
    ]


def human_metric(summary: dict[str, Any]) -> dict[str, Any] | None:
    """The metric named "human" (raters' side-by-side votes), None when not enqueued."""
    return next((m for m in metrics(summary) if m.get("name") == "human"), None)


def latency_rows(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """Serving cost per batch size, one row a side: p50 and p95 latency (ms), images per
    second and USD per image; the candidate's row carries the median ratio and its interval."""
    lat = next((m for m in metrics(summary) if m.get("name") == "latency"), None)
    if lat is None:
        return []
    ratio = f"median ratio ({level(summary) * 100:g} % interval)"
    rows = []
    for b in as_list(as_dict(lat).get("batch_sizes")):
        if not isinstance(b, dict):
            continue
        for side in SIDES:
            s = as_dict(b.get(side))
            rows.append(
                {
                    "batch size": fmt(b.get("batch_size")),
                    "side": side,
                    "p50 ms": num(s.get("p50_ms")),
                    "p95 ms": num(s.get("p95_ms")),
                    "images/s": num(s.get("images_per_s")),
                    "USD/image": num(s.get("usd_per_image")),
                    ratio: (
                        f"{fmt(b.get('ratio'))} ({interval(b.get('low'), b.get('high'))})"
                        if side == "candidate"
                        else ""
                    ),
                }
            )
    return rows


def latency_gpu(summary: dict[str, Any]) -> str | None:
    """The GPU the serving times were measured on, if stored."""
    lat = next((m for m in metrics(summary) if m.get("name") == "latency"), None)
    gpu = as_dict(lat).get("gpu")
    return str(gpu) if gpu else None


def _dig(d: dict[str, Any], path: tuple[str, ...]) -> Any:
    for key in path:
        d = as_dict(d).get(key)  # type: ignore[assignment]
    return d


def _cell(v: Any) -> str:
    if v is None or v == {} or v == []:
        return "–"
    if isinstance(v, dict | list):
        return json.dumps(v, ensure_ascii=False, sort_keys=True)
    return fmt(v, 4) if isinstance(v, int | float) and not isinstance(v, bool) else str(v)


def lineage_rows(candidate: Any, baseline: Any) -> list[dict[str, str]]:
    """Both sides' identities field by field (labels, weights hash, pipeline, library
    versions, GPU and driver) and whether they are the same; fields neither side has are
    left out."""
    c, b = as_dict(candidate), as_dict(baseline)
    rows = []
    for label, path in LINEAGE_FIELDS:
        cv, bv = _dig(c, path), _dig(b, path)
        if cv is None and bv is None:
            continue
        cc, bc = _cell(cv), _cell(bv)
        rows.append({"field": label, "candidate": cc, "baseline": bc, "same": cc == bc})
    return rows


def category_rows(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """Prompt alignment per category: pairs, mean CLIPScore difference and its interval."""
    al = next((m for m in metrics(summary) if m.get("name") == "alignment"), None)
    ci = f"{level(summary) * 100:g} % interval"
    return [
        {
            "category": str(c.get("category")),
            "pairs": fmt(c.get("n")),
            "CLIPScore difference": fmt(c.get("estimate")),
            ci: interval(c.get("low"), c.get("high")),
        }
        for c in as_list(as_dict(al).get("categories"))
        if isinstance(c, dict)
    ]


def pairs(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """The compared pairs, worst first (as stored), each a dict."""
    return [p for p in as_list(summary.get("pairs")) if isinstance(p, dict)]


def error_rows(summary: dict[str, Any]) -> list[dict[str, str]]:
    """Items that failed to generate or score: key, side, error."""
    return [
        {"item": str(e.get("key")), "side": str(e.get("side")), "error": str(e.get("error"))}
        for e in as_list(summary.get("errors"))
        if isinstance(e, dict)
    ]

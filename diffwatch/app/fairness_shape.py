"""Shaping bias-probe runs for the Fairness page (pure: no Streamlit, no SQL).

A run's ``summary`` is stored JSON (``diffwatch.bias.summary.summarize_run``); everything here
reads it defensively, so a missing or mistyped field shows as "–" or an absent row, never as
an error. Every class is a *perceived* attribute of a generated image as a classifier reads
it, never a fact about a person, and every label built here says so.

Shares are fractions in [0, 1]; skews and KL divergences are in nats; times are UTC. The
tables of one opened run (its comparison, abstentions, agreement, readings) are shaped in
``fairness_run_rows``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from diffwatch.analytics.intervals import wilson
from diffwatch.bias.attributes import ATTRIBUTES, GATE, MST_SWATCHES

READERS = {
    "clip": "CLIP zero-shot",
    "faces": "NudeNet faces",
    "face_pixels": "face skin pixels",
}
READER_SHORT = {"clip": "CLIP", "faces": "faces", "face_pixels": "pixels"}
READER_ORDER = ("clip", "faces", "face_pixels")
TREND_METRICS = {
    "worst_k_max_skew": "worst-k MaxSkew (nats)",
    "mean_max_skew": "mean MaxSkew (nats)",
    "mean_abs_gap": "mean |p − 0.5|",
    "mean_kl_uniform": "mean KL to uniform (nats)",
    "abstain_rate": "abstain rate",
}
TWO_CLASS_ONLY = frozenset({"mean_abs_gap"})


# -- defensive readers -------------------------------------------------------------------------


def as_dict(v: Any) -> dict[str, Any]:
    """``v`` if it is a dict, else {}."""
    return v if isinstance(v, dict) else {}


def as_list(v: Any) -> list[Any]:
    """``v`` if it is a list, else []."""
    return v if isinstance(v, list) else []


def num(v: Any) -> float | None:
    """``v`` as a finite float; None when missing, not a number (bools are not), or infinite."""
    if isinstance(v, bool) or not isinstance(v, int | float):
        return None
    return float(v) if math.isfinite(v) else None


def count(v: Any) -> int:
    """``v`` as a non-negative whole number of images (0 when it is not one)."""
    x = num(v)
    return int(x) if x is not None and x >= 0 and x == int(x) else 0


def pct(v: Any, digits: int = 1) -> str:
    """A share (0..1) as "12.3 %", "–" when missing."""
    x = num(v)
    return "–" if x is None else f"{100 * x:.{digits}f} %"


def fmt(v: Any, digits: int = 3) -> str:
    """A number with ``digits`` decimals, "–" when missing."""
    x = num(v)
    return "–" if x is None else f"{x:.{digits}f}"


def when(t: Any) -> str:
    """A timestamp as "YYYY-MM-DD HH:MM" UTC, "?" when missing."""
    return t.astimezone(UTC).strftime("%Y-%m-%d %H:%M") if isinstance(t, datetime) else "?"


# -- labels ------------------------------------------------------------------------------------


def attribute_label(attr: str) -> str:
    """The attribute's display label ("Perceived gender presentation")."""
    a = ATTRIBUTES.get(attr)
    return a.label if a is not None else f"perceived {attr}"


def class_label(attr: str, cls: str) -> str:
    """A class's display label ("perceived woman"); unknown classes as stored, marked
    perceived all the same."""
    a = ATTRIBUTES.get(attr)
    if a is not None and cls in a.class_keys:
        return a.label_of(cls)
    return f"perceived {cls}"


def short_class(attr: str, cls: str) -> str:
    """A class's label without the word "perceived" (for places already headed by it)."""
    label = class_label(attr, cls)
    return label[len("perceived ") :] if label.startswith("perceived ") else label


def reader_label(reader: str) -> str:
    """How a reader is named on the page."""
    return READERS.get(reader, reader)


def class_colours(attr: str, classes: Sequence[str]) -> dict[str, str]:
    """A colour per class: the Monk Skin Tone swatches for skin tone, else a sequential
    blue scale (classes of age are ordered, light to dark)."""
    if attr == "skin_tone":
        return {c: MST_SWATCHES.get(c, "#999999") for c in classes}
    blues = ("#c6dbef", "#6baed6", "#2171b5", "#08306b", "#041a3a", "#9ecae1")
    return {c: blues[i % len(blues)] for i, c in enumerate(classes)}


def sentence(text: str) -> str:
    """``text`` with its first letter capitalised (the rest kept: "MaxSkew", "MST")."""
    return text[:1].upper() + text[1:]


def short_attr(attr: str) -> str:
    """An attribute's short name, worded as perceived ("perceived skin tone")."""
    return {"gender": "perceived gender", "skin_tone": "perceived skin tone",
            "age": "perceived age"}.get(attr, f"perceived {attr}")  # fmt: skip


def reader_rank(reader: str) -> tuple[int, str]:
    """Where a reader sorts: CLIP, NudeNet faces, face pixels, then others by name."""
    return (READER_ORDER.index(reader) if reader in READER_ORDER else len(READER_ORDER), reader)


# -- runs --------------------------------------------------------------------------------------


def done_runs(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The finished runs that hold a summary, in the order given (newest first)."""
    return [
        dict(r) for r in rows if r.get("status") == "done" and isinstance(r.get("summary"), dict)
    ]


def newest_first_unique(values: Iterable[Any]) -> list[str]:
    """Each value once, in the order first seen (rows come newest first)."""
    return list(dict.fromkeys(str(v) for v in values))


def latest_per_version(
    runs: Sequence[Mapping[str, Any]], models: Sequence[str], versions: Sequence[str]
) -> list[dict[str, Any]]:
    """The newest run of each (model, version) chosen, oldest of them first (so versions
    read old to new in legends and colours)."""
    seen: dict[tuple[str, str], dict[str, Any]] = {}
    for r in runs:  # newest first: the first of each pair is its latest run
        key = (str(r.get("model")), str(r.get("model_version")))
        if key[0] in models and key[1] in versions and key not in seen:
            seen[key] = dict(r)
    return list(seen.values())[::-1]


def series_label(run: Mapping[str, Any], several_models: bool) -> str:
    """A run's name in charts: its version, with its model when several are shown."""
    version = str(run.get("model_version"))
    return f"{run.get('model')} · {version}" if several_models else version


def run_label(run: Mapping[str, Any]) -> str:
    """A run in a picker: "#12 · model · version · 2026-12-01 10:00 UTC" (plain text)."""
    return (
        f"#{run.get('id')} · {run.get('model')} · {run.get('model_version')} · "
        f"{when(run.get('finished_at'))} UTC"
    )


def previous_of(run: Mapping[str, Any], runs: Sequence[Mapping[str, Any]]) -> dict | None:
    """The newest done run of the same suite and model that finished before ``run``."""
    t = run.get("finished_at")
    if not isinstance(t, datetime):
        return None
    for r in runs:  # newest first
        same = (r.get("suite_name"), r.get("model")) == (run.get("suite_name"), run.get("model"))
        ended = r.get("finished_at")
        if same and r.get("id") != run.get("id") and isinstance(ended, datetime) and ended < t:
            return dict(r)
    return None


def slim(summary: Any) -> dict[str, Any]:
    """A summary without its per-prompt parts: what the run list, the trend and the headline
    read (the counts, the aggregates, the headline). A suite of hundreds of prompts stores
    hundreds of KiB a run; the page keeps this much of each listed run, and whole summaries
    only for the runs it opens."""
    s = as_dict(summary)
    keep = ("classes", "reference", "level", "aggregate")
    attributes = {
        attr: {r: {k: as_dict(rep).get(k) for k in keep} for r, rep in as_dict(by).items()}
        for attr, by in as_dict(s.get("attributes")).items()
    }
    person = {k: v for k, v in as_dict(s.get("person")).items() if k != "per_prompt"}
    base = {k: s.get(k) for k in ("images", "errors", "level", "k", "headline") if k in s}
    return base | {"person": person, "attributes": attributes}


def report(summary: Any, attr: str, reader: str) -> dict[str, Any]:
    """A run's BiasReport (as stored) of ``attr`` read by ``reader``; {} when absent."""
    return as_dict(as_dict(as_dict(as_dict(summary).get("attributes")).get(attr)).get(reader))


def attributes_of(runs: Sequence[Mapping[str, Any]]) -> list[str]:
    """The attributes the runs measured, in the probe's order (the gate excluded)."""
    found = {a for r in runs for a in as_dict(as_dict(r.get("summary")).get("attributes"))}
    known = [a for a in ATTRIBUTES if a in found and a != GATE]
    return known + sorted(found - set(known) - {GATE})


def readers_of(runs: Sequence[Mapping[str, Any]], attr: str) -> list[str]:
    """The readers of ``attr`` in the runs, CLIP first."""
    found = {
        rd
        for r in runs
        for rd in as_dict(as_dict(as_dict(r.get("summary")).get("attributes")).get(attr))
    }
    return [x for x in READER_ORDER if x in found] + sorted(found - set(READER_ORDER))


def classes_of(runs: Sequence[Mapping[str, Any]], attr: str, reader: str) -> list[str]:
    """The classes of ``attr`` as the runs' reports list them (else the attribute's own)."""
    for r in runs:
        classes = [str(c) for c in as_list(report(r.get("summary"), attr, reader).get("classes"))]
        if classes:
            return classes
    a = ATTRIBUTES.get(attr)
    return list(a.class_keys) if a else []


def level_of(summary: Any) -> float:
    """The confidence level of a run's intervals (0.95 unless stored otherwise)."""
    x = num(as_dict(summary).get("level"))
    return x if x is not None and 0 < x < 1 else 0.95


# -- shares per occupation ---------------------------------------------------------------------


def share_rows(
    run: Mapping[str, Any], series: str, attr: str, reader: str, by: str = "term"
) -> list[dict[str, Any]]:
    """Each occupation's (``by="term"``: a term's prompts pooled) or prompt's share of each
    class, with its Wilson interval, one row per (group, class).

    Row keys: group, series, run, class, count, n (images with a class; abstentions are not
    counted), share, low, high (None when n = 0), reference (the share expected: uniform
    unless the suite gives one).
    """
    summary = as_dict(run.get("summary"))
    rep = report(summary, attr, reader)
    terms = as_dict(summary.get("terms"))
    level = num(rep.get("level")) or level_of(summary)
    classes = [str(c) for c in as_list(rep.get("classes"))]
    groups: dict[str, dict[str, Any]] = {}
    for p in as_list(rep.get("prompts")):
        p = as_dict(p)
        prompt = str(p.get("prompt"))
        name = str(terms.get(prompt, prompt)) if by == "term" else prompt
        g = groups.setdefault(name, {"n": 0, "counts": dict.fromkeys(classes, 0), "ref": {}})
        shares = as_dict(p.get("shares"))
        g["n"] += count(p.get("n"))
        for c in classes:
            s = as_dict(shares.get(c))
            g["counts"][c] += count(s.get("count"))
            g["ref"].setdefault(c, num(s.get("reference")))
    rows = []
    for name, g in groups.items():
        n = g["n"]
        for c in classes:
            k = g["counts"][c]
            ci = wilson(k, n, level) if n > 0 and k <= n else None
            rows.append(
                {
                    "group": name, "series": series, "run": run.get("id"), "class": c,
                    "count": k, "n": n,
                    "share": ci.estimate if ci else None,
                    "low": ci.low if ci else None,
                    "high": ci.high if ci else None,
                    "reference": g["ref"].get(c),
                }
            )  # fmt: skip
    return rows


def group_order(rows: Sequence[Mapping[str, Any]], cls: str, series: str) -> list[str]:
    """The groups, the one where ``series`` shows ``cls`` most first (groups without a share
    last, in their first-seen order)."""
    groups = newest_first_unique(r["group"] for r in rows)
    share = {r["group"]: r["share"] for r in rows if r["series"] == series and r["class"] == cls}

    def key(g: str) -> tuple[int, float]:
        s = share.get(g)
        return (1, 0.0) if s is None else (0, -s)

    return sorted(groups, key=key)


def share_table(rows: Sequence[Mapping[str, Any]], attr: str, level: float) -> list[dict]:
    """The share rows as a plain table a person reads (shares in %)."""
    ci = f"{100 * level:g} % interval"
    return [
        {
            "occupation / prompt": r["group"],
            "version": r["series"],
            "perceived class": short_class(attr, r["class"]),
            "images": r["count"],
            "of images counted": r["n"],
            "share": pct(r["share"]),
            ci: "–" if r["low"] is None else f"{pct(r['low'])} – {pct(r['high'])}",
            "expected": pct(r["reference"]),
        }
        for r in rows
    ]


# -- the trend and the headline --------------------------------------------------------------


def metric_value(summary: Any, attr: str, reader: str, metric: str) -> float | None:
    """An aggregate of ``attr`` as ``reader`` read it (TREND_METRICS), None when absent."""
    agg = as_dict(report(summary, attr, reader).get("aggregate"))
    if metric == "abstain_rate":
        return num(as_dict(agg.get("abstain_rate")).get("estimate"))
    return num(agg.get(metric))


def trend_rows(
    runs: Sequence[Mapping[str, Any]], attr: str, reader: str, metric: str, several: bool
) -> list[dict[str, Any]]:
    """One row per run with the metric, oldest first: run, finished_at, model, series, value."""
    rows = []
    for r in runs:
        v = metric_value(r.get("summary"), attr, reader, metric)
        if v is None or not isinstance(r.get("finished_at"), datetime):
            continue
        rows.append(
            {
                "run": r.get("id"), "finished_at": r["finished_at"], "model": str(r.get("model")),
                "series": series_label(r, several), "value": v,
            }
        )  # fmt: skip
    return sorted(rows, key=lambda x: x["finished_at"])


def kpis(
    run: Mapping[str, Any], previous: Mapping[str, Any] | None, attr: str, reader: str
) -> dict[str, Any]:
    """The headline figures of ``run`` for ``attr`` / ``reader``: k, worst_k (worst-k
    MaxSkew, nats), change (against ``previous``, None without one), abs_gap (mean
    |p − 0.5|, two classes only), kl (mean KL to uniform, nats), gate (person-gate abstain
    rate), abstain (this reader's abstain rate), images."""
    summary = as_dict(run.get("summary"))
    agg = as_dict(report(summary, attr, reader).get("aggregate"))
    worst = num(agg.get("worst_k_max_skew"))
    before = None if previous is None else metric_value(
        previous.get("summary"), attr, reader, "worst_k_max_skew"
    )  # fmt: skip
    return {
        "k": count(agg.get("k")) or count(summary.get("k")),
        "worst_k": worst,
        "change": None if worst is None or before is None else worst - before,
        "abs_gap": num(agg.get("mean_abs_gap")),
        "kl": num(agg.get("mean_kl_uniform")),
        "gate": num(as_dict(as_dict(summary.get("person")).get("abstain_rate")).get("estimate")),
        "abstain": num(as_dict(agg.get("abstain_rate")).get("estimate")),
        "images": count(summary.get("images")),
    }

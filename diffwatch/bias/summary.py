"""A probe run's summary: its items' perceived readings counted per prompt, and the skew
metrics of those counts (``analytics.bias_metrics``), per attribute and per reader.

Readers: ``clip`` (zero-shot, every attribute), ``faces`` (NudeNet's FACE_FEMALE/FACE_MALE,
gender only) and ``face_pixels`` (skin tone from the face's skin pixels). An image the
person gate does not pass, or a reader abstains on, counts as ``abstain``: it is not a
class, and the share that abstains is reported beside the shares. The headline that alerts
and the release gate read is the suite's headline attribute as CLIP perceives it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from diffwatch.analytics.bias_compare import compare_versions
from diffwatch.analytics.bias_metrics import ABSTAIN, bias_metrics
from diffwatch.analytics.intervals import wilson
from diffwatch.bias.attributes import ATTRIBUTES, GATE, PERSON_CLASS
from diffwatch.bias.perceive import SECOND_READING, agreement

Counts = dict[str, dict[str, int]]
HEADLINE_READER = "clip"
HEADLINE_FIELDS = ("worst_k_max_skew", "mean_max_skew", "mean_abs_gap", "mean_kl_uniform")


def count_readings(items: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Counts]]:
    """attribute -> reader -> prompt -> class (or ``abstain``) -> images, over done items.

    The gate itself is counted as attribute ``person`` with classes ``person``/``abstain``.
    """
    out: dict[str, dict[str, Counts]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(lambda: defaultdict(int)))
    )
    for it in items:
        readings = it.get("readings")
        if it.get("status") != "done" or not readings:
            continue
        prompt = it["prompt"]
        for attr, by_reader in readings.items():
            if attr == GATE:
                label = by_reader.get("label")
                out[GATE]["clip"][prompt][PERSON_CLASS if label == PERSON_CLASS else ABSTAIN] += 1
                continue
            for reader, r in by_reader.items():
                label = r.get("label") if isinstance(r, Mapping) else None
                out[attr][reader][prompt][label or ABSTAIN] += 1
    return {
        a: {r: {p: dict(c) for p, c in rs.items()} for r, rs in v.items()} for a, v in out.items()
    }


def _reference(suite: Mapping[str, Any], attr: str, items: Sequence[Mapping[str, Any]]):
    """The suite's reference for ``attr`` per prompt (None: uniform, or when it does not
    cover every prompt's term)."""
    per_term = (suite.get("reference") or {}).get(attr)
    if not per_term:
        return None
    term_of = {it["prompt"]: it["term"] for it in items}
    if any(t not in per_term for t in term_of.values()):
        return None
    return {p: per_term[t] for p, t in term_of.items()}


def summarize_run(
    items: Sequence[Mapping[str, Any]],
    suite: Mapping[str, Any],
    *,
    previous: Sequence[Mapping[str, Any]] | None = None,
    previous_run: Mapping[str, Any] | None = None,
    k: int = 5,
    level: float = 0.95,
) -> dict[str, Any]:
    """The JSON-ready summary of a run's items (see the module docstring).

    ``previous``: the items of the suite's previous run on the same model, for the
    per-prompt two-proportion tests (Benjamini-Hochberg) and the headline's change."""
    counts = count_readings(items)
    done = [it for it in items if it.get("status") == "done"]
    person = counts.get(GATE, {}).get("clip", {})
    passed = sum(c.get(PERSON_CLASS, 0) for c in person.values())
    summary: dict[str, Any] = {
        "images": len(done),
        "errors": sum(1 for it in items if it.get("status") == "error"),
        "level": level,
        "k": k,
        "person": {
            "images": len(done),
            "passed": passed,
            "abstain_rate": _rate(len(done) - passed, len(done), level),
            # why images did not pass: a confident "no person" (the model drew something
            # else) is a finding of its own; an unclear one is the classifier's limit
            "outcomes": _gate_outcomes(done),
            "per_prompt": {
                p: {"passed": c.get(PERSON_CLASS, 0), "abstained": c.get(ABSTAIN, 0)}
                for p, c in person.items()
            },
        },
        "attributes": {},
        "agreement": {},
        "comparison": None,
        "terms": {it["prompt"]: it["term"] for it in items},
    }
    for attr in suite.get("attributes", ()):
        classes = ATTRIBUTES[attr].class_keys
        ref = _reference(suite, attr, items)
        summary["attributes"][attr] = {
            reader: bias_metrics(c, classes=classes, reference=ref, k=k, level=level).to_dict()
            for reader, c in sorted(counts.get(attr, {}).items())
        }
    records = [it["readings"] for it in done if it.get("readings")]
    for attr, second in SECOND_READING.items():
        if {"clip", second} <= set(counts.get(attr, {})):
            summary["agreement"][attr] = agreement(records, attr).to_dict()
    if previous_run is not None and previous:
        summary["comparison"] = {
            "previous_run_id": previous_run["id"],
            "previous_version": previous_run.get("model_version"),
            "tests": compare_runs(previous, items, suite, k=k, level=level),
        }
    summary["headline"] = _headline(suite, summary, previous_run)
    return summary


def compare_runs(
    baseline: Sequence[Mapping[str, Any]],
    candidate: Sequence[Mapping[str, Any]],
    suite: Mapping[str, Any],
    *,
    k: int = 5,
    level: float = 0.95,
    alpha: float = 0.05,
    correction: str = "bh",
) -> dict[str, dict[str, Any]]:
    """attribute -> reader -> the per-prompt two-proportion tests of two runs' items (the
    candidate against the baseline, multiple-testing controlled) and each aggregate's change,
    for the prompts both runs hold."""
    before, after = count_readings(baseline), count_readings(candidate)
    out: dict[str, dict[str, Any]] = {}
    for attr in suite.get("attributes", ()):
        classes = ATTRIBUTES[attr].class_keys
        ref = _reference(suite, attr, candidate)
        for reader, c in sorted(after.get(attr, {}).items()):
            b = before.get(attr, {}).get(reader)
            if not b:
                continue
            d = compare_versions(
                b, c, classes=classes, reference=ref, k=k, level=level, alpha=alpha,
                correction=correction,  # type: ignore[arg-type]
            ).to_dict()  # fmt: skip
            d.pop("baseline", None), d.pop("candidate", None)
            out.setdefault(attr, {})[reader] = d
    return out


def _gate_outcomes(done: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """Images by the person gate's outcome: ``person``, ``no_person``, ``unclear``."""
    out = {"person": 0, "no_person": 0, "unclear": 0}
    for it in done:
        label = ((it.get("readings") or {}).get(GATE) or {}).get("label")
        out["person" if label == PERSON_CLASS else "unclear" if label is None else "no_person"] += 1
    return out


def _rate(x: int, n: int, level: float) -> dict[str, float] | None:
    if n == 0:
        return None
    i = wilson(x, n, level)
    return {"estimate": i.estimate, "low": i.low, "high": i.high}


def headline_of(summary: Mapping[str, Any], attribute: str) -> dict[str, Any]:
    """The aggregates of ``attribute`` as CLIP reads it (HEADLINE_FIELDS; None: no data)."""
    agg = (((summary.get("attributes") or {}).get(attribute) or {}).get(HEADLINE_READER) or {}).get(
        "aggregate"
    ) or {}
    return {f: agg.get(f) for f in HEADLINE_FIELDS}


def _headline(
    suite: Mapping[str, Any], summary: Mapping[str, Any], previous_run: Mapping[str, Any] | None
) -> dict[str, Any]:
    attr = suite.get("headline", "gender")
    head: dict[str, Any] = {
        "attribute": attr,
        "reader": HEADLINE_READER,
        **headline_of(summary, attr),
    }
    prev = (previous_run or {}).get("summary") or {}
    before = headline_of(prev, attr).get("worst_k_max_skew") if prev else None
    now = head["worst_k_max_skew"]
    head["previous_worst_k_max_skew"] = before
    head["change_worst_k_max_skew"] = None if before is None or now is None else now - before
    return head

"""Shaping one bias-probe run for the Fairness page (pure: no Streamlit, no SQL): its
comparison with the run before it, its abstentions, its readers' agreement, and its images'
readings as caption lines. Stored JSON is read defensively (``fairness_shape``); every class
named is a *perceived* attribute of a generated image, never a fact about a person.

Shares and rates are fractions in [0, 1] unless a column says points or %.
"""

from __future__ import annotations

import math
from typing import Any

from diffwatch.app.fairness_shape import (
    READER_SHORT,
    as_dict,
    as_list,
    attribute_label,
    attributes_of,
    count,
    fmt,
    level_of,
    newest_first_unique,
    num,
    pct,
    reader_label,
    reader_rank,
    readers_of,
    report,
    short_attr,
    short_class,
)
from diffwatch.bias.attributes import ATTRIBUTES, GATE


def comparison(summary: Any, attr: str, reader: str) -> tuple[dict[str, Any], list[dict]]:
    """The run against the previous run of its suite and model: (what was compared with
    what: previous_run_id, previous_version, correction, alpha, significant, tests; and
    the share tests as table rows, significant first, then by the size of the change)."""
    cmp = as_dict(as_dict(summary).get("comparison"))
    tests = as_dict(as_dict(as_dict(cmp.get("tests")).get(attr)).get(reader))
    rows = []
    for t in as_list(tests.get("tests")):
        t = as_dict(t)
        d = as_dict(t.get("difference"))
        est, low, high = num(d.get("estimate")), num(d.get("low")), num(d.get("high"))
        bn, cn = count(t.get("baseline_n")), count(t.get("candidate_n"))
        rows.append(
            {
                "prompt": str(t.get("prompt")),
                "perceived class": short_class(attr, str(t.get("class"))),
                "before": pct(count(t.get("baseline_count")) / bn if bn else None),
                "now": pct(count(t.get("candidate_count")) / cn if cn else None),
                "change (points)": None if est is None else round(100 * est, 1),
                "interval (points)": "–" if low is None or high is None else
                f"{100 * low:+.1f} to {100 * high:+.1f}",
                "p (adjusted)": num(t.get("p_adjusted")),
                "significant": t.get("significant") is True,
                "images before / now": f"{bn} / {cn}",
            }
        )  # fmt: skip
    rows.sort(key=lambda r: (not r["significant"], -abs(r["change (points)"] or 0.0)))
    meta = {
        "previous_run_id": cmp.get("previous_run_id"),
        "previous_version": cmp.get("previous_version"),
        "correction": tests.get("correction"),
        "alpha": num(tests.get("alpha")),
        "significant": sum(r["significant"] for r in rows),
        "tests": len(rows),
        "present": bool(cmp),
    }
    return meta, rows


def gate_rows(summary: Any) -> list[dict[str, Any]]:
    """The person gate per prompt: occupation, prompt, images, counted (a person perceived),
    abstain rate (0..1: no clear person, so not counted for any attribute)."""
    s = as_dict(summary)
    terms = as_dict(s.get("terms"))
    rows = []
    for prompt, c in as_dict(as_dict(s.get("person")).get("per_prompt")).items():
        c = as_dict(c)
        passed, abstained = count(c.get("passed")), count(c.get("abstained"))
        total = passed + abstained
        rows.append(
            {
                "occupation": str(terms.get(prompt, prompt)), "prompt": str(prompt),
                "images": total, "person perceived": passed,
                "abstained": abstained / total if total else None,
            }
        )  # fmt: skip
    return rows


def abstain_rows(summary: Any) -> list[dict[str, Any]]:
    """Each prompt's abstain rate (0..1) per attribute and reader, one column each
    ("gender · CLIP"), beside the person gate's ("person gate")."""
    s = as_dict(summary)
    rows = {
        r["prompt"]: {"occupation": r["occupation"], "prompt": r["prompt"],
                      "images": r["images"], "person gate": r["abstained"]}
        for r in gate_rows(s)
    }  # fmt: skip
    for attr in attributes_of([{"summary": s}]):
        for reader in readers_of([{"summary": s}], attr):
            col = f"{attr.replace('_', ' ')} · {READER_SHORT.get(reader, reader)}"
            for p in as_list(report(s, attr, reader).get("prompts")):
                p = as_dict(p)
                prompt = str(p.get("prompt"))
                row = rows.setdefault(prompt, {"occupation": prompt, "prompt": prompt})
                row[col] = num(as_dict(p.get("abstain_rate")).get("estimate"))
    return list(rows.values())


def abstain_totals(summary: Any) -> list[dict[str, Any]]:
    """Over the run: the person gate's and each attribute/reader's abstentions and rate."""
    s = as_dict(summary)
    level = level_of(s)
    ci = f"{100 * level:g} % interval"
    person = as_dict(s.get("person"))
    out = []

    def row(what: str, reader: str, images: int, abstained: int, rate: dict) -> dict:
        low, high = num(rate.get("low")), num(rate.get("high"))
        return {
            "reading": what, "reader": reader, "images": images, "abstained": abstained,
            "abstain rate": pct(rate.get("estimate")),
            ci: "–" if low is None or high is None else f"{pct(low)} – {pct(high)}",
        }  # fmt: skip

    if person:
        images, passed = count(person.get("images")), count(person.get("passed"))
        rate = as_dict(person.get("abstain_rate"))
        out.append(row("person gate (is a person perceived?)", "CLIP zero-shot", images,
                       images - passed, rate))  # fmt: skip
    for attr in attributes_of([{"summary": s}]):
        for reader in readers_of([{"summary": s}], attr):
            agg = as_dict(report(s, attr, reader).get("aggregate"))
            n, ab = count(agg.get("images")), count(agg.get("abstained"))
            out.append(row(attribute_label(attr), reader_label(reader), n + ab, ab,
                           as_dict(agg.get("abstain_rate"))))  # fmt: skip
    return out


def agreement_rows(summary: Any) -> list[dict[str, Any]]:
    """How often CLIP and an attribute's second reader perceive the same class over the
    images both gave a class (share 0..1), with Cohen's kappa and, for ordered classes,
    the share at most one class apart."""
    out = []
    for attr, a in as_dict(as_dict(summary).get("agreement")).items():
        a = as_dict(a)
        readers = as_list(a.get("readers")) or ["clip", a.get("second") or "?"]
        both = a.get("n_both", a.get("n"))
        out.append(
            {
                "attribute": attribute_label(attr),
                "readers": " vs ".join(reader_label(str(r)) for r in readers),
                "images both read": count(both),
                "same class": pct(a.get("share_agree", a.get("agree_share"))),
                "Cohen's κ": fmt(a.get("kappa"), 2),
                "at most one class apart": pct(a.get("within_one")),
            }
        )
    if out and all(r["at most one class apart"] == "–" for r in out):
        for r in out:
            del r["at most one class apart"]
    return out


def gate_outcomes(summary: Any) -> dict[str, int] | None:
    """The person gate's outcomes (person, no_person, unclear: images), when stored."""
    o = as_dict(as_dict(as_dict(summary).get("person")).get("outcomes"))
    return {k: count(o.get(k)) for k in ("person", "no_person", "unclear")} if o else None


def prompts_by_skew(summary: Any, attr: str, reader: str) -> list[str]:
    """The run's prompts, the most skewed (largest MaxSkew) first; prompts the report
    lacks (every image abstained) after them, from the person gate."""
    ps = [as_dict(p) for p in as_list(report(summary, attr, reader).get("prompts"))]
    ranked = sorted(ps, key=lambda p: -(num(p.get("max_skew")) or -math.inf))
    out = newest_first_unique(p.get("prompt") for p in ranked)
    rest = [r["prompt"] for r in gate_rows(summary) if r["prompt"] not in out]
    return out + rest


def reading_lines(readings: Any) -> list[str]:
    """One image's readings as plain-text lines: the gate, then each attribute with each
    reader's perceived class (or why it abstained)."""
    r = as_dict(readings)
    gate = as_dict(r.get(GATE))
    if gate and gate.get("label") != "person":
        what = gate.get("label")
        seen = short_class(GATE, str(what)).removesuffix(" (no person)") if what else None
        return [f"no person perceived{f' (closest: {seen})' if seen else ''}: not counted"]
    lines = []
    for attr in [a for a in ATTRIBUTES if a in r and a != GATE] + sorted(set(r) - set(ATTRIBUTES)):
        parts = []
        for reader, v in sorted(as_dict(r.get(attr)).items(), key=lambda x: reader_rank(x[0])):
            v = as_dict(v)
            label = v.get("label")
            who = READER_SHORT.get(reader, reader)
            if label:
                parts.append(f"{short_class(attr, str(label))} ({who})")
            else:
                parts.append(f"abstained ({who}: {v.get('reason') or '?'})")
        if parts:
            lines.append(f"{short_attr(attr)}: {' · '.join(parts)}")
    return lines

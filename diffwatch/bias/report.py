"""Text a person reads in a terminal: a probe run's summary, and a list of runs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from diffwatch.bias.attributes import ATTRIBUTES

_NOTE = "Perceived attributes of generated images, read by classifiers: never facts about people."


def _f(v: Any, digits: int = 3) -> str:
    return "n/a" if v is None else f"{v:.{digits}f}"


def _pct(i: Mapping[str, Any] | None) -> str:
    if not i or i.get("estimate") is None:
        return "n/a"
    return f"{100 * i['estimate']:.0f}% [{100 * i['low']:.0f}-{100 * i['high']:.0f}]"


def render_run(result: Mapping[str, Any], max_prompts: int = 12) -> str:
    """A run's headline, abstain rates, per-prompt shares of the headline attribute and the
    aggregates of every attribute and reader."""
    s = result["summary"]
    head = s["headline"]
    lines = [
        f"bias run {result['run_id']}: suite {result['suite']}, {result['model']} "
        f"{result['version']}, {s['images']} images ({s['errors']} errors)",
        _NOTE,
        f"person gate: {s['person']['passed']} of {s['person']['images']} images show a clear "
        f"person; abstained {_pct(s['person']['abstain_rate'])}"
        + (
            f" ({s['person']['outcomes']['no_person']} read as no person, "
            f"{s['person']['outcomes']['unclear']} unclear)"
            if s["person"].get("outcomes")
            else ""
        ),
        f"headline ({head['attribute']}, {head['reader']}): worst-{s['k']} MaxSkew "
        f"{_f(head['worst_k_max_skew'])}, mean |p-0.5| {_f(head['mean_abs_gap'])}"
        + (
            f", change since the last run {head['change_worst_k_max_skew']:+.3f}"
            if head.get("change_worst_k_max_skew") is not None
            else ""
        ),
    ]
    for attr, readers in s["attributes"].items():
        label = ATTRIBUTES[attr].label if attr in ATTRIBUTES else attr
        for reader, rep in readers.items():
            a = rep["aggregate"]
            lines.append(
                f"{label} [{reader}]: mean MaxSkew {_f(a['mean_max_skew'])}, worst-{a['k']} "
                f"{_f(a['worst_k_max_skew'])}, mean KL {_f(a['mean_kl_uniform'])}"
                + (
                    f", mean |p-0.5| {_f(a['mean_abs_gap'])}"
                    if a.get("mean_abs_gap") is not None
                    else ""
                )
                + f"; abstained {_pct(a['abstain_rate'])}"
            )
    rep = s["attributes"].get(head["attribute"], {}).get(head["reader"])
    if rep:
        lines.append(
            f"per prompt ({head['attribute']}, share with {int(100 * s['level'])}% interval):"
        )
        for p in rep["prompts"][:max_prompts]:
            shares = ", ".join(f"{c} {_pct(v)}" for c, v in p["shares"].items() if v.get("count"))
            lines.append(f"  {p['prompt']}: n={p['n']} {shares}")
        if len(rep["prompts"]) > max_prompts:
            lines.append(f"  ... {len(rep['prompts']) - max_prompts} more (--json for all)")
    for attr, ag in s.get("agreement", {}).items():
        lines.append(
            f"agreement on {attr} (clip vs {ag['second']}): {ag['n_both']} images read by "
            f"both, agree {_f(ag['share_agree'], 2)}, kappa {_f(ag['kappa'], 2)}"
        )
    cmp = s.get("comparison")
    if cmp:
        sig = sum(t.get("significant", 0) for r in cmp["tests"].values() for t in r.values())
        lines.append(
            f"against run {cmp['previous_run_id']} ({cmp['previous_version']}): {sig} "
            "significant share change(s) after Benjamini-Hochberg"
        )
    return "\n".join(lines)


def render_runs(rows: Sequence[Mapping[str, Any]]) -> str:
    """One line per run: id, when, suite, model and version, status and headline skew."""
    if not rows:
        return "no bias runs yet (run `diffwatch bias probe --pipeline DIR`)"
    out = []
    for r in rows:
        head = (r.get("summary") or {}).get("headline") or {}
        when = r["finished_at"] or r["created_at"]
        out.append(
            f"{r['id']:>6}  {when:%Y-%m-%d %H:%M}  {r['suite_name']}  {r['model']} "
            f"{r['model_version']}  {r['status']}  worst-k MaxSkew "
            f"{_f(head.get('worst_k_max_skew'))}"
        )
    return "\n".join(out)


def render_comparison(result: Mapping[str, Any], max_rows: int = 20) -> str:
    """Two runs compared: per attribute and reader, the change of the headline aggregates
    and the share changes that stay significant after the correction."""
    a, b = result["baseline"], result["candidate"]
    lines = [
        f"bias runs {a['run_id']} ({a['model']} {a['version']}) -> {b['run_id']} "
        f"({b['model']} {b['version']}), suite {result['suite']}",
        _NOTE,
    ]
    for attr, readers in result["tests"].items():
        for reader, t in readers.items():
            delta = t["delta"]
            lines.append(
                f"{attr} [{reader}]: worst-k MaxSkew {_signed(delta.get('worst_k_max_skew'))}, "
                f"mean MaxSkew {_signed(delta.get('mean_max_skew'))}; {t['significant']} of "
                f"{len(t['tests'])} tests significant ({t['correction']}, alpha {t['alpha']:g})"
            )
            sig = [x for x in t["tests"] if x["significant"]]
            for x in sorted(sig, key=lambda x: x["p_adjusted"])[:max_rows]:
                d = x["difference"]
                was = 100 * x["baseline_count"] / x["baseline_n"]
                now = 100 * x["candidate_count"] / x["candidate_n"]
                lines.append(
                    f"  {x['prompt']}: {x['class']} {was:.0f}% -> {now:.0f}% "
                    f"(difference {100 * d['estimate']:+.0f} points, "
                    f"[{100 * d['low']:+.0f}, {100 * d['high']:+.0f}]), p adj {x['p_adjusted']:.3g}"
                )
    if not result["tests"]:
        lines.append("no attribute was read by both runs")
    return "\n".join(lines)


def _signed(v: float | None) -> str:
    return "n/a" if v is None else f"{v:+.3f}"

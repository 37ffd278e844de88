"""Every gate metric from a run's stored items and serving times, each with its 95 %
interval and its verdict under the policy, and the run's verdict (pure: no I/O).

The items are paired: each (prompt, seed) was made by both sides with the same parameters,
so alignment and distribution compare pair by pair. Metrics:

- ``alignment``: mean paired CLIPScore difference (candidate − baseline, points), its t
  interval, the candidate's win rate (ties ½), and the same per category;
- ``distribution``: CMMD between the two sides' CLIP image embeddings (RBF, σ = 10, ×1000,
  Jayasumana et al. 2024), paired bootstrap interval and paired permutation p-value;
- ``safety``: NSFW-rate difference (Newcombe interval) and the items that became flagged;
- ``golden``: golden-set items whose candidate image left the tolerance around the
  baseline side's image, or around the set's stored baseline image where the baseline
  side stayed within it (1 − cosine of CLIP image embeddings; the tolerance stored with
  the set's baselines, or ``DEFAULT_TOLERANCE``);
- ``latency``: the median of the per-round ratios candidate / baseline (each round times
  both sides back to back, so load on the machine cancels out), per batch size, with p50
  and p95 per side, throughput and cost per image; ``memory``: peak GPU memory ratio.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from diffwatch.analytics import gate_stats as gs
from diffwatch.analytics.intervals import newcombe_diff
from diffwatch.gate import verdict as v

if TYPE_CHECKING:
    from diffwatch.gate.policy import GatePolicy
    from diffwatch.gate.serving import SideCost

DEFAULT_TOLERANCE = 0.03  # 1 − cosine; the drift check's --min-tolerance default
MIN_PAIRS = 2  # pairs below which no interval is computed


def _pairs(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Join each key's two sides; only keys where both sides have an image and scores."""
    by_key: dict[str, dict[str, Mapping[str, Any]]] = defaultdict(dict)
    for r in rows:
        by_key[r["key"]][r["side"]] = r
    out = []
    for key, sides in by_key.items():
        c, b = sides.get("candidate"), sides.get("baseline")
        if not c or not b or c["status"] != "done" or b["status"] != "done":
            continue
        ec = np.frombuffer(c["embedding"], dtype=np.float32)
        eb = np.frombuffer(b["embedding"], dtype=np.float32)
        out.append({
            "key": key, "prompt": c["prompt"], "seed": int(c["seed"]), "category": c["category"],
            "source": c["source"], "candidate_uri": c["image_uri"], "baseline_uri": b["image_uri"],
            "clip_candidate": float(c["clip_score"]), "clip_baseline": float(b["clip_score"]),
            "delta": float(c["clip_score"]) - float(b["clip_score"]),
            "cosine": float(np.clip(np.dot(ec, eb), -1.0, 1.0)),
            "nsfw_candidate": bool(c["nsfw_flagged"]), "nsfw_baseline": bool(b["nsfw_flagged"]),
            "_ec": ec, "_eb": eb,
        })  # fmt: skip
    return out


def _metric(name: str, title: str, verdict: str, blocks: bool, **kw: Any) -> dict[str, Any]:
    return {"name": name, "title": title, "verdict": verdict, "blocks": blocks, **kw}


def alignment(pairs: Sequence[Mapping[str, Any]], policy: GatePolicy) -> dict[str, Any]:
    """Paired CLIPScore difference, win rate, and per category."""
    p = policy.alignment
    c = [x["clip_candidate"] for x in pairs]
    b = [x["clip_baseline"] for x in pairs]
    if len(pairs) < MIN_PAIRS:
        return _metric("alignment", "Prompt alignment (CLIPScore)", "inconclusive", p.blocks,
                       n=len(pairs), note=f"needs at least {MIN_PAIRS} pairs")  # fmt: skip
    d = gs.paired_diff(c, b, policy.level)
    w = gs.win_rate(c, b, policy.level)
    cats: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for x in pairs:
        cats[x["category"] or "(none)"].append(x)
    per_cat = []
    for cat, xs in sorted(cats.items()):
        row: dict[str, Any] = {"category": cat, "n": len(xs)}
        if len(xs) >= MIN_PAIRS:
            ci = gs.paired_diff(
                [x["clip_candidate"] for x in xs], [x["clip_baseline"] for x in xs], policy.level
            )
            row.update(estimate=ci.estimate, low=ci.low, high=ci.high)
        per_cat.append(row)
    return _metric(
        "alignment", "Prompt alignment (CLIPScore)",
        v.alignment_verdict(d.low, d.high, p), p.blocks,
        estimate=d.estimate, low=d.low, high=d.high, unit="CLIPScore points",
        threshold=-p.margin, rule=f"candidate − baseline ≥ −{p.margin:g} points",
        n=len(pairs), win_rate={"estimate": w.estimate, "low": w.low, "high": w.high},
        categories=per_cat,
    )  # fmt: skip


def distribution(pairs: Sequence[Mapping[str, Any]], policy: GatePolicy) -> dict[str, Any]:
    """CMMD between the two sides' CLIP image embeddings."""
    p = policy.distribution
    if len(pairs) < MIN_PAIRS:
        return _metric("distribution", "Image distribution (CMMD)", "inconclusive", p.blocks,
                       n=len(pairs), note=f"needs at least {MIN_PAIRS} pairs")  # fmt: skip
    x = np.stack([q["_ec"] for q in pairs])
    y = np.stack([q["_eb"] for q in pairs])
    r = gs.cmmd_test(x, y, level=policy.level)
    return _metric(
        "distribution", "Image distribution (CMMD)",
        v.distribution_verdict(r.estimate, r.low, r.high, r.p_value, p), p.blocks,
        estimate=r.estimate, low=r.low, high=r.high, p_value=r.p_value, unit="CMMD ×1000",
        threshold=p.max_cmmd, rule=f"CMMD ≤ {p.max_cmmd:g} (α = {p.alpha:g})", n=len(pairs),
    )  # fmt: skip


def safety(pairs: Sequence[Mapping[str, Any]], policy: GatePolicy) -> dict[str, Any]:
    """NSFW-rate difference (candidate − baseline) and the items that became flagged."""
    p = policy.safety
    n = len(pairs)
    if n == 0:
        return _metric("safety", "Safety (NSFW rate)", "inconclusive", p.blocks, n=0)
    fc = sum(x["nsfw_candidate"] for x in pairs)
    fb = sum(x["nsfw_baseline"] for x in pairs)
    new = [x["key"] for x in pairs if x["nsfw_candidate"] and not x["nsfw_baseline"]]
    ci = newcombe_diff(fb, n, fc, n, policy.level)
    return _metric(
        "safety", "Safety (NSFW rate)", v.safety_verdict(ci.low, ci.high, len(new), p), p.blocks,
        estimate=ci.estimate, low=ci.low, high=ci.high, unit="share of images",
        threshold=p.margin, rule=f"rate increase ≤ {p.margin:g}, new flags ≤ {p.max_new_flags}",
        n=n, flagged_candidate=fc, flagged_baseline=fb, new_flags=new[:100],
    )  # fmt: skip


def golden(
    pairs: Sequence[Mapping[str, Any]],
    policy: GatePolicy,
    references: Mapping[str, Mapping[str, Any]],
) -> dict[str, Any] | None:
    """Golden items the candidate regressed on; None without golden items.

    An item regressed when the candidate's image left the tolerance around the baseline
    side's image, or, where the set has stored baselines (``diffwatch drift regenerate
    --golden``), when it left the tolerance around the stored image while the baseline
    side stayed within it: the existing golden comparison, run for each side's version.
    ``references``: by golden item id, its ``tolerance`` (1 − cosine) and, when its stored
    image could be read, its CLIP image ``embedding``.
    """
    p = policy.golden
    gold = [x for x in pairs if str(x["source"]).startswith("golden:")]
    if not gold:
        return None
    departed = []
    stored = {"items": 0, "candidate_departed": 0, "baseline_departed": 0}
    for x in gold:
        ref = references.get(x["key"].rsplit("-s", 1)[0], {})
        tol = float(ref.get("tolerance", DEFAULT_TOLERANCE))
        d_pair = 1.0 - x["cosine"]
        emb = ref.get("embedding")
        d_c = d_b = None
        if emb is not None:
            d_c = 1.0 - float(np.dot(x["_ec"], emb))
            d_b = 1.0 - float(np.dot(x["_eb"], emb))
            stored["items"] += 1
            stored["candidate_departed"] += d_c > tol
            stored["baseline_departed"] += d_b > tol
        if d_pair > tol or (d_c is not None and d_b is not None and d_c > tol >= d_b):
            departed.append({
                "key": x["key"], "distance": d_pair, "tolerance": tol,
                "distance_to_stored": d_c, "baseline_distance_to_stored": d_b,
            })  # fmt: skip
    return _metric(
        "golden", "Golden-set regression", v.golden_verdict(len(departed), p), p.blocks,
        estimate=float(len(departed)), unit="items departed", threshold=p.max_departed,
        rule=f"items beyond their tolerance ≤ {p.max_departed}", n=len(gold),
        departed=departed[:100], stored_baselines=stored,
    )  # fmt: skip


def serving(
    costs: Mapping[str, SideCost] | None, policy: GatePolicy, prices: Mapping[str, float],
    gpu: str | None,
) -> list[dict[str, Any]]:  # fmt: skip
    """Latency (ratio of medians per batch size), throughput, memory and cost per image."""
    if not costs:
        return []
    c, b = costs["candidate"], costs["baseline"]
    rows, verdicts = [], []
    price = prices.get(gpu) if gpu else None
    for size in sorted(c.latency_ms):
        ci = gs.paired_ratio(c.latency_ms[size], b.latency_ms[size], policy.level)
        verdicts.append(v.ratio_verdict(ci.low, ci.high, policy.latency.max_ratio))
        row: dict[str, Any] = {
            "batch_size": size,
            "ratio": ci.estimate,
            "low": ci.low,
            "high": ci.high,
        }
        for name, s in (("candidate", c), ("baseline", b)):
            ms = s.latency_ms[size]
            p50 = gs.quantile_ms(ms, 0.5)
            row[name] = {
                "p50_ms": p50, "p95_ms": gs.quantile_ms(ms, 0.95), "images_per_s": 1000.0 / p50,
                "usd_per_image": None if price is None else price * p50 / 3.6e6, "samples": len(ms),
            }  # fmt: skip
        rows.append(row)
    worst = max(rows, key=lambda r: r["ratio"])
    out = [_metric(
        "latency", "Serving latency per image", v.worst(verdicts), policy.latency.blocks,
        estimate=worst["ratio"], low=worst["low"], high=worst["high"], unit="× baseline",
        threshold=policy.latency.max_ratio,
        rule=f"median paired ratio ≤ {policy.latency.max_ratio:g}",
        batch_sizes=rows, gpu=gpu, usd_per_gpu_hour=price,
        load_s={"candidate": c.load_s, "baseline": b.load_s},
    )]  # fmt: skip
    m = policy.memory
    if c.peak_mib and b.peak_mib:
        ratio = c.peak_mib / b.peak_mib
        out.append(_metric(
            "memory", "Peak GPU memory", v.ratio_verdict(ratio, ratio, m.max_ratio), m.blocks,
            estimate=ratio, low=ratio, high=ratio, unit="× baseline", threshold=m.max_ratio,
            rule=f"peak ratio ≤ {m.max_ratio:g}",
            peak_mib={"candidate": c.peak_mib, "baseline": b.peak_mib},
        ))  # fmt: skip
    else:
        out.append(_metric("memory", "Peak GPU memory", "inconclusive", m.blocks,
                           note="measured on CUDA only; this run had no GPU"))  # fmt: skip
    return out


def evaluate(
    rows: Sequence[Mapping[str, Any]],
    costs: Mapping[str, SideCost] | None,
    policy: GatePolicy,
    *,
    golden_refs: Mapping[str, Mapping[str, Any]] | None = None,
    prices: Mapping[str, float] | None = None,
    gpu: str | None = None,
    human: dict[str, Any] | None = None,
    bias: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The run's summary: verdict, exit code, metrics, counts, and the pairs worst first.
    ``human`` and ``bias`` are metrics computed elsewhere (``human``, ``bias_metric``)."""
    pairs = _pairs(rows)
    metrics = [alignment(pairs, policy), distribution(pairs, policy), safety(pairs, policy)]
    g = golden(pairs, policy, golden_refs or {})
    if g:
        metrics.append(g)
    metrics += serving(costs, policy, prices or {}, gpu)
    if bias:
        metrics.append(bias)
    if human:
        metrics.append(human)
    verdict = v.overall([(m["name"], m["verdict"], m["blocks"]) for m in metrics])
    errors = [
        {"key": r["key"], "side": r["side"], "error": r["error"]}
        for r in rows if r["status"] == "error"
    ]  # fmt: skip
    # worst first: the biggest CLIPScore drop, then the images that moved most
    ordered = sorted(pairs, key=lambda x: (x["delta"], x["cosine"]))
    return {
        "verdict": verdict,
        "exit_code": v.exit_code(verdict),
        "metrics": metrics,
        "items": len({r["key"] for r in rows}),
        "pairs_compared": len(pairs),
        "errors": errors[:100],
        "n_errors": len(errors),
        "pairs": [{k: val for k, val in x.items() if not k.startswith("_")} for x in ordered],
    }

"""``diffwatch bias metrics``: skew metrics of a CSV of counts, as JSON or a text table."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from diffwatch.analytics.bias_metrics import DEFAULT_K, DEFINITIONS, bias_metrics
from diffwatch.analytics.intervals import LEVEL
from diffwatch.bias.counts import CountsFileError, read_counts, read_reference

_PROMPT_WIDTH = 40  # characters of a prompt shown in the text table


def metrics_report(
    counts_path: str | Path,
    reference_path: str | Path | None = None,
    *,
    k: int = DEFAULT_K,
    level: float = LEVEL,
    abstain_class: str | None = "abstain",
) -> dict[str, Any]:
    """Read the counts (and reference) files and return the metrics, JSON-ready.

    Keys: ``counts_file``, ``reference_file``, ``classes`` (in the order of the file),
    ``reference`` (uniform, global or per_prompt), ``abstain_class``, ``level``,
    ``prompts`` (per prompt), ``aggregate`` (each aggregate under its plain name) and
    ``definitions`` (one line per aggregate name). An empty ``abstain_class`` means none.
    Raises ``CountsFileError`` (a ValueError) that names the file and the fix.
    """
    abstain = abstain_class or None
    table = read_counts(counts_path)
    ref = read_reference(reference_path) if reference_path is not None else None
    classes = [c for c in table.classes if c != abstain]
    if ref is not None and ref.kind == "per_prompt":
        # a prompt in the reference file but not in the counts is most likely misspelt
        extra = [p for p in ref.shares if p not in table.counts]
        if extra:
            raise CountsFileError(
                f"reference file {ref.path}: the prompts {extra[:5]} are not in the counts "
                f"file {table.path}: spell them as in the counts, or remove their rows"
            )
    try:
        report = bias_metrics(
            table.counts,
            classes=classes,
            reference=ref.shares if ref else None,
            k=k,
            level=level,
            abstain_class=abstain,
        )
    except ValueError as exc:
        files = f"counts file {table.path}" + (f" with reference file {ref.path}" if ref else "")
        raise CountsFileError(f"{files}: {exc}") from None
    return {
        "counts_file": table.path,
        "reference_file": ref.path if ref else None,
        **report.to_dict(),
        "definitions": dict(DEFINITIONS),
    }


def _num(v: float | None, digits: int = 3) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def _pct(i: dict[str, float] | None) -> str:
    if i is None or i.get("estimate") is None:
        return "-"
    return f"{100 * i['estimate']:.1f} [{100 * i['low']:.1f}-{100 * i['high']:.1f}]"


def _short(prompt: str) -> str:
    return prompt if len(prompt) <= _PROMPT_WIDTH else prompt[: _PROMPT_WIDTH - 1] + "…"


def render_text(report: dict[str, Any]) -> str:
    """A readable table of a ``metrics_report`` dict: per prompt, then the aggregates."""
    classes: list[str] = report["classes"]
    two = len(classes) == 2
    with_ref = report["reference"] != "uniform"
    level = round(100 * report["level"], 1)
    lines = [
        f"counts: {report['counts_file']}",
        f"reference: {report['reference_file'] or 'uniform'} ({report['reference']})",
        f"classes: {', '.join(classes)}; shares in % with {level:g}% Wilson intervals; "
        "KL and skew in nats",
        "",
    ]
    head = ["prompt".ljust(_PROMPT_WIDTH), f"{'n':>6}", f"{'abstain %':>9}"]
    head += [f"{c[:20]:>20}" for c in classes]
    head += [f"{'abs_gap':>8}"] if two else []
    head += [f"{'kl_uniform':>10}"] + ([f"{'kl_reference':>12}"] if with_ref else [])
    head += [f"{'max_skew':>8}", "max_skew_class"]
    lines.append("  ".join(head))
    for p in report["prompts"]:
        rate = p["abstain_rate"]
        cells = [_short(p["prompt"]).ljust(_PROMPT_WIDTH), f"{p['n']:>6}"]
        shown = "-" if rate is None else f"{100 * rate['estimate']:.1f}"
        cells.append(f"{shown:>9}")
        cells += [f"{_pct(p['shares'][c]):>20}" for c in classes]
        cells += [f"{_num(p['abs_gap']):>8}"] if two else []
        cells.append(f"{_num(p['kl_uniform']):>10}")
        cells += [f"{_num(p['kl_reference']):>12}"] if with_ref else []
        cells += [f"{_num(p['max_skew']):>8}", p["max_skew_class"] or "-"]
        lines.append("  ".join(cells))

    a = report["aggregate"]
    empty = a["prompts_without_images"]
    lines += [
        "",
        f"prompts: {a['prompts']} scored, {len(empty)} without images"
        + (f" ({', '.join(_short(e) for e in empty[:5])}{', …' if len(empty) > 5 else ''})"
           if empty else ""),
        f"images: {a['images']}; abstained: {a['abstained']} ({_pct(a['abstain_rate'])} %)",
        f"k (worst-k prompts): {a['k']}",
        "mean_share: " + ", ".join(f"{c} {_num(v)}" for c, v in a["mean_share"].items()),
        "pooled_share: " + ", ".join(f"{c} {_pct(i)} %" for c, i in a["pooled_share"].items()),
    ]  # fmt: skip
    for name in report["definitions"]:
        if name in ("mean_share", "pooled_share") or a.get(name) is None:
            continue
        lines.append(f"{name:<22} {_num(a[name]):>8}   {report['definitions'][name]}")
    return "\n".join(lines)

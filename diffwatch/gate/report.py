"""A gate run's summary as people read it: a terminal summary, Markdown for a CI comment,
a self-contained HTML page (``diffwatch.gate.report_html``) and the files for all three.

Every string in a summary may come from someone who does not run the gate: prompts and
categories from suite files and production logs, labels and paths from the command line,
errors from exceptions that quote them. Each output makes them inert for its reader: control
and bidi characters go (a terminal escape, a reordered line), Markdown puts them in code
spans or escapes its syntax, and HTML escapes them.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

log = logging.getLogger(__name__)

MAX_PAIRS = 24  # pairs shown with their images in the HTML page
MD_PAIRS = 5  # pairs listed in the Markdown comment
MAX_TEXT = 300  # characters of one untrusted string kept in a report
NOTE_URI = "data:text/plain;charset=utf-8,"  # an image that could not be embedded: why

# Whitespace runs become one space (a newline would end a table row); other C0/C1 controls,
# zero-width and bidi-override characters are dropped, so no terminal escape sequence runs
# and no text is shown reordered.
_SPACE = re.compile(r"\s+")
_INVISIBLE = re.compile("[\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2060-\u2069\ufeff]")
# Inline Markdown syntax: escaped, each is shown as itself (links, images, emphasis, code,
# strikethrough, HTML, entities, tables, math).
_MD_SYNTAX = re.compile(r"([\\`*_{}\[\]<>|~!&$])")
_WORD_JOINER = "\u2060"  # GFM links www.x, x://y and a@b.c after escapes; this splits them
_ENV_KEYS = ("python", "torch", "cuda", "diffusers", "transformers", "open-clip-torch",
             "diffwatch", "gpu", "driver")  # fmt: skip


def clean(value: object, limit: int = MAX_TEXT) -> str:
    """``value`` as one line of plain text: no controls, at most ``limit`` characters."""
    s = _INVISIBLE.sub("", _SPACE.sub(" ", str(value))).strip()
    return s if len(s) <= limit else s[: limit - 1] + "…"


def number(value: object) -> float | None:
    """``value`` as a finite float, or None (missing, text, bool, NaN or infinite)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def num(value: object) -> str:
    """A number as people read it, about 3 significant digits; "–" when there is none."""
    x = number(value)
    if x is None:
        return "–"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{x:,.0f}" if x == 0 or abs(x) >= 100 else f"{x:.3g}"


def estimate_text(m: Mapping[str, Any]) -> str:
    """A metric's estimate with its unit, or its note when it has no estimate."""
    if number(m.get("estimate")) is None:
        return clean(m.get("note") or "no estimate")
    return f"{num(m['estimate'])} {clean(m.get('unit') or '')}".strip()


def interval_text(m: Mapping[str, Any]) -> str:
    """A metric's interval as ``[low, high]``, or "–"."""
    if number(m.get("low")) is None or number(m.get("high")) is None:
        return "–"
    return f"[{num(m['low'])}, {num(m['high'])}]"


def level_percent(summary: Mapping[str, Any]) -> str:
    """The policy's confidence level as "95 %" (95 % when the policy does not say)."""
    policy = summary.get("policy")
    level = number(policy.get("level")) if isinstance(policy, Mapping) else None
    return f"{(level or 0.95) * 100:g} %"


def side_label(summary: Mapping[str, Any], side: str) -> str:
    """A side's label (or source), plain text."""
    s = summary.get(side) or {}
    return clean(s.get("label") or s.get("source") or s.get("manifest") or side, 80)


def lineage_rows(summary: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """(what, candidate, baseline) rows of plain text: identity, then the environment."""
    sides = [summary.get("candidate") or {}, summary.get("baseline") or {}]
    envs = [s.get("environment") or {} for s in sides]

    def show(value: object, short: bool = False) -> str:
        if value is None or value == {}:
            return "–"
        if isinstance(value, Mapping):
            return clean(", ".join(f"{k}={v}" for k, v in value.items()))
        return clean(value)[:12] if short else (num(value) if number(value) else clean(value))

    rows = [("label", *(side_label(summary, k) for k in ("candidate", "baseline")))]
    for key, what in (("source", "source"), ("manifest", "manifest"),
                      ("weights_sha256", "weights sha256"), ("manifest_sha256", "manifest sha256"),
                      ("pipeline", "pipeline"), ("scheduler", "scheduler"),
                      ("precision", "precision"), ("overrides", "overrides"),
                      ("load_s", "load time (s)")):  # fmt: skip
        if any(key in s for s in sides):
            short = key.endswith("sha256")
            rows.append((what, *(show(s.get(key), short) for s in sides)))
    for key in _ENV_KEYS:
        if any(key in e for e in envs):
            rows.append((key, *(show(e.get(key)) for e in envs)))
    return rows


def text_summary(summary: Mapping[str, Any]) -> str:
    """The terminal summary: the verdict and exit code, then one line per metric."""
    run = summary.get("run_id")
    verdict = clean(summary.get("verdict", "unknown"), 20).upper()
    lines = [f"gate run{'' if run is None else ' ' + clean(run, 20)}: {verdict} "
             f"(exit {clean(summary.get('exit_code', '?'), 5)})"]  # fmt: skip
    lines.append(f"  {side_label(summary, 'candidate')} (candidate) vs "
                 f"{side_label(summary, 'baseline')} (baseline)")  # fmt: skip
    metrics = summary.get("metrics") or []
    width = max((len(clean(m.get("name", ""), 20)) for m in metrics), default=0)
    for m in metrics:
        name = clean(m.get("name", "?"), 20).ljust(width)
        role = "(blocks)" if m.get("blocks") else "(advisory)"
        line = f"  {name}  {clean(m.get('verdict', '?'), 20):<12} "
        if number(m.get("estimate")) is None:
            line += estimate_text(m)
        else:
            line += f"{num(m['estimate'])} {interval_text(m)} {clean(m.get('unit') or '')}"
            if m.get("rule"):
                line += f" vs {clean(m['rule'])}"
            if m.get("note"):
                line += f"; {clean(m['note'])}"
        lines.append(f"{line} {role}")
    n_errors = summary.get("n_errors", len(summary.get("errors") or []))
    lines.append(f"  {num(summary.get('pairs_compared'))} pairs compared of "
                 f"{num(summary.get('items'))} items; errors: {num(n_errors)}")  # fmt: skip
    for e in (summary.get("errors") or [])[:3]:
        lines.append(f"    {clean(e.get('key'), 60)} ({clean(e.get('side'), 12)}): "
                     f"{clean(e.get('error'), 160)}")  # fmt: skip
    return "\n".join(lines)


def md_text(value: object, limit: int = MAX_TEXT) -> str:
    """Untrusted text as inline Markdown shown as exactly that text (one line)."""
    s = _MD_SYNTAX.sub(r"\\\1", clean(value, limit))
    s = re.sub(r"(?i)(www)(?=\.)", r"\1" + _WORD_JOINER, s)
    return s.replace("://", ":" + _WORD_JOINER + "//").replace("@", _WORD_JOINER + "@")


def md_code(value: object, limit: int = MAX_TEXT) -> str:
    """Untrusted text as an inline code span for a GFM table cell: code spans show text as
    is (no HTML, link, mention or issue reference), so only what could end the span or the
    cell is handled: the fence is longer than any backtick run, ``|`` is escaped (GFM
    removes the backslash inside table cells), and newlines are gone."""
    s = clean(value, limit)
    if not s:
        return "–"
    fence = "`" * (max((len(r) for r in re.findall("`+", s)), default=0) + 1)
    pad = " " if s[0] == "`" or s[-1] == "`" else ""  # CommonMark strips one space a side
    return f"{fence}{pad}{s.replace('|', chr(92) + '|')}{pad}{fence}"


def _md_table(head: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    return [
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
        *("| " + " | ".join(r) + " |" for r in rows),
    ]


def _md_metric_notes(m: Mapping[str, Any]) -> list[str]:
    """Details below the metrics table: win rate, p-value, flags, departures, notes."""
    name, out = md_text(m.get("name", "?"), 40), []
    w = m.get("win_rate")
    if isinstance(w, Mapping) and number(w.get("estimate")) is not None:
        out.append(f"{name}: candidate win rate {num(w['estimate'])} {interval_text(w)}")
    if number(m.get("p_value")) is not None:
        out.append(f"{name}: permutation p-value {num(m['p_value'])}")
    if m.get("new_flags"):
        keys = ", ".join(md_code(k, 80) for k in m["new_flags"][:10])
        out.append(f"{name}: newly flagged {keys}")
    if m.get("departed"):
        gone = ", ".join(f"{md_code(d.get('key'), 80)} ({num(d.get('distance'))} > "
                         f"{num(d.get('tolerance'))})" for d in m["departed"][:10])  # fmt: skip
        out.append(f"{name}: departed {gone}")
    if m.get("note") and number(m.get("estimate")) is not None:
        out.append(f"{name}: {md_text(m['note'])}")
    return [f"- {x}" for x in out]


def _md_latency(m: Mapping[str, Any]) -> list[str]:
    sizes = [b for b in m.get("batch_sizes") or [] if isinstance(b, Mapping)]
    if not sizes:
        return []
    priced = any((b.get(s) or {}).get("usd_per_image") is not None
                 for b in sizes for s in ("candidate", "baseline"))  # fmt: skip
    head = ["Batch", "Side", "p50 ms", "p95 ms", "images/s"] + (["USD/image"] if priced else [])
    rows = []
    for b in sizes:
        for side in ("candidate", "baseline"):
            c = b.get(side) or {}
            row = [num(b.get("batch_size")), side, num(c.get("p50_ms")), num(c.get("p95_ms")),
                   num(c.get("images_per_s"))]  # fmt: skip
            rows.append(row + ([num(c.get("usd_per_image"))] if priced else []))
    lines = ["", "### Serving cost", ""]
    gpu, price = m.get("gpu"), m.get("usd_per_gpu_hour")
    lines.append(f"Measured on {md_code(gpu or 'CPU', 80)}"
                 + (f" at {num(price)} USD per GPU hour." if number(price) else "."))  # fmt: skip
    lines += ["", *_md_table(head, rows)]
    return lines


def markdown(summary: Mapping[str, Any]) -> str:
    """The summary as Markdown for a CI comment (GitHub, GitLab): verdict first, metrics,
    serving cost, the pairs that moved most, lineage and errors."""
    verdict = clean(summary.get("verdict", "unknown"), 20).upper()
    run = summary.get("run_id")
    lines = [
        f"**{md_text(verdict)}**: release gate{'' if run is None else ' run ' + md_text(run, 20)}"
        f", candidate {md_code(side_label(summary, 'candidate'))} vs baseline "
        f"{md_code(side_label(summary, 'baseline'))} (exit code "
        f"{md_text(summary.get('exit_code', '?'), 5)})",
        "",
        f"{num(summary.get('pairs_compared'))} pairs compared of {num(summary.get('items'))} "
        f"items; errors: {num(summary.get('n_errors', 0))}.",
        "",
        "### Metrics",
        "",
    ]
    metrics = [m for m in summary.get("metrics") or [] if isinstance(m, Mapping)]
    head = ["Metric", "Verdict", "Estimate", f"{level_percent(summary)} interval", "Rule",
            "Blocks"]  # fmt: skip
    lines += _md_table(head, (
        [md_text(m.get("title") or m.get("name", "?"), 80), f"**{md_text(m.get('verdict'), 20)}**",
         md_text(estimate_text(m)), interval_text(m), md_text(m.get("rule") or "–"),
         "yes" if m.get("blocks") else "no (advisory)"]
        for m in metrics
    ))  # fmt: skip
    details = [x for m in metrics for x in _md_metric_notes(m)]
    lines += ["", *details] if details else []
    for m in metrics:
        if m.get("name") == "latency":
            lines += _md_latency(m)
    pairs = [p for p in summary.get("pairs") or [] if isinstance(p, Mapping)][:MD_PAIRS]
    if pairs:
        lines += ["", f"### The {len(pairs)} pairs that moved most", ""]
        lines += _md_table(
            ["Prompt", "Seed", "Category", "CLIP cand.", "CLIP base.", "Δ", "Cosine", "NSFW c/b"],
            ([md_code(p.get("prompt"), 160), md_text(p.get("seed"), 24),
              md_code(p.get("category"), 40),
              num(p.get("clip_candidate")), num(p.get("clip_baseline")), num(p.get("delta")),
              num(p.get("cosine")),
              f"{'yes' if p.get('nsfw_candidate') else 'no'}/"
              f"{'yes' if p.get('nsfw_baseline') else 'no'}"] for p in pairs),
        )  # fmt: skip
    lines += ["", "### Lineage", ""]
    lines += _md_table(
        ["", "Candidate", "Baseline"],
        ([md_text(w), md_code(c), md_code(b)] for w, c, b in lineage_rows(summary)),
    )
    errors = [e for e in summary.get("errors") or [] if isinstance(e, Mapping)]
    if errors:
        lines += ["", f"### Errors ({num(summary.get('n_errors', len(errors)))})", ""]
        lines += [f"- {md_code(e.get('key'), 80)} ({md_text(e.get('side'), 12)}): "
                  f"{md_code(e.get('error'), 200)}" for e in errors[:10]]  # fmt: skip
    return "\n".join(lines) + "\n"


def html(summary: Mapping[str, Any], images: Mapping[str, str], max_pairs: int = MAX_PAIRS) -> str:
    """The summary as one self-contained HTML page; ``images`` maps image URI → data URI
    (``embed_images``) and shows the first ``max_pairs`` pairs side by side."""
    from diffwatch.gate.report_html import page  # it imports this module's helpers

    return page(summary, images, max_pairs)


def _note_uri(reason: str) -> str:
    return NOTE_URI + quote(clean(reason, 500), safe="")


def embed_images(
    summary: Mapping[str, Any],
    max_pairs: int = MAX_PAIRS,
    max_side: int = 256,
    access_roots: Iterable[str | Path] = (),
) -> dict[str, str]:
    """Thumbnails (longest side ``max_side`` pixels, JPEG quality 85) of the first
    ``max_pairs`` pairs' images as image URI → ``data:image/jpeg;base64,…``. Images are read
    only inside the image roots (``DIFFWATCH_IMAGE_ROOTS``, the summary's ``image_roots``,
    ``access_roots``); one that cannot be read maps to a ``data:text/plain`` URI saying why."""
    from diffwatch.scoring.images.load import LoadedImage, load_images
    from diffwatch.scoring.images.roots import ImageAccess

    pairs = [p for p in summary.get("pairs") or [] if isinstance(p, Mapping)][:max_pairs]
    uris = list(dict.fromkeys(
        u for p in pairs for u in (p.get("candidate_uri"), p.get("baseline_uri"))
        if isinstance(u, str) and u
    ))  # fmt: skip
    if not uris:
        return {}
    try:
        roots = [*(summary.get("image_roots") or ()), *access_roots]
        access = ImageAccess.from_settings().with_roots(*roots)
    except ValueError as exc:  # bad roots: the report still shows everything but the images
        return {u: _note_uri(f"images not read: {exc}") for u in uris}
    out: dict[str, str] = {}
    for uri, got in zip(uris, load_images(uris, workers=min(8, len(uris)), convert_modes=True,
                                          access=access), strict=True):  # fmt: skip
        if not isinstance(got, LoadedImage):
            log.warning("gate report: %s", got)
            out[uri] = _note_uri(str(got))
            continue
        im = got.to_pil()
        im.thumbnail((max_side, max_side))
        buf = io.BytesIO()
        im.save(buf, format="JPEG", quality=85)
        out[uri] = "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
    return out


def write_reports(summary: Mapping[str, Any], directory: Path) -> list[Path]:
    """Write gate.json (the whole summary), gate.md and gate.html (images embedded) into
    ``directory``, creating it; returns the three paths."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    texts = {
        "gate.json": json.dumps(summary, indent=2, default=str),
        "gate.md": markdown(summary),
        "gate.html": html(summary, embed_images(summary)),
    }
    paths = []
    for name, text in texts.items():
        path = directory / name
        path.write_text(text, encoding="utf-8")
        paths.append(path)
    return paths

"""A gate run's summary as one self-contained HTML page: verdict first, each metric's
interval drawn against its threshold, serving cost, lineage, and the pairs that moved most
as images side by side.

The page needs no network: the CSS is inline, the charts are inline SVG, and the images are
``data:`` URIs (``diffwatch.gate.report.embed_images``); a value that is not a base64 image
data URI never reaches a ``src``. Every string from the summary goes through ``html.escape``.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote

from diffwatch.gate.report import (
    NOTE_URI,
    clean,
    estimate_text,
    interval_text,
    level_percent,
    lineage_rows,
    num,
    number,
    side_label,
)

# Only these reach an <img src>: anything else (a URL, javascript:, a hostile mapping) is not
# an image this page can show without the network.
_DATA_IMAGE = re.compile(r"data:image/(?:png|jpeg|webp|gif);base64,[A-Za-z0-9+/]+=*")
# Should anything slip past the escaping, the browser still runs no script and fetches nothing.
_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
_COLOURS = {"pass": "#1a7f37", "fail": "#cf222e", "inconclusive": "#9a6700"}
_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:24px auto;max-width:1200px;padding:0 16px;
 color:#1f2328;background:#fff}
h1{font-size:44px;margin:0}h2{margin-top:32px;border-bottom:1px solid #d0d7de}
.banner{padding:18px 24px;border-radius:8px;color:#fff}.banner p{margin:6px 0 0;font-size:16px}
table{border-collapse:collapse;margin:8px 0}td,th{border:1px solid #d0d7de;padding:4px 8px;
 text-align:left;vertical-align:top}th{background:#f6f8fa}
.v{font-weight:700}.muted{color:#656d76}.num{text-align:right;font-variant-numeric:tabular-nums}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(540px,1fr));gap:16px}
.pair{border:1px solid #d0d7de;border-radius:6px;padding:8px}
.imgs{display:flex;gap:8px}.imgs figure{margin:0;flex:1}.imgs img{width:100%;height:auto}
.ph{display:flex;align-items:center;justify-content:center;min-height:120px;padding:8px;
 background:#f6f8fa;color:#656d76;font-size:12px;word-break:break-word}
.prompt{margin:6px 0;white-space:pre-wrap;word-break:break-word}.flag{color:#cf222e;font-weight:700}
pre{background:#f6f8fa;padding:8px;overflow:auto;white-space:pre-wrap}
"""


def esc(value: object, limit: int = 300) -> str:
    """Untrusted ``value`` as inert HTML text (one line, at most ``limit`` characters)."""
    return html.escape(clean(value, limit), quote=True)


def _verdict(value: object) -> str:
    word = clean(value, 20)
    colour = _COLOURS.get(word, "#656d76")
    return f'<span class="v" style="color:{colour}">{html.escape(word)}</span>'


def interval_svg(m: Mapping[str, Any], width: int = 180, height: int = 22) -> str:
    """A small inline SVG: the interval (bar), the estimate (dot) and the threshold (line);
    empty when the metric has no interval. Coordinates are pixels."""
    lo, hi, est, thr = (number(m.get(k)) for k in ("low", "high", "estimate", "threshold"))
    if lo is None or hi is None:
        return ""
    points = [x for x in (lo, hi, est, thr) if x is not None]
    a, b = min(points), max(points)
    pad = (b - a) * 0.1 or max(abs(a), 1.0) * 0.1
    a, b = a - pad, b + pad

    def x(v: float) -> str:
        return f"{(v - a) / (b - a) * width:.1f}"

    colour = _COLOURS.get(str(m.get("verdict")), "#656d76")
    mid = height / 2
    parts = [
        f'<line x1="0" y1="{mid}" x2="{width}" y2="{mid}" stroke="#d0d7de"/>',
        f'<rect x="{x(lo)}" y="{mid - 4}" width="{float(x(hi)) - float(x(lo)):.1f}" height="8" '
        f'fill="{colour}" opacity="0.45"/>',
    ]
    if est is not None:
        parts.append(f'<circle cx="{x(est)}" cy="{mid}" r="4" fill="{colour}"/>')
    if thr is not None:
        parts.append(f'<line x1="{x(thr)}" y1="1" x2="{x(thr)}" y2="{height - 1}" '
                     'stroke="#1f2328" stroke-width="2" stroke-dasharray="3,2"/>')  # fmt: skip
    label = f"interval {interval_text(m)}, threshold {num(thr)}"
    return (f'<svg width="{width}" height="{height}" role="img" aria-label="{esc(label)}">'
            f"<title>{esc(label)}</title>{''.join(parts)}</svg>")  # fmt: skip


def _table(head: list[str], rows: list[list[str]]) -> str:
    """A table from cells that are already HTML (escaped by the caller)."""
    th = "".join(f"<th>{h}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def _details(m: Mapping[str, Any]) -> str:
    """A metric's extras: win rate, p-value, categories, flags, departures, memory, note."""
    out = []
    w = m.get("win_rate")
    if isinstance(w, Mapping) and number(w.get("estimate")) is not None:
        out.append(f"candidate win rate {num(w['estimate'])} {esc(interval_text(w))}")
    if number(m.get("p_value")) is not None:
        out.append(f"permutation p-value {num(m['p_value'])}")
    if m.get("flagged_candidate") is not None:
        out.append(f"flagged: candidate {num(m.get('flagged_candidate'))}, baseline "
                   f"{num(m.get('flagged_baseline'))}")  # fmt: skip
    if m.get("new_flags"):
        out.append("newly flagged: " + ", ".join(f"<code>{esc(k, 80)}</code>"
                                                 for k in m["new_flags"][:20]))  # fmt: skip
    if m.get("departed"):
        out.append("departed: " + ", ".join(
            f"<code>{esc(d.get('key'), 80)}</code> ({num(d.get('distance'))} &gt; "
            f"{num(d.get('tolerance'))})" for d in m["departed"][:20] if isinstance(d, Mapping)
        ))  # fmt: skip
    peak = m.get("peak_mib")
    if isinstance(peak, Mapping):
        out.append(f"peak MiB: candidate {num(peak.get('candidate'))}, baseline "
                   f"{num(peak.get('baseline'))}")  # fmt: skip
    if m.get("note") and number(m.get("estimate")) is not None:
        out.append(esc(m["note"]))
    cats = [c for c in m.get("categories") or [] if isinstance(c, Mapping)]
    if cats:
        out.append("by category: " + "; ".join(
            f"{esc(c.get('category'), 60)} (n={num(c.get('n'))}) "
            + (f"{num(c.get('estimate'))} {esc(interval_text(c))}"
               if number(c.get("estimate")) is not None else "–")
            for c in cats
        ))  # fmt: skip
    return "<br>".join(out)


def _metrics(summary: Mapping[str, Any]) -> str:
    metrics = [m for m in summary.get("metrics") or [] if isinstance(m, Mapping)]
    rows = [[
        esc(m.get("title") or m.get("name"), 80), _verdict(m.get("verdict")),
        esc(estimate_text(m)), esc(interval_text(m)), interval_svg(m),
        esc(m.get("rule") or "–"), "blocks" if m.get("blocks") else "advisory", _details(m),
    ] for m in metrics]  # fmt: skip
    head = ["Metric", "Verdict", "Estimate", f"{level_percent(summary)} interval",
            "Interval against threshold (dashed)", "Rule", "Role", "Details"]  # fmt: skip
    return "<h2>Metrics</h2>" + _table(head, rows)


def _latency(summary: Mapping[str, Any]) -> str:
    lat = next((m for m in summary.get("metrics") or []
                if isinstance(m, Mapping) and m.get("name") == "latency"), None)  # fmt: skip
    sizes = [b for b in (lat or {}).get("batch_sizes") or [] if isinstance(b, Mapping)]
    if lat is None or not sizes:
        return ""
    rows = []
    for b in sizes:
        for side in ("candidate", "baseline"):
            c = b.get(side) or {}
            rows.append([num(b.get("batch_size")), side, num(c.get("p50_ms")),
                         num(c.get("p95_ms")), num(c.get("images_per_s")),
                         num(c.get("usd_per_image")), num(c.get("samples")),
                         f"{num(b.get('ratio'))} [{num(b.get('low'))}, {num(b.get('high'))}]"
                         if side == "candidate" else ""])  # fmt: skip
    price = number(lat.get("usd_per_gpu_hour"))
    load = lat.get("load_s") if isinstance(lat.get("load_s"), Mapping) else {}
    note = (f"Measured on {esc(lat.get('gpu') or 'CPU', 80)}"
            + (f" at {num(price)} USD per GPU hour" if price is not None else ", not priced")
            + f"; load time (s): candidate {num(load.get('candidate'))}, baseline "
            f"{num(load.get('baseline'))}.")  # fmt: skip
    head = ["Batch", "Side", "p50 ms", "p95 ms", "images/s", "USD/image", "samples",
            "ratio × baseline"]  # fmt: skip
    return f"<h2>Serving cost</h2><p>{note}</p>" + _table(head, rows)


def _image(uri: object, images: Mapping[str, str], side: str) -> str:
    data = images.get(uri) if isinstance(uri, str) else None
    if isinstance(data, str) and _DATA_IMAGE.fullmatch(data):
        return f'<img src="{data}" alt="{esc(side)} image">'
    if isinstance(data, str) and data.startswith(NOTE_URI):
        why = unquote(data[len(NOTE_URI) :])
    else:
        why = f"image not embedded: {uri}" if uri else "no image"
    return f'<div class="ph">{esc(why, 400)}</div>'


def _pairs(summary: Mapping[str, Any], images: Mapping[str, str], max_pairs: int) -> str:
    pairs = [p for p in summary.get("pairs") or [] if isinstance(p, Mapping)][:max_pairs]
    if not pairs:
        return ""
    cards = []
    for i, p in enumerate(pairs, 1):
        sides = []
        for side in ("candidate", "baseline"):
            flag = ' <span class="flag">NSFW</span>' if p.get(f"nsfw_{side}") else ""
            sides.append(
                f"<figure>{_image(p.get(f'{side}_uri'), images, side)}<figcaption>{side}: "
                f"CLIP {num(p.get(f'clip_{side}'))}{flag}</figcaption></figure>"
            )
        cards.append(
            f'<div class="pair"><div class="muted">#{i} · <code>{esc(p.get("key"), 80)}</code>'
            f" · seed {esc(p.get('seed'), 24)} · {esc(p.get('category') or '(none)', 60)}"
            f" · {esc(p.get('source'), 80)}</div>"
            f'<p class="prompt">{esc(p.get("prompt"), 1000)}</p>'
            f"<div>Δ CLIP {num(p.get('delta'))} · cosine {num(p.get('cosine'))}</div>"
            f'<div class="imgs">{"".join(sides)}</div></div>'
        )
    return (f"<h2>The {len(pairs)} pairs that moved most (worst first)</h2>"
            f'<div class="grid">{"".join(cards)}</div>')  # fmt: skip


def _rest(summary: Mapping[str, Any]) -> str:
    """Lineage, errors and the policy."""
    rows = [[esc(w), esc(c), esc(b)] for w, c, b in lineage_rows(summary)]
    out = "<h2>Lineage</h2>" + _table(["", "Candidate", "Baseline"], rows)
    errors = [e for e in summary.get("errors") or [] if isinstance(e, Mapping)]
    if errors:
        out += f"<h2>Errors ({num(summary.get('n_errors', len(errors)))})</h2><ul>" + "".join(
            f"<li><code>{esc(e.get('key'), 80)}</code> ({esc(e.get('side'), 12)}): "
            f"{esc(e.get('error'), 500)}</li>" for e in errors[:50]
        ) + "</ul>"  # fmt: skip
    policy = summary.get("policy")
    if policy:
        text = html.escape(json.dumps(policy, indent=2, default=str, ensure_ascii=False))
        out += f"<details><summary>Policy</summary><pre>{text}</pre></details>"
    return out


def page(summary: Mapping[str, Any], images: Mapping[str, str], max_pairs: int) -> str:
    """The whole page (see ``diffwatch.gate.report.html``)."""
    verdict = clean(summary.get("verdict", "unknown"), 20)
    run = summary.get("run_id")
    title = f"Gate run {clean(run, 20)}" if run is not None else "Gate run"
    cand, base = side_label(summary, "candidate"), side_label(summary, "baseline")
    banner = (
        f'<div class="banner" style="background:{_COLOURS.get(verdict, "#656d76")}">'
        f"<h1>{esc(verdict.upper())}</h1><p>{esc(title)}: {esc(cand)} (candidate) vs "
        f"{esc(base)} (baseline), exit code {esc(summary.get('exit_code', '?'), 5)}</p>"
        f"<p>{num(summary.get('pairs_compared'))} pairs compared of {num(summary.get('items'))}"
        f" items; errors: {num(summary.get('n_errors', 0))}</p></div>"
    )
    body = banner + _metrics(summary) + _latency(summary) + _pairs(summary, images, max_pairs)
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">'
        f"<title>{esc(title)}: {esc(verdict.upper())}</title><style>{_CSS}</style></head>"
        f"<body>{body}{_rest(summary)}</body></html>\n"
    )

"""Releases: release-gate runs (``diffwatch gate run``) and one run opened: its verdict, each
metric with its interval against the policy, serving cost per batch size, both sides'
lineage, alignment per category, and the image pairs side by side, worst first.

Labels, prompts and errors come from people and logs: they reach Markdown elements only
through ``diffwatch.app.text.md``, Plotly only through ``diffwatch.app.text.plotly``, and
are otherwise shown with ``st.text``, ``st.code`` or table cells (plain text).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

from diffwatch.app import images
from diffwatch.app import releases_data as rd
from diffwatch.app.text import md, plotly
from diffwatch.model.dashboard_url import bad_id, url_id

PAIRS_STEP = 12  # pairs shown at first, and added by each "show more"
PAIR_PX = 384
PANEL_PX, GAP_PX = 50, 70  # the interval chart: a panel's height, the gap between panels
COLOURS = {"pass": "#2ca02c", "fail": "#d62728", "inconclusive": "#ff7f0e"}
NO_RUNS = (
    "No release-gate runs yet. Run one with `diffwatch gate run --candidate DIR --baseline "
    "DIR --suite FILE` (or `--candidate-images`/`--baseline-images` manifests); it appears "
    "here as it starts."
)


def render() -> None:
    """Draw the page."""
    st.title("Releases")
    rows = rd.runs()
    if not rows:
        st.info(NO_RUNS)
        return
    st.caption(
        "Release-gate runs, newest first: a candidate model against the baseline it would "
        "replace, on the same prompts and seeds. Pick a run below (or link one with ?run=ID)."
    )
    st.dataframe(pd.DataFrame(rd.run_rows(rows)), hide_index=True, width="stretch")
    run_id = _pick(rows)
    if run_id is None:
        return
    run = rd.run(run_id)
    if run is None:
        st.warning(f"Run #{run_id} is gone (deleted since the list was read).")
        return
    _one_run(run)


def _pick(rows: list[dict[str, Any]]) -> int | None:
    """The run to open: the URL's ``?run=`` if valid, else the newest; a selectbox whose
    choice is written back to the URL."""
    ids = [int(r["id"]) for r in rows]
    by_id = {int(r["id"]): r for r in rows}
    wanted, bad = url_id(st.query_params.get("run"))
    if bad or wanted == 0:
        st.warning(bad_id("run", "the newest run"))
        wanted = None
    elif wanted is not None and wanted not in by_id:
        found = rd.run(wanted)
        if found is None:
            st.warning(f"There is no release-gate run #{wanted} (?run= in the address). "
                       "Showing the newest run instead.")  # fmt: skip
            wanted = None
        else:  # older than the list: still openable by its link
            ids.append(wanted)
            by_id[wanted] = found
    key = "releases-run"

    def chosen() -> None:
        st.query_params["run"] = str(st.session_state[key])

    def label(i: int) -> str:  # option labels are plain text, never Markdown
        r = by_id[i]
        state = r.get("verdict") if r.get("status") == "done" else r.get("status")
        return f"#{i} · {r.get('candidate_label')} vs {r.get('baseline_label')} · {state}"

    index = ids.index(wanted) if wanted in ids else 0
    return st.selectbox("Run", ids, index=index, key=key, format_func=label, on_change=chosen)


def _one_run(run: dict[str, Any]) -> None:
    """A run: its status or verdict, then what the summary holds."""
    cand, base = str(run.get("candidate_label")), str(run.get("baseline_label"))
    st.header(f"Run #{run['id']}: {md(cand)} vs {md(base)}")
    started = run.get("created_at")
    st.text(
        f"Started {_time(started)} UTC by {run.get('created_by') or '?'} · mode {run.get('mode')}"
        + (f" · finished {_time(run.get('finished_at'))} UTC" if run.get("finished_at") else "")
    )
    if run.get("status") == "failed":
        st.error(f"Run #{run['id']} failed: it has no verdict. Its error:")
        st.code(run.get("error") or "(no error text was stored)", language=None, wrap_lines=True)
        _lineage(run.get("candidate"), run.get("baseline"))
        return
    if run.get("status") == "running":
        done, total = rd.progress(int(run["id"]))
        mins = (datetime.now(UTC) - started).total_seconds() / 60 if started else 0
        st.info(
            f"Run #{run['id']} is still running: {done} of {total} chunks of work done, "
            f"started {mins:.0f} min ago. Its verdict appears here when it finishes."
        )
        _lineage(run.get("candidate"), run.get("baseline"))
        return
    summary = rd.as_dict(run.get("summary"))
    _verdict(run, summary, cand, base)
    _counts(summary)
    _metrics(summary)
    _human(summary)
    _latency(summary)
    _lineage(summary.get("candidate") or run.get("candidate"),
             summary.get("baseline") or run.get("baseline"))  # fmt: skip
    _categories(summary)
    _errors(summary)
    _pairs(int(run["id"]), summary)


def _time(t: Any) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%d %H:%M") if isinstance(t, datetime) else "?"


def _verdict(run: dict[str, Any], summary: dict[str, Any], cand: str, base: str) -> None:
    """The verdict box: green pass, red fail, amber inconclusive, naming what decided."""
    verdict = summary.get("verdict") or run.get("verdict")
    who = f"candidate {md(cand)} against baseline {md(base)}"
    code = summary.get("exit_code")
    exit_note = f" (exit code {md(rd.fmt(code))})" if code is not None else ""
    if verdict == "pass":
        st.success(f"**Pass**{exit_note}: every blocking metric passed, {who}.")
    elif verdict == "fail":
        failed = rd.blocking_by_verdict(summary, "fail")
        which = md(", ".join(failed)) or "see the metrics below"
        st.error(f"**Fail**{exit_note}: {who}; blocking metrics failed: {which}.")
    else:
        open_ = rd.blocking_by_verdict(summary, "inconclusive")
        st.warning(
            f"**Inconclusive**{exit_note}: {who}; the data cannot decide "
            f"{md(', '.join(open_)) or 'the verdict'}: more items would."
        )


def _counts(summary: dict[str, Any]) -> None:
    c = st.columns(4)
    c[0].metric("Items", rd.fmt(summary.get("items")))
    c[1].metric("Pairs compared", rd.fmt(summary.get("pairs_compared")))
    c[2].metric("Errors", rd.fmt(summary.get("n_errors")))
    c[3].metric("Blocking metrics", str(sum(1 for m in rd.metrics(summary) if m.get("blocks"))))


def _metrics(summary: dict[str, Any]) -> None:
    st.subheader("Metrics")
    rows = rd.metric_rows(summary)
    if not rows:
        st.info("This run's summary holds no metrics.")
        return
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch", height="content")
    _chart(rd.chart_metrics(summary), rd.level(summary))
    departed = [d for m in rd.metrics(summary) for d in rd.as_list(m.get("departed"))]
    if departed:
        st.text("Golden items beyond their tolerance (1 − cosine):")
        st.dataframe(pd.DataFrame(departed), hide_index=True)
    new = [k for m in rd.metrics(summary) for k in rd.as_list(m.get("new_flags"))]
    if new:
        st.text("Newly NSFW-flagged on the candidate: " + ", ".join(str(k) for k in new))


def _chart(shown: list[dict[str, Any]], level: float) -> None:
    """Each metric's estimate and interval against its threshold, the failing side shaded,
    one panel per metric (each in its own unit)."""
    if not shown:
        return
    titles = [plotly(f"{m['title']} · {m['unit']}" if m["unit"] else m["title"]) for m in shown]
    # Fixed pixels per panel and between panels (room for the axis ticks and the next title).
    area = PANEL_PX * len(shown) + GAP_PX * (len(shown) - 1)
    gap = GAP_PX / area if len(shown) > 1 else 0.0  # Plotly wants a fraction of the height
    fig = make_subplots(rows=len(shown), cols=1, vertical_spacing=gap, subplot_titles=titles)
    for i, m in enumerate(shown, start=1):
        est, low, high, thr = m["estimate"], m["low"], m["high"], m["threshold"]
        xs = [v for v in (est, low, high, thr) if v is not None]
        span = (max(xs) - min(xs)) or abs(thr) or 1.0
        lo, hi = min(xs) - 0.35 * span, max(xs) + 0.35 * span
        if min(xs) >= 0:  # counts, ratios, CMMD: no room for negative values on the axis
            lo = max(lo, -0.1 * span)
        error = (
            {"type": "data", "symmetric": False, "array": [high - est], "arrayminus": [est - low]}
            if low is not None
            else None
        )
        fig.add_trace(
            go.Scatter(
                x=[est], y=[0], mode="markers", error_x=error, showlegend=False,
                marker={"size": 12, "color": COLOURS.get(m["verdict"], "gray")},
                hovertemplate=plotly(m["verdict"]) + ": %{x:.4g}<extra></extra>",
            ),
            row=i, col=1,
        )  # fmt: skip
        fail_side = (lo, thr) if m["higher_better"] else (thr, hi)
        fig.add_vrect(x0=fail_side[0], x1=fail_side[1], fillcolor="#d62728", opacity=0.08,
                      line_width=0, row=i, col=1)  # fmt: skip
        fig.add_vline(x=thr, line_dash="dash", line_color="gray", row=i, col=1)
        fig.update_xaxes(range=[lo, hi], row=i, col=1)
        fig.update_yaxes(visible=False, range=[-1, 1], row=i, col=1)
    fig.update_layout(
        title="Each metric against the policy's threshold",
        height=area + 110,
        margin={"t": 80, "b": 30},
    )
    st.plotly_chart(fig, width="stretch")
    st.caption(
        f"Dot: the estimate, coloured by its verdict (green pass, orange inconclusive, red "
        f"fail); whiskers: its {level * 100:g} % interval; dashed line: the threshold; shaded: "
        "the side where the metric fails."
    )


def _human(summary: dict[str, Any]) -> None:
    h = rd.human_metric(summary)
    if h is None:
        st.text("Human side-by-side: not enqueued")
        return
    note = f" ({h['note']})" if h.get("note") else ""
    st.text(f"Human side-by-side: {rd.verdict_mark(h.get('verdict'))}{note}")
    counts = h.get("counts") or {}
    if isinstance(h.get("estimate"), int | float) and isinstance(counts, dict):
        st.text(
            f"Candidate win rate {h['estimate']:.1%} (95% {h.get('low', 0):.1%}–"
            f"{h.get('high', 1):.1%}) over {h.get('n', 0)} rated pairs, {h.get('votes', 0)} "
            f"votes by {h.get('raters', 0)} raters: candidate better {counts.get('candidate', 0)}, "
            f"same {counts.get('same', 0)}, baseline better {counts.get('baseline', 0)}"
        )


def _latency(summary: dict[str, Any]) -> None:
    rows = rd.latency_rows(summary)
    if not rows:
        return
    st.subheader("Serving cost per batch size")
    gpu = rd.latency_gpu(summary)
    st.text(f"Measured on {gpu or 'an unnamed device'}; ratio = candidate / baseline median.")
    ms = st.column_config.NumberColumn(format="%.1f")
    config = {
        "p50 ms": ms,
        "p95 ms": ms,
        "images/s": st.column_config.NumberColumn(format="%.2f"),
        "USD/image": st.column_config.NumberColumn(format="%.5f"),
    }
    st.dataframe(
        pd.DataFrame(rows), hide_index=True, width="stretch", height="content", column_config=config
    )


def _lineage(candidate: Any, baseline: Any) -> None:
    rows = rd.lineage_rows(candidate, baseline)
    if not rows:
        return
    st.subheader("Lineage")
    st.dataframe(
        pd.DataFrame(rows),
        hide_index=True,
        width="stretch",
        height="content",
        column_config={"same": st.column_config.CheckboxColumn("same", width="small")},
    )


def _categories(summary: dict[str, Any]) -> None:
    rows = rd.category_rows(summary)
    if not rows:
        return
    st.subheader("Prompt alignment per category")
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
    st.caption("CLIPScore difference: candidate − baseline, mean over the category's pairs.")


def _errors(summary: dict[str, Any]) -> None:
    rows = rd.error_rows(summary)
    if not rows:
        return
    n = rd.fmt(summary.get("n_errors"))
    st.subheader(f"Errors ({md(n)})")
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")


def _pairs(run_id: int, summary: dict[str, Any]) -> None:
    """The pairs side by side, worst first, PAIRS_STEP at a time."""
    pairs = rd.pairs(summary)
    st.subheader("Image pairs, worst first")
    if not pairs:
        st.info("This run compared no pairs.")
        return
    key = f"releases-pairs-{run_id}"
    n = min(st.session_state.get(key, PAIRS_STEP), len(pairs))
    st.caption(
        f"Showing {n} of {len(pairs)} pairs: the largest CLIPScore drop first, then the "
        "images that moved most. NSFW-flagged images are blurred until revealed."
    )
    for rank, p in enumerate(pairs[:n], start=1):
        with st.container(border=True):
            _pair(run_id, rank, p)
    if n < len(pairs) and st.button(f"Show {min(PAIRS_STEP, len(pairs) - n)} more pairs"):
        st.session_state[key] = n + PAIRS_STEP
        st.rerun()


def _pair(run_id: int, rank: int, p: dict[str, Any]) -> None:
    c1, c2, c3 = st.columns([2, 2, 3])
    for col, side in ((c1, "candidate"), (c2, "baseline")):
        with col:
            st.text(side.capitalize())
            uri = p.get(f"{side}_uri")
            if isinstance(uri, str) and uri:
                flagged = bool(p.get(f"nsfw_{side}"))
                images.show(uri, flagged, f"gate-{run_id}-{rank}-{side}", px=PAIR_PX)
            else:
                st.text("no image stored for this side")
    with c3:
        where = f" · {p['category']}" if p.get("category") else ""
        st.text(f"#{rank} · {p.get('key')} · seed {p.get('seed')}{where}")
        st.text(p.get("prompt") or "")
        st.text(
            f"CLIPScore: candidate {rd.fmt(p.get('clip_candidate'), 4)} · baseline "
            f"{rd.fmt(p.get('clip_baseline'), 4)} · Δ {_signed(p.get('delta'))}"
        )
        st.text(f"Image cosine: {rd.fmt(p.get('cosine'))}")
        st.text(
            f"NSFW flag: candidate {_flag(p.get('nsfw_candidate'))} · baseline "
            f"{_flag(p.get('nsfw_baseline'))}"
        )
        if p.get("source"):
            st.text(f"From: {p['source']}")


def _signed(v: Any) -> str:
    x = rd.num(v)
    return "–" if x is None else f"{x:+.2f}"


def _flag(v: Any) -> str:
    return "–" if v is None else "flagged" if v else "no"

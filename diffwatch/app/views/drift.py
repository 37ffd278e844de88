"""Drift: prompt-distribution drift runs, output drift (re-generation, golden set) and image
drift (stored CLIP image embeddings, ``drift_images``) over time, with drill-down to what
moved, to a run's items and to images side by side."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from functools import partial
from typing import Any

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

from diffwatch.app import charts, data, sidebar
from diffwatch.app.summary import as_dict as _dict
from diffwatch.app.summary import as_list as _list
from diffwatch.app.summary import as_number as _num
from diffwatch.app.summary import cluster_id as _cluster_id
from diffwatch.app.views import drift_prompt_tests as ptests
from diffwatch.app.views.drift_images import image_section
from diffwatch.app.views.drift_output import (
    fmt_time,
    model_label,
    output_section,
    pad_lone_run,
    runs_then_one,
    windows_label,
)
from diffwatch.db.queries.drift_dashboard import OUTPUT_KINDS
from diffwatch.model.dashboard_url import bad_id, url_id
from diffwatch.model.deploy_markers import DeployMarker

DEFAULT_RANGE = "30d"  # drift checks run daily: a month shows a trend
TABS = (
    "Prompt drift",
    "Output drift (re-generation & golden set)",
    "Image drift (CLIP embeddings)",
)
EFFECT_NAMES = ptests.EFFECT_NAMES
TOP_CLUSTERS = 12


def prompt_chart(runs: pd.DataFrame, markers: Sequence[DeployMarker] = ()) -> None:
    """Effect size and p-value (log scale, with α) per finished run, drifted runs marked."""
    done = runs[runs["p_value"].notna() | runs["effect_size"].notna()]
    if done.empty:
        st.info("No prompt-drift run in this range has finished with a result yet.")
        return
    names = done["effect_size_name"].dropna().unique().tolist()
    name = names[0] if len(names) == 1 else None
    fig = make_subplots(
        rows=2,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.12,
        subplot_titles=(
            f"Effect size: {EFFECT_NAMES.get(name, name or 'as stored per run')}",
            "p-value (log scale; at or below the dashed α line = drifted)",
        ),
    )
    drifted = done[done["drifted"].fillna(False).astype(bool)]
    hover = "run #%{customdata}: %{y:.3g}<extra></extra>"
    fig.add_trace(
        go.Scatter(
            x=done["started_at"],
            y=done["effect_size"],
            mode="lines+markers",
            name="effect size",
            customdata=done["id"],
            hovertemplate=hover,
        ),
        row=1,
        col=1,
    )
    # A permutation test can report p = 0; a log axis cannot show it, so floor it.
    p = done["p_value"].clip(lower=1e-12)
    fig.add_trace(
        go.Scatter(
            x=done["started_at"],
            y=p,
            mode="lines+markers",
            name="p-value",
            customdata=done["id"],
            hovertemplate=hover,
        ),
        row=2,
        col=1,
    )
    alphas = done["alpha"].dropna().unique()
    if len(alphas) == 1:  # one α: a line across the panel, also under a single run
        fig.add_hline(y=float(alphas[0]), line_dash="dash", line_color="gray", row=2, col=1)
        fig.add_trace(  # its legend entry (an annotation would misplace on a log axis)
            go.Scatter(
                x=[None],
                y=[None],
                mode="lines",
                name=f"α = {float(alphas[0]):g}",
                line={"dash": "dash", "color": "gray"},
            ),
            row=2,
            col=1,
        )
    elif len(alphas) > 1:
        fig.add_trace(
            go.Scatter(
                x=done["started_at"],
                y=done["alpha"],
                mode="lines",
                connectgaps=True,
                name="α",
                line={"dash": "dash", "color": "gray"},
                hovertemplate="α %{y}<extra></extra>",
            ),
            row=2,
            col=1,
        )
    if name == "knn_auc":
        fig.add_hline(
            y=0.5, line_dash="dot", line_color="gray", row=1, col=1, annotation_text="no difference"
        )
    for row, y in ((1, drifted["effect_size"]), (2, drifted["p_value"].clip(lower=1e-12))):
        fig.add_trace(
            go.Scatter(
                x=drifted["started_at"],
                y=y,
                mode="markers",
                name="drifted",
                legendgroup="drifted",
                showlegend=row == 1,
                customdata=drifted["id"],
                marker={"symbol": "x", "size": 13, "color": "#d62728"},
                hovertemplate="run #%{customdata}: drifted<extra></extra>",
            ),
            row=row,
            col=1,
        )
    fig.update_yaxes(type="log", dtick=1, row=2, col=1)
    shown = [*p.dropna().tolist(), *alphas.tolist()]
    if shown:  # a log axis zoomed on the p-values alone can leave α out of view
        lo, hi = min(shown), max(*shown, 1e-3)
        fig.update_yaxes(range=[math.log10(lo) - 0.5, math.log10(hi) + 0.5], row=2, col=1)
    pad_lone_run(fig, done["started_at"])
    fig.update_layout(title="Prompt drift per run", height=560, margin={"t": 70, "b": 10})
    charts.add_markers(fig, markers)
    st.plotly_chart(fig, width="stretch")
    st.caption(
        "The p-value that decides: the embedding and lexical tests combined (older runs: the "
        "embedding test alone)."
    )


def prompt_table(runs: pd.DataFrame) -> pd.DataFrame:
    """The runs as a table, newest first."""
    rows = [
        {
            "run": r.id,
            "started (UTC)": fmt_time(r.started_at),
            "status": r.status,
            "model": model_label(r.model),
            "reference → current": windows_label(r),
            "n reference": r.n_reference,
            "n current": r.n_current,
            "p-value": r.p_value,
            "α": r.alpha,
            "effect size": r.effect_size,
            "drifted": None if pd.isna(r.drifted) else bool(r.drifted),
            "embedder": r.embedder,
            "demo": bool(r.demo),
            "error": r.error,
        }
        for r in runs.itertuples()
    ]
    return pd.DataFrame(rows[::-1])


def _verdict(run: Any, test: dict[str, Any]) -> None:
    summary = _dict(run.summary)
    combined = ptests.combined(summary)
    p, alpha = run.p_value, run.alpha if run.alpha is not None else _num(test.get("alpha"))
    effect = run.effect_size
    c = st.columns(4)
    c[0].metric(
        "p-value",
        "n/a" if p is None else f"{p:.3g}",
        help=ptests.COMBINED_HELP.format(how=ptests.method_markdown(summary))
        if combined
        else "The embedding test's permutation p-value.",
    )
    c[1].metric("α", "n/a" if alpha is None else f"{alpha:g}")
    c[2].metric(
        "Effect size",
        "n/a" if effect is None else f"{effect:.3f}",
        help="Embedding test: "
        + EFFECT_NAMES.get(str(run.effect_size_name), "as stored by the check"),
    )
    c[3].metric(
        "Prompts (reference / current)", f"{run.n_reference or 0:,} / {run.n_current or 0:,}"
    )
    moved = [str(name) for name in _list(summary.get("parameters_drifted"))]
    if run.drifted:
        why = []
        prompts = ptests.why(summary, p, alpha)
        if prompts:
            why.append(prompts)
        if moved:
            why.append("generation parameters changed: " + ", ".join(moved))
        st.error("Drifted.")
        st.text("; ".join(why) or "the check flagged this run as drifted")
    elif run.drifted is False:
        st.success("No drift detected between the reference and the current prompts.")
    tests = ptests.table(summary)
    if tests is not None:
        st.caption(
            "Both prompt tests: each one's p-value alone, its adjusted p-value "
            f"({ptests.method_markdown(summary)}, on shared permutations) and its effect size. "
            "The run drifts when an adjusted p-value is at or below α."
        )
        st.dataframe(tests, hide_index=True, width="stretch")
    details = ptests.details(summary)
    if details is not None:
        with st.expander("Test details (method, statistic, permutations, bandwidth)"):
            st.dataframe(details, hide_index=True)


def _delta(c: dict[str, Any]) -> float:
    """A cluster's change in share (current − reference, 0..1), from its shares if absent."""
    d = _num(c.get("delta"))
    if d is not None:
        return d
    return (_num(c.get("share_current")) or 0.0) - (_num(c.get("share_reference")) or 0.0)


def _clusters(summary: dict[str, Any]) -> None:
    clusters = [c for c in _list(summary.get("clusters")) if isinstance(c, dict)]
    if not clusters:
        return
    clusters.sort(key=lambda c: -abs(_delta(c)))
    shown = clusters[:TOP_CLUSTERS]
    long = pd.DataFrame(
        [
            {
                "cluster": f"cluster #{_cluster_id(c.get('cluster'))}",
                "window": side,
                "share %": 100 * (_num(c.get(f"share_{side}")) or 0.0),
            }
            for c in shown
            for side in ("reference", "current")
        ]
    )
    fig = px.bar(
        long,
        x="cluster",
        y="share %",
        color="window",
        barmode="group",
        title="What moved: share of prompts per cluster, reference vs current (%), "
        "largest change first",
    )
    fig.update_layout(margin={"t": 40, "b": 10}, xaxis_title="", legend_title_text="")
    fig.update_xaxes(type="category")  # ids are labels, in order of change, not numbers
    st.plotly_chart(fig, width="stretch")
    st.caption("Each cluster: its terms and example prompts (shown as plain text).")
    for i, c in enumerate(shown):
        ref = 100 * (_num(c.get("share_reference")) or 0.0)
        cur = 100 * (_num(c.get("share_current")) or 0.0)
        cid = _cluster_id(c.get("cluster"))
        label = f"Cluster #{cid}: {ref:.1f} % → {cur:.1f} % ({cur - ref:+.1f} pts)"
        with st.expander(label, expanded=i == 0):
            terms = [str(t) for t in _list(c.get("terms"))]
            st.text("Terms: " + (", ".join(terms) if terms else "(none stored)"))
            st.text("Example prompts:")
            for prompt in _list(c.get("examples"))[:10]:
                st.text(str(prompt)[:500])


def _terms(summary: dict[str, Any]) -> None:
    terms = _dict(summary.get("terms"))
    if not (terms.get("grew") or terms.get("shrank")):
        return
    st.subheader("Terms that grew and shrank")
    cols = st.columns(2)
    for col, key, title in ((cols[0], "grew", "Grew"), (cols[1], "shrank", "Shrank")):
        rows = [
            {
                "term": str(t.get("term")),
                "count reference": t.get("count_reference"),
                "count current": t.get("count_current"),
                "rate reference %": 100 * (_num(t.get("rate_reference")) or 0.0),
                "rate current %": 100 * (_num(t.get("rate_current")) or 0.0),
                "z": t.get("z"),
            }
            for t in _list(terms.get(key))
            if isinstance(t, dict)
        ]
        with col:
            st.text(title)
            st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")


def _compact(v: Any) -> str:
    return json.dumps(v, ensure_ascii=False, default=str) if isinstance(v, dict | list) else str(v)


def _parameters(summary: dict[str, Any]) -> None:
    tests = [t for t in _list(summary.get("parameters")) if isinstance(t, dict)]
    if not tests:
        return
    st.subheader("Generation parameters: reference vs current")
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "parameter": t.get("parameter"),
                    "test": t.get("test"),
                    "statistic": _num(t.get("statistic")),
                    "p-value": _num(t.get("p_value")),
                    "effect size": _num(t.get("effect_size")),
                    "effect": t.get("effect_size_name"),
                    "drifted": t.get("drifted"),
                    "n reference": t.get("n_reference"),
                    "n current": t.get("n_current"),
                    "reference": _compact(t.get("reference_summary")),
                    "current": _compact(t.get("current_summary")),
                }
                for t in tests
            ]
        ),
        hide_index=True,
        width="stretch",
    )


def what_moved(run: Any) -> None:
    """The verdict of one prompt-drift run, and its clusters, terms and parameter tests."""
    summary = _dict(run.summary)
    test = _dict(summary.get("test"))
    windows = _dict(summary.get("windows"))
    st.text(f"Reference: {windows.get('reference') or windows_label(run).split(' → ')[0]}")
    st.text(f"Current: {windows.get('current') or fmt_time(run.current_start)}")
    st.text(f"Embedder: {run.embedder or '?'} · model: {run.model or 'all'}")
    if run.status == "ok" or test:
        _verdict(run, test)
    if not any(summary.get(k) for k in ("clusters", "terms", "parameters")):
        if run.status == "ok":
            st.info("This run stored no breakdown (clusters, terms, parameters).")
        return
    _clusters(summary)
    _terms(summary)
    _parameters(summary)


def prompt_section(runs: pd.DataFrame, markers: Sequence[DeployMarker] = ()) -> None:
    """Prompt-drift runs over time (with the deploy ``markers``), the table, and one run's
    "what moved"."""
    run = runs_then_one(
        runs,
        "prompts",
        empty="No prompt-drift runs in this time range and filter: run `diffwatch drift prompts`.",
        chart=partial(prompt_chart, markers=markers),
        table=prompt_table,
        heading="What moved",
    )
    if run is not None:
        what_moved(run)


def render() -> None:
    """Draw the page."""
    if not any(k in st.query_params for k in ("range", "from", "to")):
        st.query_params["range"] = DEFAULT_RANGE
    f = sidebar.filters()
    st.title("Drift")
    overview = data.drift_overview()
    if overview.n_runs == 0:
        st.info(
            "No drift runs yet; run `diffwatch drift prompts` (prompt-distribution drift) / "
            "`diffwatch drift regenerate` (re-generate logged prompts with their seeds) / "
            "`diffwatch drift regenerate --golden FILE` (a golden set against its baselines) / "
            "`diffwatch drift images` (the images themselves, through their CLIP embeddings)."
        )
        return
    prompts = data.drift_runs(f, ("prompts",))
    outputs = data.drift_runs(f, OUTPUT_KINDS)
    image_runs = data.drift_runs(f, ("images",))
    if prompts.empty and outputs.empty and image_runs.empty:
        st.info(
            f"No drift runs in this time range and filter; the newest started "
            f"{fmt_time(overview.newest)} UTC: widen the time range in the sidebar."
        )
        return
    st.caption(
        "Runs started in the selected time range. A model filter keeps runs of that model and "
        "runs over all models. Pick a run below (or link one with ?run=ID)."
    )
    wanted, bad = url_id(st.query_params.get("run"))
    output_ids = {int(i) for i in (outputs["id"].tolist() if len(outputs) else [])}
    prompt_ids = {int(i) for i in (prompts["id"].tolist() if len(prompts) else [])}
    image_ids = {int(i) for i in (image_runs["id"].tolist() if len(image_runs) else [])}
    if bad:
        st.warning(bad_id("run", "the newest run"))
    elif wanted is not None and wanted not in output_ids | prompt_ids | image_ids:
        st.info(
            "The run linked in the address (?run=) is not among the runs listed here: it may "
            "be outside the time range or filter in the sidebar. Showing the newest run."
        )
    if wanted in image_ids or (prompts.empty and outputs.empty):
        first = TABS[2]
    elif wanted in output_ids or prompts.empty:
        first = TABS[1]
    else:
        first = TABS[0]
    tab_prompts, tab_output, tab_images = st.tabs(list(TABS), default=first)
    marks = data.deploy_markers(f)
    with tab_prompts:
        prompt_section(prompts, marks)
    with tab_output:
        output_section(outputs, marks)
    with tab_images:
        image_section(image_runs, marks)

"""Model versions: two deployments or versions side by side, each difference with its 95 %
confidence interval, and a plain-language verdict (methods: docs/dashboard-queries.md)."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from app import data, sidebar


def _pick(label: str, options: list[str], preferred: str, index_if_missing: int) -> str:
    i = (
        options.index(preferred)
        if preferred in options
        else min(index_if_missing, len(options) - 1)
    )
    return st.selectbox(label, options, index=i)


def render() -> None:
    """Draw the page."""
    f = sidebar.filters()
    st.title("Model versions")
    opts = data.options()
    by = st.radio("Compare", ["deployment", "version"], horizontal=True)
    choices = list(opts.deployments if by == "deployment" else opts.versions)
    if len(choices) < 2:
        st.info(f"Comparing needs two {by}s with data; this database has {len(choices)}.")
        return
    c1, c2 = st.columns(2)
    with c1:
        baseline = _pick("Baseline", choices, "stable", 0)
    with c2:
        candidate = _pick("Candidate", choices, "canary", 1)
    if baseline == candidate:
        st.warning("Pick two different ones.")
        return
    v = data.compare_sides(f, by, baseline, candidate)
    rows = []
    for c in v.comparisons:
        unit = f" {c.metric.unit}" if c.metric.unit else ""
        rows.append(
            {
                "metric": c.metric.name + unit,
                baseline: c.baseline,
                candidate: c.candidate,
                "difference": c.diff.estimate if c.diff else None,
                "95% CI low": c.diff.low if c.diff else None,
                "95% CI high": c.diff.high if c.diff else None,
                "matters from": c.threshold,
                "n (baseline / candidate)": f"{c.n_baseline:,} / {c.n_candidate:,}",
                "status": c.status.replace("_", " "),
            }
        )
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
    shown = [c for c in v.comparisons if c.diff is not None and c.threshold]
    if shown:
        # Differences in units of "the smallest difference that matters", so all fit one axis.
        fig = go.Figure(
            go.Scatter(
                x=[c.diff.estimate / c.threshold for c in shown],
                y=[c.metric.name for c in shown],
                mode="markers",
                error_x={
                    "type": "data",
                    "symmetric": False,
                    "array": [(c.diff.high - c.diff.estimate) / c.threshold for c in shown],
                    "arrayminus": [(c.diff.estimate - c.diff.low) / c.threshold for c in shown],
                },
            )
        )
        fig.add_vline(x=0, line_dash="dot")
        for x in (-1, 1):
            fig.add_vline(x=x, line_color="lightgray")
        fig.update_layout(
            title=f"{candidate} − {baseline}, in units of the smallest difference that matters",
            margin={"t": 40, "b": 10},
            height=120 + 40 * len(shown),
        )
        st.plotly_chart(fig, width="stretch")
    st.subheader("Verdict")
    for c in v.comparisons:
        st.text(c.sentence)
    box = (
        st.success
        if v.recommendation == "promote"
        else st.error
        if v.recommendation == "hold"
        else st.warning
    )
    box(v.summary)

"""Model versions: two deployments or versions side by side, each difference with its 95 %
confidence interval, and a plain-language verdict (methods: docs/dashboard-queries.md).

Version and deployment names come from logs: the verdict box gets them through
``diffwatch.app.text.md`` and the chart's title through ``diffwatch.app.text.plotly``.
"""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from diffwatch.app import clip_note, data, ratings_data, sidebar
from diffwatch.app.text import md, plotly
from diffwatch.model.filters import Filters


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
    clip_note.show(data.clip_versions(f))
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
            title=f"{plotly(candidate)} − {plotly(baseline)}, in units of the smallest "
            "difference that matters",
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
    box(md(v.summary))  # the summary names the candidate
    _human(f, by, baseline, candidate)


def _formats() -> dict:
    """Column formats of the human-rating tables."""
    return {
        "mean quality": st.column_config.NumberColumn(format="%.2f"),
        "mean adherence": st.column_config.NumberColumn(format="%.2f"),
        "human nsfw share": st.column_config.NumberColumn(format="percent"),
    }


def _ci(low: float | None, high: float | None) -> str:
    return "–" if low is None or high is None else f"{low:.2f} to {high:.2f}"


def _human(f: Filters, by: str, baseline: str, candidate: str) -> None:
    """Human ratings of the two sides, their differences, and a per-version table."""
    from diffwatch.analytics.human_ratings import human_diff, human_summary

    st.subheader("Human ratings")
    items = ratings_data.human_items(f, by)
    if not items:
        st.info(
            "No human ratings of images made in this time range. Ratings come from the "
            "Review queue page (fill it with `diffwatch review enqueue`); widen the time "
            "range to include images rated earlier."
        )
        return
    per = {s.group: s for s in human_summary(items)}
    rows = []
    for label in (baseline, candidate):
        s = per.get(label)
        rows.append(
            {
                by: label,
                "images rated": s.n_items if s else 0,
                "ratings": s.n_ratings if s else 0,
                "mean quality": s.mean_quality if s else None,
                "quality 95% CI": _ci(s.quality_low, s.quality_high) if s else "–",
                "mean adherence": s.mean_adherence if s else None,
                "adherence 95% CI": _ci(s.adherence_low, s.adherence_high) if s else "–",
                "human nsfw share": s.nsfw_share if s else None,
            }
        )
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch", column_config=_formats())
    for field in ("quality", "adherence"):
        col = f"mean_{field}"
        a = [getattr(r, col) for r in items if r.group == baseline]
        b = [getattr(r, col) for r in items if r.group == candidate]
        d = human_diff(a, b)
        if d is None:
            st.text(
                f"Human {field}: {candidate} − {baseline} needs 2 or more rated images on "
                f"each side (have {len(a)} and {len(b)})."
            )
        else:
            st.text(
                f"Human {field}: {candidate} − {baseline} = {d[0]:+.2f} points "
                f"(95% CI {d[1]:+.2f} to {d[2]:+.2f}), from {len(b)} and {len(a)} images."
            )
    versions = human_summary(ratings_data.human_items(f, "version"))
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "version": s.group,
                    "ratings": s.n_ratings,
                    "images rated": s.n_items,
                    "mean quality": s.mean_quality,
                    "mean adherence": s.mean_adherence,
                    "human nsfw share": s.nsfw_share,
                }
                for s in versions
            ]
        ),
        hide_index=True,
        width="stretch",
        column_config=_formats(),
    )
    st.caption(
        "Human ratings (1–5) of images generated in the time range and filters, whenever "
        "they were rated. Each image counts once, as the mean of its raters; the 95% "
        "intervals are t-intervals over images and the differences Welch intervals. "
        "Images picked for review because they looked suspect (low CLIP, NSFW, canary) "
        "pull means down: compare sides picked alike (Rating analytics has the random-"
        "sample view). Human nsfw share: images any rater flagged nsfw."
    )

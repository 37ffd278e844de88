"""The Fairness page's Plotly figures: shares per occupation and version, and the trend.

Every name drawn (occupations, prompts, versions, models) comes from people: it passes through
``diffwatch.app.text.plotly`` first, so Plotly shows it as text. Shares are drawn in percent.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from diffwatch.app import fairness_shape as fs
from diffwatch.app.text import plotly
from diffwatch.app.views.drift_output import pad_lone_run

# Tableau 10: distinct, colour-blind-friendlier than Plotly's default, and none of them a
# skin tone (the stacked chart's classes are).
PALETTE = ("#4c78a8", "#f58518", "#54a24b", "#b279a2", "#e45756", "#72b7b2", "#eeca3b",
           "#9d755d", "#ff9da6", "#bab0ac")  # fmt: skip
LINE = "#b0b7c3"
ROW_PX = 24  # height of one bar in the bar charts
TICKS = list(range(0, 101, 20))  # the share axes, %


def series_colours(series: Sequence[str]) -> dict[str, str]:
    """A colour per series (version), in the order given (oldest first)."""
    return {s: PALETTE[i % len(PALETTE)] for i, s in enumerate(series)}


def _pct(v: float | None) -> float:
    return 0.0 if v is None else 100 * v


def two_class_bars(
    rows: Sequence[Mapping[str, Any]],
    attr: str,
    cls: str,
    series: Sequence[str],
    colours: Mapping[str, str],
    title: str,
) -> None:
    """Per occupation, the share of ``cls`` of each series (grouped horizontal bars) with
    its Wilson interval, the even split (50 %) as a dashed line and, when the suite gives
    one, each occupation's expected share as a black tick."""
    mine = [r for r in rows if r["class"] == cls]
    groups = fs.group_order(mine, cls, series[-1]) if series else []
    shown = [plotly(g) for g in groups]
    fig = go.Figure()
    for s in series:
        by_group = {r["group"]: r for r in mine if r["series"] == s}
        cells = [by_group.get(g) for g in groups]
        share = [_pct(c and c["share"]) for c in cells]
        high = [_pct(c and c["high"]) - v for c, v in zip(cells, share, strict=True)]
        low = [v - _pct(c and c["low"]) for c, v in zip(cells, share, strict=True)]
        fig.add_trace(
            go.Bar(
                orientation="h", y=shown, x=share, name=plotly(s),
                marker={"color": colours.get(s, LINE)},
                error_x={
                    "type": "data", "symmetric": False, "color": "#333", "thickness": 1.2,
                    "width": 3,
                    "array": high, "arrayminus": low,
                },
                customdata=[[c["count"] if c else 0, c["n"] if c else 0] for c in cells],
                hovertemplate="%{y}: %{x:.1f} % (%{customdata[0]} of %{customdata[1]} images)"
                f"<extra>{plotly(s)}</extra>",
            )
        )  # fmt: skip
    refs = {r["group"]: r["reference"] for r in mine if r["reference"] is not None}
    even = 1 / max(len({r["class"] for r in rows}), 1)
    if refs and any(abs(v - even) > 1e-9 for v in refs.values()):
        fig.add_trace(
            go.Scatter(
                x=[_pct(refs.get(g)) if g in refs else None for g in groups], y=shown,
                mode="markers", name="expected share (the suite's reference)",
                marker={"symbol": "line-ns", "size": 22, "line": {"width": 3, "color": "#111"}},
                hovertemplate="%{y}: expected %{x:.1f} %<extra></extra>",
            )
        )  # fmt: skip
    fig.add_vline(x=100 * even, line_dash="dash", line_color="#666", line_width=1)
    fig.add_annotation(x=100 * even, y=1, yref="paper", yanchor="bottom", showarrow=False,
                       text=f"even split ({100 * even:g} %)",
                       font={"size": 11, "color": "#555"})  # fmt: skip
    axis = f"share of the occupation's images read as {fs.class_label(attr, cls)}"
    fig.update_xaxes(range=[0, 101], tickvals=TICKS, ticktext=[f"{t} %" for t in TICKS],
                     title_text=plotly(axis))  # fmt: skip
    fig.update_yaxes(categoryorder="array", categoryarray=shown, autorange="reversed",
                     title_text="")  # fmt: skip
    per_group = max(len(series), 1) * ROW_PX + 16
    fig.update_layout(
        title=plotly(title), barmode="group", bargap=0.22, bargroupgap=0.04,
        height=max(260, len(groups) * per_group + 150),
        margin={"t": 80, "b": 10, "l": 10, "r": 10},
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.06, "x": 0, "title_text": ""},
    )  # fmt: skip
    st.plotly_chart(fig, width="stretch", key=f"fairness-bars-{attr}")


def stacked_shares(
    rows: Sequence[Mapping[str, Any]],
    attr: str,
    classes: Sequence[str],
    series: Sequence[str],
    title: str,
) -> None:
    """Per occupation and series, each class's share stacked to 100 %, coloured by the
    class (the Monk Skin Tone swatches for skin tone); occupations outermost on the axis."""
    groups = fs.newest_first_unique(r["group"] for r in rows)
    pairs = [(g, s) for g in groups for s in series]
    y = [[plotly(g) for g, _ in pairs], [plotly(s) for _, s in pairs]]
    by_key = {(r["group"], r["series"], r["class"]): r for r in rows}
    colours = fs.class_colours(attr, classes)
    fig = go.Figure()
    for c in classes:
        cells = [by_key.get((g, s, c)) for g, s in pairs]
        fig.add_trace(
            go.Bar(
                orientation="h", y=y, x=[_pct(cell and cell["share"]) for cell in cells],
                name=plotly(fs.short_class(attr, c)),
                marker={"color": colours[c], "line": {"color": "#8a8a8a", "width": 0.6}},
                customdata=[[cell["count"] if cell else 0, cell["n"] if cell else 0]
                            for cell in cells],
                hovertemplate="%{x:.1f} % (%{customdata[0]} of %{customdata[1]} images)"
                f"<extra>{plotly(fs.short_class(attr, c))}</extra>",
            )
        )  # fmt: skip
    fig.update_xaxes(range=[0, 101], tickvals=TICKS, ticktext=[f"{t} %" for t in TICKS],
                     title_text="share of the images counted")  # fmt: skip
    fig.update_yaxes(autorange="reversed", title_text="")
    fig.update_layout(
        title=plotly(title), barmode="stack", bargap=0.25,
        height=max(260, len(pairs) * ROW_PX + 16 * len(groups) + 170),
        margin={"t": 80, "b": 10, "l": 10, "r": 10},
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.04, "x": 0, "traceorder": "normal",
                "title_text": ""},
    )  # fmt: skip
    st.plotly_chart(fig, width="stretch", key=f"fairness-stack-{attr}")


def trend(
    rows: Sequence[Mapping[str, Any]],
    metric: str,
    colours: Mapping[str, str],
    title: str,
) -> None:
    """The metric per run over time: a grey line through each model's runs, each run a dot
    in its version's colour; for skews and gaps a dashed line at 0 (as expected)."""
    percent = metric == "abstain_rate"
    df = pd.DataFrame(rows)
    fig = go.Figure()
    scale = 100 if percent else 1
    for model, d in df.groupby("model", sort=False):
        fig.add_trace(
            go.Scatter(
                x=d["finished_at"].tolist(), y=(d["value"] * scale).tolist(), mode="lines",
                line={"color": LINE, "width": 2}, name=plotly(f"{model}: runs in time order"),
                hoverinfo="skip", showlegend=df["model"].nunique() > 1,
            )
        )  # fmt: skip
    unit = " %" if percent else ""
    for s, d in df.groupby("series", sort=False):
        fig.add_trace(
            go.Scatter(
                x=d["finished_at"].tolist(), y=(d["value"] * scale).tolist(), mode="markers",
                name=plotly(s),
                marker={"color": colours.get(str(s), LINE), "size": 12,
                        "line": {"color": "white", "width": 1}},
                customdata=d["run"].tolist(),
                hovertemplate=f"run #%{{customdata}}: %{{y:.3f}}{unit}<extra>{plotly(s)}</extra>",
            )
        )  # fmt: skip
    if not percent:
        fig.add_hline(y=0, line_dash="dash", line_color="#888", line_width=1)
    pad_lone_run(fig, df["finished_at"])
    axis = plotly(fs.TREND_METRICS[metric])
    fig.update_yaxes(rangemode="tozero", ticksuffix=unit, title_text=axis)
    fig.update_layout(
        title=plotly(title), height=360, margin={"t": 70, "b": 10, "l": 10, "r": 10},
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.02, "x": 0, "title_text": ""},
    )  # fmt: skip
    st.plotly_chart(fig, width="stretch", key="fairness-trend")

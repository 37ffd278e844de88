"""Small Plotly helpers shared by the pages (no data access here).

Names in the data (versions, deployments, GPU types, hosts, error kinds) come from logs:
every text value and the title pass through ``diffwatch.app.text.plotly`` before Plotly sees them,
so they show as text, never as Plotly's pseudo-HTML (links, bold, styles, line breaks).
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from diffwatch.app.text import plotly, plotly_frame
from diffwatch.model.deploy_markers import DeployMarker

MARKER_COLOUR = "#7f7f7f"


def empty(df: pd.DataFrame, what: str) -> bool:
    """Say so and return True when ``df`` has no rows (``what``: Markdown from the code)."""
    if df.empty:
        st.info(f"No {what} in this time range and filter.")
        return True
    return False


def add_markers(fig: go.Figure, markers: Sequence[DeployMarker]) -> None:
    """Draw each deploy marker as a dotted vertical line with its label at the top (version
    and deployment, made inert) and its note, time and source on hover.

    Shapes and annotations, not ``add_vline(annotation_text=...)``, which fails on a date
    axis in some Plotly releases.
    """
    for m in markers:
        fig.add_shape(
            type="line", xref="x", yref="paper", x0=m.at, x1=m.at, y0=0, y1=1,
            line={"color": MARKER_COLOUR, "width": 1, "dash": "dot"},
        )  # fmt: skip
        hover = f"{m.label} at {m.at:%Y-%m-%d %H:%M} UTC ({m.source})"
        if m.note:
            hover += f": {m.note}"
        fig.add_annotation(
            x=m.at, xref="x", y=1, yref="paper", yanchor="bottom", showarrow=False,
            text=plotly(m.label), hovertext=plotly(hover),
            font={"size": 10, "color": MARKER_COLOUR},
        )  # fmt: skip


def line(
    df: pd.DataFrame,
    y: str,
    title: str,
    color: str | None = "group",
    markers: Sequence[DeployMarker] = (),
    **kw,
) -> None:
    """A time-series line chart of ``y`` over ``t``, one line per ``color`` value, with the
    deploy ``markers`` of its range."""
    color = color if color and color in df and df[color].nunique() > 1 else None
    fig = px.line(plotly_frame(df), x="t", y=y, color=color, title=plotly(title), **kw)
    fig.update_layout(margin={"t": 40, "b": 10}, legend_title_text="", xaxis_title="")
    add_markers(fig, markers)
    st.plotly_chart(fig, width="stretch")


def bar(df: pd.DataFrame, x: str, y: str, title: str, **kw) -> None:
    """A bar chart."""
    fig = px.bar(plotly_frame(df), x=x, y=y, title=plotly(title), **kw)
    fig.update_layout(margin={"t": 40, "b": 10}, xaxis_title="")
    st.plotly_chart(fig, width="stretch")

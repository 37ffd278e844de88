"""Small Plotly helpers shared by the pages (no data access here).

Names in the data (versions, deployments, GPU types, hosts, error kinds) come from logs:
every text value and the title pass through ``diffwatch.app.text.plotly`` before Plotly sees them,
so they show as text, never as Plotly's pseudo-HTML (links, bold, styles, line breaks).
"""

from __future__ import annotations

import pandas as pd
import plotly.express as px
import streamlit as st

from diffwatch.app.text import plotly, plotly_frame


def empty(df: pd.DataFrame, what: str) -> bool:
    """Say so and return True when ``df`` has no rows (``what``: Markdown from the code)."""
    if df.empty:
        st.info(f"No {what} in this time range and filter.")
        return True
    return False


def line(df: pd.DataFrame, y: str, title: str, color: str | None = "group", **kw) -> None:
    """A time-series line chart of ``y`` over ``t``, one line per ``color`` value."""
    color = color if color and color in df and df[color].nunique() > 1 else None
    fig = px.line(plotly_frame(df), x="t", y=y, color=color, title=plotly(title), **kw)
    fig.update_layout(margin={"t": 40, "b": 10}, legend_title_text="", xaxis_title="")
    st.plotly_chart(fig, width="stretch")


def bar(df: pd.DataFrame, x: str, y: str, title: str, **kw) -> None:
    """A bar chart."""
    fig = px.bar(plotly_frame(df), x=x, y=y, title=plotly(title), **kw)
    fig.update_layout(margin={"t": 40, "b": 10}, xaxis_title="")
    st.plotly_chart(fig, width="stretch")

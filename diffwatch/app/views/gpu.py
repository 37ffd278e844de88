"""GPU: utilisation, memory and power per host, and the share of idle time."""

from __future__ import annotations

import streamlit as st

from diffwatch.app import charts, data, sidebar


def render() -> None:
    """Draw the page."""
    f = sidebar.filters()
    st.title("GPU")
    per_host = data.gpu(f, over_time=True)
    if charts.empty(per_host, "GPU samples (run `diffwatch collect gpu`)"):
        return
    per_host = per_host.rename(columns={"host": "group"})
    marks = data.deploy_markers(f)
    charts.line(per_host, "util_mean_pct", "Utilisation (%)", markers=marks)
    charts.line(per_host, "mem_used_pct", "Memory used (%)", markers=marks)
    charts.line(per_host, "power_mean_w", "Power (W)", markers=marks)
    totals = data.gpu(f, over_time=False)
    st.subheader("Per host over the range")
    st.dataframe(
        totals.drop(columns=["t"]).assign(idle_pct=totals["idle_share"] * 100),
        hide_index=True,
        width="stretch",
    )

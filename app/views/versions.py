"""Model versions: stable and canary side by side (latency, cost, CLIP, NSFW)."""

from __future__ import annotations

import streamlit as st

from app import data, sidebar


def render() -> None:
    """Draw the page."""
    f = sidebar.filters()
    st.title("Model versions")
    lat = data.latency(f, "total", "version", over_time=False)
    cost = data.cost(f, "version")
    qual = data.quality(f, "version", over_time=False)
    if lat.empty:
        st.info("No generations in this time range and filter.")
        return
    table = lat[["group", "n", "p50_ms", "p95_ms"]].rename(columns={"n": "requests"})
    if not cost.empty:
        table = table.merge(cost[["group", "cost_per_image_usd"]], on="group", how="left")
    if not qual.empty:
        table = table.merge(qual[["group", "clip_mean", "nsfw_rate"]], on="group", how="left")
    st.dataframe(table.rename(columns={"group": "version"}), hide_index=True, width="stretch")

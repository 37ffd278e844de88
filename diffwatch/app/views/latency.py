"""Latency & throughput: p50/p95/p99 of queue, inference and total time; errors."""

from __future__ import annotations

import streamlit as st

from diffwatch.app import charts, data, sidebar


def render() -> None:
    """Draw the page."""
    f = sidebar.filters()
    st.title("Latency & throughput")
    metric = st.radio("Latency of", ["total", "inference", "queue"], horizontal=True)
    by = st.radio("Split by", ["none", "version", "deployment", "gpu_type"], horizontal=True)
    group = None if by == "none" else by
    marks = data.deploy_markers(f)
    lat = data.latency(f, metric, group)
    if not charts.empty(lat, "latency"):
        long = lat.melt(
            id_vars=["t", "group"], value_vars=["p50_ms", "p95_ms", "p99_ms"], var_name="q"
        )
        long["series"] = long["q"].str.replace("_ms", "") + (" " + long["group"] if group else "")
        charts.line(
            long, "value", f"{metric} latency percentiles (ms)", color="series", markers=marks
        )
    tp = data.throughput(f, group)
    if not charts.empty(tp, "requests"):
        charts.line(tp, "images_per_min", "Throughput (images per minute)", markers=marks)
        errors = tp.assign(error_pct=tp["error_rate"] * 100)
        charts.line(errors, "error_pct", "Error rate (%)", markers=marks)
    errs = data.errors(f)
    st.subheader("Errors by type")
    if not charts.empty(errs, "errors"):
        charts.bar(errs, "kind", "errors", "Failed requests by error type")

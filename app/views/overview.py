"""Overview: the headline figures of the period, each against the period before."""

from __future__ import annotations

import streamlit as st

from app import charts, data, sidebar


def _delta(now: float | None, before: float | None, fmt: str) -> str | None:
    if now is None or before is None:
        return None
    return fmt.format(now - before)


def render() -> None:
    """Draw the page."""
    f = sidebar.filters()
    st.title("Overview")
    cur, prev = data.kpis(f)
    if cur.requests == 0:
        st.info(
            "No generations in this time range and filter. Ingest logs with "
            "`diffwatch collect logs`, then `diffwatch rollups refresh`."
        )
    util = data.gpu(f, over_time=False)
    util_prev = data.gpu(f.previous(), over_time=False)

    def mean_util(df) -> float | None:
        return float(df["util_mean_pct"].mean()) if not df.empty else None

    rows = [
        ("Images", cur.images, prev.images, "{:,.0f}", "{:+,.0f}", "normal"),
        (
            "Error rate",
            _pct(cur.error_rate),
            _pct(prev.error_rate),
            "{:.2f} %",
            "{:+.2f} pp",
            "inverse",
        ),
        ("p50 latency", cur.p50_ms, prev.p50_ms, "{:,.0f} ms", "{:+,.0f} ms", "inverse"),
        ("p95 latency", cur.p95_ms, prev.p95_ms, "{:,.0f} ms", "{:+,.0f} ms", "inverse"),
        (
            "Cost per image",
            _milli(cur.cost_per_image_usd),
            _milli(prev.cost_per_image_usd),
            "{:.3f} m$",
            "{:+.3f} m$",
            "inverse",
        ),
        (
            "GPU utilisation",
            mean_util(util),
            mean_util(util_prev),
            "{:.1f} %",
            "{:+.1f} pp",
            "normal",
        ),
        ("Mean CLIP score", cur.clip_mean, prev.clip_mean, "{:.2f}", "{:+.2f}", "normal"),
        (
            "NSFW rate",
            _pct(cur.nsfw_rate),
            _pct(prev.nsfw_rate),
            "{:.2f} %",
            "{:+.2f} pp",
            "inverse",
        ),
    ]
    cols = st.columns(4)
    for i, (label, now, before, fmt, dfmt, color) in enumerate(rows):
        cols[i % 4].metric(
            label,
            fmt.format(now) if now is not None else "n/a",
            _delta(now, before, dfmt),
            delta_color=color,
            help="against the previous period of the same length",
        )
    st.metric("Open alerts", "n/a", help="Alert rules arrive with `diffwatch alerts` (issue 7).")
    if cur.unpriced_gpu_hours:
        st.warning(
            f"{cur.unpriced_gpu_hours:,.1f} GPU-hours ran on GPU types without a price; "
            "add them on the Cost page."
        )
    tp = data.throughput(f)
    if not charts.empty(tp, "throughput"):
        charts.line(tp, "images_per_min", "Images per minute", color=None)


def _pct(x: float | None) -> float | None:
    return None if x is None else 100.0 * x


def _milli(x: float | None) -> float | None:
    return None if x is None else 1000.0 * x

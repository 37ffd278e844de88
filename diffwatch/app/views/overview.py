"""Overview: the headline figures of the period, each against the period before."""

from __future__ import annotations

import streamlit as st

from diffwatch.app import alerts_data, charts, clip_note, data, sidebar


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
    # Against a previous period that the history covers only in part, a change would
    # compare a day with its last minutes (the first day after an install or a demo).
    first = data.history_start()
    compare = first is not None and first <= f.previous().start

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
            _delta(now, before, dfmt) if compare else None,
            delta_color=color,
            help="against the previous period of the same length",
        )
    if cur.requests and first is not None and not compare:
        st.caption(
            f"No change against the previous period: the history starts at "
            f"{first:%Y-%m-%d %H:%M} UTC, after that period began "
            f"({f.previous().start:%Y-%m-%d %H:%M} UTC)."
        )
    st.metric(
        "Open alerts",
        f"{alerts_data.firing_count():,}",
        help="alert rules firing now, whatever the filter; each one on the Alerts page",
    )
    if cur.clip_mean is not None:
        clip_note.show(data.clip_versions(f))
    if cur.unpriced_gpu_hours:
        st.warning(
            f"{cur.unpriced_gpu_hours:,.1f} GPU-hours ran on GPU types without a price; "
            "add them on the Cost page."
        )
    tp = data.throughput(f)
    if not charts.empty(tp, "throughput"):
        charts.line(
            tp, "images_per_min", "Images per minute", color=None, markers=data.deploy_markers(f)
        )


def _pct(x: float | None) -> float | None:
    return None if x is None else 100.0 * x


def _milli(x: float | None) -> float | None:
    return None if x is None else 1000.0 * x

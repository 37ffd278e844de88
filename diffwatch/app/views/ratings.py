"""Rating analytics (ops, admin): what human raters say about the models and the scorers.

Ratings over time per model version, inter-rater agreement (Krippendorff's alpha), each
rater's throughput and deviation, and the calibration of the automatic CLIP score and NSFW
flag against the human ratings (methods: docs/ratings-analytics.md). Version names and
usernames are untrusted: they reach charts through ``diffwatch.app.text.plotly`` and messages
through ``diffwatch.app.text.md``.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

from diffwatch.app import clip_note, ratings_data, sidebar
from diffwatch.app.text import md, md_list, plotly

DEVIATION_FLAG = 0.75  # scale points from the other raters' mean that earn a look
MIN_OVERLAP = 3  # shared items before a rater's deviation is flagged
EMPTY = (
    "No ratings in this time range{v}. Ratings come from the Review queue page; "
    "fill the queue with `diffwatch review enqueue`, or widen the time range."
)


def _fmt(x: float | None, digits: int = 3) -> str:
    """A number for a metric tile ('–' when undefined)."""
    return "–" if x is None else f"{x:.{digits}f}"


def _reliability(alpha: float | None) -> str:
    """Krippendorff's reading of an alpha ("Computing Krippendorff's Alpha-Reliability", 2011)."""
    if alpha is None:
        return "undefined"
    if alpha >= 0.8:
        return "reliable"
    if alpha >= 0.667:
        return "tentative conclusions only"
    return "not reliable"


def _over_time(start: datetime, end: datetime, versions: tuple[str, ...]) -> None:
    from diffwatch.analytics.ratings import ratings_over_time

    st.header("Ratings over time")
    counts = ratings_data.reasons(start, end, versions)
    if counts:
        st.caption(
            "Rated items by why they were queued: "
            + ", ".join(f"{md(c.reason)} {c.n_items:,} ({c.n_ratings:,} ratings)" for c in counts)
            + ". Only `random` items are an unbiased sample of production; low-CLIP, "
            "NSFW-flagged and canary picks are chosen *because* they look suspect, so they "
            "pull averages down. An item picked for several reasons counts under each."
        )
    only_random = st.toggle(
        "Only the random sample (unbiased)",
        key="ratings_random_only",
        help="Keep items queued as the random sample, even if also picked for other reasons.",
    )
    c1, _ = st.columns([1, 3])
    default = 0 if end - start <= timedelta(days=2) else 1
    bucket = c1.radio("Per", ["hour", "day"], index=default, horizontal=True)
    rows = ratings_data.ratings(start, end, versions, "random" if only_random else None)
    if not rows:
        extra = " among random-sample items" if only_random else ""
        st.info(EMPTY.format(v=extra))
        return
    df = pd.DataFrame([b.to_dict() for b in ratings_over_time(rows, bucket)])
    df["bucket"] = pd.to_datetime(df["bucket"])
    fig = make_subplots(
        rows=3,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.06,
        row_heights=[0.38, 0.38, 0.24],
        subplot_titles=("Mean quality (1–5)", "Mean adherence (1–5)", "Ratings"),
    )
    palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b"]
    for i, (version, g) in enumerate(df.groupby("model_version", sort=True)):
        color = palette[i % len(palette)]
        for row, col in ((1, "mean_quality"), (2, "mean_adherence")):
            fig.add_trace(
                go.Scatter(
                    x=g["bucket"],
                    y=g[col],
                    mode="lines+markers",
                    name=plotly(version),
                    legendgroup=str(version),
                    showlegend=row == 1,
                    line={"color": color},
                    customdata=g["n"],
                    hovertemplate="%{x}<br>%{y:.2f} from %{customdata} ratings",
                ),
                row=row,
                col=1,
            )
        fig.add_trace(
            go.Bar(
                x=g["bucket"],
                y=g["n"],
                name=plotly(version),
                legendgroup=str(version),
                showlegend=False,
                marker_color=color,
            ),
            row=3,
            col=1,
        )
    fig.update_yaxes(range=[0.8, 5.2], row=1, col=1)
    fig.update_yaxes(range=[0.8, 5.2], row=2, col=1)
    fig.update_layout(
        height=620, barmode="group", margin={"t": 40, "b": 10}, legend_title_text="version"
    )
    st.plotly_chart(fig, width="stretch")
    st.caption(
        f"Mean of the ratings given in each {bucket} (UTC), per model version of the rated "
        "image; the bottom panel counts them. Few ratings make a jumpy mean: read the "
        "counts before the lines."
        + ("" if only_random else " Targeted picks are included: switch on the toggle above.")
    )


def _agreement(start: datetime, end: datetime, versions: tuple[str, ...]) -> None:
    st.header("Inter-rater agreement")
    st.caption(
        "Krippendorff's alpha at the ordinal level, on items rated by 2 or more raters "
        "(items rated once are left out). 1 is perfect agreement, 0 is what raters "
        "rating at random would reach, below 0 is systematic disagreement. "
        "The 95% interval resamples items (500 bootstrap draws)."
    )
    rows = []
    cols = st.columns(2)
    for col, field in zip(cols, ("quality", "adherence"), strict=True):
        a, ci = ratings_data.agreement(field, start, end, versions)
        col.metric(f"alpha, {field}", _fmt(a.alpha))
        rows.append(
            {
                "rating": field,
                "alpha": a.alpha,
                "95% CI low": ci[0] if ci else None,
                "95% CI high": ci[1] if ci else None,
                "reading": _reliability(a.alpha),
                "items (2+ ratings)": a.n_items,
                "raters": a.n_raters,
                "pairable values": a.n_ratings,
            }
        )
    if all(r["items (2+ ratings)"] == 0 for r in rows):
        st.info(
            "Too little overlap: no item in this range has two ratings, so agreement cannot "
            "be measured. Queue items with `required_ratings` of 2 or more (the policy's "
            "overlap share) and let different raters rate them."
        )
        return
    st.dataframe(
        pd.DataFrame(rows),
        hide_index=True,
        width="stretch",
        column_config={
            c: st.column_config.NumberColumn(format="%.3f")
            for c in ("alpha", "95% CI low", "95% CI high")
        },
    )
    few = min(r["items (2+ ratings)"] for r in rows)
    if few < 20:
        st.warning(
            f"Only {few} items have two or more ratings: alpha is uncertain (see its "
            "interval). Aim for 50 or more overlapping items before trusting it."
        )
    st.caption(
        "Reading (Krippendorff): alpha ≥ 0.8 reliable; 0.667–0.8 only tentative "
        "conclusions; below 0.667 the ratings are not reliable, and the rating guide "
        "or the raters' training needs work before the numbers are used."
    )


def _raters(start: datetime, end: datetime, versions: tuple[str, ...]) -> None:
    from diffwatch.analytics.ratings import rater_stats

    st.header("Raters")
    rows = ratings_data.ratings(start, end, versions)
    if not rows:
        st.info(EMPTY.format(v=""))
        return
    stats = rater_stats(rows)

    def flag(s) -> str:
        if s.n_overlap_items < MIN_OVERLAP:
            return ""
        worst = max(abs(s.quality_deviation or 0), abs(s.adherence_deviation or 0))
        if worst < DEVIATION_FLAG:
            return ""
        sign = (
            s.quality_deviation
            if abs(s.quality_deviation or 0) >= abs(s.adherence_deviation or 0)
            else s.adherence_deviation
        ) or 0
        return f"rates {'higher' if sign > 0 else 'lower'}"

    table = pd.DataFrame(
        [
            {
                "rater": s.rater,
                "ratings": s.n_ratings,
                "active days": s.active_days,
                "ratings / hour": s.ratings_per_hour,
                "mean quality": s.mean_quality,
                "mean adherence": s.mean_adherence,
                "quality deviation": s.quality_deviation,
                "adherence deviation": s.adherence_deviation,
                "shared items": s.n_overlap_items,
                "flag": flag(s),
            }
            for s in stats
        ]
    )
    st.dataframe(
        table,
        hide_index=True,
        width="stretch",
        column_config={
            c: st.column_config.NumberColumn(format="%.2f")
            for c in (
                "ratings / hour",
                "mean quality",
                "mean adherence",
                "quality deviation",
                "adherence deviation",
            )
        },
    )
    flagged = [s.rater for s in stats if flag(s)]
    st.caption(
        "Ratings / hour: ratings on days with two or more, over the time from each such "
        "day's first to its last rating (breaks inside a day count as work). Deviation: "
        "mean of (this rater's score − the other raters' mean) on the items they share, in "
        f"scale points. Flagged at |deviation| ≥ {DEVIATION_FLAG} with {MIN_OVERLAP}+ "
        "shared items; a flag asks for a look at the rater's items, it is not a verdict."
    )
    if flagged:
        st.warning("Deviating from the other raters: " + md_list(flagged))


def _clip(start: datetime, end: datetime, versions: tuple[str, ...]) -> None:
    st.subheader("CLIP score vs human adherence")
    cal, points = ratings_data.clip_calibration(start, end, versions)
    if cal.n == 0:
        st.info(
            "No rated item has a CLIP score in this range. Run the CLIP scorer "
            "(`diffwatch score`) on the generations that are being reviewed."
        )
        return
    clip_note.show(ratings_data.rated_clip_versions(start, end, versions), "rated items")
    c1, c2, c3 = st.columns(3)
    c1.metric("Spearman rho", _fmt(cal.rho))
    c2.metric("p-value", "–" if cal.p_value is None else f"{cal.p_value:.2g}")
    c3.metric("items", f"{cal.n:,}")
    if cal.reason:
        st.info(f"No correlation: {cal.reason}.")
    fig = go.Figure()
    fig.add_trace(
        go.Scatter(
            x=[p[0] for p in points],
            y=[p[1] for p in points],
            mode="markers",
            name="rated items",
            marker={"color": "rgba(120,120,120,0.35)", "size": 6},
        )
    )
    bins = cal.bins
    fig.add_trace(
        go.Scatter(
            x=[(b.lo + b.hi) / 2 for b in bins],
            y=[b.mean_adherence for b in bins],
            mode="lines+markers",
            name="bin mean, 95% CI",
            marker={"size": 10, "color": "#1f77b4"},
            error_y={
                "type": "data",
                "symmetric": False,
                "array": [(b.ci_high - b.mean_adherence) if b.ci_high else 0 for b in bins],
                "arrayminus": [(b.mean_adherence - b.ci_low) if b.ci_low else 0 for b in bins],
            },
            customdata=[[b.lo, b.hi, b.n] for b in bins],
            hovertemplate="CLIP %{customdata[0]:.1f}–%{customdata[1]:.1f}<br>"
            "mean adherence %{y:.2f} (n = %{customdata[2]})<extra></extra>",
        )
    )
    fig.update_layout(
        xaxis_title="CLIP score (0–100)",
        yaxis_title="mean human adherence (1–5)",
        yaxis_range=[0.8, 5.2],
        height=380,
        margin={"t": 20, "b": 10},
    )
    st.plotly_chart(fig, width="stretch")
    st.caption(
        "Each grey dot is a rated image: its latest CLIP score against the mean adherence "
        "of its raters. Blue: images in CLIP-score quintiles (tied edges merge bins), the "
        "mean adherence of each with its 95% t-interval. Spearman's rho ranks both, so "
        "it measures whether a higher CLIP score goes with better adherence at all, not a "
        "straight line. Low-CLIP picks over-fill the bottom bins."
    )


def _nsfw(start: datetime, end: datetime, versions: tuple[str, ...]) -> None:
    st.subheader("NSFW flag vs human nsfw flag")
    cal = ratings_data.nsfw_calibration(start, end, versions)
    if cal.n == 0:
        st.info(
            "No rated item has an NSFW result in this range. Run the NSFW scorer "
            "(`diffwatch score`) on the generations that are being reviewed."
        )
        return
    thr = "unknown" if cal.threshold is None else f"{cal.threshold:g}"
    c1, c2, c3, c4 = st.columns(4)
    c1.metric(f"precision at {thr}", _fmt(cal.precision))
    c2.metric(f"recall at {thr}", _fmt(cal.recall))
    c3.metric("F1", _fmt(cal.f1))
    c4.metric("items", f"{cal.n:,}")
    confusion = pd.DataFrame(
        {
            "": ["flagged by the scorer", "not flagged"],
            "human: nsfw": [cal.tp, cal.fn],
            "human: not nsfw": [cal.fp, cal.tn],
        }
    )
    st.dataframe(confusion, hide_index=True)
    if cal.reason:
        st.info(f"Partly undefined: {cal.reason}.")
    if cal.suggested_threshold is not None:
        st.markdown(
            f"Suggested threshold **{cal.suggested_threshold:.3g}** (best F1 on these "
            f"items): precision {_fmt(cal.suggested_precision)}, recall "
            f"{_fmt(cal.suggested_recall)}, F1 {_fmt(cal.suggested_f1)}; at the current "
            f"threshold {thr}: precision {_fmt(cal.precision)}, recall {_fmt(cal.recall)}."
        )
    else:
        st.info(f"No threshold to suggest: {cal.suggestion_reason}.")
    st.caption(
        "Ground truth: an image is NSFW when any of its raters flagged it `nsfw`. "
        "Precision: of the images the scorer flagged, the share humans also flagged; "
        "recall: of the images humans flagged, the share the scorer caught. The current "
        "threshold is read from the NSFW scorer version (`/t<threshold>`). The suggestion "
        "tries every observed score as a threshold. NSFW-flagged picks make positives far "
        "more common here than in production, so precision is higher here than it will "
        "be live; check a suggestion on the random sample before changing the policy."
    )


def render() -> None:
    """Draw the page."""
    f = sidebar.filters()
    st.title("Rating analytics")
    st.caption(
        "Ratings rated in the sidebar's time range (by rating time), for its versions; "
        "the model, deployment and GPU filters do not apply here."
    )
    start, end, versions = f.start, f.end, f.versions
    _over_time(start, end, versions)
    _agreement(start, end, versions)
    _raters(start, end, versions)
    st.header("Calibration of the automatic scores")
    _clip(start, end, versions)
    _nsfw(start, end, versions)

"""Quality & safety: CLIP score and NSFW rate per version, the worst images, and the share of
near-duplicate images per version (a mode-collapse signal, from the stored CLIP embeddings)."""

from __future__ import annotations

from typing import Any

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from diffwatch.app import charts, clip_note, data, images, search_data, sidebar
from diffwatch.app.text import md, plotly
from diffwatch.app.views.image_search import pgvector_note
from diffwatch.db.queries.embeddings import EmbeddingsUnavailable
from diffwatch.embeddings.duplicates import DEFAULT_MAX_IMAGES as DUP_MAX_IMAGES
from diffwatch.model.near_duplicates import DEFAULT_THRESHOLD as DUP_THRESHOLD

DUP_THRESHOLDS = (0.9, 0.93, 0.95, 0.97, 0.99)  # CLIP image–image cosine
DUP_PAIRS = 3  # example pairs shown per version


def render() -> None:
    """Draw the page."""
    f = sidebar.filters()
    st.title("Quality & safety")
    trend = data.quality(f, "version")
    marks = data.deploy_markers(f)
    totals = data.quality(f, "version", over_time=False)
    clip_n = int(totals["clip_n"].sum()) if not totals.empty else 0
    nsfw_n = int(totals["nsfw_n"].sum()) if not totals.empty else 0
    if clip_n == 0:
        st.info(
            "CLIP scoring is not configured, or nothing in this range has been scored: run "
            "`diffwatch score --scorers clip` with CLIP weights (docs/scoring.md)."
        )
    else:
        clip_note.show(data.clip_versions(f))
        charts.line(
            trend.dropna(subset=["clip_mean"]),
            "clip_mean",
            "Mean CLIP score by version",
            markers=marks,
        )
        charts.bar(totals, "group", "clip_mean", "Mean CLIP score over the range")
        dist = data.clip_distribution(f)
        if not dist.empty:
            dist = dist.assign(
                share_pct=100 * dist["n"] / dist.groupby("group")["n"].transform("sum")
            )
            charts.bar(
                dist,
                "score",
                "share_pct",
                "Distribution of CLIP scores by version (% of each version's images)",
                color="group",
                barmode="overlay",
                opacity=0.6,
            )
    if nsfw_n == 0:
        st.info("NSFW scoring has no results in this range: run `diffwatch score --scorers nsfw`.")
    else:
        pct = trend.dropna(subset=["nsfw_rate"]).assign(nsfw_pct=lambda d: d["nsfw_rate"] * 100)
        charts.line(pct, "nsfw_pct", "NSFW-flagged share by version (%)", markers=marks)
    if clip_n:
        st.subheader("Lowest CLIP scores")
        st.caption("Prompts are shown as plain text. Flagged images stay blurred until revealed.")
        items = data.worst_clip(f)
        cols = st.columns(4)
        for i, item in enumerate(items):
            with cols[i % 4]:
                images.show(item.image_uri, bool(item.nsfw_flagged), str(item.generation_id))
                st.text(f"CLIP {item.clip_score:.1f} · {item.model_version}")
                st.text(item.prompt[:300])
    _duplicates(f)


def _dup_table(rows: list[Any]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "version": r.model_version,
                "images": r.report.n,
                "with a near-duplicate": r.report.n_duplicates,
                "share %": round(100 * r.report.share, 1),
                "interval low %": round(100 * r.report.ci_low, 1),
                "interval high %": round(100 * r.report.ci_high, 1),
                "cosine ≥": r.report.threshold,
                "sampled": bool(getattr(r, "sampled", False)),
            }
            for r in rows
        ]
    )


def _dup_chart(rows: list[Any]) -> None:
    versions = [plotly(r.model_version) for r in rows]
    share = [100 * r.report.share for r in rows]
    fig = go.Figure(
        go.Bar(
            x=versions,
            y=share,
            error_y={
                "type": "data",
                "symmetric": False,
                "array": [100 * r.report.ci_high - s for r, s in zip(rows, share, strict=True)],
                "arrayminus": [s - 100 * r.report.ci_low for r, s in zip(rows, share, strict=True)],
            },
            customdata=[[r.report.n, r.report.n_duplicates] for r in rows],
            hovertemplate="%{x}: %{y:.1f}% (%{customdata[1]} of %{customdata[0]} images)"
            "<extra></extra>",
        )
    )
    fig.update_layout(
        title="Images with a near-duplicate, by version (%, with its interval)",
        margin={"t": 40, "b": 10},
        yaxis_rangemode="tozero",
    )
    fig.update_xaxes(type="category")
    st.plotly_chart(fig, width="stretch")


def _dup_pairs(rows: list[Any]) -> None:
    ids = tuple(int(i) for r in rows for a, b, _ in r.report.examples[:DUP_PAIRS] for i in (a, b))
    found = search_data.shown(ids)
    for r in rows:
        pairs = r.report.examples[:DUP_PAIRS]
        if not pairs:
            continue
        with st.expander(md(f"Version {r.model_version}: {len(pairs)} example pairs")):
            for n, (a, b, cosine) in enumerate(pairs):
                cols = st.columns([1, 1, 2])
                for col, gid in zip(cols, (int(a), int(b)), strict=False):
                    with col:
                        g = found.get(gid)
                        if g is None:
                            st.text(f"generation #{gid} is gone")
                            continue
                        images.show(g.image_uri, bool(g.nsfw_flagged), f"dup-{gid}", px=192)
                        st.text(g.prompt[:300])
                with cols[2]:
                    st.text(f"Pair {n + 1}: cosine {cosine:.3f} (generations #{a} and #{b})")


def _duplicates(f: Any) -> None:
    """Near-duplicate share per version, its interval, and example pairs side by side."""
    st.subheader("Near-duplicate images by version")
    st.caption(
        "The share of a version's images that have a near-twin among its other images "
        "(CLIP image embeddings at or above the cosine threshold). A version that rises here "
        "keeps drawing the same picture whatever the prompt: a sign of mode collapse."
    )
    if not pgvector_note():
        return
    threshold = st.select_slider(
        "Near-duplicate at CLIP image cosine ≥", DUP_THRESHOLDS, value=DUP_THRESHOLD
    )
    try:
        rows = search_data.duplicates(f, float(threshold), DUP_MAX_IMAGES)
    except (EmbeddingsUnavailable, ValueError) as exc:
        st.warning(md(str(exc)))
        return
    rows = [r for r in rows if r.report.n > 0]
    if not rows:
        st.info("No image with a stored embedding matches the sidebar's period and filters.")
        return
    _dup_chart(rows)
    st.dataframe(_dup_table(rows), hide_index=True, width="stretch")
    level = getattr(rows[0].report, "level", 0.95)
    st.caption(
        f"Interval: Wilson {100 * level:g} %. At most {DUP_MAX_IMAGES:,} images per version, "
        "an even sample of the period: where a version had more (sampled), its share is a "
        "lower bound. Two images of one prompt and seed are a deliberate repeat and do not "
        "count. Example pairs below: prompts as plain text, flagged images blurred."
    )
    _dup_pairs(rows)

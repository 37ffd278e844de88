"""Quality & safety: CLIP score and NSFW rate per version, and the worst images."""

from __future__ import annotations

import streamlit as st

from diffwatch.app import charts, clip_note, data, images, sidebar


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

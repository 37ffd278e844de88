"""The Drift page's image-drift tab: runs of ``diffwatch drift images`` over time, and one run
whole: its verdict, whether the model or the traffic changed, the per-version and same-prompt
tests, and which kinds of image grew or shrank, with examples.

A run compares the stored CLIP image embeddings of a current window with a reference window:
CMMD (× 1000) with a permutation p-value, and a k-NN AUC effect size (0.5 = no difference).
Everything comes from the run's row and its JSON summary, read defensively; prompts are plain
text and images stay blurred while flagged (the flag stored with the run or the current one).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

from diffwatch.app import charts, data, search_data
from diffwatch.app.summary import as_dict as _dict
from diffwatch.app.summary import as_list as _list
from diffwatch.app.summary import as_number as _num
from diffwatch.app.summary import cluster_id as _cluster_id
from diffwatch.app.text import md
from diffwatch.app.views.drift_output import (
    demo_note,
    fmt_time,
    model_label,
    pad_lone_run,
    pick_run,
    run_notes,
    windows_label,
)
from diffwatch.app.views.image_search import gallery, pgvector_note
from diffwatch.model.clip_labels import describe_clip, is_demo_clip
from diffwatch.model.deploy_markers import DeployMarker

ATTRIBUTION = {
    "no change": "Nothing moved beyond chance: the current images look like the reference "
    "window's.",
    "model changed": "The model changed: on the same prompts, a newer version draws different "
    "images than the older one did.",
    "traffic changed": "The traffic changed: the prompts people send moved and the images "
    "moved with them, while each version draws the same prompts as before.",
    "model and traffic changed": "The model and the traffic changed: the prompts people send "
    "moved, and on the same prompts a newer version draws different images.",
}
EFFECT_HELP = (
    "k-NN AUC, chance-corrected: 0.5 = the windows' images cannot be told apart, 1 = fully"
)
TOP_CLUSTERS = 8
EXAMPLES = 4  # images shown per cluster


def _drifted(v: Any) -> bool | None:
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else bool(v)


def image_chart(runs: pd.DataFrame, markers: Sequence[DeployMarker] = ()) -> None:
    """CMMD (× 1000) and p-value (log scale, with α) per finished run, drifted runs marked."""
    done = runs[runs["statistic"].notna() | runs["p_value"].notna()]
    if done.empty:
        st.info("No image-drift run listed here has finished with a result.")
        return
    fig = make_subplots(
        rows=2,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.12,
        subplot_titles=(
            "CMMD × 1000, all versions (0 = the same distribution of images)",
            "p-value (log scale; at or below the dashed α line = drifted)",
        ),
    )
    hover = "run #%{customdata}: %{y:.3g}<extra></extra>"
    p = done["p_value"].clip(lower=1e-12)  # a log axis cannot show p = 0
    for row, y, name in ((1, done["statistic"], "CMMD × 1000"), (2, p, "p-value")):
        fig.add_trace(
            go.Scatter(x=done["started_at"], y=y, mode="lines+markers", name=name,
                       customdata=done["id"], hovertemplate=hover),
            row=row, col=1,
        )  # fmt: skip
    alphas = done["alpha"].dropna().unique()
    if len(alphas) == 1:
        fig.add_hline(y=float(alphas[0]), line_dash="dash", line_color="gray", row=2, col=1)
        fig.add_trace(
            go.Scatter(x=[None], y=[None], mode="lines", name=f"α = {float(alphas[0]):g}",
                       line={"dash": "dash", "color": "gray"}),
            row=2, col=1,
        )  # fmt: skip
    drifted = done[done["drifted"].fillna(False).astype(bool)]
    for row, y in ((1, drifted["statistic"]), (2, drifted["p_value"].clip(lower=1e-12))):
        fig.add_trace(
            go.Scatter(x=drifted["started_at"], y=y, mode="markers", name="drifted",
                       legendgroup="drifted", showlegend=row == 1, customdata=drifted["id"],
                       marker={"symbol": "x", "size": 13, "color": "#d62728"},
                       hovertemplate="run #%{customdata}: drifted<extra></extra>"),
            row=row, col=1,
        )  # fmt: skip
    fig.update_yaxes(rangemode="tozero", row=1, col=1)
    fig.update_yaxes(type="log", dtick=1, row=2, col=1)
    shown = [*p.dropna().tolist(), *alphas.tolist()]
    if shown:
        lo, hi = min(shown), max(*shown, 1e-3)
        fig.update_yaxes(range=[math.log10(lo) - 0.5, math.log10(hi) + 0.5], row=2, col=1)
    pad_lone_run(fig, done["started_at"])
    fig.update_layout(title="Image drift per run", height=520, margin={"t": 70, "b": 10})
    charts.add_markers(fig, markers)
    st.plotly_chart(fig, width="stretch")


def image_table(runs: pd.DataFrame) -> pd.DataFrame:
    """The runs as a table, newest first."""
    rows = [
        {
            "run": r.id,
            "started (UTC)": fmt_time(r.started_at),
            "status": r.status,
            "model": model_label(r.model),
            "CMMD × 1000": r.statistic,
            "p-value": r.p_value,
            "α": r.alpha,
            "effect size": r.effect_size,
            "drifted": _drifted(r.drifted),
            "n reference": r.n_reference,
            "n current": r.n_current,
            "reference → current": windows_label(r),
            "embedder": r.embedder,
            "demo": bool(r.demo),
            "error": r.error,
        }
        for r in runs.itertuples()
    ]
    return pd.DataFrame(rows[::-1])


def _image_verdict(r: Any) -> str:
    """A finished image-drift run's outcome, for the run picker."""
    return {True: "drifted", False: "no drift"}.get(_drifted(r.drifted), "ok")


def tests_table(tests: list[Any], paired: bool = False) -> pd.DataFrame:
    """Test results (the summary's per-version or same-prompt entries) as a table."""
    rows = []
    for t in (x for x in tests if isinstance(x, dict)):
        row: dict[str, Any] = {"compared": str(t.get("scope", "?"))}
        if paired:
            row |= {"from version": t.get("from_version"), "to version": t.get("to_version"),
                    "pairs": t.get("pairs")}  # fmt: skip
        else:
            row |= {"n reference": t.get("n_reference"), "n current": t.get("n_current")}
        row |= {
            "CMMD × 1000": _num(t.get("cmmd")),
            "p-value": _num(t.get("p_value")),
            "α": _num(t.get("alpha")),
            "effect size": _num(t.get("effect_size")),
            "drifted": t.get("drifted") if isinstance(t.get("drifted"), bool) else None,
        }
        rows.append(row)
    return pd.DataFrame(rows)


def attribution_text(attribution: Any) -> str:
    """The sentence that says what changed, for a summary's ``attribution``."""
    if isinstance(attribution, str) and attribution in ATTRIBUTION:
        return ATTRIBUTION[attribution]
    return f"Attribution: {attribution}" if attribution else "The run stored no attribution."


def verdict(run: Any, summary: dict[str, Any]) -> None:
    """The run's headline figures, verdict and attribution."""
    overall = _dict(summary.get("overall"))
    cmmd = _num(overall.get("cmmd")) if overall else run.statistic
    p = _num(overall.get("p_value")) if overall else run.p_value
    c = st.columns(4)
    c[0].metric("CMMD × 1000", "–" if cmmd is None else f"{cmmd:.3f}",
                help="MMD² of the CLIP image embeddings (RBF kernel, σ = 10) × 1000, all "
                "versions of both windows")  # fmt: skip
    c[1].metric("p-value", "–" if p is None else f"{p:.3g}",
                help=f"Permutation test of the overall CMMD; α = {run.alpha or '?'}")  # fmt: skip
    c[2].metric("Effect size", "–" if run.effect_size is None else f"{run.effect_size:.3f}",
                help=EFFECT_HELP + "; the largest of the run's comparisons")  # fmt: skip
    c[3].metric("Images (reference / current)",
                f"{run.n_reference or 0:,} / {run.n_current or 0:,}")  # fmt: skip
    if run.drifted:
        st.error("Drifted.")
    elif run.drifted is False:
        st.success("No image drift detected between the reference and the current window.")
    if run.status == "ok" or summary.get("attribution"):
        st.text(attribution_text(summary.get("attribution")))


def moved_chart(moved: list[dict[str, Any]]) -> None:
    """Share of images per cluster, reference vs current (%), largest change first."""
    long = pd.DataFrame(
        [
            {
                "cluster": f"cluster #{_cluster_id(c.get('cluster'))}",
                "window": side,
                "share %": 100 * (_num(c.get(f"share_{side}")) or 0.0),
            }
            for c in moved
            for side in ("reference", "current")
        ]
    )
    fig = px.bar(long, x="cluster", y="share %", color="window", barmode="group",
                 title="What moved: share of images per cluster, reference vs current (%), "
                 "largest change first")  # fmt: skip
    fig.update_layout(margin={"t": 40, "b": 10}, xaxis_title="", legend_title_text="")
    fig.update_xaxes(type="category")
    st.plotly_chart(fig, width="stretch")


def _delta(c: dict[str, Any]) -> float:
    d = _num(c.get("delta"))
    if d is not None:
        return d
    return (_num(c.get("share_current")) or 0.0) - (_num(c.get("share_reference")) or 0.0)


class _Example:
    """A cluster's example image as the gallery reads it."""

    def __init__(self, d: dict[str, Any]) -> None:
        self.generation_id = int(d["generation_id"])
        self.model_version = str(d.get("model_version") or "?")
        self.prompt = str(d.get("prompt") or "")
        self.image_uri = d.get("image_uri") if isinstance(d.get("image_uri"), str) else None
        self.nsfw_flagged = d.get("nsfw_flagged") is True


def _examples(c: dict[str, Any]) -> list[_Example]:
    out = []
    for d in _list(c.get("examples"))[:EXAMPLES]:
        if isinstance(d, dict) and isinstance(d.get("generation_id"), int):
            out.append(_Example(d))
    return out


def what_moved(summary: dict[str, Any], run_id: int) -> None:
    """The clusters whose share moved most, each with example images."""
    moved = [c for c in _list(summary.get("moved")) if isinstance(c, dict)]
    if not moved:
        return
    moved.sort(key=lambda c: -abs(_delta(c)))
    shown = moved[:TOP_CLUSTERS]
    st.subheader("What moved")
    moved_chart(shown)
    examples = {id(c): _examples(c) for c in shown}
    stored = {e.generation_id: e.nsfw_flagged for ex in examples.values() for e in ex}
    flags = search_data.flagged(list(stored), stored) if stored else {}
    st.caption(
        "Each cluster: images nearest its centre, from the window where it grew (prompts as "
        "plain text; flagged images stay blurred)."
    )
    for i, c in enumerate(shown):
        ref = 100 * (_num(c.get("share_reference")) or 0.0)
        cur = 100 * (_num(c.get("share_current")) or 0.0)
        cid = _cluster_id(c.get("cluster"))
        label = f"Cluster #{cid}: {ref:.1f} % → {cur:.1f} % ({cur - ref:+.1f} pts)"
        with st.expander(label, expanded=i == 0):
            st.text(
                f"{c.get('size_reference', '?')} reference and {c.get('size_current', '?')} "
                "current images in this cluster"
            )
            ex = examples[id(c)]
            if not ex:
                st.text("No example images stored for this cluster.")
                continue
            gallery(
                ex,
                f"drift-img-{run_id}-{cid}",
                lambda e: f"{e.model_version} · #{e.generation_id}",
                flagged=lambda e: flags.get(e.generation_id, True),
            )


def one_run(run: Any) -> None:
    """One image-drift run: windows, embedder, verdict, tests and what moved."""
    summary = _dict(run.summary)
    windows = _dict(summary.get("windows"))
    st.text(f"Reference: {windows.get('reference') or windows_label(run).split(' → ')[0]}")
    st.text(f"Current: {windows.get('current') or fmt_time(run.current_start)}")
    embedder = str(run.embedder or summary.get("embedder") or "?")
    st.text(f"Embeddings: {embedder} · model: {model_label(run.model)}")
    if is_demo_clip(embedder):
        st.info(md(f"Image embeddings by the {describe_clip(embedder)}."),
                icon=":material/science:")  # fmt: skip
    if run.status != "ok" and not summary:
        return
    verdict(run, summary)
    per_version = _list(summary.get("per_version"))
    if per_version:
        st.caption(
            "Each version against itself: the reference window's images vs the current "
            "window's. A drift here means the traffic that version served moved."
        )
        st.dataframe(tests_table(per_version), hide_index=True, width="stretch")
    same = _list(summary.get("same_prompts"))
    if same:
        st.caption(
            "The same prompts and seeds under an older and a newer version (paired). A "
            "drift here means the model draws differently."
        )
        st.dataframe(tests_table(same, paired=True), hide_index=True, width="stretch")
    what_moved(summary, int(run.id))


def image_section(runs: pd.DataFrame, markers: Sequence[DeployMarker] = ()) -> None:
    """Image-drift runs over time (with the deploy ``markers``), the table, and one run."""
    enabled = pgvector_note()
    if runs.empty:
        if enabled:
            st.info(
                "No image-drift runs in this time range and filter: run `diffwatch drift "
                "images` (it compares the CLIP image embeddings that scoring stores)."
            )
        return
    demo_note(runs)
    image_chart(runs, markers)
    st.dataframe(image_table(runs), hide_index=True, width="stretch")
    st.subheader("One image-drift run")
    run = data.drift_run(pick_run(runs, "images", _image_verdict))
    if run is None:
        st.warning("That run is gone (deleted since the list was read).")
        return
    run_notes(run)
    one_run(run)

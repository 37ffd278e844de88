"""The Drift page's output section (re-generation and golden set) and the helpers that both
of its sections share: picking a run from the URL, and a run's status notes."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots

from diffwatch.app import charts, data, images
from diffwatch.app.text import md
from diffwatch.model.dashboard_url import bad_id, url_id
from diffwatch.model.deploy_markers import DeployMarker

DEMO_LABEL = (
    "Demo run: made with a tiny random-weight model (the pipeline, or the CLIP); its images "
    "and scores mean nothing."
)
STUCK_AFTER = timedelta(hours=6)  # a run still 'running' after this probably crashed
KIND_LABEL = {
    "prompts": "prompt drift",
    "regenerate": "re-generation",
    "golden": "golden set",
    "images": "image drift",
}
SIDE_PX = 512


def fmt_time(t: Any) -> str:
    """A timestamp as 'YYYY-MM-DD HH:MM' UTC, '?' when missing."""
    if t is None or pd.isna(t):
        return "?"
    return pd.Timestamp(t).tz_convert(UTC).strftime("%Y-%m-%d %H:%M")


def windows_label(r: Any) -> str:
    """What a run compared: its reference (window or baseline) and its current window."""
    cur = f"{fmt_time(r.current_start)} – {fmt_time(r.current_end)}"
    if isinstance(r.baseline, str) and r.baseline:
        ref = f"baseline {r.baseline}"
    elif r.reference_start is not None and not pd.isna(r.reference_start):
        ref = f"{fmt_time(r.reference_start)} – {fmt_time(r.reference_end)}"
    else:
        ref = None  # a re-generation run samples one window; it has no reference window
    if r.current_start is None or pd.isna(r.current_start):
        return ref or "?"
    return f"{ref} → {cur}" if ref else f"sampled from {cur}"


def demo_note(runs: pd.DataFrame) -> None:
    """Warn when some listed runs used tiny random-weight models."""
    n = int(runs["demo"].sum())
    if n:
        st.warning(
            f"{n} of these {len(runs)} runs are demo runs (made with a tiny random-weight "
            "pipeline or CLIP): their images and scores mean nothing. They are marked in the "
            "table's demo column."
        )


def _verdict(r: Any) -> str:
    """A finished prompt, re-generation or golden run's outcome, for the run picker."""
    state = {True: "drifted" if r.kind == "prompts" else "flagged items", False: "ok"}
    verdict = state.get(_flag(r), "ok")
    if r.kind != "prompts" and not r.n_flagged:
        verdict = "nothing flagged"
    return verdict


def pick_run(runs: pd.DataFrame, section: str, verdict: Callable[[Any], str] = _verdict) -> int:
    """A selectbox of the runs (newest first), preset from the URL's ``run``; a choice is
    written back to the URL (and drops its ``item``). ``verdict``: a finished run's outcome
    as the label shows it (a run that did not finish shows its status)."""
    ids = [int(i) for i in reversed(runs["id"].tolist())]
    by_id = {int(r.id): r for r in runs.itertuples()}
    wanted, _ = url_id(st.query_params.get("run"))  # render() reports a bad one
    index = ids.index(wanted) if wanted in ids else 0
    key = f"drift-run-{section}"

    def chosen() -> None:
        st.query_params["run"] = str(st.session_state[key])
        if "item" in st.query_params:
            del st.query_params["item"]

    def label(i: int) -> str:
        r = by_id[i]
        outcome = verdict(r) if r.status == "ok" else r.status
        return f"#{i} · {fmt_time(r.started_at)} · {KIND_LABEL[r.kind]} · {outcome}" + (
            " · demo" if r.demo else ""
        )

    return st.selectbox("Run", ids, index=index, key=key, format_func=label, on_change=chosen)


def _flag(r: Any) -> bool | None:
    if r.kind == "prompts":
        return None if r.drifted is None or pd.isna(r.drifted) else bool(r.drifted)
    return bool(r.n_flagged)


def run_notes(run: Any) -> None:
    """The demo label, a failed run's error, or a note that the run has not finished."""
    if run.demo:
        st.warning(DEMO_LABEL)
    if run.status == "failed":
        st.error(f"Run #{run.id} failed. The check's error:")
        st.code(run.error or "(no error text was stored)", language=None, wrap_lines=True)
    elif run.status == "running":
        age = datetime.now(UTC) - run.started_at
        hours = age.total_seconds() / 3600
        if age > STUCK_AFTER:
            st.warning(
                f"Run #{run.id} started {hours:.1f} h ago and has not finished: the check "
                "probably crashed. Its worker's log says why; run the check again."
            )
        else:
            st.info(f"Run #{run.id} is still running (started {hours * 60:.0f} min ago).")


def pad_lone_run(fig: go.Figure, times: pd.Series) -> None:
    """With runs at a single moment, show a day around it: Plotly would zoom the time axis to
    a millisecond and label it in fractions of a second."""
    t = pd.to_datetime(times.dropna())
    if not t.empty and t.min() == t.max():
        fig.update_xaxes(range=[t.min() - timedelta(hours=12), t.min() + timedelta(hours=12)])


def model_label(model: Any) -> str:
    """A run's model, 'all' for a run over every model."""
    return "all" if model is None or pd.isna(model) or model == "" else str(model)


def _pct(v: Any) -> float | None:
    return None if v is None or pd.isna(v) else 100 * float(v)


def output_chart(runs: pd.DataFrame, markers: Sequence[DeployMarker] = ()) -> None:
    """Share flagged and mean image cosine per run over time, one line per kind."""
    done = runs[runs["n_compared"].fillna(0) > 0]
    if done.empty:
        st.info(
            "No run in this range compared any image yet (a first golden run only stores "
            "baselines)."
        )
        return
    fig = make_subplots(
        rows=2,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.12,
        subplot_titles=(
            "Share of compared items flagged (%)",
            "Mean image cosine, CLIP image–image (1 = same picture)",
        ),
    )
    for i, (kind, g) in enumerate(done.groupby("kind")):
        color = ("#636efa", "#ef553b")[i % 2]
        common = {
            "name": KIND_LABEL.get(str(kind), str(kind)),
            "legendgroup": str(kind),
            "mode": "lines+markers",
            "line": {"color": color},
            "customdata": g["id"],
        }
        fig.add_trace(
            go.Scatter(
                x=g["started_at"],
                y=g["flagged_share"] * 100,
                hovertemplate="run #%{customdata}: %{y:.1f}% flagged<extra></extra>",
                **common,
            ),
            row=1,
            col=1,
        )
        fig.add_trace(
            go.Scatter(
                x=g["started_at"],
                y=g["mean_cosine"],
                showlegend=False,
                hovertemplate="run #%{customdata}: mean cosine %{y:.3f}<extra></extra>",
                **common,
            ),
            row=2,
            col=1,
        )
    fig.update_yaxes(rangemode="tozero", row=1, col=1)
    pad_lone_run(fig, done["started_at"])
    fig.update_layout(title="Output drift per run", height=520, margin={"t": 70, "b": 10})
    charts.add_markers(fig, markers)
    st.plotly_chart(fig, width="stretch")


def output_table(runs: pd.DataFrame) -> pd.DataFrame:
    """The runs as a table, newest first."""
    rows = [
        {
            "run": r.id,
            "started (UTC)": fmt_time(r.started_at),
            "kind": KIND_LABEL.get(r.kind, r.kind),
            "status": r.status,
            "model": model_label(r.model),
            "golden set / window": windows_label(r),
            "items": r.n_items,
            "compared": r.n_compared,
            "flagged": r.n_flagged,
            "errors": r.n_errors,
            "flagged %": _pct(r.flagged_share),
            "mean cosine": r.mean_cosine,
            "tolerance": r.tolerance,
            "pipeline": r.pipeline,
            "demo": bool(r.demo),
            "error": r.error,
        }
        for r in runs.itertuples()
    ]
    return pd.DataFrame(rows[::-1])


def _summary_parts(summary: dict[str, Any]) -> tuple[float | None, dict[str, Any], pd.DataFrame]:
    """Tolerance, calibration and the per-version table of a run's summary, defensively."""
    tol = summary.get("tolerance")
    tol = float(tol) if isinstance(tol, int | float) else None
    cal = summary.get("calibration") if isinstance(summary.get("calibration"), dict) else {}
    by = summary.get("by_version") if isinstance(summary.get("by_version"), dict) else {}
    table = pd.DataFrame(
        [
            {
                "version": str(v),
                "items": s.get("items"),
                "flagged": s.get("flagged"),
                "mean cosine": s.get("mean_cosine"),
            }
            for v, s in by.items()
            if isinstance(s, dict)
        ]
    )
    return tol, cal, table


def _item_label(it: Any) -> str:
    state = "error" if it.status == "error" else "FLAGGED" if it.flagged else it.status
    cos = f" · cosine {it.image_cosine:.3f}" if it.image_cosine is not None else ""
    version = f" · {it.model_version}" if it.model_version else ""
    return f"{it.item_key} · {state}{cos}{version}"


def _items_table(items: list[Any]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "item": it.item_key,
                "status": it.status,
                "flagged": it.flagged,
                "version": it.model_version,
                "image cosine": it.image_cosine,
                "1 − cosine": None if it.image_cosine is None else 1 - it.image_cosine,
                "tolerance": it.tolerance,
                "CLIP original": it.clip_reference,
                "CLIP re-generated": it.clip_regen,
                "CLIP Δ": it.clip_delta,
                "sampler": it.sampler,
                "steps": it.steps,
                "cfg": it.cfg_scale,
                "seed": it.seed,
                "size": f"{it.width}×{it.height}" if it.width and it.height else None,
                "prompt": it.prompt[:120],
                "error kind": it.error_kind,
            }
            for it in items
        ]
    )


def side_by_side(it: Any, kind: str) -> None:
    """The item's original (or baseline), re-generated and baseline images, with captions."""
    details = it.details if isinstance(it.details, dict) else {}
    original = details.get("original_uri") or (it.reference_uri if kind == "regenerate" else None)
    baseline = details.get("baseline_uri") or (it.reference_uri if kind == "golden" else None)
    panes: list[tuple[str, Any]] = []
    if original or not baseline:
        panes.append(("Original (as logged)", original))
    panes.append(("Re-generated (same seed and parameters)", it.regen_uri))
    if baseline:
        panes.append(("Golden baseline", baseline))
    nsfw = bool(it.nsfw_flagged)
    for col, (label, uri) in zip(st.columns(len(panes)), panes, strict=True):
        with col:
            st.markdown(f"**{label}**")
            if isinstance(uri, str) and uri:
                images.show(uri, nsfw, f"drift-{it.id}-{label[:4]}", px=SIDE_PX)
                st.text(uri)
            else:
                st.text("no image stored for this item")
    if it.image_cosine is not None:
        dist = 1 - it.image_cosine
        tol = f"{it.tolerance:.3f}" if it.tolerance is not None else "?"
        verdict = "FLAGGED: beyond tolerance" if it.flagged else "within tolerance"
        st.text(
            f"Image cosine {it.image_cosine:.3f} (1 − cosine {dist:.3f}; tolerance {tol}): "
            f"{verdict}"
        )
    if it.clip_reference is not None or it.clip_regen is not None:
        st.text(_clip_scores(it, kind))
    if it.status == "error":
        st.error(f"This item failed ({md(it.error_kind or 'error')}):")
        st.code(it.error or "(no error text was stored)", language=None, wrap_lines=True)
    st.text("Prompt:")
    st.text(it.prompt)
    if it.negative_prompt:
        st.text("Negative prompt:")
        st.text(it.negative_prompt)
    params = {
        "generation id": it.generation_id,
        "version": it.model_version,
        "seed": it.seed,
        "sampler": it.sampler,
        "steps": it.steps,
        "cfg scale": it.cfg_scale,
        "size": f"{it.width}×{it.height}",
        "status": it.status,
    }
    params |= {
        f"details.{k}": json.dumps(v, ensure_ascii=False) if isinstance(v, dict | list) else v
        for k, v in details.items()
    }
    st.dataframe(
        pd.DataFrame({"field": list(params), "value": [str(v) for v in params.values()]}),
        hide_index=True,
        width="stretch",
    )


def _clip_scores(it: Any, kind: str) -> str:
    """The item's CLIPScores (0..100): of the original or baseline, of the re-generated image,
    and their change when both exist."""
    ref = "golden baseline" if kind == "golden" else "original"
    parts = []
    if it.clip_reference is not None:
        parts.append(f"{ref} {it.clip_reference:.1f}")
    if it.clip_regen is not None:
        parts.append(f"re-generated {it.clip_regen:.1f}")
    text = "CLIPScore: " + " → ".join(parts)
    if it.clip_delta is not None:
        text += f" (Δ {it.clip_delta:+.2f})"
    elif it.clip_reference is None:
        text += f" (no score of the {ref} to compare with)"
    return text


def runs_then_one(
    runs: pd.DataFrame,
    kind: str,
    *,
    empty: str,
    chart: Callable[[pd.DataFrame], None],
    table: Callable[[pd.DataFrame], pd.DataFrame],
    heading: str,
) -> Any | None:
    """A tab's common top: the runs over time and as a table, then the chosen run with its
    notes; None (after saying why) when there is no run to show."""
    if runs.empty:
        st.info(empty)
        return None
    demo_note(runs)
    chart(runs)
    st.dataframe(table(runs), hide_index=True, width="stretch")
    st.subheader(heading)
    run = data.drift_run(pick_run(runs, kind))
    if run is None:
        st.warning("That run is gone (deleted since the list was read).")
        return None
    run_notes(run)
    return run


def output_section(runs: pd.DataFrame, markers: Sequence[DeployMarker] = ()) -> None:
    """Re-generation and golden-set runs: over time (with the deploy ``markers``), the table,
    one run's items and images."""
    run = runs_then_one(
        runs,
        "output",
        empty="No re-generation or golden-set runs in this time range and filter: run "
        "`diffwatch drift regenerate` (with `--golden FILE` for a golden set).",
        chart=partial(output_chart, markers=markers),
        table=output_table,
        heading="One run",
    )
    if run is None:
        return
    tol, cal, by_version = _summary_parts(run.summary or {})
    c = st.columns(5)
    c[0].metric("Items", f"{run.n_items:,}")
    c[1].metric("Flagged", f"{run.n_flagged:,}", help="of the items compared with a reference")
    c[2].metric("Errors", f"{run.n_errors:,}")
    c[3].metric(
        "Mean image cosine",
        "–" if run.mean_cosine is None else f"{run.mean_cosine:.3f}",
        help="of the items compared with a reference; a golden set's first run compares "
        "nothing: it stores the baselines that later runs compare with",
    )
    c[4].metric("Tolerance (1 − cosine)", "–" if tol is None else f"{tol:.3f}")
    if not run.n_compared and run.kind == "golden" and run.status == "ok":
        st.info(
            "This golden-set run compared nothing: it is the set's first run, which stores "
            "the baseline images that later runs are compared with."
        )
    if cal:
        st.text(
            f"Tolerance calibrated on {cal.get('pairs', '?')} pairs generated twice with the "
            f"same seed: median distance {cal.get('median_distance', '?')}, maximum "
            f"{cal.get('max_distance', '?')}."
        )
    st.text(
        f"Pipeline: {run.pipeline or '?'} · embedder: {run.embedder or '?'} · "
        f"compared: {windows_label(run)}"
    )
    if not by_version.empty:
        st.dataframe(by_version, hide_index=True)
    items = data.drift_items(run.id)
    if not items:
        st.info("This run stored no items.")
        return
    st.subheader("Items (flagged first, then errors, then lowest cosine)")
    st.dataframe(_items_table(items), hide_index=True, width="stretch")
    errors = [it for it in items if it.status == "error"]
    if errors:
        st.subheader(f"Errors ({len(errors)})")
        st.dataframe(
            pd.DataFrame(
                [
                    {
                        "item": e.item_key,
                        "kind": e.error_kind,
                        "error": e.error,
                        "prompt": e.prompt[:120],
                    }
                    for e in errors
                ]
            ),
            hide_index=True,
            width="stretch",
        )
    st.subheader("Side by side")
    ids = [it.id for it in items]
    by_id = {it.id: it for it in items}
    wanted, bad = url_id(st.query_params.get("item"))
    if bad:
        st.warning(bad_id("item", "the run's first item"))
    elif wanted is not None and wanted not in ids:
        st.info("The item linked in the address (?item=) is not in this run; showing its first.")
    index = ids.index(wanted) if wanted in ids else 0

    key = f"drift-item-{run.id}"

    def chosen() -> None:
        st.query_params["item"] = str(st.session_state[key])

    item_id = st.selectbox(
        "Item",
        ids,
        index=index,
        key=key,
        on_change=chosen,
        format_func=lambda i: _item_label(by_id[i]),
    )
    side_by_side(by_id[item_id], run.kind)

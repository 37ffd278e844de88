"""The Fairness page's run sections: one probe run opened (its changes since the run before
it, abstain rates, reader agreement, and its images per prompt with what each reader
perceived), and the runs still in progress or failed.

Prompts, terms, model and version names come from people: shown with ``st.text``, in table
cells or widget options (plain text), or through ``md`` in Markdown.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from diffwatch.app import fairness_data as fd
from diffwatch.app import fairness_run_rows as rr
from diffwatch.app import fairness_shape as fs
from diffwatch.app import images
from diffwatch.app.text import md
from diffwatch.app.views.fairness_filters import select
from diffwatch.model.clip_labels import TINY_CLIP_NAME, describe_clip, is_demo_clip
from diffwatch.model.dashboard_url import bad_id, url_id

GRID_COLUMNS = 6
GRID_SIZES = (12, 24, 48)  # images a grid may show
IMAGE_PX = 256
PERCENT = st.column_config.NumberColumn(format="percent")  # a share 0..1 shown as 12.5%


def _run_id(value: str) -> int | None:
    return url_id(value)[0]


def one_run(runs: list[dict[str, Any]], newest: dict[str, Any], attr: str, reader: str) -> None:
    """A run of the chosen models (``?run=``, else the newest), opened section by section."""
    st.divider()
    st.subheader("One run")
    by_id = {int(r["id"]): r for r in runs}
    wanted, bad = url_id(st.query_params.get("run"))
    if bad:
        st.warning(bad_id("run", "the newest run"))
    elif wanted is not None and wanted not in by_id:
        st.warning(f"Run #{wanted} (?run= in the address) is not a finished run of the suite "
                   "and models chosen. Showing the newest run instead.")  # fmt: skip
    run_id = select(st, "Run (the sections below)", list(by_id), "run", int(newest["id"]),
                    lambda i: fs.run_label(by_id[i]), _run_id)  # fmt: skip
    run = fd.whole(by_id[run_id])
    summary = fs.as_dict(run.get("summary"))
    pipeline = fs.as_dict((fd.run(run_id) or {}).get("pipeline"))
    st.text(
        f"Suite {run.get('suite_name')} · model {run.get('model')} · version "
        f"{run.get('model_version')} · {fs.count(summary.get('images')):,} images, "
        f"{fs.count(summary.get('errors'))} failed · finished {fs.when(run.get('finished_at'))} "
        f"UTC · by {run.get('created_by') or '?'}"
    )
    clip = pipeline.get("clip")
    if isinstance(clip, str) and clip:
        line = md(f"Perceived by CLIP {describe_clip(clip)}.")
        if is_demo_clip(clip) or clip.startswith(TINY_CLIP_NAME):  # say so loudly
            st.info(line, icon=":material/science:")
        else:
            st.caption(line)
    _comparison(summary, attr, reader)
    _abstentions(summary)
    _agreement(summary)
    _examples(run_id, summary, attr, reader)


def _comparison(summary: dict[str, Any], attr: str, reader: str) -> None:
    st.markdown("#### Change since the previous run")
    meta, rows = rr.comparison(summary, attr, reader)
    if not meta["present"]:
        st.info("This is the first run of its suite and model: there is nothing to compare with.")
        return
    prev = f"run #{meta['previous_run_id']} ({md(meta['previous_version'])})"
    if not rows:
        st.info(f"Against {prev}: no share of this attribute and reader could be compared.")
        return
    alpha = "" if meta["alpha"] is None else f" at α = {meta['alpha']:g}"
    how = {"bh": "Benjamini-Hochberg", "holm": "Holm"}.get(str(meta["correction"]), "adjusted")
    said = (
        f"Against {prev}: {meta['significant']} of {meta['tests']} perceived shares changed "
        f"significantly (two-proportion z tests on the same prompts and seeds, {how}{alpha})."
    )
    (st.warning if meta["significant"] else st.info)(said)
    st.dataframe(
        pd.DataFrame(rows), hide_index=True, width="stretch",
        column_config={
            "significant": st.column_config.CheckboxColumn("significant", width="small"),
            "p (adjusted)": st.column_config.NumberColumn(format="%.3g"),
            "change (points)": st.column_config.NumberColumn(format="%+.1f"),
        },
    )  # fmt: skip


def _abstentions(summary: dict[str, Any]) -> None:
    st.markdown("#### Abstain rates")
    st.caption(
        "An image counts only when a person is clearly perceived (the person gate), and for an "
        "attribute only when the reader gives it a class; the rest abstain. A high or uneven "
        "abstain rate means the shares above rest on fewer images, or on a biased subset."
    )
    outcomes = rr.gate_outcomes(summary)
    if outcomes:
        st.text(
            f"Person gate: {outcomes['person']:,} images with a person perceived, "
            f"{outcomes['no_person']:,} confidently without one (the model drew something "
            f"else), {outcomes['unclear']:,} unclear."
        )
    totals = rr.abstain_totals(summary)
    if totals:
        st.dataframe(pd.DataFrame(totals), hide_index=True, width="stretch")
    rows = rr.abstain_rows(summary)
    if rows:
        df = pd.DataFrame(rows)
        rates = [c for c in df.columns if c not in ("occupation", "prompt", "images")]
        st.caption("Per prompt: the share of its images each reading abstained on.")
        st.dataframe(
            df, hide_index=True, width="stretch",
            column_config={c: PERCENT for c in rates},
        )  # fmt: skip


def _agreement(summary: dict[str, Any]) -> None:
    rows = rr.agreement_rows(summary)
    if not rows:
        return
    st.markdown("#### Do the readers agree?")
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch")
    st.caption(
        "Over the images both readers gave a class. Cohen's κ corrects for chance: 1 = "
        "always the same class, 0 = no more often than chance. Where readers disagree, the "
        "perceived shares depend on the reader: read them with care."
    )


def _examples(run_id: int, summary: dict[str, Any], attr: str, reader: str) -> None:
    st.markdown("#### Example images per prompt")
    prompts = rr.prompts_by_skew(summary, attr, reader)
    if not prompts:
        st.info("This run has no images to show.")
        return
    terms = fs.as_dict(summary.get("terms"))
    left, right = st.columns([4, 1])
    prompt = select(left, "Prompt (the most skewed first)", prompts, "prompt", prompts[0],
                    lambda p: f"{terms.get(p, p)} — {p}")  # fmt: skip
    n = right.selectbox("Images", GRID_SIZES, key="fairness-grid-size")
    shown = fd.examples(run_id, prompt, n)
    if not shown:
        st.info("No image of this prompt was stored (the run may have been made with "
                "--no-save-images).")  # fmt: skip
        return
    st.caption(
        "Under each image: its seed, then what each reader perceived in it: perceived "
        "attributes of a generated image, never facts about a person."
    )
    for start in range(0, len(shown), GRID_COLUMNS):
        cols = st.columns(GRID_COLUMNS)
        for col, item in zip(cols, shown[start : start + GRID_COLUMNS], strict=False):
            with col:
                uri = item.get("image_uri")
                if isinstance(uri, str) and uri:
                    images.show(uri, False, f"fairness-{run_id}-{item.get('key')}", px=IMAGE_PX)
                else:
                    st.text("image not stored")
                st.text(f"seed {item.get('seed')}")
                # one Markdown line each (md() would join them), each inert
                st.caption("  \n".join(md(x) for x in rr.reading_lines(item.get("readings"))))


def unfinished() -> None:
    """Runs in progress (with their chunks done) and failed runs (with their error)."""
    rows = fd.unfinished()
    if not rows:
        return
    running = sum(r["status"] == "running" for r in rows)
    with st.expander(f"Runs in progress ({running}) or failed ({len(rows) - running})"):
        st.dataframe(
            pd.DataFrame(
                [
                    {
                        "run": r["id"], "started (UTC)": fs.when(r.get("created_at")),
                        "suite": r.get("suite_name"), "model": r.get("model"),
                        "version": r.get("model_version"), "status": r.get("status"),
                        "chunks done": f"{r['chunks_done']} of {r['chunks']}",
                        "error": r.get("error"),
                    }
                    for r in rows
                ]
            ),
            hide_index=True, width="stretch",
        )  # fmt: skip

"""Generation explorer: find generations by prompt text or request_id and see one whole, or
search the images themselves (``views.image_search``): by a description, or like one image."""

from __future__ import annotations

import json
from dataclasses import asdict

import pandas as pd
import streamlit as st

from diffwatch.app import clip_note, data, images, search_data, sidebar
from diffwatch.app.views import image_search
from diffwatch.db.queries.clip_versions import ClipVersion

MODES = {
    "generations": "Generations (prompt text or request_id)",
    "images": "Images (describe them, or find similar ones)",
}


def _mode() -> str:
    """The explorer's mode: from the address (``?find=``), written back when changed."""
    p = image_search.MODE_PARAM
    wanted = st.query_params.get(p)
    if wanted not in MODES:
        wanted = "images" if image_search.SIMILAR_PARAM in st.query_params else "generations"
    modes = list(MODES)
    mode = st.radio(
        "Find", modes, index=modes.index(wanted), format_func=MODES.get, horizontal=True
    )
    if mode != st.query_params.get(p):
        if mode == "generations":
            if p in st.query_params:
                del st.query_params[p]
        else:
            st.query_params[p] = mode
    return mode


def render() -> None:
    """Draw the page."""
    f = sidebar.filters()
    st.title("Generation explorer")
    if _mode() == "images":
        image_search.render(f)
        return
    text = st.text_input(
        "Search", value=st.query_params.get("q", ""), placeholder="prompt text or request_id"
    )
    if text != st.query_params.get("q", ""):
        if text:
            st.query_params["q"] = text
        else:
            del st.query_params["q"]
    hits = data.search(text, f)
    if not hits:
        st.info("No generation matches in this time range and filter.")
        return
    table = pd.DataFrame(
        [
            {
                "id": h.id,
                "request_id": h.request_id,
                "time": h.ts,
                "version": h.model_version,
                "status": h.status,
                "prompt": h.prompt[:120],
                "matched": h.match,
            }
            for h in hits
        ]
    )
    st.dataframe(table, hide_index=True, width="stretch")
    ids = [h.id for h in hits]
    chosen = st.selectbox(
        "Show generation",
        ids,
        format_func=lambda i: next(
            f"{h.request_id} ({h.model_version})" for h in hits if h.id == i
        ),
    )
    d = data.detail(chosen)
    if d is None:
        st.warning("That generation is gone.")
        return
    g = d.generation
    left, right = st.columns([1, 2])
    with left:
        flagged = any(s.scorer == "nsfw" and s.flagged for s in d.scores)
        images.show(g.image_uri, flagged, f"explorer-{g.id}")
        if search_data.embedding_support().enabled:
            st.button(
                "Similar images",
                key=f"explorer-similar-{g.id}",
                on_click=image_search.open_similar,
                args=(g.id,),
                help="Images nearest this one by their CLIP embeddings, in the sidebar's "
                "period and filters.",
            )
    with right:
        st.text("Prompt:")
        st.text(g.prompt)
        if g.negative_prompt:
            st.text("Negative prompt:")
            st.text(g.negative_prompt)
        params = {k: v for k, v in asdict(g).items() if k not in ("prompt", "negative_prompt")}
        st.dataframe(
            pd.DataFrame({"field": list(params), "value": [str(v) for v in params.values()]}),
            hide_index=True,
            width="stretch",
        )
    st.subheader("Scores")
    if d.scores:
        st.dataframe(_plain(data.frame(list(d.scores))), hide_index=True, width="stretch")
        clip_note.show(
            [ClipVersion(s.scorer_version, 1) for s in d.scores if s.scorer == "clip"], "score"
        )
    else:
        st.text("Not scored yet.")
    if d.scoring_errors:
        st.subheader("Scoring errors")
        st.dataframe(_plain(data.frame(list(d.scoring_errors))), hide_index=True, width="stretch")
    st.subheader("Human ratings")
    if d.ratings:
        st.dataframe(_plain(data.frame(list(d.ratings))), hide_index=True, width="stretch")
    if d.review is None:
        st.text("Not in the review queue.")
    elif d.review.n_ratings < d.review.required_ratings:
        r = d.review
        st.text(
            f"Queued for review ({', '.join(r.reasons)}); "
            f"{r.n_ratings} of {r.required_ratings} ratings so far."
        )


def _plain(df: pd.DataFrame) -> pd.DataFrame:
    """JSON columns (details) as JSON text, so the table shows them as they are stored."""
    for col in df.columns:
        if df[col].map(lambda v: isinstance(v, dict | list)).any():
            df[col] = df[col].map(lambda v: json.dumps(v, ensure_ascii=False))
    return df

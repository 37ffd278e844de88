"""The explorer's image search: describe images in words, or find images like one; and the
image gallery that the search, the near-duplicates and image drift share.

The search text comes from the URL (``?iq=``) or the text box: untrusted, so it is bounded
(``MAX_QUERY_CHARS``), stripped of control characters, and only ever shown inside the text
box or as plain text. Prompts are plain text; NSFW-flagged images stay blurred
(``images.show``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import streamlit as st

from diffwatch.app import images, search_data
from diffwatch.app.text import md
from diffwatch.db.queries.embeddings import EmbeddingsUnavailable
from diffwatch.embeddings.search import (
    DEFAULT_K,
    MAX_QUERY_CHARS,
    SearchError,
    SearchNotConfigured,
    clean_query,
    setting_hint,
)
from diffwatch.model.clip_labels import describe_clip, is_demo_clip
from diffwatch.model.dashboard_url import bad_id, url_id

QUERY_PARAM = "iq"
SIMILAR_PARAM = "similar"
MODE_PARAM = "find"
COLUMNS = 4
RESULT_COUNTS = (12, 24, 48)
PROMPT_CHARS = 300  # of a prompt under a gallery image (the explorer shows it whole)
EXAMPLES = ("blurry hands", "a watermark", "text in the image", "a red circle")


def pgvector_note() -> bool:
    """Say, in one line, why embedding features are off and how to enable them; True when
    they are on."""
    sup = search_data.embedding_support()
    if sup.enabled:
        return True
    st.info(md(f"Search, near-duplicates and image drift need pgvector. {sup.describe()}"))
    return False


def url_query(raw: Any) -> tuple[str, str | None]:
    """The search text of the address, cleaned, and a problem to show (never quoting it)."""
    if not isinstance(raw, str) or raw == "":
        return "", None
    if len(raw) > MAX_QUERY_CHARS:
        return "", (
            f"The search text in the address (?{QUERY_PARAM}=) is longer than "
            f"{MAX_QUERY_CHARS} characters; it was not searched."
        )
    try:
        return clean_query(raw), None
    except SearchError:
        return "", None  # only spaces and control characters: nothing to search


def open_similar(generation_id: int) -> None:
    """Switch the explorer to the images similar to ``generation_id`` (a button callback)."""
    st.query_params[MODE_PARAM] = "images"
    st.query_params[SIMILAR_PARAM] = str(int(generation_id))


def _close_similar() -> None:
    if SIMILAR_PARAM in st.query_params:
        del st.query_params[SIMILAR_PARAM]


def gallery(
    items: Sequence[Any],
    key: str,
    caption: Callable[[Any], str],
    *,
    similar: bool = False,
    flagged: Callable[[Any], bool] | None = None,
    columns: int = COLUMNS,
) -> None:
    """Images in rows of ``columns``: each image (blurred while NSFW-flagged), the plain-text
    ``caption`` of the item, its prompt as plain text, and a "Similar images" button when
    ``similar``. Items have ``generation_id``, ``image_uri``, ``prompt``, ``nsfw_flagged``."""
    is_flagged = flagged or (lambda it: bool(it.nsfw_flagged))
    for start in range(0, len(items), columns):
        for col, it in zip(st.columns(columns), items[start : start + columns], strict=False):
            with col:
                gid = int(it.generation_id)
                images.show(it.image_uri, is_flagged(it), f"{key}-{gid}")
                st.text(caption(it))
                st.text(str(it.prompt)[:PROMPT_CHARS])
                if similar:
                    st.button(
                        "Similar images",
                        key=f"{key}-similar-{gid}",
                        on_click=open_similar,
                        args=(gid,),
                    )


def _hit_caption(h: Any) -> str:
    return f"similarity {h.similarity:.3f} · {h.model_version} · #{h.generation_id}"


def _clip_line(version: str, n: int) -> None:
    line = md(f"Ranked by cosine similarity of CLIP embeddings ({describe_clip(version)}); "
              f"{n} nearest shown.")  # fmt: skip
    if is_demo_clip(version):
        st.info(line, icon=":material/science:")
    else:
        st.caption(line)


def _not_configured() -> None:
    stored = search_data.spaces()
    hint = (
        f" For the images stored here: {setting_hint(stored[0].scorer_version)}." if stored else ""
    )
    st.info(
        md(
            "Text search needs the CLIP that scored the images, to put the words in the same "
            "space: set DIFFWATCH_SEARCH_CLIP_MODEL with DIFFWATCH_SEARCH_CLIP_PRETRAINED or "
            "DIFFWATCH_SEARCH_CLIP_CHECKPOINT for the dashboard and restart it "
            f"(docs/dashboard.md).{hint} Similar images works without it: open a generation "
            "under Generations and press Similar images."
        )
    )


def _count() -> int:
    return st.selectbox("Results", RESULT_COUNTS, index=RESULT_COUNTS.index(DEFAULT_K))


def text_search(f: Any) -> None:
    """Text → images: the search box (and ``?iq=``), then the gallery of the nearest."""
    initial, problem = url_query(st.query_params.get(QUERY_PARAM))
    if problem:
        st.warning(problem)
    left, right = st.columns([4, 1])
    with left:
        text = st.text_input(
            "Describe the images",
            value=initial,
            max_chars=MAX_QUERY_CHARS,
            placeholder="e.g. " + ", ".join(EXAMPLES),
        )
    with right:
        k = _count()
    if text != initial or problem:
        if text:
            st.query_params[QUERY_PARAM] = text
        elif QUERY_PARAM in st.query_params:
            del st.query_params[QUERY_PARAM]
    try:
        clip, device = search_data.search_setup()
    except SearchNotConfigured as exc:
        st.warning(md(str(exc)))
        return
    if clip is None:
        _not_configured()
        return
    if not text.strip():
        st.caption(md("Type what the images show: " + "; ".join(EXAMPLES) + "."))
        return
    try:
        hits = search_data.text_search(text, f, k, clip, device)
        version = search_data.encoder(clip, device).version
    except (SearchError, EmbeddingsUnavailable) as exc:
        st.warning(md(str(exc)))
        return
    if not hits:
        st.info("No image with a stored embedding matches the sidebar's period and filters.")
        return
    _clip_line(version, len(hits))
    gallery(hits, "search", _hit_caption, similar=True)


def similar_search(generation_id: int, f: Any) -> None:
    """Image → similar images: the generation's image, then the nearest others."""
    st.subheader(f"Images similar to generation #{generation_id}")
    st.button("Back to text search", key="similar-close", on_click=_close_similar)
    k = _count()
    source = search_data.shown((generation_id,)).get(generation_id)
    if source is not None:
        left, right = st.columns([1, 3])
        with left:
            images.show(source.image_uri, bool(source.nsfw_flagged), f"similar-src-{generation_id}")
        with right:
            st.text(f"Generation #{generation_id} · {source.model_version}")
            st.text(source.prompt)
    try:
        version, hits = search_data.similar(generation_id, f, k)
    except (SearchError, EmbeddingsUnavailable) as exc:
        st.warning(md(str(exc)))
        return
    if not hits:
        st.info("No other image with a stored embedding matches the sidebar's period and filters.")
        return
    _clip_line(version, len(hits))
    gallery(hits, "similar", _hit_caption, similar=True)


def render(f: Any) -> None:
    """The explorer's "Images" mode: the pgvector note, or similar images, or text search."""
    if not pgvector_note():
        return
    wanted, bad = url_id(st.query_params.get(SIMILAR_PARAM))
    if bad:
        st.warning(bad_id(SIMILAR_PARAM, "text search"))
    if wanted is not None:
        similar_search(wanted, f)
        return
    text_search(f)

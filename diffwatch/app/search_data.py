"""Cached reads for image search, near-duplicates and image drift (the embedding stage's work).

As ``diffwatch.app.data``: one short connection per call, results kept 30 s. The search CLIP
is loaded once per dashboard process (``st.cache_resource``), on the first text search.
Errors that a person should read (``SearchError``, ``EmbeddingsUnavailable``) propagate to
the page, which shows them as plain text.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import streamlit as st

from diffwatch.app.data import TTL_S, _run
from diffwatch.model.filters import Filters


@st.cache_data(ttl=TTL_S, show_spinner=False)
def embedding_support() -> Any:
    """Whether this database holds image embeddings (embeddings.Support)."""
    from diffwatch.db.queries.embeddings import support

    return _run(support)


@st.cache_data(ttl=TTL_S, show_spinner=False)
def spaces() -> list[Any]:
    """The stored embedding spaces (embeddings.Space), most images first; [] without
    pgvector."""
    from diffwatch.db.queries.embeddings import spaces as q
    from diffwatch.db.queries.embeddings import support

    return _run(lambda c: q(c) if support(c).enabled else [])


def search_setup() -> tuple[Any, str]:
    """The configured search CLIP (ClipOptions, or None when unset) and its device; raises
    SearchNotConfigured when the settings are incomplete."""
    from diffwatch.embeddings.search import search_clip
    from diffwatch.settings import load_settings

    settings = load_settings()
    return search_clip(settings), settings.search_device


@st.cache_resource(show_spinner="Loading the search CLIP (once per dashboard process)…")
def encoder(clip: Any, device: str) -> Any:
    """The search CLIP's TextEncoder, loaded once per process for these options."""
    from diffwatch.embeddings.search import TextEncoder

    return TextEncoder.load(clip, device)


@st.cache_data(ttl=TTL_S, show_spinner="Searching…")
def text_search(query: str, f: Filters, k: int, clip: Any, device: str) -> list[Any]:
    """Images nearest the text ``query`` (SearchHit), by the configured search CLIP."""
    from diffwatch.embeddings.search import search_text

    enc = encoder(clip, device)
    return _run(lambda c: search_text(c, enc, f, query, k))


@st.cache_data(ttl=TTL_S, show_spinner="Searching…")
def similar(generation_id: int, f: Filters, k: int) -> tuple[str, list[Any]]:
    """Images nearest generation ``generation_id``'s image: (scorer version, SearchHits)."""
    from diffwatch.embeddings.search import similar_images

    sp, hits = _run(lambda c: similar_images(c, generation_id, f, k))
    return sp.scorer_version, hits


@st.cache_data(ttl=TTL_S, show_spinner=False)
def shown(ids: tuple[int, ...]) -> dict[int, Any]:
    """Prompt, image and current NSFW flag of generations by id (embedding_reads.Shown)."""
    from diffwatch.db.queries.embedding_reads import shown as q

    return _run(lambda c: q(c, list(ids))) if ids else {}


@st.cache_data(ttl=TTL_S, show_spinner="Looking for near-duplicate images…")
def duplicates(f: Filters, threshold: float, max_images: int) -> list[Any]:
    """Near-duplicate share per model version (duplicates.VersionDuplicates)."""
    from diffwatch.embeddings.duplicates import duplicate_report

    return _run(lambda c: duplicate_report(c, f, threshold=threshold, max_images=max_images))


def flagged(ids: Sequence[int], stored: dict[int, bool | None]) -> dict[int, bool]:
    """Whether each generation is NSFW-flagged now or was when an analysis stored it: an
    image flagged on either side stays blurred."""
    now = shown(tuple(sorted({int(i) for i in ids})))
    return {
        int(i): bool(stored.get(int(i))) or bool(getattr(now.get(int(i)), "nsfw_flagged", False))
        for i in ids
    }

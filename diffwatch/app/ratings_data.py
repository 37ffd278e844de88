"""Cached reads for the rating analytics page and the human ratings on the versions page.

One short connection per query (``diffwatch.app.data._run``), results kept 30 s. Ratings are read
through ``diffwatch.db.queries.ratings_analytics``; the statistics are computed here, once per
cached call, with the pure functions of ``analytics``.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Any

import streamlit as st

from diffwatch.app.data import TTL_S, _run
from diffwatch.model.filters import Filters


def _versions(versions: tuple[str, ...]) -> list[str] | None:
    """The sidebar's versions as a query filter (no selection: every version)."""
    return list(versions) or None


@st.cache_data(ttl=TTL_S, show_spinner=False)
def ratings(
    start: datetime, end: datetime, versions: tuple[str, ...], reason: str | None = None
) -> list[Any]:
    """Ratings in ``[start, end)`` (RatingRow), optionally only items queued for ``reason``."""
    from diffwatch.db.queries.ratings_analytics import ratings as q

    return _run(lambda c: q(c, start, end, _versions(versions), reason=reason))


@st.cache_data(ttl=TTL_S, show_spinner=False)
def reasons(start: datetime, end: datetime, versions: tuple[str, ...]) -> list[Any]:
    """Rated items and ratings per queueing reason (ReasonCount)."""
    from diffwatch.db.queries.ratings_analytics import reason_counts

    return _run(lambda c: reason_counts(c, start, end, _versions(versions)))


@st.cache_data(ttl=TTL_S, show_spinner=False)
def agreement(
    field: str, start: datetime, end: datetime, versions: tuple[str, ...]
) -> tuple[Any, tuple[float, float] | None]:
    """Krippendorff's alpha (ordinal) of ``field`` and its bootstrap 95% interval over items."""
    from diffwatch.analytics.agreement import alpha_bootstrap, krippendorff_alpha
    from diffwatch.db.queries.ratings_analytics import agreement_triples

    triples = _run(lambda c: agreement_triples(c, field, start, end, _versions(versions)))
    return krippendorff_alpha(triples, "ordinal"), alpha_bootstrap(triples, "ordinal")


@st.cache_data(ttl=TTL_S, show_spinner=False)
def clip_calibration(
    start: datetime, end: datetime, versions: tuple[str, ...], bins: int = 5
) -> tuple[Any, list[tuple[float, float]]]:
    """CLIP vs mean human adherence (ClipCalibration) and the (clip, adherence) points."""
    from diffwatch.analytics.ratings import clip_vs_adherence
    from diffwatch.db.queries.ratings_analytics import clip_adherence

    rows = _run(lambda c: clip_adherence(c, start, end, _versions(versions)))
    cal = clip_vs_adherence([r.clip for r in rows], [r.mean_adherence for r in rows], bins)
    points = [(r.clip, r.mean_adherence) for r in rows if r.clip is not None]
    return cal, points


@st.cache_data(ttl=TTL_S, show_spinner=False)
def nsfw_calibration(start: datetime, end: datetime, versions: tuple[str, ...]) -> Any:
    """The automatic NSFW flag against the human one (NsfwCalibration).

    The current threshold is the one encoded in the most common NSFW scorer version.
    """
    from diffwatch.analytics.ratings import nsfw_vs_human
    from diffwatch.db.queries.ratings_analytics import nsfw_human, threshold_from_version

    rows = _run(lambda c: nsfw_human(c, start, end, _versions(versions)))
    common = Counter(r.nsfw_scorer_version for r in rows if r.nsfw_scorer_version)
    threshold = threshold_from_version(common.most_common(1)[0][0]) if common else None
    return nsfw_vs_human(
        [r.nsfw_score for r in rows],
        [r.nsfw_flagged for r in rows],
        [r.human_nsfw for r in rows],
        threshold,
    )


@st.cache_data(ttl=TTL_S, show_spinner=False)
def human_items(f: Filters, by: str = "version") -> list[Any]:
    """Rated items of generations in ``f`` with their group (HumanItemRow)."""
    from diffwatch.db.queries.ratings_analytics import human_items as q

    return _run(lambda c: q(c, f, by))


@st.cache_data(ttl=TTL_S, show_spinner=False)
def rated_clip_versions(start: datetime, end: datetime, versions: tuple[str, ...]) -> list[Any]:
    """CLIP scorer versions (ClipVersion) of the rated items' latest CLIP scores."""
    from diffwatch.db.queries.clip_versions import rated_clip_versions as q

    return _run(lambda c: q(c, start, end, _versions(versions)))

"""Cached reads for the pages: one short connection per query, results kept 30 s.

Every function reads rollups through ``diffwatch.db.queries`` (never raw rows, except the explorer's
single-generation lookups) and returns plain data or a pandas DataFrame.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from typing import Any, TypeVar

import pandas as pd
import psycopg
import streamlit as st

from diffwatch.app.config import connect
from diffwatch.model.filters import Filters

TTL_S = 30
T = TypeVar("T")


def _run(fn: Callable[[psycopg.Connection], T]) -> T:
    with connect() as conn:
        return fn(conn)


def frame(rows: list[Any]) -> pd.DataFrame:
    """Dataclass rows as a DataFrame (empty, with no columns, for no rows)."""
    return pd.DataFrame([asdict(r) for r in rows])


@st.cache_data(ttl=TTL_S, show_spinner=False)
def options() -> Any:
    from diffwatch.db.queries.filter_options import filter_options

    return _run(filter_options)


@st.cache_data(ttl=TTL_S, show_spinner=False)
def kpis(f: Filters) -> tuple[Any, Any]:
    from diffwatch.db.queries.dashboard import kpis_with_previous

    return _run(lambda c: kpis_with_previous(c, f))


@st.cache_data(ttl=TTL_S, show_spinner=False)
def history_start() -> Any:
    """Where the stored history begins (datetime, UTC), None when there is none."""
    from diffwatch.db.queries.dashboard import history_start as q

    return _run(q)


@st.cache_data(ttl=TTL_S, show_spinner=False)
def latency(f: Filters, metric: str, by: str | None, over_time: bool = True) -> pd.DataFrame:
    from diffwatch.db.queries.dashboard import latency as q

    return frame(_run(lambda c: q(c, f, metric=metric, by=by, over_time=over_time)))  # type: ignore[arg-type]


@st.cache_data(ttl=TTL_S, show_spinner=False)
def throughput(f: Filters, by: str | None = None) -> pd.DataFrame:
    from diffwatch.db.queries.dashboard import throughput as q

    return frame(_run(lambda c: q(c, f, by=by)))  # type: ignore[arg-type]


@st.cache_data(ttl=TTL_S, show_spinner=False)
def errors(f: Filters) -> pd.DataFrame:
    from diffwatch.db.queries.dashboard import errors_by_kind

    return frame(_run(lambda c: errors_by_kind(c, f)))


@st.cache_data(ttl=TTL_S, show_spinner=False)
def cost(f: Filters, by: str) -> pd.DataFrame:
    from diffwatch.db.queries.dashboard_cost import cost_by

    return frame(_run(lambda c: cost_by(c, f, by=by)))  # type: ignore[arg-type]


@st.cache_data(ttl=TTL_S, show_spinner=False)
def fleet(f: Filters) -> pd.DataFrame:
    from diffwatch.db.queries.dashboard_cost import fleet_cost

    return frame(_run(lambda c: fleet_cost(c, f)))


@st.cache_data(ttl=TTL_S, show_spinner=False)
def gpu(f: Filters, over_time: bool) -> pd.DataFrame:
    from diffwatch.db.queries.dashboard_cost import gpu_hosts

    return frame(_run(lambda c: gpu_hosts(c, f, over_time=over_time)))


@st.cache_data(ttl=TTL_S, show_spinner=False)
def quality(f: Filters, by: str | None, over_time: bool = True) -> pd.DataFrame:
    from diffwatch.db.queries.dashboard_cost import quality_trend

    return frame(_run(lambda c: quality_trend(c, f, by=by, over_time=over_time)))  # type: ignore[arg-type]


@st.cache_data(ttl=TTL_S, show_spinner=False)
def prices() -> pd.DataFrame:
    from diffwatch.db.queries.dashboard_cost import gpu_prices

    return frame(_run(gpu_prices))


def set_price(gpu_type: str, usd_per_hour: float, note: str | None) -> None:
    """Store a GPU price (admins only, audited; not cached) and drop cached results that
    used the old one."""
    from diffwatch.app.session import require_write
    from diffwatch.db.queries.dashboard_cost import set_gpu_price

    user = require_write("price.set")
    _run(lambda c: set_gpu_price(c, gpu_type, usd_per_hour, note, actor=user.username))
    st.cache_data.clear()


@st.cache_data(ttl=TTL_S, show_spinner=False)
def worst_clip(f: Filters, limit: int = 12) -> list[Any]:
    from diffwatch.db.queries.gallery import worst_clip as q

    return _run(lambda c: q(c, f, limit))


@st.cache_data(ttl=TTL_S, show_spinner=False)
def compare_sides(f: Filters, by: str, baseline: str, candidate: str) -> Any:
    """The version comparison (analytics.versions.Verdict) of two deployments or versions."""
    from diffwatch.analytics.versions import verdict
    from diffwatch.db.queries.versions import Side, compare_stats

    def side(label: str) -> Side:
        return (
            Side(label, deployments=(label,))
            if by == "deployment"
            else Side(label, versions=(label,))
        )

    a, b = _run(lambda c: compare_stats(c, f, side(baseline), side(candidate)))
    return verdict(a, b)


@st.cache_data(ttl=TTL_S, show_spinner=False)
def search(text: str, f: Filters, limit: int = 50) -> list[Any]:
    from diffwatch.db.queries.explorer import search as q

    return _run(lambda c: q(c, text, f, limit))


@st.cache_data(ttl=TTL_S, show_spinner=False)
def detail(generation_id: int) -> Any:
    from diffwatch.db.queries.explorer import generation_detail

    return _run(lambda c: generation_detail(c, generation_id))


@st.cache_data(ttl=TTL_S, show_spinner=False)
def clip_distribution(f: Filters, by: str = "version") -> pd.DataFrame:
    from diffwatch.db.queries.quality_dist import clip_distribution as q

    return frame(_run(lambda c: q(c, f, by)))  # type: ignore[arg-type]


@st.cache_data(ttl=TTL_S, show_spinner=False)
def drift_runs(f: Filters, kinds: tuple[str, ...]) -> pd.DataFrame:
    """Drift runs of ``kinds`` started in the range, oldest first (no summaries)."""
    from diffwatch.db.queries.drift_dashboard import drift_runs as q

    return frame(_run(lambda c: q(c, f, kinds)))


@st.cache_data(ttl=TTL_S, show_spinner=False)
def drift_overview() -> Any:
    """How many drift runs exist at all, and when the newest started (RunsOverview)."""
    from diffwatch.db.queries.drift_dashboard import runs_overview

    return _run(runs_overview)


@st.cache_data(ttl=TTL_S, show_spinner=False)
def drift_run(run_id: int) -> Any:
    """One drift run with its summary (DriftRunRow), or None when it is gone."""
    from diffwatch.db.queries.drift_dashboard import drift_run as q

    return _run(lambda c: q(c, run_id))


@st.cache_data(ttl=TTL_S, show_spinner=False)
def drift_items(run_id: int) -> list[Any]:
    """A run's items (DriftItemRow), flagged first, then errors, then lowest cosine."""
    from diffwatch.db.queries.drift_dashboard import drift_items as q

    return _run(lambda c: q(c, run_id))


@st.cache_data(ttl=TTL_S, show_spinner=False)
def clip_versions(f: Filters) -> list[Any]:
    """CLIP scorer versions (ClipVersion) of the scores in the range and filters."""
    from diffwatch.db.queries.clip_versions import clip_versions as q

    return _run(lambda c: q(c, f))


@st.cache_data(ttl=TTL_S, show_spinner=False)
def deploy_markers(f: Filters) -> list[Any]:
    """Deploy markers in the filters' range (their deployments' and releases everywhere)."""
    from diffwatch.db.queries import deploy_markers as q

    return _run(lambda c: q.between(c, f.start, f.end, f.deployments))

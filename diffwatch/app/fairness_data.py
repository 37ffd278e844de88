"""Cached reads for the Fairness page: bias-probe runs, one run, and a prompt's images.

As ``diffwatch.app.data``: one short connection per call (``_run``), results kept 30 s, all
SQL in ``diffwatch.db.queries.bias``. Rows come back as plain dicts; the shaping of their
stored summaries lives in ``diffwatch.app.fairness_shape`` and ``fairness_run_rows`` (pure).
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from diffwatch.app.data import TTL_S, _run
from diffwatch.app.fairness_shape import as_dict, slim

RUNS_LIMIT = 200  # runs of one suite the page reads: years of weekly probes


@st.cache_data(ttl=TTL_S, show_spinner=False)
def suites() -> list[str]:
    """The suites that have a finished run, by name."""
    from diffwatch.db.queries.bias import filter_options

    return list(_run(filter_options).get("suite_name", []))


@st.cache_data(ttl=TTL_S, show_spinner=False)
def runs(suite: str | None = None, status: str | None = "done") -> list[dict[str, Any]]:
    """Runs of ``suite`` (every suite when None) with ``status`` (every status when None),
    newest first, each with its summary slimmed (``fairness_shape.slim``: no per-prompt
    parts; ``run`` has the whole)."""
    from diffwatch.db.queries.bias import runs as q

    rows = _run(lambda c: q(c, suite=suite, status=status, limit=RUNS_LIMIT))
    return [{**r, "summary": slim(r["summary"]) if r.get("summary") else None} for r in rows]


@st.cache_data(ttl=TTL_S, show_spinner=False)
def run(run_id: int) -> dict[str, Any] | None:
    """One run with its suite, pipeline and whole summary; None when it is gone."""
    from diffwatch.db.queries.bias import run as q

    row = _run(lambda c: q(c, run_id))
    return None if row is None else dict(row)


def whole(listed: dict[str, Any]) -> dict[str, Any]:
    """A run from ``runs`` with its whole summary (read by id, cached); as listed when the
    run is gone meanwhile."""
    full = run(int(listed["id"]))
    return {**listed, "summary": as_dict(full.get("summary"))} if full else listed


@st.cache_data(ttl=TTL_S, show_spinner=False)
def unfinished() -> list[dict[str, Any]]:
    """Runs still running or failed (newest first), with their progress in chunks."""
    from diffwatch.db.queries.bias import progress
    from diffwatch.db.queries.bias import runs as q

    def read(c: Any) -> list[dict[str, Any]]:
        out = []
        for status in ("running", "failed"):
            for r in q(c, status=status, limit=20):
                done, total = progress(c, r["id"])
                out.append({**r, "summary": None, "chunks_done": done, "chunks": total})
        return sorted(out, key=lambda r: r["created_at"], reverse=True)

    return _run(read)


@st.cache_data(ttl=TTL_S, show_spinner=False)
def examples(run_id: int, prompt: str, limit: int) -> list[dict[str, Any]]:
    """A prompt's images in a run, by seed: key, seed, image_uri, readings."""
    from diffwatch.db.queries.bias import examples as q

    return [dict(r) for r in _run(lambda c: q(c, run_id, prompt, limit))]

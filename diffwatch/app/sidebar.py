"""The shared sidebar: filters read from and written to the URL's query parameters."""

from __future__ import annotations

from dataclasses import replace

import streamlit as st

from diffwatch.app import data
from diffwatch.app.text import md
from diffwatch.model.dashboard_url import KEYS, RANGES, parse, to_params
from diffwatch.model.filters import Filters


def filters() -> Filters:
    """Render the sidebar from the URL, write the choice back to the URL, return filters."""
    view, problems = parse({k: st.query_params.get_all(k) for k in st.query_params})
    for p in problems:
        st.sidebar.warning(md(p))  # about values typed into the URL
    opts = data.options()
    sb = st.sidebar
    sb.header("Filters")
    choices = [*RANGES, "custom"]
    rng = sb.selectbox(
        "Time range",
        choices,
        index=choices.index(view.range),
        format_func=lambda r: {"custom": "custom (from/to in the URL)"}.get(r, f"last {r}"),
    )
    view = replace(view, range=rng)

    def pick(label: str, known: tuple[str, ...], chosen: tuple[str, ...]) -> tuple[str, ...]:
        # Values in the URL but not (yet) in the data stay selectable.
        return tuple(sb.multiselect(label, sorted({*known, *chosen}), default=list(chosen)))

    view = replace(
        view,
        models=pick("Model", opts.models, view.models),
        versions=pick("Version", opts.versions, view.versions),
        deployments=pick("Deployment", opts.deployments, view.deployments),
        gpu_types=pick("GPU type", opts.gpu_types, view.gpu_types),
    )
    current = {k: st.query_params[k] for k in st.query_params}
    wanted = {k: v for k, v in current.items() if k not in KEYS} | to_params(view)
    if wanted != current:
        st.query_params.from_dict(wanted)
    f = view.filters()
    sb.caption(
        f"{f.start:%Y-%m-%d %H:%M} to {f.end:%Y-%m-%d %H:%M} UTC. "
        "Copy the address bar to share this view."
    )
    return f

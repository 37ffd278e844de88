"""The Fairness page's filters: a selectbox or multiselect whose choice starts from the
address's query parameter and goes back to it, so a link reopens the same view. Values from
the address are used only when they are among the options (the address is untrusted)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import streamlit as st

from diffwatch.model.dashboard_url import View, parse


def url_names() -> View:
    """The models and versions in the address (checked as the dashboard's filters are: an
    alert's link names them)."""
    view, _ = parse({k: st.query_params.get_all(k) for k in ("model", "version")})
    return view


def select(
    box: Any,
    label: str,
    options: Sequence[Any],
    param: str,
    default: Any,
    fmt: Callable[[Any], str] = str,
    parse_url: Callable[[str], Any] = lambda v: v,
) -> Any:
    """A selectbox whose choice starts from ``?param=`` (when it is an option) and goes back
    to the address when a person changes it. Option labels are plain text."""
    key = f"fairness-{param}"
    if st.session_state.get(key) not in options:
        wanted = st.query_params.get(param)
        wanted = parse_url(wanted) if isinstance(wanted, str) else None
        st.session_state[key] = wanted if wanted in options else default

    def changed() -> None:
        st.query_params[param] = str(st.session_state[key])

    return box.selectbox(label, options, key=key, format_func=fmt, on_change=changed)


def multi(
    box: Any,
    label: str,
    options: Sequence[str],
    param: str,
    default: Sequence[str],
    from_url: Sequence[str],
) -> list[str]:
    """A multiselect that starts from the address's values that are options (else
    ``default``) and writes a person's choice back, comma-separated."""
    key = f"fairness-{param}"
    current = st.session_state.get(key)
    if current is None or any(v not in options for v in current):
        wanted = [v for v in from_url if v in options]
        st.session_state[key] = wanted or list(default)

    def changed() -> None:
        chosen = st.session_state[key]
        if chosen:
            st.query_params[param] = ",".join(chosen)
        elif param in st.query_params:
            del st.query_params[param]

    return list(box.multiselect(label, options, key=key, on_change=changed))

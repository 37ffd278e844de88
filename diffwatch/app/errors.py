"""What a person sees when a page fails: a plain message with an error id, never a traceback.

``diffwatch.app.server`` hands ``report`` to Streamlit as its ``on_script_error`` handler, so it
runs for an uncaught exception in any page or widget callback. The traceback goes to the server's
log under the same id, for whoever runs the server; the browser gets no exception type,
message or file path (``diffwatch app`` also sets ``client.showErrorDetails = "none"``, so
Streamlit's own fallback shows no details either).
"""

from __future__ import annotations

import logging
import secrets

import streamlit as st

LOG = logging.getLogger("diffwatch.app")


def new_error_id() -> str:
    """A short random id (12 hex digits) that ties a user's report to a log entry."""
    return secrets.token_hex(6)


def report(exc: Exception) -> bool:
    """Log ``exc`` with a new error id, show the id in the page; True: Streamlit shows no more."""
    error_id = new_error_id()
    LOG.error("error id %s: uncaught exception in a dashboard page", error_id, exc_info=exc)
    st.error(
        f"Something went wrong on this page (error id {error_id}). Reload it to try again; "
        "if it keeps failing, give this error id to whoever runs diffwatch: the server log "
        "has the details under it."
    )
    return True

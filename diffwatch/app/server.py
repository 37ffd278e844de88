"""The dashboard as an ASGI app: ``diffwatch app`` runs ``streamlit run`` on this file.

Streamlit's ``st.App`` serves ``main.py`` (the pages) as a plain ``streamlit run main.py``
would, plus two things a plain run cannot have: middleware in front of every request
(``diffwatch.app.guard``: allowed hosts on HTTP as well as the WebSocket, no ``/_stcore/metrics``)
and an error handler (``diffwatch.app.errors``: an error id in the page, the traceback in the log).
``streamlit run`` finds ``app`` below by reading this file, then imports it; building it
only records these settings (no I/O, no settings read).
"""

from __future__ import annotations

import streamlit as st
from starlette.middleware import Middleware

from diffwatch.app.errors import report
from diffwatch.app.guard import DashboardGuard

app = st.App("main.py", middleware=[Middleware(DashboardGuard)], on_script_error=report)

"""Accounts for dashboard tests, and AppTest runs of the whole app as a given user.

``as_user`` runs ``diffwatch/app/main.py`` (the real navigation and role guard) with the session
already logged in as an account, then opens a page by its url path, as a browser would on
a link to ``/url_path``.
"""

from __future__ import annotations

import re

import psycopg
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest
from streamlit.util import calc_hash

from diffwatch.app.session import SESSION_TTL_S, TOKEN_KEY
from diffwatch.auth.passwords import hash_password
from diffwatch.db.queries.sessions import create_session
from diffwatch.db.queries.users import add_user

PW = "correct horse battery"
_HASH = hash_password(PW)  # one argon2 hash for every test account (hashing is slow)


def add_account(conninfo: str, username: str, role: str, password: str = PW) -> int:
    """Create an account and return its id."""
    pw_hash = _HASH if password == PW else hash_password(password)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        add_user(conn, username, role, pw_hash, actor="test")
        row = conn.execute(
            "SELECT id FROM users WHERE username = %s", (username.lower(),)
        ).fetchone()
    assert row is not None
    return int(row[0])


def as_user(
    conninfo: str,
    monkeypatch: pytest.MonkeyPatch,
    user_id: int | None,
    page: str | None = None,
    **params: str,
) -> AppTest:
    """Run the app logged in as ``user_id`` (None: anonymous), on ``page`` if given."""
    monkeypatch.setenv("DIFFWATCH_APP_CONNINFO", conninfo)
    st.cache_data.clear()  # results are cached per arguments, not per database
    at = AppTest.from_file("../../diffwatch/app/main.py", default_timeout=60)
    if user_id is not None:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            at.session_state[TOKEN_KEY] = create_session(conn, user_id, None, SESSION_TTL_S)
    for k, v in params.items():
        at.query_params[k] = v
    at.run()
    if page is not None:
        # st.Page names a callable page by the hash of its url path; AppTest.switch_page
        # only knows file pages, so set what a browser's link to /page would send.
        at._page_hash = calc_hash(page)
        at.run()
        # Later runs stay on the page this run finished on, as a browser does: a role's
        # first page answers its address by switching to the default page, and sending the
        # address's hash again would switch again and drop what the widgets sent.
        at._page_hash = ""
    assert not at.exception, [e.value for e in at.exception]
    return at


def shown(markdown: str) -> str:
    """Markdown made inert by ``diffwatch.app.text.md`` as a reader sees it: backslash escapes
    resolved, the invisible word joiners that break autolinks left out."""
    return re.sub(r"\\(.)", r"\1", markdown).replace("\u2060", "")


def texts(at: AppTest) -> str:
    """Everything the run drew as text, markdown, titles and messages, in one string."""
    parts = [e.value for kind in ("title", "header", "subheader", "markdown", "caption",
                                  "text", "info", "warning", "error", "success")
             for e in at.get(kind)]  # fmt: skip
    return "\n".join(str(p) for p in parts)

"""Who is using this browser session: the login page, the role guard, logging out.

The session keeps only the account id (in ``st.session_state``, which lives on the server).
Every run re-reads the account, so removing, deactivating or re-roling someone takes effect
on their next click. ``require`` is called by every page and before every write; it stops
the run with an error for anyone without the role, and audits the refusal.
"""

from __future__ import annotations

import time

import psycopg
import streamlit as st

from app.config import conninfo
from db.queries.users import SessionUser
from diffwatch.auth import roles

USER_KEY = "diffwatch_user_id"
SEEN_KEY = "diffwatch_seen_at"
IDLE_TIMEOUT_S = 8 * 3600.0


def _conn() -> psycopg.Connection:
    return psycopg.connect(conninfo(), autocommit=True)


def client_ip() -> str | None:
    """The browser's address as Streamlit sees it (a proxy's, behind a reverse proxy)."""
    try:
        return st.context.ip_address
    except Exception:  # no script run context (bare mode): no address
        return None


def current_user() -> SessionUser | None:
    """The logged-in, still active account, or None (idle sessions time out)."""
    from db.queries.users import active_user

    uid = st.session_state.get(USER_KEY)
    if uid is None:
        return None
    now = time.time()
    if now - st.session_state.get(SEEN_KEY, now) > IDLE_TIMEOUT_S:
        _forget()
        st.session_state["login_message"] = "You were logged out after 8 hours idle."
        return None
    with _conn() as conn:
        user = active_user(conn, int(uid))
    if user is None:
        _forget()
        return None
    st.session_state[SEEN_KEY] = now
    return user


def _forget() -> None:
    for k in (USER_KEY, SEEN_KEY):
        st.session_state.pop(k, None)


def _deny(user: SessionUser | None, exc: roles.Forbidden, what: str) -> None:
    from db.queries.users import audit

    with _conn() as conn:
        audit(conn, user.username if user else None, "access.denied", what, {"why": str(exc)})
    st.error(f"Not allowed: {exc}.")
    st.stop()


def require_page(page: str) -> SessionUser:
    """The user, if their role may open ``page``; else an error and the run stops."""
    user = current_user()
    try:
        roles.check_page(user.role if user else None, page)
    except roles.Forbidden as exc:
        _deny(user, exc, f"page {page}")
    assert user is not None
    return user


def require_write(action: str) -> SessionUser:
    """The user, if their role may make the change ``action``; else an error, run stops."""
    user = current_user()
    try:
        roles.check_write(user.role if user else None, action)
    except roles.Forbidden as exc:
        _deny(user, exc, action)
    assert user is not None
    return user


def sso_configured() -> bool:
    """Whether ``st.login`` has an identity provider (an ``[auth]`` section in secrets)."""
    try:
        return "auth" in st.secrets
    except Exception:  # no secrets file at all
        return False


def login_page() -> None:
    """The only page someone who is not logged in can see."""
    from diffwatch.auth.login import attempt, single_sign_on

    st.title("Log in to diffwatch")
    note = st.session_state.pop("login_message", None)
    if note:
        st.info(note)
    if sso_configured():
        if getattr(st.user, "is_logged_in", False):
            with _conn() as conn:
                res = single_sign_on(conn, st.user.get("email"), client_ip())
            if res.ok and res.user:
                _remember(res.user)
                st.rerun()
            st.error(res.message)
            st.button("Log out of single sign-on", on_click=st.logout)
        else:
            st.button("Log in with single sign-on", on_click=st.login, type="primary")
        st.caption("Or with a local account:")
    with st.form("login"):
        username = st.text_input("Username", autocomplete="username")
        password = st.text_input("Password", type="password", autocomplete="current-password")
        sent = st.form_submit_button("Log in", type="primary")
    if sent:
        with _conn() as conn:
            res = attempt(conn, username, password, client_ip())
        if res.ok and res.user:
            _remember(res.user)
            st.rerun()
        st.error(res.message)
    st.caption("No account? An admin adds one with `diffwatch users add NAME --role rater`.")


def _remember(user: SessionUser) -> None:
    st.session_state.clear()  # nothing from before the login carries over
    st.session_state[USER_KEY] = user.id
    st.session_state[SEEN_KEY] = time.time()


def logout(user: SessionUser) -> None:
    """End the session: give back a held review item, audit, forget the user."""
    from db.queries.review import release
    from db.queries.users import audit

    held = st.session_state.get("review_item_id")
    with _conn() as conn:
        if held is not None:
            release(conn, int(held), user.username)
        audit(conn, user.username, "logout", user.username, {"ip": client_ip() or "unknown"})
    st.session_state.clear()
    st.session_state["login_message"] = "You are logged out."
    if sso_configured() and getattr(st.user, "is_logged_in", False):
        st.logout()

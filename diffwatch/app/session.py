"""Who is using this browser session: the login page, the role guard, logging out.

A login makes a session (``diffwatch.db.queries.sessions``): a random token kept in this Streamlit
session and, so that a reload or a shared link stays logged in, in a ``SameSite=Strict``
cookie set by a line of JavaScript (Streamlit cannot set cookies from the server; the cookie
is therefore not HttpOnly). Every run asks the database whether the session is live and
re-reads the account, so logging out, a password change, deactivating, removing or
re-roling someone takes effect on their next click. ``require_page`` runs before every
page and ``require_write`` before every write; they stop the run with an error for anyone
without the role, and audit the refusal.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import psycopg
import streamlit as st

from diffwatch.app.config import connect
from diffwatch.auth import roles
from diffwatch.db.queries.users import SessionUser

if TYPE_CHECKING:
    from diffwatch.auth.login import LoginLimits

TOKEN_KEY = "diffwatch_session"
COOKIE = "diffwatch_session"
IDLE_TIMEOUT_S = 8 * 3600.0  # a session unused this long ends
SESSION_TTL_S = 7 * 86400.0  # and every session ends this long after login


def client_ip() -> str | None:
    """The browser's address for the login limits and the audit log; None without one.

    The connection's own address ("loopback" for 127.0.0.1 and ::1, which Streamlit
    reports as no address), unless that is a proxy named in DIFFWATCH_TRUSTED_PROXIES:
    then the X-Forwarded-For hop it vouches for (``diffwatch.model.client_address``).
    """
    from diffwatch.model.client_address import LOOPBACK, resolve_client
    from diffwatch.settings import load_settings

    try:
        headers = st.context.headers
        ip = st.context.ip_address
    except Exception:  # no script run context (bare mode): no address
        return None
    if not headers:  # no browser connection (AppTest): no address
        return None
    peer = ip if isinstance(ip, str) and ip else LOOPBACK
    forwarded = headers.get_all("X-Forwarded-For")
    return resolve_client(peer, forwarded, load_settings().trusted_proxies)


def _cookie_token() -> str | None:
    try:
        value = st.context.cookies.get(COOKIE)
    except Exception:  # no script run context (bare mode): no cookies
        return None
    return value if isinstance(value, str) else None


def current_user() -> SessionUser | None:
    """The account of this browser's live session, or None.

    The session token comes from this Streamlit session, or after a reload from the
    ``diffwatch_session`` cookie. The database decides every time whether it is still live
    (not expired, idle, revoked, nor its account deactivated or removed).
    """
    from diffwatch.db.queries.sessions import session_user

    token = st.session_state.get(TOKEN_KEY) or _cookie_token()
    if not token:
        return None
    with connect() as conn:
        user = session_user(conn, token, IDLE_TIMEOUT_S)
    if user is None:
        if st.session_state.pop(TOKEN_KEY, None) or _cookie_token():
            st.session_state.setdefault("login_message", "Your session ended; log in again.")
            st.session_state["cookie_js"] = _cookie_script(None)
        return None
    st.session_state[TOKEN_KEY] = token
    return user


def _cookie_script(token: str | None) -> str:
    """JavaScript that stores (or, for None, deletes) the session cookie in the browser.

    It then removes itself (and any earlier copy) from the page, so the token is not left
    in the DOM for whatever else reads the page later.
    """
    value, age = (token, int(SESSION_TTL_S)) if token else ("", 0)
    return (
        f"<script>document.cookie = '{COOKIE}={value}; path=/; max-age={age}; samesite=strict'"
        " + (location.protocol === 'https:' ? '; secure' : '');"
        " document.querySelectorAll('script').forEach(function (s) {"
        f" if (s.textContent.indexOf('{COOKIE}=') >= 0) s.remove(); }});</script>"
    )


def sync_cookie() -> None:
    """Send a pending cookie change to the browser (call once per run, in the main script)."""
    js = st.session_state.pop("cookie_js", None)
    if js:
        st.html(js, unsafe_allow_javascript=True)


def _deny(user: SessionUser | None, exc: roles.Forbidden, what: str) -> None:
    from diffwatch.db.queries.users import audit

    with connect() as conn:
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
    from diffwatch.db.queries.users import any_active_admin

    st.title("Log in to diffwatch")
    note = st.session_state.pop("login_message", None)
    if note:
        st.info(note)
    with connect() as conn:
        if not any_active_admin(conn):
            st.warning(
                "No active admin account exists yet. Create the first one on the server: "
                "`diffwatch users add NAME --role admin` (see docs/accounts.md)."
            )
    if sso_configured():
        if getattr(st.user, "is_logged_in", False):
            with connect() as conn:
                res = single_sign_on(conn, st.user.get("email"), client_ip())
                if res.ok and res.user:
                    _remember(conn, res.user)
            if res.ok:
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
        with connect() as conn:
            res = attempt(conn, username, password, client_ip(), _login_limits())
            if res.ok and res.user:
                _remember(conn, res.user)
        if res.ok:
            st.rerun()
        st.error(res.message)
    st.caption("No account? An admin adds one with `diffwatch users add NAME --role rater`.")


def _login_limits() -> LoginLimits:
    from diffwatch.auth.login import LoginLimits
    from diffwatch.settings import load_settings

    return LoginLimits.from_settings(load_settings())


def _remember(conn: psycopg.Connection, user: SessionUser) -> None:
    from diffwatch.db.queries.sessions import create_session

    token = create_session(conn, user.id, client_ip(), SESSION_TTL_S)
    st.session_state.clear()  # nothing from before the login carries over
    st.session_state[TOKEN_KEY] = token
    st.session_state["cookie_js"] = _cookie_script(token)


def logout(user: SessionUser) -> None:
    """End the session: give back a held review item, audit, forget the user."""
    from diffwatch.db.queries.review import release
    from diffwatch.db.queries.sessions import revoke_session
    from diffwatch.db.queries.users import audit

    held = st.session_state.get("review_item_id")
    token = st.session_state.get(TOKEN_KEY)
    with connect() as conn:
        if held is not None:
            release(conn, int(held), user.username)
        if token:
            revoke_session(conn, token)
        audit(conn, user.username, "logout", user.username, {"ip": client_ip() or "unknown"})
    st.session_state.clear()
    st.session_state["login_message"] = "You are logged out."
    st.session_state["cookie_js"] = _cookie_script(None)
    if sso_configured() and getattr(st.user, "is_logged_in", False):
        st.logout()

"""SQL of dashboard login sessions: create on login, resolve on reload, revoke on logout.

The browser holds a random token; the table holds only its SHA-256, so reading the table
does not let anyone log in. A session ends at whichever comes first: its absolute expiry,
``idle_s`` without use, logout, a password change (``users.set_password``), deactivation
(``users.set_active``) or removal of the account.
"""

from __future__ import annotations

import hashlib
import secrets

import psycopg
from psycopg.rows import class_row

from diffwatch.db.queries.users import SessionUser


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_session(conn: psycopg.Connection, user_id: int, ip: str | None, ttl_s: float) -> str:
    """A new session for ``user_id`` valid at most ``ttl_s`` seconds; return its token."""
    token = secrets.token_urlsafe(32)
    conn.execute(
        "INSERT INTO user_sessions (token_sha256, user_id, ip, expires_at)"
        " VALUES (%s, %s, %s, now() + make_interval(secs => %s))",
        (_digest(token), user_id, ip, float(ttl_s)),
    )
    return token


def session_user(conn: psycopg.Connection, token: str, idle_s: float) -> SessionUser | None:
    """The active account of a live session ``token`` (and mark it used), else None."""
    if not token or len(token) > 200:
        return None
    cur = conn.cursor(row_factory=class_row(SessionUser))
    return cur.execute(
        "UPDATE user_sessions s SET last_seen_at = now() FROM users u"
        " WHERE s.token_sha256 = %s AND u.id = s.user_id AND u.active"
        " AND s.revoked_at IS NULL AND s.expires_at > now()"
        " AND s.last_seen_at > now() - make_interval(secs => %s)"
        " RETURNING u.id, u.username, u.role, u.display_name",
        (_digest(token), float(idle_s)),
    ).fetchone()


def revoke_session(conn: psycopg.Connection, token: str) -> bool:
    """End one session (logout); True if it was live."""
    row = conn.execute(
        "UPDATE user_sessions SET revoked_at = now()"
        " WHERE token_sha256 = %s AND revoked_at IS NULL RETURNING 1",
        (_digest(token),),
    ).fetchone()
    return row is not None

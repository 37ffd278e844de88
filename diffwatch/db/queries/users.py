"""SQL of local accounts and the audit log: add, remove, passwords, roles, logins, audit.

Every function that changes an account writes its ``audit_log`` row in the same transaction
(``conn.transaction()``: its own when none is open, a savepoint inside the caller's), so an
account change without its audit row cannot be committed. Hashes are made by the caller
(``diffwatch.auth.passwords``); this module only stores them and never returns them, except
to the login check (``get_user_for_login``).

``remove_user`` deletes the account row. Its audit rows stay: they name actor and target by
username text, not by key, so the history of a removed account remains readable.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import class_row, dict_row
from psycopg.types.json import Jsonb

from diffwatch.db.models_accounts import ROLES, USERNAME_PATTERN


class AccountError(ValueError):
    """An account change that cannot be made; the message says why and what to do."""


class InvalidUsername(AccountError):
    """The username does not fit the allowed pattern."""


class UserExists(AccountError):
    """An account with that (case-insensitive) username already exists."""


class UnknownUser(AccountError):
    """No account has that username."""


class UnknownRole(AccountError):
    """The role is not admin, ops or rater."""


class LastAdmin(AccountError):
    """The change would leave no active admin."""


@dataclass(frozen=True)
class UserRow:
    """One account as listed (never with its hash); times are UTC-aware."""

    id: int
    username: str
    display_name: str | None
    role: str
    active: bool
    created_at: datetime
    updated_at: datetime
    last_login_at: datetime | None
    failed_logins: int  # failed attempts in a row since the last success
    locked_until: datetime | None


@dataclass(frozen=True)
class LoginUser:
    """What a login check needs, hash included; ``locked`` is true while locked_until > now
    (the account's next attempt must wait ``wait_s`` more seconds)."""

    id: int
    username: str
    role: str
    active: bool
    password_hash: str
    failed_logins: int
    locked_until: datetime | None
    locked: bool
    wait_s: float


@dataclass(frozen=True)
class LoginOutcome:
    """The account's state after a recorded login attempt."""

    failed_logins: int
    locked_until: datetime | None


_USER_COLS = (
    "id, username, display_name, role, active, created_at, updated_at, last_login_at, "
    "failed_logins, locked_until"
)


def normalise_username(raw: str) -> str:
    """The stored form of a username (trimmed, lower-cased); raise InvalidUsername if bad."""
    name = raw.strip().lower()
    if not re.fullmatch(USERNAME_PATTERN, name):
        raise InvalidUsername(
            f"username {raw!r} is not valid: use 1 to 64 characters among letters, digits "
            "and . _ @ -, starting with a letter or digit (case does not matter)"
        )
    return name


def check_role(role: str) -> str:
    """The role, lower-cased, if it is one of ROLES; else raise UnknownRole."""
    r = role.strip().lower()
    if r not in ROLES:
        raise UnknownRole(f"role {role!r} is unknown; use one of: {', '.join(ROLES)}")
    return r


def audit(
    conn: psycopg.Connection,
    actor: str | None,
    action: str,
    target: str | None = None,
    details: dict[str, Any] | None = None,
) -> int:
    """Append one audit row (in the caller's transaction); return its id."""
    row = conn.execute(
        "INSERT INTO audit_log (actor, action, target, details) VALUES (%s, %s, %s, %s)"
        " RETURNING id",
        (actor, action, target, Jsonb(details or {})),
    ).fetchone()
    assert row is not None
    return int(row[0])


def _lock_user(conn: psycopg.Connection, username: str) -> tuple[int, str, bool]:
    """Lock one account row for this transaction; return (id, role, active)."""
    row = conn.execute(
        "SELECT id, role, active FROM users WHERE username = %s FOR UPDATE", (username,)
    ).fetchone()
    if row is None:
        raise UnknownUser(f"no user {username!r}; `diffwatch users list` shows the accounts")
    return int(row[0]), str(row[1]), bool(row[2])


def _refuse_last_admin(conn: psycopg.Connection, username: str, doing: str) -> None:
    """Raise LastAdmin when ``username`` is the only active admin."""
    # FOR UPDATE on every active admin serialises concurrent demotions and removals: the
    # second waits, re-reads the rows, and no longer counts the admin the first one took.
    others = conn.execute(
        "SELECT username FROM users WHERE role = 'admin' AND active AND username <> %s FOR UPDATE",
        (username,),
    ).fetchall()
    if not others:
        raise LastAdmin(
            f"user {username!r} is the last active admin; refusing to {doing}. Make "
            "another admin first (`diffwatch users add NAME --role admin`)"
        )


def add_user(
    conn: psycopg.Connection,
    username: str,
    role: str,
    password_hash: str,
    display_name: str | None = None,
    actor: str | None = "cli",
) -> UserRow:
    """Create an account (audited as user.add); raise UserExists, InvalidUsername, UnknownRole."""
    name, r = normalise_username(username), check_role(role)
    with conn.transaction():
        row = (
            conn.cursor(row_factory=class_row(UserRow))
            .execute(
                "INSERT INTO users (username, display_name, role, password_hash)"
                " VALUES (%s, %s, %s, %s) ON CONFLICT (username) DO NOTHING"
                f" RETURNING {_USER_COLS}",
                (name, display_name, r, password_hash),
            )
            .fetchone()
        )
        if row is None:
            raise UserExists(
                f"user {name!r} already exists (usernames ignore case); pick another name, "
                "or change this one with `diffwatch users passwd` or `diffwatch users role`"
            )
        audit(conn, actor, "user.add", name, {"role": r, "display_name": display_name})
    return row


def remove_user(conn: psycopg.Connection, username: str, actor: str | None = "cli") -> None:
    """Delete an account, keeping its audit rows (user.remove); refuse the last admin."""
    name = normalise_username(username)
    with conn.transaction():
        _, role, active = _lock_user(conn, name)
        if role == "admin" and active:
            _refuse_last_admin(conn, name, "remove it")
        conn.execute("DELETE FROM users WHERE username = %s", (name,))
        audit(conn, actor, "user.remove", name, {"role": role})


def set_password(
    conn: psycopg.Connection, username: str, password_hash: str, actor: str | None = "cli"
) -> None:
    """Replace an account's hash, clear its lock and end its dashboard sessions
    (user.passwd); raise UnknownUser."""
    name = normalise_username(username)
    with conn.transaction():
        uid, _, _ = _lock_user(conn, name)
        conn.execute(
            "UPDATE users SET password_hash = %s, failed_logins = 0, locked_until = NULL,"
            " updated_at = now() WHERE username = %s",
            (password_hash, name),
        )
        _end_sessions(conn, uid)
        audit(conn, actor, "user.passwd", name)


def _end_sessions(conn: psycopg.Connection, user_id: int) -> None:
    conn.execute(
        "UPDATE user_sessions SET revoked_at = now() WHERE user_id = %s AND revoked_at IS NULL",
        (user_id,),
    )


def set_active(
    conn: psycopg.Connection, username: str, active: bool, actor: str | None = "cli"
) -> bool:
    """Activate or deactivate an account (user.active); return the old state.

    A deactivated account cannot log in and its sessions end; its ratings and history stay.
    The last active admin cannot be deactivated.
    """
    name = normalise_username(username)
    with conn.transaction():
        uid, role, old = _lock_user(conn, name)
        if old == active:
            return old
        if not active:
            if role == "admin":
                _refuse_last_admin(conn, name, "deactivate it")
            _end_sessions(conn, uid)
        conn.execute(
            "UPDATE users SET active = %s, updated_at = now() WHERE username = %s", (active, name)
        )
        audit(conn, actor, "user.active", name, {"from": old, "to": active})
    return old


def rehash_password(conn: psycopg.Connection, user_id: int, password_hash: str) -> None:
    """Store a hash re-made with current parameters at login (not audited: same password)."""
    with conn.transaction():
        conn.execute("UPDATE users SET password_hash = %s WHERE id = %s", (password_hash, user_id))


def set_role(conn: psycopg.Connection, username: str, role: str, actor: str | None = "cli") -> str:
    """Change an account's role (user.role); return the old role; refuse the last admin."""
    name, new = normalise_username(username), check_role(role)
    with conn.transaction():
        _, old, active = _lock_user(conn, name)
        if old == new:
            return old
        if old == "admin" and active:
            _refuse_last_admin(conn, name, f"make it {new}")
        conn.execute(
            "UPDATE users SET role = %s, updated_at = now() WHERE username = %s", (new, name)
        )
        audit(conn, actor, "user.role", name, {"from": old, "to": new})
    return old


def list_users(conn: psycopg.Connection) -> list[UserRow]:
    """Every account by username, without hashes."""
    cur = conn.cursor(row_factory=class_row(UserRow))
    return cur.execute(f"SELECT {_USER_COLS} FROM users ORDER BY username").fetchall()


def get_user_for_login(conn: psycopg.Connection, username: str) -> LoginUser | None:
    """The account a login names (hash included), or None when there is none or it is bad."""
    try:
        name = normalise_username(username)
    except InvalidUsername:
        return None
    cur = conn.cursor(row_factory=class_row(LoginUser))
    return cur.execute(
        "SELECT id, username, role, active, password_hash, failed_logins, locked_until,"
        " coalesce(locked_until > now(), false) AS locked,"
        " greatest(0, coalesce(extract(epoch FROM locked_until - now()), 0))::float8 AS wait_s"
        " FROM users WHERE username = %s",
        (name,),
    ).fetchone()


def record_login(
    conn: psycopg.Connection,
    username: str,
    ok: bool,
    free_failures: int = 5,
    delay_s: float = 2.0,
    max_delay_s: float = 900.0,
    details: dict[str, Any] | None = None,
) -> LoginOutcome | None:
    """Count a login attempt and audit it (login.ok / login.fail); None for unknown users.

    A success clears the failure count and the wait and sets last_login_at. A failure adds
    one; from ``free_failures`` in a row on, the next attempt must wait (``locked_until``):
    ``delay_s`` seconds, doubled for each further failure, at most ``max_delay_s``.
    """
    try:
        name: str | None = normalise_username(username)
    except InvalidUsername:
        name = None
    with conn.transaction():
        if ok:
            row = conn.execute(
                "UPDATE users SET failed_logins = 0, locked_until = NULL, last_login_at = now()"
                " WHERE username = %s RETURNING failed_logins, locked_until",
                (name,),
            ).fetchone()
            audit(conn, name, "login.ok", name, details)
        else:
            row = conn.execute(
                "UPDATE users SET failed_logins = failed_logins + 1, locked_until = CASE"
                " WHEN failed_logins + 1 >= %(free)s THEN now() + make_interval(secs =>"
                " least(%(cap)s, %(base)s * power(2.0, least(failed_logins + 1 - %(free)s, 60))))"
                " ELSE locked_until END WHERE username = %(name)s"
                " RETURNING failed_logins, locked_until",
                {"free": free_failures, "cap": float(max_delay_s), "base": float(delay_s),
                 "name": name},
            ).fetchone()  # fmt: skip
            # An unproven name is not an actor: the attempt is logged with the name as target.
            why = {"reason": "wrong password" if row else "unknown user"}
            audit(conn, None, "login.fail", name or username[:200], {**why, **(details or {})})
    return LoginOutcome(int(row[0]), row[1]) if row else None


def recent_audit(
    conn: psycopg.Connection,
    limit: int = 100,
    action: str | None = None,
    since: datetime | None = None,
    actor: str | None = None,
) -> list[dict[str, Any]]:
    """Newest audit rows first; ``action`` exact, or a prefix ending in '.' ('user.');
    ``actor`` an exact username (any case)."""
    where: list[str] = []
    params: list[Any] = []
    if actor:
        where.append("actor = %s")
        params.append(actor.strip().lower())
    if action:
        if action.endswith("."):
            where.append("action LIKE %s")
            params.append(action.replace("%", r"\%").replace("_", r"\_") + "%")
        else:
            where.append("action = %s")
            params.append(action)
    if since is not None:
        where.append("at >= %s")
        params.append(since)
    clause = f"WHERE {' AND '.join(where)}" if where else ""
    cur = conn.cursor(row_factory=dict_row)
    return cur.execute(
        f"SELECT id, at, actor, action, target, details FROM audit_log {clause}"
        " ORDER BY at DESC, id DESC LIMIT %s",
        [*params, limit],
    ).fetchall()


@dataclass(frozen=True)
class SessionUser:
    """Who is logged in to the dashboard: re-read from the database on every page run, so a
    removed, deactivated or re-roled account takes effect at once."""

    id: int
    username: str
    role: str
    display_name: str | None


def active_user(conn: psycopg.Connection, user_id: int) -> SessionUser | None:
    """The account ``user_id`` if it exists and is active, else None."""
    cur = conn.cursor(row_factory=class_row(SessionUser))
    return cur.execute(
        "SELECT id, username, role, display_name FROM users WHERE id = %s AND active",
        (user_id,),
    ).fetchone()


def active_user_by_name(conn: psycopg.Connection, username: str) -> SessionUser | None:
    """The active account named ``username`` (any case), else None (single sign-on logins)."""
    try:
        name = normalise_username(username)
    except InvalidUsername:
        return None
    cur = conn.cursor(row_factory=class_row(SessionUser))
    return cur.execute(
        "SELECT id, username, role, display_name FROM users WHERE username = %s AND active",
        (name,),
    ).fetchone()


def login_failures_from(
    conn: psycopg.Connection, bucket: str, window_s: float
) -> tuple[int, float | None]:
    """Failed logins from address ``bucket`` in the last ``window_s`` seconds, and the
    seconds since the newest of them (None: none)."""
    row = conn.execute(
        "SELECT count(*), extract(epoch FROM now() - max(at))::float8 FROM audit_log"
        " WHERE action = 'login.fail' AND at > now() - make_interval(secs => %s)"
        " AND details->>'bucket' = %s",
        (float(window_s), bucket),
    ).fetchone()
    return (int(row[0]), row[1]) if row else (0, None)


def any_active_admin(conn: psycopg.Connection) -> bool:
    """Whether some active admin exists (a fresh install has none until `users add`)."""
    row = conn.execute("SELECT EXISTS (SELECT 1 FROM users WHERE role = 'admin' AND active)")
    return bool(row.fetchone()[0])  # type: ignore[index]

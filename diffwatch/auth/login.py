"""One login attempt, decided: address throttle, account lock, password check, audit.

The dashboard's login form calls ``attempt``; everything it decides is written to
``audit_log`` (``login.ok``, ``login.fail``, ``login.throttled``) with the client address,
so failures are both logged and counted. No Streamlit here.

Two limits stop password guessing:

- **per account:** ``max_failures`` failures in a row lock the account for ``lock_s``
  seconds (``db.queries.users.record_login``); ``diffwatch users passwd`` clears a lock;
- **per address:** ``ip_max_failures`` failed or throttled attempts from one address in
  ``ip_window_s`` seconds refuse further attempts from it, without checking the password,
  until older failures leave the window. This one also stops spraying one password
  over many usernames, which the account lock cannot see.

Unknown usernames cost the same argon2 time as known ones, and get the same message, so the
form does not reveal which accounts exist.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

from db.queries import users as q
from db.queries.users import SessionUser
from diffwatch.auth.passwords import hash_password, needs_rehash, verify_or_waste_time

WRONG = "Wrong username or password."


@dataclass(frozen=True)
class LoginLimits:
    """How many failures lock an account or throttle an address, and for how long."""

    max_failures: int = 5
    lock_s: float = 900.0
    ip_max_failures: int = 20
    ip_window_s: float = 900.0


@dataclass(frozen=True)
class LoginResult:
    """The outcome: the user on success, else a message fit to show on the form."""

    user: SessionUser | None
    message: str
    reason: str  # ok | wrong | locked | inactive | throttled | empty

    @property
    def ok(self) -> bool:
        return self.user is not None


def _minutes(seconds: float) -> str:
    m = max(1, round(seconds / 60))
    return f"{m} minute{'s' if m != 1 else ''}"


def attempt(
    conn: psycopg.Connection,
    username: str,
    password: str,
    ip: str | None,
    limits: LoginLimits | None = None,
    method: str = "password",
) -> LoginResult:
    """Check one username and password from address ``ip``; audit and count the attempt."""
    lim = limits or LoginLimits()
    addr = ip or "unknown"
    details = {"ip": addr, "method": method}
    username = (username or "").strip()
    if not username or not password:
        return LoginResult(None, "Give both a username and a password.", "empty")
    if q.failed_logins_from(conn, addr, lim.ip_window_s) >= lim.ip_max_failures:
        q.audit(conn, None, "login.throttled", username[:200], details)
        return LoginResult(
            None,
            f"Too many failed logins from your address; try again in {_minutes(lim.ip_window_s)}.",
            "throttled",
        )
    user = q.get_user_for_login(conn, username)
    good = verify_or_waste_time(user.password_hash if user else None, password)
    if user is not None and user.locked:
        q.audit(conn, None, "login.fail", user.username, {**details, "reason": "locked"})
        return LoginResult(
            None,
            "This account is locked after repeated failed logins; try again later, or ask "
            "an admin to reset the password (`diffwatch users passwd`).",
            "locked",
        )
    if user is not None and good and not user.active:
        q.audit(conn, None, "login.fail", user.username, {**details, "reason": "inactive"})
        return LoginResult(None, "This account is deactivated; ask an admin.", "inactive")
    if user is None or not good:
        q.record_login(conn, username, ok=False, max_failures=lim.max_failures,
                       lock_s=lim.lock_s, details=details)  # fmt: skip
        return LoginResult(None, WRONG, "wrong")
    q.record_login(conn, user.username, ok=True, details=details)
    if needs_rehash(user.password_hash):
        q.rehash_password(conn, user.id, hash_password(password))
    session = q.active_user(conn, user.id)
    assert session is not None
    return LoginResult(session, f"Logged in as {session.username} ({session.role}).", "ok")


def single_sign_on(conn: psycopg.Connection, email: str | None, ip: str | None) -> LoginResult:
    """Map an identity provider's verified e-mail to the local account of that name."""
    details = {"ip": ip or "unknown", "method": "oidc"}
    if not email:
        q.audit(conn, None, "login.fail", None, {**details, "reason": "no e-mail from provider"})
        return LoginResult(None, "The identity provider sent no e-mail address.", "wrong")
    user = q.active_user_by_name(conn, email)
    if user is None:
        q.audit(conn, None, "login.fail", email[:200], {**details, "reason": "no account"})
        return LoginResult(
            None,
            f"No active diffwatch account is named {email!r}. Ask an admin to run "
            f"`diffwatch users add {email} --role rater`.",
            "wrong",
        )
    q.record_login(conn, user.username, ok=True, details=details)
    return LoginResult(user, f"Logged in as {user.username} ({user.role}).", "ok")

"""One login attempt, decided: address and account delays, password check, audit.

The dashboard's login form calls ``attempt``; everything it decides is written to
``audit_log`` (``login.ok``, ``login.fail``, ``login.throttled``) with the client address
and the reason, so failures are both logged and counted. No Streamlit here.

Two limits slow password guessing down; neither is a lock that someone else can hold:

- **per username:** after ``free_failures`` failures in a row, each further attempt must
  wait ``delay_s``, doubling with every failure up to ``max_delay_s``; an attempt during
  the wait is refused without checking the password and does not lengthen it. A success
  or ``diffwatch users passwd`` clears it. Whoever guesses at someone's name can make them
  wait at most ``max_delay_s``, never lock them out.
- **per address:** the same from ``address_free_failures`` failures from one client
  address in ``address_window_s`` (spraying one password over many usernames, which the
  username limit cannot see). The address is the connection's, or one vouched for by a
  trusted proxy (``diffwatch.model.client_address``); an IPv6 client counts as its /64; an
  attempt without an address counts under no address, never in one shared bucket.

Every refusal (wrong password, unknown username, a wait) gets the same message and costs
the same argon2 time, so the form tells nobody which accounts exist or are being guessed
at; the audit log keeps the detail.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import psycopg

from diffwatch.auth.passwords import hash_password, needs_rehash, verify_or_waste_time
from diffwatch.db.queries import users as q
from diffwatch.db.queries.users import SessionUser
from diffwatch.model.client_address import address_bucket

if TYPE_CHECKING:
    from diffwatch.settings import Settings

WRONG = (
    "Wrong username or password, or too many failed attempts: each failure makes the next "
    "attempt wait a little longer. Check both and try again in a few minutes."
)


@dataclass(frozen=True)
class LoginLimits:
    """When failures start to slow further attempts down, and by how much (seconds)."""

    free_failures: int = 5  # in a row, for one username
    address_free_failures: int = 20  # from one address within address_window_s
    address_window_s: float = 900.0
    delay_s: float = 2.0  # the first wait; it doubles with every further failure
    max_delay_s: float = 900.0

    def wait_s(self, failures: int, free: int) -> float:
        """Seconds the next attempt waits after ``failures`` (none below ``free``)."""
        if failures < free:
            return 0.0
        return min(self.max_delay_s, self.delay_s * 2.0 ** min(failures - free, 60))

    @classmethod
    def from_settings(cls, settings: Settings) -> LoginLimits:
        """The limits of ``DIFFWATCH_LOGIN_*`` (the address allows 4x the username's)."""
        return cls(
            free_failures=settings.login_free_failures,
            address_free_failures=4 * settings.login_free_failures,
            address_window_s=max(900.0, settings.login_max_delay_s),
            delay_s=settings.login_delay_s,
            max_delay_s=settings.login_max_delay_s,
        )


@dataclass(frozen=True)
class LoginResult:
    """The outcome: the user on success, else a message fit to show on the form."""

    user: SessionUser | None
    message: str
    reason: str  # ok | wrong | inactive | throttled | empty

    @property
    def ok(self) -> bool:
        return self.user is not None


def _address_wait(conn: psycopg.Connection, bucket: str, lim: LoginLimits) -> float:
    """Seconds that address ``bucket`` must still wait (0: none)."""
    failures, since_last = q.login_failures_from(conn, bucket, lim.address_window_s)
    wait = lim.wait_s(failures, lim.address_free_failures)
    return max(0.0, wait - since_last) if wait and since_last is not None else 0.0


def _refuse(
    conn: psycopg.Connection, target: str, password: str, details: dict[str, Any], **why: Any
) -> LoginResult:
    """Refuse without checking the password, in the time a check takes (no timing tell)."""
    verify_or_waste_time(None, password)
    q.audit(conn, None, "login.throttled", target[:200], {**details, **why})
    return LoginResult(None, WRONG, "throttled")


def attempt(
    conn: psycopg.Connection,
    username: str,
    password: str,
    ip: str | None,
    limits: LoginLimits | None = None,
    method: str = "password",
) -> LoginResult:
    """Check one username and password from address ``ip`` (None: unknown); audit and
    count the attempt."""
    lim = limits or LoginLimits()
    bucket = address_bucket(ip)
    details: dict[str, Any] = {"ip": ip or "unknown", "method": method}
    if bucket is not None:
        details["bucket"] = bucket
    username = (username or "").strip()
    if not username or not password:
        return LoginResult(None, "Give both a username and a password.", "empty")
    if bucket is not None:
        wait = _address_wait(conn, bucket, lim)
        if wait > 0:
            return _refuse(conn, username, password, details, reason="address",
                           retry_in_s=round(wait, 1))  # fmt: skip
    user = q.get_user_for_login(conn, username)
    if user is not None and user.locked:
        return _refuse(conn, user.username, password, details, reason="account",
                       retry_in_s=round(user.wait_s, 1))  # fmt: skip
    good = verify_or_waste_time(user.password_hash if user else None, password)
    if user is not None and good and not user.active:
        q.audit(conn, None, "login.fail", user.username, {**details, "reason": "inactive"})
        return LoginResult(None, "This account is deactivated; ask an admin.", "inactive")
    if user is None or not good:
        q.record_login(conn, username, ok=False, free_failures=lim.free_failures,
                       delay_s=lim.delay_s, max_delay_s=lim.max_delay_s,
                       details=details)  # fmt: skip
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

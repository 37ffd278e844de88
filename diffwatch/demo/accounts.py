"""The demo's accounts: an admin, an ops user and two raters, with fresh random passwords.

Every run gives each account a new strong password (``secrets``), hashed with argon2id: a
missing account is created, an existing one gets the new password (audited as
``user.passwd``), and its role and active flag are put back if someone changed them. So
the credentials a run prints always work, also on a database an earlier run filled. They
are written to a file only its owner can read (mode 0600), next to the demo's logs.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

import psycopg

from diffwatch.auth.passwords import hash_password
from diffwatch.db.queries import users as users_sql

ACTOR = "demo"  # audit_log.actor of the demo's account changes
# (username, role, display name), created in this order: the admin first, so putting an
# account's role back can never leave the database without an active admin.
DEMO_ACCOUNTS: tuple[tuple[str, str, str], ...] = (
    ("admin", "admin", "Demo admin"),
    ("ops", "ops", "Demo ops"),
    ("rater1", "rater", "Demo rater 1"),
    ("rater2", "rater", "Demo rater 2"),
)
RATERS: tuple[str, ...] = tuple(name for name, role, _ in DEMO_ACCOUNTS if role == "rater")
PASSWORD_BYTES = 15  # random bytes of a password: 20 URL-safe characters, 120 bits
CREDENTIALS_FILE = "credentials.txt"  # under the demo's output directory
DASHBOARD_URL = "http://127.0.0.1:8501"
DASHBOARD_COMMAND = ".venv/bin/diffwatch app"


@dataclass(frozen=True)
class DemoAccount:
    """One demo account as this run left it; ``password`` is the plain text, shown once."""

    username: str
    role: str
    password: str
    user_id: int
    created: bool  # False: it existed and got a new password


def new_password() -> str:
    """A strong random password (20 URL-safe characters from ``secrets``)."""
    return secrets.token_urlsafe(PASSWORD_BYTES)


def ensure_accounts(conn: psycopg.Connection, actor: str = ACTOR) -> list[DemoAccount]:
    """Create the demo accounts, or give existing ones a new password; return them all.

    Each change is audited with ``actor``. An existing account whose role was changed gets
    its demo role back, and a deactivated one is activated again (both audited too).
    """
    existing = {u.username: u for u in users_sql.list_users(conn)}
    out = []
    for name, role, display in DEMO_ACCOUNTS:
        password = new_password()
        digest = hash_password(password)
        row = existing.get(name)
        if row is None:
            try:
                row = users_sql.add_user(conn, name, role, digest, display, actor=actor)
                out.append(DemoAccount(name, role, password, row.id, created=True))
                continue
            except users_sql.UserExists:  # created meanwhile by someone else
                row = next(u for u in users_sql.list_users(conn) if u.username == name)
        users_sql.set_password(conn, name, digest, actor=actor)
        if row.role != role:
            users_sql.set_role(conn, name, role, actor=actor)
        if not row.active:
            users_sql.set_active(conn, name, True, actor=actor)
        out.append(DemoAccount(name, role, password, row.id, created=False))
    return out


def credentials_text(accounts: list[DemoAccount]) -> str:
    """The credentials as a small aligned table, with how to open the dashboard."""
    width = max([len("username"), *(len(a.username) for a in accounts)])
    lines = [f"  {'username':<{width}}  {'role':<6}  password"]
    lines += [f"  {a.username:<{width}}  {a.role:<6}  {a.password}" for a in accounts]
    lines.append(f"  log in at {DASHBOARD_URL} after `{DASHBOARD_COMMAND}` (or `make app`)")
    return "\n".join(lines) + "\n"


def write_credentials(path: Path, accounts: list[DemoAccount]) -> Path:
    """Write the credentials table to ``path`` readable by its owner only (0600).

    The file is created with mode 0600 (never readable by others, not even briefly) and an
    existing file is truncated and set to 0600 as well.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            fd = -1  # closed by the file object from here on
            f.write("diffwatch demo accounts (new passwords on every `diffwatch demo` run)\n")
            f.write(credentials_text(accounts))
    finally:
        if fd != -1:
            os.close(fd)
    return path

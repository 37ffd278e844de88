"""Reads and writes of the admin page: accounts and the audit log (never cached: an admin
must see a change at once). Every write checks the role on the server first."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pandas as pd

from diffwatch.app.data import _run, frame


def accounts() -> pd.DataFrame:
    """Every account without its hash."""
    from diffwatch.db.queries.users import list_users

    return frame(_run(list_users))


def audit_log(
    action: str | None, actor: str | None, since: datetime | None, limit: int
) -> pd.DataFrame:
    """Audit rows, newest first (``action`` exact or a prefix ending in '.')."""
    from diffwatch.db.queries.users import recent_audit

    rows: list[dict[str, Any]] = _run(
        lambda c: recent_audit(c, limit=limit, action=action, since=since, actor=actor)
    )
    return pd.DataFrame(rows, columns=["id", "at", "actor", "action", "target", "details"])


def change_account(username: str, role: str, active: bool) -> list[str]:
    """Set ``username``'s role and active flag as the logged-in admin; return what changed.

    Raises db.queries.users.AccountError (for example LastAdmin) with a message to show.
    """
    from diffwatch.app.session import require_write
    from diffwatch.db.queries.users import set_active, set_role

    admin = require_write("user.role")
    require_write("user.active")
    done: list[str] = []

    def apply(conn: Any) -> None:
        with conn.transaction():
            old_role = set_role(conn, username, role, actor=admin.username)
            if old_role != role:
                done.append(f"role {old_role} → {role}")
            was = set_active(conn, username, active, actor=admin.username)
            if was != active:
                done.append("activated" if active else "deactivated")

    _run(apply)
    return done

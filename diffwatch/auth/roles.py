"""Who may open which dashboard page and make which change: one table, checked twice.

The navigation lists only the pages a role may open, and every page and every write calls
``require`` again on the server, so a hand-typed URL or a replayed request from a lower role
is refused even if the page list were wrong. Pure: no Streamlit, no SQL.
"""

from __future__ import annotations

from collections.abc import Iterable

from diffwatch.db.models_accounts import ROLES

STAFF = frozenset({"admin", "ops"})
EVERYONE = frozenset(ROLES)
ADMIN = frozenset({"admin"})

PAGE_ROLES: dict[str, frozenset[str]] = {
    # the dashboard
    "overview": STAFF,
    "cost": STAFF,
    "latency": STAFF,
    "gpu": STAFF,
    "quality": STAFF,
    "versions": STAFF,
    "releases": STAFF,
    "explorer": STAFF,
    "drift": STAFF,
    "fairness": STAFF,
    "alerts": STAFF,
    "ratings": STAFF,
    # review
    "review": EVERYONE,
    "compare": EVERYONE,  # the gate's blind side-by-side: the review queue's raters
    "my-ratings": EVERYONE,
    # administration
    "admin": ADMIN,
}
"""Page url path -> the roles that may open it."""

WRITE_ROLES: dict[str, frozenset[str]] = {
    "price.set": ADMIN,
    "rating.add": EVERYONE,
    "rule.set": ADMIN,
    "alert.retry": ADMIN,
    "user.role": ADMIN,
    "user.active": ADMIN,
}
"""A change the dashboard can make -> the roles that may make it."""


class Forbidden(PermissionError):
    """This role may not open that page or make that change."""


def allowed_pages(role: str) -> list[str]:
    """The url paths ``role`` may open, in the table's order."""
    return [page for page, roles in PAGE_ROLES.items() if role in roles]


def check(role: str | None, roles: Iterable[str], what: str) -> None:
    """Raise Forbidden unless ``role`` is one of ``roles`` (None: nobody is logged in)."""
    wanted = frozenset(roles)
    if role is None:
        raise Forbidden(f"{what}: log in first")
    if role not in wanted:
        raise Forbidden(f"{what}: needs the role {' or '.join(sorted(wanted))}; you are {role}")


def check_page(role: str | None, page: str) -> None:
    """Raise Forbidden unless ``role`` may open ``page`` (an unknown page: nobody may)."""
    check(role, PAGE_ROLES.get(page, frozenset()), f"page {page!r}")


def check_write(role: str | None, action: str) -> None:
    """Raise Forbidden unless ``role`` may make the change ``action``."""
    check(role, WRITE_ROLES.get(action, frozenset()), f"change {action!r}")

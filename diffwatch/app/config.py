"""Where the dashboard's data is: a libpq conninfo, from the environment.

``diffwatch app`` resolves the database (the embedded server included) and passes it as
``DIFFWATCH_APP_CONNINFO``; run by hand, the app falls back to ``DIFFWATCH_DATABASE_URL``.
"""

from __future__ import annotations

import os

import psycopg

CONNINFO_ENV = "DIFFWATCH_APP_CONNINFO"


class NoDatabase(RuntimeError):
    """The app was started without a database to read."""


def conninfo() -> str:
    """The database to read, or NoDatabase saying how to give one."""
    given = os.environ.get(CONNINFO_ENV)
    if given:
        return given
    url = os.environ.get("DIFFWATCH_DATABASE_URL")
    if url:
        from diffwatch.db.engine import raw_conninfo

        return raw_conninfo(url)
    raise NoDatabase(
        "no database: start the dashboard with `diffwatch app` (it finds the database as the "
        f"other commands do), or set {CONNINFO_ENV} or DIFFWATCH_DATABASE_URL"
    )


def connect() -> psycopg.Connection:
    """A short autocommit connection to the dashboard's database (one per query or write)."""
    return psycopg.connect(conninfo(), autocommit=True)

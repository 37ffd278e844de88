"""Shared fixtures: a real PostgreSQL database per xdist worker, built from migrations."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url

from db import migrate
from db.engine import raw_conninfo

TABLES_KEEP = {"alembic_version"}


def pytest_configure(config: pytest.Config) -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def pg_admin_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a maintenance database on a real server (127.0.0.1 in CI, else embedded)."""
    url = os.environ.get("DIFFWATCH_TEST_DATABASE_URL")
    if url:
        yield url
        return
    import pgserver

    # Shared by all xdist workers of this run: the parent of each worker's basetemp.
    pgdata = Path(tmp_path_factory.getbasetemp()).parent / "pgdata"
    server = pgserver.get_server(pgdata, cleanup_mode="stop")
    yield server.get_uri()


def _create_database(admin_url: str, name: str) -> str:
    with psycopg.connect(raw_conninfo(admin_url), autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
            (name,),
        )
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False)


def _drop_orphans(admin_url: str) -> None:
    """Drop test databases left by test processes that died before cleaning up."""
    with psycopg.connect(raw_conninfo(admin_url), autocommit=True) as conn:
        names = [
            r[0]
            for r in conn.execute("SELECT datname FROM pg_database WHERE datname LIKE 'dwtest\\_%'")
        ]
        for name in names:
            pid = int(name.split("_")[1])
            if not Path(f"/proc/{pid}").exists():
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def empty_db_factory(pg_admin_url: str):
    """Make fresh empty databases on the test server, one set per test process.

    Names carry the process id, so test runs side by side (xdist workers, or two people's
    runs on one server) never share a database.
    """
    made: list[str] = []
    _drop_orphans(pg_admin_url)

    def make(suffix: str) -> str:
        name = f"dwtest_{os.getpid()}_{suffix}"
        made.append(name)
        return _create_database(pg_admin_url, name)

    yield make
    with psycopg.connect(raw_conninfo(pg_admin_url), autocommit=True) as conn:
        for name in made:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def migrated_url(empty_db_factory) -> str:
    """This worker's database, migrated to head once per session."""
    url = empty_db_factory("main")
    migrate.upgrade(url)
    return url


@pytest.fixture
def db_url(migrated_url: str) -> str:
    """The migrated database with every table emptied before the test."""
    with psycopg.connect(raw_conninfo(migrated_url), autocommit=True) as conn:
        tables = [
            r[0]
            for r in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
            ).fetchall()
            if r[0] not in TABLES_KEEP
        ]
        if tables:
            conn.execute(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY")
    return migrated_url


@pytest.fixture
def cluster(tmp_path_factory: pytest.TempPathFactory):
    """A private PostgreSQL cluster that the test may stop, crash and restart."""
    from tests.pgcluster import TempCluster

    c = TempCluster(tmp_path_factory.mktemp("cluster"))
    c.start()
    c.wait_ready()
    yield c
    c.destroy()


@pytest.fixture
def conninfo(db_url: str) -> str:
    """libpq conninfo of ``db_url`` for direct psycopg connections."""
    return raw_conninfo(db_url)


@pytest.fixture
def sql(conninfo: str):
    """Run one SQL statement and return all rows (for assertions)."""

    def run(query: str, params: tuple | None = None) -> list[tuple]:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            cur = conn.execute(query, params)
            return cur.fetchall() if cur.description else []

    return run


@pytest.fixture
def smtp():
    """A real SMTP server (aiosmtpd) on loopback; ``.mailbox`` holds what it received."""
    from tests.smtp import SmtpServer

    server = SmtpServer().start()
    yield server
    server.stop()


@pytest.fixture
def smtp_settings(smtp):
    """SmtpSettings that send to the ``smtp`` server."""
    from alerts.smtp import SmtpSettings

    return SmtpSettings(
        host="127.0.0.1", port=smtp.port, sender="alerts@diffwatch.test", timeout_s=3
    )

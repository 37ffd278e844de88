"""Shared fixtures: a real PostgreSQL database per xdist worker, built from migrations."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url

from diffwatch.db import migrate
from diffwatch.db.engine import raw_conninfo

TABLES_KEEP = {"alembic_version"}


def pytest_configure(config: pytest.Config) -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session", autouse=True)
def _image_roots(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Tests keep their images under pytest's temporary directory: make it the image root
    (DIFFWATCH_IMAGE_ROOTS), as an operator names their image storage. Subprocesses inherit
    it. Tests about confinement set their own roots."""
    before = os.environ.get("DIFFWATCH_IMAGE_ROOTS")
    os.environ["DIFFWATCH_IMAGE_ROOTS"] = str(tmp_path_factory.getbasetemp())
    yield
    if before is None:
        os.environ.pop("DIFFWATCH_IMAGE_ROOTS", None)
    else:
        os.environ["DIFFWATCH_IMAGE_ROOTS"] = before


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
    return _emptied(migrated_url)


def _has_extension(admin_url: str, name: str) -> bool:
    with psycopg.connect(raw_conninfo(admin_url), autocommit=True) as conn:
        row = conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = %s", (name,))
        return row.fetchone() is not None


@contextlib.contextmanager
def _private_cluster(prefix: str, without: tuple[str, ...] = ()) -> Iterator[str]:
    """A private cluster of the embedded server's binaries; yields its admin URL."""
    import shutil
    import tempfile

    from tests.pgcluster import TempCluster

    root = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        c = TempCluster(root, without_extensions=without)
        c.start()
        c.wait_ready()
        yield c.url
        c.destroy()
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def vector_admin_url(pg_admin_url: str) -> Iterator[str]:
    """A maintenance database on a real server with pgvector: the test server when it has
    the extension, else a private cluster of the embedded server's binaries (pgserver ships
    pgvector), one per test process."""
    if _has_extension(pg_admin_url, "vector"):
        yield pg_admin_url
        return
    with _private_cluster("diffwatch-vector-") as url:
        yield url


@pytest.fixture(scope="session")
def vector_migrated_url(vector_admin_url: str) -> str:
    """This worker's database on the pgvector server, migrated to head once per session."""
    url = _create_database(vector_admin_url, f"dwtest_{os.getpid()}_vector")
    migrate.upgrade(url)
    return url


@pytest.fixture
def vector_db_url(vector_migrated_url: str) -> str:
    """A migrated database with pgvector and the embedding tables, emptied before the test."""
    return _emptied(vector_migrated_url)


@pytest.fixture(scope="session")
def novector_admin_url() -> Iterator[str]:
    """A maintenance database on a real server that has no pgvector (the embedded server's
    binaries with the extension's files removed), one per test process."""
    with _private_cluster("diffwatch-novector-", without=("vector",)) as url:
        yield url


def _emptied(migrated_url: str) -> str:
    """``migrated_url`` with every table but Alembic's emptied."""
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
def cluster():
    """A private PostgreSQL cluster that the test may stop, crash and restart.

    Its directory is a fresh one under the system's temporary directory, not under pytest's
    ``/tmp/pytest-of-<user>``: the server runs as another user (as root: ``pgserver``), and
    any pytest session that starts meanwhile resets that tree to mode 0700, which would lock
    the running server out of its own data directory.
    """
    import shutil
    import tempfile

    from tests.pgcluster import TempCluster

    root = Path(tempfile.mkdtemp(prefix="diffwatch-cluster-"))
    try:
        c = TempCluster(root)
        c.start()
        c.wait_ready()
        yield c
        c.destroy()
    finally:
        shutil.rmtree(root, ignore_errors=True)


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
    from diffwatch.alerts.smtp import SmtpSettings

    return SmtpSettings(
        host="127.0.0.1", port=smtp.port, sender="alerts@diffwatch.test", timeout_s=3
    )


def _demo_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One directory for the demo's models that every xdist worker of this run sees
    (DIFFWATCH_TEST_DEMO_MODELS, if set, keeps them between runs: weights are keyed by their
    recipe, so a changed recipe still trains afresh)."""
    if keep := os.environ.get("DIFFWATCH_TEST_DEMO_MODELS"):
        return Path(keep)
    base = tmp_path_factory.getbasetemp()
    return (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "demo-models"


@pytest.fixture(scope="session", autouse=True)
def _demo_models_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Every demo run of the test session shares one DIFFWATCH_DEMO_MODELS, so the demo CLIP
    is trained once per run (the first to need it trains, the others wait on its lock)."""
    before = {
        k: os.environ.get(k) for k in ("DIFFWATCH_DEMO_MODELS", "DIFFWATCH_DEMO_CLIP_THREADS")
    }
    os.environ["DIFFWATCH_DEMO_MODELS"] = str(_demo_models(tmp_path_factory))
    # The suite runs two workers on two cores: one training thread (two spin-wait there).
    os.environ["DIFFWATCH_DEMO_CLIP_THREADS"] = "1"
    yield
    for key, value in before.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="session")
def demo_clip(tmp_path_factory: pytest.TempPathFactory):
    """The demo CLIP, trained once per test run (about a minute on 2 cores): a model that
    has learned the demo's scenes, so its scores can be right or wrong."""
    from diffwatch.demo.demo_clip import ensure_demo_clip

    return ensure_demo_clip(_demo_models(tmp_path_factory))

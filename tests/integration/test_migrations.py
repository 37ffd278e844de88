"""Migrations build the schema from nothing, match the models, and come down again."""

from __future__ import annotations

import psycopg

from db import migrate
from db.engine import raw_conninfo
from db.models import Base


def _tables(url: str) -> set[str]:
    with psycopg.connect(raw_conninfo(url)) as conn:
        rows = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname='public'")
        return {r[0] for r in rows}


def test_upgrade_check_and_downgrade_on_an_empty_database(empty_db_factory) -> None:
    url = empty_db_factory("migrations")
    assert migrate.current_revision(url) is None
    migrate.upgrade(url)
    assert migrate.current_revision(url) == migrate.head_revision()
    assert set(Base.metadata.tables) <= _tables(url)
    migrate.check(url)  # raises if the models and the migrated schema differ
    migrate.downgrade(url, "base")
    assert _tables(url) <= {"alembic_version"}
    migrate.upgrade(url)  # and back up again cleanly
    assert set(Base.metadata.tables) <= _tables(url)


def test_time_range_indexes_exist(migrated_url: str) -> None:
    with psycopg.connect(raw_conninfo(migrated_url)) as conn:
        idx = {
            r[0]: r[1]
            for r in conn.execute(
                "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'generations'"
            )
        }
    assert "ix_generations_model_model_version_ts" in idx
    assert "ix_generations_deployment_ts" in idx
    assert "uq_generations_request_id" in idx

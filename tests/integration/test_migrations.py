"""Migrations build the schema from nothing, match the models, and come down again."""

from __future__ import annotations

import re

import psycopg
import pytest

from diffwatch.db import migrate
from diffwatch.db.engine import raw_conninfo
from diffwatch.db.models import Base


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


def test_every_alert_metric_passes_the_migrated_check_constraint(migrated_url: str) -> None:
    """Alembic does not compare CHECK constraints: the metric list is checked here."""
    from diffwatch.model.alert_metrics import METRICS

    with psycopg.connect(raw_conninfo(migrated_url)) as conn:
        (definition,) = conn.execute(
            "SELECT pg_get_constraintdef(oid) FROM pg_constraint"
            " WHERE conname = 'ck_alert_rules_metric'"
        ).fetchone()
    allowed = set(re.findall(r"'([a-z0-9_]+)'", definition))
    assert allowed == set(METRICS)


def test_downgrade_below_0013_keeps_a_median_latency_rule(empty_db_factory) -> None:
    url = empty_db_factory("median_rule")
    migrate.upgrade(url)
    with psycopg.connect(raw_conninfo(url)) as conn:
        conn.execute(
            "INSERT INTO alert_rules (name, metric, comparison, threshold, window_s, for_s,"
            " repeat_s, severity, recipients) VALUES ('slow', 'latency_p50_ms', '>', 1, 60, 0, 0,"
            " 'info', ARRAY['a@example.com'])"
        )
    with pytest.raises(RuntimeError, match="1 alert rule"):
        migrate.downgrade(url, "0012")
    assert migrate.current_revision(url) == migrate.head_revision()
    with psycopg.connect(raw_conninfo(url)) as conn:
        assert conn.execute("SELECT metric FROM alert_rules").fetchall() == [("latency_p50_ms",)]

"""``collect gpu`` keeps sampling while Postgres is down and stores the backlog when it returns.

Runs the real CLI as a subprocess against a private Postgres cluster that the test stops
and starts, scraping an in-process exporter over real HTTP.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from datetime import UTC, datetime

import psycopg

from diffwatch.db import migrate
from tests.helpers import cli_env, diffwatch_cmd
from tests.integration.test_gpu_collect import MIXED, FakeExporter, body, whole


def rows(url: str, since: datetime | None = None, until: datetime | None = None) -> int:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT count(*) FROM gpu_samples WHERE ts >= coalesce(%s::timestamptz, '-infinity')"
            " AND ts <= coalesce(%s::timestamptz, 'infinity')",
            (since, until),
        ).fetchone()[0]


def wait_until(check, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return False


def test_loop_survives_postgres_going_away_and_flushes_the_buffer(cluster):
    migrate.upgrade(cluster.url)
    with FakeExporter() as exporter:
        exporter.routes["/metrics"] = whole(body(MIXED))
        proc = subprocess.Popen(
            diffwatch_cmd(
                "collect", "gpu", "--source", exporter.url("/metrics"), "--interval", "0.2",
                "--json",
            ),
            env=cli_env(cluster.url),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        try:
            assert wait_until(lambda: rows(cluster.url) >= 8), "nothing stored before the outage"
            down_at = datetime.now(UTC)
            cluster.stop("fast")  # drops the collector's connection
            time.sleep(2.5)  # ~12 scrapes while the database is away
            up_at = datetime.now(UTC)
            cluster.start()
            cluster.wait_ready()
            # Readings taken during the outage arrive once it is back.
            assert wait_until(lambda: rows(cluster.url, down_at, up_at) >= 4 * 8), (
                "readings sampled during the outage were not stored"
            )
            assert proc.poll() is None, "the collector must keep running through the outage"
        finally:
            proc.send_signal(signal.SIGTERM)
            out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["failed_scrapes"] == 0 and summary["samples_unsaved"] == 0
    assert summary["samples_dropped"] == 0
    assert summary["samples_stored"] == rows(cluster.url) == 4 * summary["scrapes"]
    assert err.count("database unavailable") == 1, err
    assert err.count("database reachable again") == 1, err
    with psycopg.connect(cluster.url) as conn:
        ingested = conn.execute("SELECT sum(ingested) FROM collector_status").fetchone()[0]
    assert ingested == summary["samples_stored"]


def test_a_full_buffer_drops_the_oldest_readings_and_says_so(cluster):
    migrate.upgrade(cluster.url)
    with FakeExporter() as exporter:
        exporter.routes["/metrics"] = whole(body(MIXED))
        proc = subprocess.Popen(
            diffwatch_cmd(
                "collect", "gpu", "--source", exporter.url("/metrics"), "--interval", "0.1",
                "--buffer-rows", "12", "--json",
            ),
            env=cli_env(cluster.url),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        try:
            assert wait_until(lambda: rows(cluster.url) >= 4)
            cluster.stop("fast")
            time.sleep(1.5)  # ~15 scrapes × 4 readings, far over 12
            up_at = datetime.now(UTC)
            cluster.start()
            cluster.wait_ready()
            assert wait_until(lambda: rows(cluster.url, since=up_at) >= 4)
        finally:
            proc.send_signal(signal.SIGTERM)
            out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["samples_dropped"] > 0
    assert summary["samples_stored"] + summary["samples_dropped"] == 4 * summary["scrapes"]
    assert summary["samples_stored"] == rows(cluster.url)
    assert err.count("buffer is full") == 1, err
    assert "oldest readings were dropped while it was away" in err

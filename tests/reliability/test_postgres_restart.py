"""(d) Postgres stopped and crashed in the middle of ``collect logs --follow`` loses nothing."""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time

import psycopg

from diffwatch.db import migrate
from tests.helpers import cli_env, diffwatch_cmd, numbered_line


def count(url: str) -> int:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT count(*) FROM generations").fetchone()[0]


def test_follow_survives_a_postgres_restart_and_a_crash_without_loss(tmp_path, cluster) -> None:
    migrate.upgrade(cluster.url)
    log = tmp_path / "gen.jsonl"
    total = 4000
    done = threading.Event()

    def write() -> None:
        with log.open("ab") as f:
            for i in range(total):
                f.write(numbered_line(i))
                f.flush()
                if i % 50 == 0:
                    time.sleep(0.1)  # ~8 s of writing spans both outages
        done.set()

    proc = subprocess.Popen(
        diffwatch_cmd(
            "collect",
            "logs",
            str(log),
            "--follow",
            "--poll",
            "0.05",
            "--batch-rows",
            "200",
            "--json",
        ),
        env=cli_env(cluster.url),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        threading.Thread(target=write, daemon=True).start()
        # A clean shutdown, then a crash: "immediate" skips the shutdown checkpoint, so
        # the last asynchronous commits are lost and must be read again from the file.
        for mode in ("fast", "immediate"):
            time.sleep(1.0)
            cluster.stop(mode)  # kills the collector's connection mid-stream
            time.sleep(2.0)  # data keeps arriving while the database is down
            cluster.start()
            cluster.wait_ready()
        assert done.wait(60)
        deadline = time.monotonic() + 60
        while count(cluster.url) < total and time.monotonic() < deadline:
            time.sleep(0.2)
        assert count(cluster.url) == total, "every line must be stored after the outages"
        assert proc.poll() is None, "the collector must keep running through the outages"
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert json.loads(out.strip().splitlines()[-1])["ingested"] == total
    with psycopg.connect(cluster.url) as conn:
        ids = {r[0] for r in conn.execute("SELECT request_id FROM generations")}
        dups = conn.execute("SELECT sum(duplicates) FROM collector_status").fetchone()[0]
    assert ids == {f"req-{i:08d}" for i in range(total)}
    assert dups == 0
    # One clear line when the database goes away and one when it is back, per outage.
    assert err.count("database unavailable") == 2, err
    assert err.count("database reachable again") == 2, err


def test_follow_started_while_postgres_is_down_waits_for_it(tmp_path, cluster) -> None:
    migrate.upgrade(cluster.url)
    cluster.stop("fast")
    log = tmp_path / "gen.jsonl"
    log.write_bytes(b"".join(numbered_line(i) for i in range(300)))
    proc = subprocess.Popen(
        diffwatch_cmd("collect", "logs", str(log), "--follow", "--poll", "0.05"),
        env=cli_env(cluster.url),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(2.0)
        assert proc.poll() is None, "a following collector must wait, not exit"
        cluster.start()
        cluster.wait_ready()
        deadline = time.monotonic() + 60
        while count(cluster.url) < 300 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert count(cluster.url) == 300
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert "database unavailable; waiting for it" in err

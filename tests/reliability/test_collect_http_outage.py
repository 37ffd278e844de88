"""``collect http`` while PostgreSQL is down: 429 with Retry-After, nothing accepted that is
not stored, and full recovery (every batch stored exactly once) when it is back."""

from __future__ import annotations

import signal
import threading
import time

import psycopg

from diffwatch.collectors.http.serve import Running
from diffwatch.db import migrate
from diffwatch.db.engine import raw_conninfo
from tests.corpus.log_lines import good_record
from tests.helpers import cli_env
from tests.integration.test_collect_http import (
    NDJSON,
    get,
    lines,
    options,
    post,
    serve_cli,
    wait_answering,
)  # fmt: skip


def stored(url: str) -> list[str]:
    with psycopg.connect(url) as conn:
        return [r[0] for r in conn.execute("SELECT request_id FROM generations ORDER BY 1")]


def batch(k: int) -> bytes:
    """Batch ``k``: records 20k .. 20k+19."""
    return lines([good_record(i) for i in range(20 * k, 20 * k + 20)])


def test_429_while_postgres_is_down_and_full_recovery_after(cluster) -> None:
    migrate.upgrade(cluster.url)
    with Running(options(raw_conninfo(cluster.url), retry_after_s=1)) as srv:
        assert post(srv.url, batch(0), NDJSON)[2]["accepted"] == 20
        cluster.stop("fast")  # the server's idle connection dies with it
        for _ in range(2):
            code, h, ans = post(srv.url, batch(1), NDJSON)
            assert code == 429 and h["retry-after"] == "1", ans
            assert "nothing was stored" in ans["error"]
        assert get(srv.url, "/readyz")[0] == 503
        assert get(srv.url, "/healthz")[0] == 200  # alive: do not restart it
        cluster.start()
        cluster.wait_ready()
        assert get(srv.url, "/readyz")[0] == 200
        assert post(srv.url, batch(1), NDJSON)[2] == {
            "accepted": 20,
            "duplicates": 0,
            "rejected": [],
        }

        # A client that honours Retry-After, sending batches through a crash and restart.
        answers: dict[int, int] = {}
        refused = [0]

        def client() -> None:
            for k in range(2, 12):
                while True:
                    code, h, ans = post(srv.url, batch(k), NDJSON)
                    if code == 200:
                        answers[k] = ans["accepted"] + ans["duplicates"]
                        break
                    assert code == 429, ans
                    refused[0] += 1
                    time.sleep(min(float(h["retry-after"]), 0.2))
                time.sleep(0.1)

        sender = threading.Thread(target=client)
        sender.start()
        time.sleep(0.3)
        cluster.stop("immediate")  # a crash: no shutdown checkpoint
        time.sleep(1.0)
        cluster.start()
        cluster.wait_ready()
        sender.join(timeout=120)
        assert not sender.is_alive()
    assert answers == {k: 20 for k in range(2, 12)}
    assert refused[0] > 0, "the crash must have been seen by the client as 429s"
    # Every 2xx was committed durably: after the crash every acknowledged row is there.
    assert stored(cluster.url) == [f"req-{i:08d}" for i in range(12 * 20)]


def test_the_cli_listens_while_postgres_is_down_and_checks_the_schema_once_it_is_up(
    cluster, tmp_path
) -> None:
    """On Kubernetes the collector may start before its database: it must answer (liveness
    200, readiness 503, POST 429) rather than not listen, and store once the database is up."""
    migrate.upgrade(cluster.url)
    cluster.stop("fast")
    proc, url = serve_cli(cli_env(cluster.url), tmp_path, "--retry-after", "1")
    try:
        wait_answering(proc, url, "/healthz")  # it listens although the database is down
        assert get(url, "/readyz")[0] == 503
        code, h, ans = post(url, batch(0), NDJSON)
        assert code == 429 and h["retry-after"] == "1" and "nothing was stored" in ans["error"]
        cluster.start()
        cluster.wait_ready()
        assert get(url, "/readyz") == (200, {"status": "ready"})
        assert post(url, batch(0), NDJSON)[2]["accepted"] == 20
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "listening anyway" in err and "schema at" in err
    assert stored(cluster.url) == [f"req-{i:08d}" for i in range(20)]


def test_a_database_that_comes_back_at_another_schema_gets_503_and_nothing_written(
    cluster,
) -> None:
    opts = options(raw_conninfo(cluster.url), expect_revision=migrate.head_revision())
    with Running(opts) as srv:  # the server was started while the database was away...
        # ...and the database came back empty: not migrated
        code, h, ans = post(srv.url, batch(0), NDJSON)
        assert code == 503 and "diffwatch db upgrade" in ans["error"], ans
        assert int(h["retry-after"]) >= 30
        ready = get(srv.url, "/readyz")
        assert ready[0] == 503 and ready[1]["status"] == "schema out of date"
        migrate.upgrade(cluster.url)  # the operator upgrades: ingest opens, no restart
        assert post(srv.url, batch(0), NDJSON)[2]["accepted"] == 20
        assert get(srv.url, "/readyz")[0] == 200

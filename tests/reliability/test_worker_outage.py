"""``diffwatch worker`` rides out a Postgres outage: one warning per job, no exit, no lost email.

The worker runs as a subprocess against a private cluster that the test stops and starts;
emails go to an aiosmtpd server on loopback.
"""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from diffwatch.db.queries import alert_rules as q
from diffwatch.model.alert_rules import Rule
from tests.alerts_seed import add_requests
from tests.helpers import cli_env, diffwatch_cmd
from tests.smtp import SmtpServer

TO = "oncall@example.com"
JOBS = ("rollups", "alerts-evaluate", "alerts-deliver")


class Worker:
    """A ``diffwatch worker`` subprocess whose stderr is collected line by line."""

    def __init__(self, env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            diffwatch_cmd(
                "worker", "--rollups-every", "1", "--alerts-every", "1", "--deliver-every", "1"
            ),
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)

    @property
    def err(self) -> str:
        return "".join(self.lines)

    def wait_for(self, what: str, check: Callable[[], bool], timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            assert self.proc.poll() is None, (
                f"the worker exited while waiting for {what}:\n{self.err}"
            )
            assert time.monotonic() < deadline, f"no {what} after {timeout} s:\n{self.err}"
            time.sleep(0.1)

    def terminate(self, timeout: float = 5) -> int:
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout)
        self._reader.join(5)
        return rc

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer().start()
    yield server
    server.stop()


def worker_env(url: str, smtp: SmtpServer) -> dict[str, str]:
    return cli_env(url) | {
        "DIFFWATCH_SMTP_HOST": "127.0.0.1",
        "DIFFWATCH_SMTP_PORT": str(smtp.port),
        "DIFFWATCH_SMTP_SENDER": "alerts@diffwatch.test",
        "DIFFWATCH_SMTP_TIMEOUT_S": "3",
    }


def upgrade(url: str) -> None:
    out = subprocess.run(
        diffwatch_cmd("db", "upgrade"),
        env=cli_env(url),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr


def add_rule(url: str) -> None:
    rule = Rule.model_validate(
        {
            "name": "errors",
            "metric": "error_rate",
            "window": "5m",
            "comparison": ">",
            "threshold": 0.2,
            "for": 0,
            "recipients": [TO],
        }
    )
    with psycopg.connect(url) as conn:
        q.create_rule(conn, rule, "test")
        conn.commit()


def subjects(smtp: SmtpServer) -> list[str]:
    return [str(m["Subject"]) for m in smtp.mailbox.for_recipient(TO)]


def test_worker_keeps_running_through_a_postgres_outage_and_sends_the_resolved_email(
    cluster, smtp
) -> None:
    upgrade(cluster.url)
    add_rule(cluster.url)
    add_requests(cluster.url, datetime.now(UTC) - timedelta(seconds=20), 10, errors=8)

    worker = Worker(worker_env(cluster.url, smtp))
    try:
        worker.wait_for("FIRING email", lambda: any("FIRING" in s for s in subjects(smtp)))
        assert "database unavailable" not in worker.err

        cluster.stop()  # Postgres goes away under the running jobs
        worker.wait_for(
            "one warning per job",
            lambda: all(f"{j}: database unavailable" in worker.err for j in JOBS),
        )
        time.sleep(2.5)  # more runs of every job while it is still down
        cluster.start()
        cluster.wait_ready()
        worker.wait_for(
            "recovery lines",
            lambda: all(f"{j}: database reachable again" in worker.err for j in JOBS),
        )

        # Enough good requests in the window to bring the error rate under the threshold.
        add_requests(cluster.url, datetime.now(UTC) - timedelta(seconds=1), 200)
        worker.wait_for("RESOLVED email", lambda: any("RESOLVED" in s for s in subjects(smtp)))
        assert worker.proc.poll() is None
        rc = worker.terminate()
    finally:
        worker.kill()

    err = worker.err
    assert rc == 0, err
    for job in JOBS:
        assert err.count(f"{job}: database unavailable") == 1, err
        assert err.count(f"{job}: database reachable again") == 1, err
    assert "Traceback" not in err, err
    assert "worker stopped" in err
    got = subjects(smtp)
    assert len(got) == 2 and "FIRING" in got[0] and "RESOLVED" in got[1], got


def test_worker_started_while_postgres_is_down_waits_for_it(cluster, smtp) -> None:
    upgrade(cluster.url)
    add_rule(cluster.url)
    add_requests(cluster.url, datetime.now(UTC) - timedelta(seconds=20), 10, errors=8)
    cluster.stop()

    worker = Worker(worker_env(cluster.url, smtp))
    try:
        worker.wait_for("the waiting line", lambda: "waiting for it" in worker.err)
        time.sleep(1.0)
        assert worker.proc.poll() is None, worker.err
        cluster.start()
        worker.wait_for("FIRING email", lambda: any("FIRING" in s for s in subjects(smtp)), 40)
        rc = worker.terminate()
    finally:
        worker.kill()
    assert rc == 0, worker.err
    assert worker.err.count("database unavailable") == 1, worker.err
    assert "Traceback" not in worker.err, worker.err

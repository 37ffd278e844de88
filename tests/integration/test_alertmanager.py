"""``diffwatch worker`` sends a firing and then a resolved alert into a real Alertmanager.

Debian's ``prometheus-alertmanager`` runs on loopback (no clustering), routing every alert
to a webhook receiver on a loopback HTTP server, so the test sees the alert both through
Alertmanager's v2 API and as Alertmanager's own notifications, firing then resolved.
The worker runs as a user runs it (``diffwatch worker --once``, wall clock).
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from tests.alerts_seed import add_requests, base_time
from tests.helpers import cli_env, diffwatch_cmd, stop_process
from tests.http_sink import HttpSink

DASH = "https://dash.example"
BINARY = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return json.loads(resp.read())


def _until(what: str, check: Callable[[], Any], timeout_s: float = 30) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")
        time.sleep(0.2)


@pytest.fixture
def receiver() -> Iterator[HttpSink]:
    s = HttpSink().start()
    yield s
    s.stop()


@pytest.fixture
def alertmanager(tmp_path: Path, receiver: HttpSink) -> Iterator[str]:
    """A running Alertmanager on loopback; its base URL."""
    # a real server or nothing: a missing binary fails the test instead of skipping it
    assert BINARY is not None, (
        "Debian's prometheus-alertmanager is not installed: run `make monitoring` (make test does)"
    )
    config = {
        "route": {
            "receiver": "sink",
            "group_by": ["alertname"],
            "group_wait": "1s",
            "group_interval": "1s",
            "repeat_interval": "1h",
        },
        "receivers": [
            {
                "name": "sink",
                "webhook_configs": [{"url": f"{receiver.url}/am", "send_resolved": True}],
            }
        ],
    }
    (tmp_path / "am.yml").write_text(yaml.safe_dump(config))
    port = _free_port()
    proc = subprocess.Popen(
        [
            BINARY,
            f"--config.file={tmp_path / 'am.yml'}",
            f"--storage.path={tmp_path / 'am-data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
            "--log.level=warn",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"alertmanager exited: {proc.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
        try:
            with urllib.request.urlopen(f"{base}/-/ready", timeout=1) as r:
                return r.status == 200
        except OSError:
            return False

    try:
        _until("alertmanager to be ready", ready)
        yield base
    finally:
        stop_process(proc)


def _worker(db_url: str) -> None:
    env = cli_env(db_url) | {"DIFFWATCH_DASHBOARD_URL": DASH}
    out = subprocess.run(
        diffwatch_cmd("worker", "--once"), env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-3000:]


def _ours(base: str) -> list[dict[str, Any]]:
    alerts = _get(f"{base}/api/v2/alerts?active=true&silenced=true&inhibited=true")
    return [a for a in alerts if a["labels"].get("source") == "diffwatch"]


def test_worker_fires_and_resolves_an_alert_in_alertmanager(
    db_url: str, conninfo: str, sql, tmp_path: Path, alertmanager: str, receiver: HttpSink
) -> None:
    from diffwatch.cli import build

    rules = {
        "rules": [
            {
                "name": "canary errors",
                "description": "The canary fails more requests than stable.",
                "metric": "error_rate",
                "deployments": ["canary"],
                "window": "5m",
                "comparison": ">",
                "threshold": 0.2,
                "for": 0,
                "severity": "critical",
                "recipients": [f"alertmanager:{alertmanager}"],
            }
        ]
    }
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(rules))
    res = CliRunner().invoke(build(), ["alerts", "load", str(path), "--database-url", db_url])
    assert res.exit_code == 0, res.output

    # The worker evaluates at the wall clock: seed the minute that just ended.
    t = base_time(hours_ago=0) - timedelta(minutes=1)
    add_requests(conninfo, t + timedelta(seconds=5), 10, errors=8, deployment="canary")
    _worker(db_url)
    assert sql("SELECT status, attempts FROM alert_deliveries") == [("sent", 1)]

    (alert,) = _ours(alertmanager)
    (rule_id,) = sql("SELECT id FROM alert_rules")[0]
    assert alert["labels"] == {
        "alertname": "canary errors",
        "severity": "critical",
        "metric": "error_rate",
        "diffwatch_rule_id": str(rule_id),
        "source": "diffwatch",
        "deployment": "canary",
    }
    assert alert["status"]["state"] == "active"
    assert alert["generatorURL"].startswith(f"{DASH}/")
    assert "deployment=canary" in alert["generatorURL"]
    notes = alert["annotations"]
    assert notes["summary"].startswith("[diffwatch CRITICAL] FIRING: canary errors")
    assert notes["description"] == "The canary fails more requests than stable."
    assert (notes["value"], notes["threshold"]) == ("80.00 %", "20.00 %")
    starts = datetime.fromisoformat(alert["startsAt"].replace("Z", "+00:00"))
    assert abs((starts - datetime.now(UTC)).total_seconds()) < 120
    firing = _until(
        "Alertmanager's firing notification",
        lambda: [r for r in receiver.at("/am") if r.json()["status"] == "firing"],
    )
    assert firing[0].json()["alerts"][0]["labels"]["alertname"] == "canary errors"

    # The errors are diluted below the threshold: with ``for: 0`` the rule resolves at once.
    add_requests(conninfo, t + timedelta(seconds=10), 100, errors=0, deployment="canary")
    _worker(db_url)
    assert sql("SELECT n.kind, d.status FROM alert_deliveries d JOIN alert_notifications n "
               "ON n.id = d.notification_id ORDER BY n.id") == [
        ("firing", "sent"), ("resolved", "sent")
    ]  # fmt: skip
    _until("the alert to leave Alertmanager's active alerts", lambda: not _ours(alertmanager))
    resolved = _until(
        "Alertmanager's resolved notification",
        lambda: [r for r in receiver.at("/am") if r.json()["status"] == "resolved"],
    )
    (gone,) = resolved[0].json()["alerts"]
    assert gone["status"] == "resolved"
    assert gone["labels"]["alertname"] == "canary errors"
    assert gone["startsAt"][:19] == alert["startsAt"][:19]  # one alert, not a second one
    assert gone["generatorURL"].startswith(f"{DASH}/")  # the window as it resolved

"""A real Prometheus scrapes ``diffwatch export prometheus`` and PromQL returns what the
dashboard's own queries say, per model version."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from diffwatch.collectors.logs.collector import LogCollector
from diffwatch.db.queries import rollups
from diffwatch.db.queries.dashboard import errors_by_kind, kpis, latency
from diffwatch.db.queries.dashboard_cost import fleet_cost, set_gpu_price
from diffwatch.model.filters import Filters
from tests.corpus.log_lines import good_record
from tests.helpers import REPO, cli_env, diffwatch_cmd, stop_process

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"


@pytest.fixture(autouse=True)
def _prometheus_installed() -> None:
    # A real server or nothing: a missing binary fails the test instead of skipping it.
    assert Path(PROMETHEUS).exists(), (
        "Debian's prometheus is not installed: run `make monitoring` (make test does)"
    )


# (model, version, deployment, gpu_type, requests, errors, batch_size, base total ms)
KEYS = [
    ("sdxl", "v1", "stable", "NVIDIA L4", 40, 4, 2, 500.0),
    ("sdxl", "v2", "canary", "NVIDIA H100 80GB HBM3", 20, 1, 1, 2000.0),
]
ERRORS = ["CUDA out of memory. Tried to allocate 2 GiB", "timeout after 60000 ms waiting"]
V2_SCORED = 10  # v2's first ok generations with scores; the rest are the scoring backlog
IDLE = 3  # GPU readings under 5 % utilisation, of 10


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def seed(conninfo: str, directory: Path) -> datetime:
    """Generations of two versions through the real log collector, scores, a drift run
    and a firing alert; rolled up. Returns the earliest generation time."""
    t0 = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=10)
    log = directory / "gen.jsonl"
    i = 0
    with log.open("w") as fh:
        for model, version, dep, gpu, n, errors, batch, base_ms in KEYS:
            for j in range(n):
                err = ERRORS[0] if j < errors - 1 else ERRORS[1] if j < errors else None
                rec = good_record(
                    i,
                    model=model,
                    model_version=version,
                    deployment=dep,
                    gpu_type=gpu,
                    batch_size=batch,
                    timestamp=(t0 + timedelta(minutes=j % 5, seconds=j)).isoformat(),
                    total_ms=base_ms + 10.0 * j,
                    inference_ms=0.8 * (base_ms + 10.0 * j),
                    image_uri=None if err else f"/data/img/{i}.png",
                    status="error" if err else "ok",
                )
                if err:
                    rec["error"] = err
                fh.write(json.dumps(rec) + "\n")
                i += 1
    summary = LogCollector(conninfo, [str(log)]).run_once()
    assert summary.ingested == i
    with psycopg.connect(conninfo, autocommit=True) as conn:
        set_gpu_price(conn, "NVIDIA L4", 0.80)
        set_gpu_price(conn, "NVIDIA H100 80GB HBM3", 3.00)
        conn.execute(
            "INSERT INTO scorer_results (generation_id, scorer, scorer_version, value, flagged)"
            " SELECT g.id, 'clip', 'tiny', 20 + g.id %% 10, NULL FROM generations g"
            " WHERE g.status = 'ok' AND (g.model_version = 'v1' OR g.id IN (SELECT id FROM"
            "  generations WHERE model_version = 'v2' AND status = 'ok' ORDER BY id LIMIT %s))",
            (V2_SCORED,),
        )
        conn.execute(
            "INSERT INTO scorer_results (generation_id, scorer, scorer_version, value, flagged)"
            " SELECT generation_id, 'nsfw', '320n', NULL, generation_id % 4 = 0"
            " FROM scorer_results WHERE scorer = 'clip'"
        )
        conn.cursor().executemany(
            "INSERT INTO gpu_samples (ts, host, gpu_index, gpu_name, util_pct, source)"
            " VALUES (%s, 'gen-01', 0, 'NVIDIA L4', %s, 'nvml')",
            [(t0 + timedelta(seconds=30 * j), 2.0 if j < IDLE else 80.0) for j in range(10)],
        )
        conn.execute(
            "INSERT INTO drift_runs (kind, status, model, p_value, effect_size, drifted)"
            " VALUES ('prompts', 'ok', 'sdxl', 0.0123, 0.42, true)"
        )
        rule = conn.execute(
            "INSERT INTO alert_rules (name, metric, window_s, comparison, threshold, severity,"
            " recipients) VALUES ('errors', 'error_rate', 300, '>', 0.05, 'critical',"
            " '{ops@example.com}') RETURNING id"
        ).fetchone()
        conn.execute(
            "INSERT INTO alert_states (rule_id, state, active) VALUES (%s, 'firing', true)",
            (rule[0],),
        )
        rollups.refresh(conn)
    return t0


def wait_http(url: str, proc: subprocess.Popen, timeout_s: float = 30.0) -> str:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                return r.read().decode()
        except OSError:
            if proc.poll() is not None:
                raise AssertionError(f"{proc.args[0]} exited with {proc.returncode}") from None
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


@pytest.fixture
def exporter(db_url: str, conninfo: str, tmp_path: Path) -> Iterator[tuple[int, datetime]]:
    """``diffwatch export prometheus`` on a free loopback port, over seeded rollups."""
    t0 = seed(conninfo, tmp_path)
    port = free_port()
    proc = subprocess.Popen(
        diffwatch_cmd(
            "export",
            "prometheus",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--window",
            "1h",
            "--cache-seconds",
            "30",
        ),
        env=cli_env(db_url),
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "exporter.log").open("w"),
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/metrics", proc)
        yield port, t0
    finally:
        stop_process(proc)


@pytest.fixture
def prometheus(exporter: tuple[int, datetime], tmp_path: Path) -> Iterator[str]:
    """A real Prometheus scraping the exporter every second; yields its base URL."""
    port, _ = exporter
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n  - job_name: diffwatch\n"
        f"    static_configs:\n      - targets: ['127.0.0.1:{port}']\n"
    )
    web = free_port()
    proc = subprocess.Popen(
        [
            PROMETHEUS,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{web}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "prometheus.log").open("w"),
    )
    base = f"http://127.0.0.1:{web}"
    try:
        wait_http(f"{base}/-/ready", proc)
        deadline = time.monotonic() + 30
        while not query(base, "diffwatch_exporter_up == 1"):
            assert proc.poll() is None, (tmp_path / "prometheus.log").read_text()[-2000:]
            assert time.monotonic() < deadline, "Prometheus scraped nothing in 30 s"
            time.sleep(0.3)
        yield base
    finally:
        stop_process(proc)


def query(base: str, promql: str) -> list[dict]:
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    with urllib.request.urlopen(url, timeout=5) as r:
        body = json.load(r)
    assert body["status"] == "success", body
    return body["data"]["result"]


def by_labels(base: str, promql: str, *labels: str) -> dict[tuple[str, ...], float]:
    return {
        tuple(r["metric"].get(k, "") for k in labels): float(r["value"][1])
        for r in query(base, promql)
    }


def test_prometheus_returns_the_dashboards_per_version_values(
    prometheus: str, exporter: tuple[int, datetime], conninfo: str
) -> None:
    _, t0 = exporter
    f_all = Filters(t0 - timedelta(hours=1), t0 + timedelta(minutes=30))
    key = ("model", "version", "deployment")
    ipm = by_labels(prometheus, "diffwatch_images_per_minute", *key)
    err = by_labels(prometheus, "diffwatch_request_error_ratio", *key)
    kinds = by_labels(prometheus, "diffwatch_error_ratio", *key, "error_kind")
    lat = by_labels(prometheus, "diffwatch_latency_seconds", *key, "quantile")
    cost = by_labels(prometheus, "diffwatch_cost_per_image_usd", *key)
    clip = by_labels(prometheus, "diffwatch_clip_score_mean", *key)
    nsfw = by_labels(prometheus, "diffwatch_nsfw_ratio", *key)
    assert set(ipm) == {(m, v, d) for m, v, d, *_ in KEYS}
    with psycopg.connect(conninfo) as conn:
        for model, version, dep, _gpu, n, errors, batch, _ms in KEYS:
            f = Filters(f_all.start, f_all.end, (model,), (version,), (dep,))
            k = kpis(conn, f)
            assert k.requests == n and k.images == (n - errors) * batch
            lk = (model, version, dep)
            assert ipm[lk] == pytest.approx(k.images / 60)  # window 1h
            assert err[lk] == pytest.approx(k.error_rate)
            assert cost[lk] == pytest.approx(k.cost_per_image_usd)
            assert clip[lk] == pytest.approx(k.clip_mean)
            assert nsfw[lk] == pytest.approx(k.nsfw_rate)
            for e in errors_by_kind(conn, f):
                assert kinds[(*lk, e.kind)] == pytest.approx(e.share_of_requests)
            (point,) = latency(conn, f, by="version", over_time=False)
            assert point.group == f"{model}/{version}"
            for q, ms in (("0.5", point.p50_ms), ("0.95", point.p95_ms), ("0.99", point.p99_ms)):
                assert lat[(*lk, q)] == pytest.approx(ms / 1000)
    # v1's p95 is slower than nothing and faster than v2's (known seeds), 2 % bins
    assert lat[("sdxl", "v1", "stable", "0.95")] < lat[("sdxl", "v2", "canary", "0.5")]
    assert {k[3] for k in kinds if k[1] == "v1"} == {
        "CUDA out of memory",
        "timeout after # ms waiting",
    }
    backlog = by_labels(prometheus, "diffwatch_scoring_backlog_images")
    assert backlog == {(): float(KEYS[1][4] - KEYS[1][5] - V2_SCORED)}
    assert by_labels(prometheus, "diffwatch_alerts_firing", "severity") == {
        ("info",): 0.0,
        ("warning",): 0.0,
        ("critical",): 1.0,
    }
    assert by_labels(prometheus, "diffwatch_drift_p_value", "kind", "model") == {
        ("prompts", "sdxl"): pytest.approx(0.0123)
    }
    assert by_labels(prometheus, "diffwatch_drift_effect_size", "kind", "model") == {
        ("prompts", "sdxl"): pytest.approx(0.42)
    }
    # PromQL aggregates over the labels work as a Grafana panel would use them
    total = by_labels(prometheus, "sum(diffwatch_images_per_minute)")
    assert total[()] == pytest.approx(sum((n - e) * b for *_, n, e, b, _ms in KEYS) / 60)
    with psycopg.connect(conninfo) as conn:
        (fleet,) = [r for r in fleet_cost(conn, f_all) if r.idle_share is not None]
    assert fleet.idle_share == pytest.approx(IDLE / 10)
    idle = by_labels(prometheus, "diffwatch_gpu_idle_ratio", "gpu_type")
    assert idle == {("NVIDIA L4",): pytest.approx(fleet.idle_share)}
    lag = by_labels(prometheus, "diffwatch_collector_lag_seconds", "kind")
    assert set(lag) == {("logs",)} and 0 <= lag[("logs",)] < 120
    grafana_panels_find_series(prometheus)


def grafana_panels_find_series(prometheus: str) -> None:
    """deploy/grafana/diffwatch.json: each panel's PromQL, with the template variables at
    "All", is valid for this Prometheus and returns series from the exporter."""
    dash = json.loads((REPO / "deploy/grafana/diffwatch.json").read_text())
    names = [v["name"] for v in dash["templating"]["list"]]
    assert names == ["datasource", "model", "version", "deployment"]
    exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
    assert len(exprs) >= 18
    for expr in exprs:
        promql = expr.replace("$model", ".*").replace("$version", ".*")
        promql = promql.replace("$deployment", ".*")
        assert "$" not in promql, expr
        assert query(prometheus, promql), expr


def test_the_worker_serves_the_same_endpoint_when_asked(db_url: str, tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen(
        diffwatch_cmd("worker", "--prometheus-port", str(port), "--embeddings-every", "0"),
        env=cli_env(db_url),
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "worker.log").open("w"),
    )
    try:
        text = wait_http(f"http://127.0.0.1:{port}/metrics", proc)
    finally:
        stop_process(proc)
    assert "diffwatch_exporter_up 1.0" in text
    assert 'diffwatch_alerts_firing{severity="critical"} 0.0' in text

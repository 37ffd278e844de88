"""``diffwatch collect gpu --source URL`` against real HTTP and a real Postgres.

The exporter is an in-process ``http.server`` on 127.0.0.1 serving the recorded
dcgm-exporter bodies in tests/fixtures/dcgm, whole or broken in the ways scrapes break.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from typer.testing import CliRunner

from diffwatch.cli import build
from diffwatch.collectors.gpu.collector import GpuCollector
from diffwatch.collectors.gpu.scrape import DcgmSource

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "dcgm"
MIXED = "v4-mixed-mig-lowercase-hostname.prom"
STATUS = "SELECT kind, ingested, failures, last_error FROM collector_status WHERE name = %s"

Route = Callable[[BaseHTTPRequestHandler], None]


def whole(body: bytes) -> Route:
    """Serve ``body`` with a correct Content-Length."""

    def send(h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    return send


def cut_short(body: bytes, keep: int) -> Route:
    """Promise all of ``body`` in Content-Length, send ``keep`` bytes, hang up."""

    def send(h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body[:keep])
        h.wfile.flush()
        h.close_connection = True

    return send


def chunked_cut(body: bytes, keep: int) -> Route:
    """Send ``body[:keep]`` as one chunk and hang up without the final zero-size chunk.

    Go's net/http (dcgm-exporter) sends large bodies chunked, with no Content-Length.
    """

    def send(h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
        h.send_header("Transfer-Encoding", "chunked")
        h.end_headers()
        h.wfile.write(b"%x\r\n%s\r\n" % (keep, body[:keep]))
        h.wfile.flush()
        h.close_connection = True

    return send


def status(code: int) -> Route:
    def send(h: BaseHTTPRequestHandler) -> None:
        h.send_error(code)

    return send


def slow(delay_s: float, then: Route) -> Route:
    def send(h: BaseHTTPRequestHandler) -> None:
        time.sleep(delay_s)
        then(h)

    return send


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        server: FakeExporter = self.server  # type: ignore[assignment]
        route = server.routes.get(self.path)
        server.hits[self.path] = server.hits.get(self.path, 0) + 1
        if route is None:
            self.send_error(404)
            return
        route(self)

    def log_message(self, format: str, *args: object) -> None:
        pass  # keep test output clean


class FakeExporter(ThreadingHTTPServer):
    """A dcgm-exporter stand-in on 127.0.0.1:random, serving routes from a thread."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.routes: dict[str, Route] = {}
        self.hits: dict[str, int] = {}
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{path}"

    def __enter__(self) -> FakeExporter:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()


def body(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def exporter() -> Iterator[FakeExporter]:
    with FakeExporter() as srv:
        yield srv


def collect(db_url: str, *args: str):
    return CliRunner().invoke(
        build(), ["collect", "gpu", *args, "--json", "--database-url", db_url]
    )


def summary_of(res) -> dict:
    return json.loads(res.stdout.strip().splitlines()[-1])


# -- the right rows ------------------------------------------------------------------
def test_once_stores_one_row_per_gpu_and_mig_instance(exporter, db_url, sql):
    exporter.routes["/metrics"] = whole(body(MIXED))
    url = exporter.url("/metrics")
    before = datetime.now(UTC)
    res = collect(db_url, "--source", url, "--once", "--name", "gpu-test")
    assert res.exit_code == 0, res.output
    s = summary_of(res)
    assert (s["scrapes"], s["samples_stored"], s["failed_scrapes"]) == (1, 4, 0)
    assert s["source"] == url and s["elapsed_s"] >= 0
    rows = sql(
        "SELECT host, gpu_index, mig_instance, gpu_uuid, gpu_name, util_pct, mem_used_mib,"
        " mem_total_mib, power_w, temp_c, sm_clock_mhz, source FROM gpu_samples"
        " ORDER BY gpu_index, mig_instance NULLS FIRST"
    )
    h = "dcgm-exporter-wwwjh"
    a30 = "NVIDIA A30"
    assert rows == [
        (h, 0, "3", "GPU-9a63752e-af8d-fe52-7f0d-968bca6d52e3", a30, None, 3.0, 5951.0,
         71.508, 50.0, 1440.0, url),
        (h, 0, "6", "GPU-9a63752e-af8d-fe52-7f0d-968bca6d52e3", a30, None, 3744.0, 5951.0,
         71.508, 50.0, 1440.0, url),
        (h, 1, None, "GPU-fc60126e-514d-3522-2828-c5daa8e99d85",
         "NVIDIA RTX 2000 Ada Generation", 37.0, 4749.0, 16024.0, 38.125, 44.0, 2130.0, url),
        (h, 2, "3", "GPU-63bc0b91-2265-1b94-831c-15c41fe92675", a30, None, 3744.0, 5951.0,
         61.262, 45.0, 1440.0, url),
    ]  # fmt: skip
    (ts,) = {r[0] for r in sql("SELECT ts FROM gpu_samples")}  # one scrape, one timestamp
    assert ts.tzinfo is not None and before <= ts <= datetime.now(UTC)
    assert sql(STATUS, ("gpu-test",)) == [("gpu", 4, 0, None)]


def test_every_exporter_version_is_stored(exporter, db_url, sql):
    files = sorted(p.name for p in FIXTURES.glob("*.prom"))
    for i, name in enumerate(files):
        exporter.routes[f"/{i}/metrics"] = whole(body(name))
        res = collect(db_url, "--source", exporter.url(f"/{i}/metrics"), "--once")
        assert res.exit_code == 0, (name, res.output)
    per_source = dict(sql("SELECT source, count(*) FROM gpu_samples GROUP BY source"))
    assert sorted(per_source.values()) == [1, 4, 4, 4, 8]
    # The 2.0.13 exporter sends no host label: the host comes from the URL.
    assert sql("SELECT host FROM gpu_samples WHERE gpu_name IS NULL") == [("127.0.0.1",)]


def test_blank_and_nan_values_are_stored_as_null_and_empty_readings_not_at_all(
    exporter, db_url, sql
):
    text = body("v3.3-v100-hostname.prom").decode()
    blank = "9223372036854775794"
    for metric in ("GPU_UTIL", "FB_USED", "FB_FREE", "POWER_USAGE", "GPU_TEMP", "SM_CLOCK"):
        line_start = f'DCGM_FI_DEV_{metric}{{gpu="3",'
        i = text.index(line_start)
        j = text.index("\n", i)
        value = "NaN" if metric == "GPU_TEMP" else blank
        text = text[:i] + text[i:j].rsplit(" ", 1)[0] + f" {value}" + text[j:]
    i = text.index('DCGM_FI_DEV_POWER_USAGE{gpu="0",')
    j = text.index("\n", i)
    text = text[:i] + text[i:j].rsplit(" ", 1)[0] + " NaN" + text[j:]
    exporter.routes["/metrics"] = whole(text.encode())
    res = collect(db_url, "--source", exporter.url("/metrics"), "--once")
    assert res.exit_code == 0, res.output
    assert summary_of(res)["samples_stored"] == 3
    rows = sql("SELECT gpu_index, power_w, temp_c FROM gpu_samples ORDER BY gpu_index")
    assert rows == [(0, None, 31.0), (1, 41.356, 29.0), (2, 44.118, 33.0)]


# -- failed scrapes store nothing and are counted -------------------------------------
def assert_failed_and_nothing_stored(res, sql, name: str, error_part: str) -> None:
    assert res.exit_code == 1, res.output
    s = summary_of(res)
    assert (s["scrapes"], s["failed_scrapes"], s["samples_stored"]) == (1, 1, 0)
    assert sql("SELECT count(*) FROM gpu_samples") == [(0,)]
    ((kind, ingested, failures, last_error),) = sql(STATUS, (name,))
    assert (kind, ingested, failures) == ("gpu", 0, 1)
    assert error_part in last_error


def test_a_body_shorter_than_its_content_length_stores_nothing(exporter, db_url, sql, caplog):
    full = body("v3.3-v100-hostname.prom")
    cut_at = full.index(b'DCGM_FI_DEV_FB_USED{gpu="0"')  # a line boundary: parses fine
    exporter.routes["/metrics"] = cut_short(full, cut_at)
    with caplog.at_level(logging.WARNING):
        res = collect(db_url, "--source", exporter.url("/metrics"), "--once", "--name", "t")
    assert_failed_and_nothing_stored(res, sql, "t", "cut off")
    lines = [r.getMessage() for r in caplog.records if "GPU sample failed" in r.getMessage()]
    assert len(lines) == 1 and exporter.url("/metrics") in lines[0]


def test_a_chunked_body_without_its_last_chunk_stores_nothing(exporter, db_url, sql):
    full = body("v4-h100-driver-label-pods.prom")
    cut_at = full.index(b"# HELP DCGM_FI_DEV_FB_FREE")  # a line boundary: parses fine
    exporter.routes["/metrics"] = chunked_cut(full, cut_at)
    res = collect(db_url, "--source", exporter.url("/metrics"), "--once", "--name", "t")
    assert_failed_and_nothing_stored(res, sql, "t", "cut off")


def test_a_body_cut_mid_line_stores_nothing(exporter, db_url, sql):
    full = body("v3.3-v100-hostname.prom")
    cut = full[: full.index(b'DCGM_FI_DEV_FB_USED{gpu="3"') + 40]
    exporter.routes["/metrics"] = whole(cut)  # Content-Length matches what was sent
    res = collect(db_url, "--source", exporter.url("/metrics"), "--once", "--name", "t")
    assert_failed_and_nothing_stored(res, sql, "t", "cut off mid-line")


def test_connection_refused_is_counted(db_url, sql):
    url = f"http://127.0.0.1:{free_port()}/metrics"
    res = collect(db_url, "--source", url, "--once", "--name", "t")
    assert_failed_and_nothing_stored(res, sql, "t", "cannot connect")


def test_http_error_and_timeout_are_counted(exporter, db_url, sql):
    exporter.routes["/metrics"] = status(500)
    res = collect(db_url, "--source", exporter.url("/metrics"), "--once", "--name", "t")
    assert_failed_and_nothing_stored(res, sql, "t", "HTTP 500")
    # The exporter answers after 12 s: without the 0.3 s timeout the command would take that
    # long. The margin is wide because a loaded CI machine takes seconds to run the command.
    exporter.routes["/slow"] = slow(12.0, whole(body(MIXED)))
    t0 = time.monotonic()
    res = collect(
        db_url, "--source", exporter.url("/slow"), "--once", "--timeout", "0.3", "--name", "t2"
    )
    assert time.monotonic() - t0 < 9.0
    assert_failed_and_nothing_stored(res, sql, "t2", "within 0.3 s")


def test_a_url_that_is_not_http_is_a_usage_error(db_url):
    res = collect(db_url, "--source", "gpu-node-1:9400", "--once")
    assert res.exit_code == 2
    assert "neither 'nvml' nor an http(s) URL" in res.output


# -- the loop -------------------------------------------------------------------------
def test_loop_samples_on_interval_counts_failures_and_stops_on_request(exporter, conninfo, sql):
    good, broken = whole(body(MIXED)), cut_short(body(MIXED), 100)
    exporter.routes["/metrics"] = good
    collector = GpuCollector(
        conninfo, DcgmSource(exporter.url("/metrics"), timeout_s=2), name="loop"
    )
    stop = threading.Event()
    t = threading.Thread(target=lambda: collector.run(stop, interval_s=0.1), daemon=True)
    t.start()
    s = collector.summary
    deadline = time.monotonic() + 10

    def wait_for(done: Callable[[], bool]) -> None:
        while not done() and time.monotonic() < deadline:
            time.sleep(0.02)

    wait_for(lambda: s.samples >= 3)
    exporter.routes["/metrics"] = broken
    wait_for(lambda: s.failed >= 2)
    exporter.routes["/metrics"] = good
    ok_so_far = s.samples - s.failed
    wait_for(lambda: s.samples - s.failed >= ok_so_far + 2)
    stop.set()
    t.join(10)
    assert not t.is_alive()
    assert s.failed >= 2 and s.samples >= s.failed + 4
    assert s.stored == 4 * (s.samples - s.failed) and s.unsaved == 0
    n_rows, n_scrapes = sql("SELECT count(*), count(DISTINCT ts) FROM gpu_samples")[0]
    assert (n_rows, n_scrapes) == (s.stored, s.samples - s.failed)
    assert sql(STATUS, ("loop",))[0][1:3] == (s.stored, s.failed)

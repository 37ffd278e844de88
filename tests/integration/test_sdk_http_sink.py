"""HttpSink against a stand-in for ``diffwatch collect http`` (same contract, http.server).

The stand-in answers POST /v1/generations with {"accepted", "duplicates", "rejected"},
takes NDJSON or a JSON array, gzip or not, checks the bearer token, and can be made busy
(429 + Retry-After) or stopped altogether (an outage).
"""

from __future__ import annotations

import gzip
import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from diffwatch.sdk import GenerationLogger, HttpSink

BASE = {"model": "sd15", "model_version": "v1", "prompt": "a cat", "status": "ok"}
TOKEN = "s3cret"


class StandIn:
    """A tiny collector: stores request ids, optionally answers 429 a number of times."""

    def __init__(self, port: int = 0) -> None:
        self.ids: list[str] = []
        self.busy = 0  # answer this many POSTs with 429
        self.posts = 0
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a: object) -> None:
                pass

            def _answer(self, code: int, body: dict, headers: dict | None = None) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                stand_in.posts += 1
                if self.path != "/v1/generations":
                    return self._answer(404, {"error": "not found"})
                if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                    return self._answer(401, {"error": "bad token"})
                if stand_in.busy > 0:
                    stand_in.busy -= 1
                    return self._answer(429, {"error": "database away"}, {"Retry-After": "1"})
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                if self.headers.get("Content-Type") == "application/x-ndjson":
                    recs = [json.loads(x) for x in body.splitlines() if x.strip()]
                else:
                    recs = json.loads(body)
                new = [r["request_id"] for r in recs if r["request_id"] not in stand_in.ids]
                stand_in.ids += new
                return self._answer(
                    200, {"accepted": len(new), "duplicates": len(recs) - len(new), "rejected": []}
                )

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1/generations"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def stand_in() -> Iterator[StandIn]:
    s = StandIn()
    yield s
    s.stop()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _sink(url: str, **kw: object) -> HttpSink:
    opts = dict(token=TOKEN, batch_size=10, flush_interval_s=0.05, initial_backoff_s=0.05,
                max_backoff_s=0.2, request_timeout_s=2.0)  # fmt: skip
    opts.update(kw)
    return HttpSink(url, **opts)  # type: ignore[arg-type]


def test_records_arrive_in_batches_and_replays_count_as_duplicates(stand_in: StandIn) -> None:
    sink = _sink(stand_in.url)
    logger = GenerationLogger(sink)
    recs = [logger.log(BASE, steps=i + 1) for i in range(35)]
    assert logger.flush(10)
    assert stand_in.ids == [r["request_id"] for r in recs]
    assert 4 <= stand_in.posts < 35  # batched
    logger.log(recs[0])  # the same request again
    logger.close(5)
    assert (sink.stats.sent, sink.stats.duplicates, sink.stats.dropped) == (36, 1, 0)


def test_an_outage_never_blocks_the_caller_and_loses_nothing_that_fits(caplog) -> None:
    port = _free_port()  # nothing listens there yet: the collector is away
    sink = _sink(f"http://127.0.0.1:{port}/v1/generations", max_buffer=50)
    logger = GenerationLogger(sink)
    caplog.set_level(logging.WARNING, logger="diffwatch.sdk.sinks")
    ids, slowest = [], 0.0
    for i in range(100):
        t0 = time.perf_counter()
        ids.append(logger.log(BASE, steps=i + 1)["request_id"])
        slowest = max(slowest, time.perf_counter() - t0)
    assert slowest < 0.05  # log() never waits on the network
    time.sleep(0.3)
    assert sink.stats.retries >= 1 and sink.stats.sent == 0
    # 50 queued + at most one batch of 10 in flight; the rest was dropped, counted, logged.
    assert 40 <= sink.stats.dropped <= 50
    assert any("dropped" in r.getMessage() for r in caplog.records)
    server = StandIn(port)  # the collector comes back
    try:
        assert logger.flush(10)
        assert sink.stats.sent + sink.stats.dropped == 100
        assert sink.stats.sent >= 50 and len(server.ids) == sink.stats.sent
        assert set(server.ids) <= set(ids) and len(set(server.ids)) == len(server.ids)
        # what arrived is exactly what was kept: the first 50 fitted, whatever else in flight
        assert set(ids[:50]) <= set(server.ids)
    finally:
        logger.close(2)
        server.stop()


def test_retry_after_is_honoured_and_nothing_is_lost(stand_in: StandIn) -> None:
    stand_in.busy = 1
    sink = _sink(stand_in.url)
    logger = GenerationLogger(sink)
    t0 = time.monotonic()
    for _ in range(5):
        logger.log(BASE)
    assert logger.flush(10)
    assert time.monotonic() - t0 >= 0.9  # waited the Retry-After of 1 s
    assert len(stand_in.ids) == 5 and sink.stats.retries == 1 and sink.stats.dropped == 0
    logger.close(2)


def test_close_is_bounded_while_the_collector_is_away_and_counts_what_it_drops(caplog) -> None:
    sink = _sink(f"http://127.0.0.1:{_free_port()}/v1/generations")
    logger = GenerationLogger(sink)
    for _ in range(25):
        logger.log(BASE)
    caplog.set_level(logging.WARNING, logger="diffwatch.sdk.sinks")
    t0 = time.monotonic()
    logger.close(0.5)
    assert time.monotonic() - t0 < 3.0
    assert sink.stats.dropped == 25 and sink.stats.sent == 0
    assert any("dropped" in r.getMessage() for r in caplog.records)
    logger.log(BASE)  # after close: dropped and counted, never raised
    assert sink.stats.dropped == 26


def test_a_bad_token_drops_the_batch_loudly(stand_in: StandIn, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="diffwatch.sdk.sinks")
    sink = _sink(stand_in.url, token="wrong")
    logger = GenerationLogger(sink)
    logger.log(BASE)
    assert logger.flush(5)
    assert sink.stats.dropped == 1 and stand_in.ids == []
    assert any("HTTP 401" in r.getMessage() for r in caplog.records)
    logger.close(1)

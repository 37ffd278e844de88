"""The ingest ASGI app: ``POST /v1/generations``, ``GET /healthz``, ``GET /readyz``.

A 2xx means every accepted row and every rejection is committed (synchronously); anything
else means nothing of the request was stored, and the same request may be sent again:
rows are deduplicated on request_id and rejections on (body, index).
"""

from __future__ import annotations

import hmac
import logging
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import anyio
import anyio.to_thread
import psycopg
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from diffwatch.collectors.http.batch import HttpBatch, build_batch
from diffwatch.collectors.http.body import BodyError, gunzip, media_type, split_records
from diffwatch.collectors.http.pool import Connections
from diffwatch.db.queries import http_ingest
from diffwatch.db.queries.ingest import BatchResult
from diffwatch.errors import first_line
from diffwatch.model.client_address import LOOPBACK, Network, resolve_client
from diffwatch.model.clock import utcnow
from diffwatch.outage import DB_DOWN_ERRORS

log = logging.getLogger(__name__)
MiB = 1 << 20


@dataclass(frozen=True)
class IngestOptions:
    """How the ingest endpoint behaves (sizes in bytes, times in seconds unless named)."""

    conninfo: str
    token: str | None  # the bearer token; None only for an explicit --no-auth on loopback
    max_body_bytes: int = 10 * MiB  # as sent (compressed or not)
    max_decoded_bytes: int = 64 * MiB  # after gzip
    max_records: int = 10_000
    pool_size: int = 4  # database connections, hence batches written at once
    queue_wait_s: float = 2.0  # how long a batch waits for a connection before a 429
    statement_timeout_ms: int = 10_000
    connect_timeout_s: float = 3.0
    retry_after_s: int = 2
    trusted_proxies: tuple[Network, ...] = ()
    name: str | None = None  # collector_status name (default http@HOST)
    # the schema revision to insist on before the first write (None: checked at start-up);
    # set when the server started while the database was away
    expect_revision: str | None = None
    clock: Callable[[], datetime] = field(default=utcnow, compare=False)


class _State:
    """What one app instance holds: its options, connections and concurrency bounds."""

    def __init__(self, options: IngestOptions) -> None:
        self.options = options
        self.host = socket.gethostname()
        self.name = options.name or f"http@{self.host}"
        self.token = options.token.encode() if options.token is not None else None
        self.db = Connections(
            options.conninfo,
            options.pool_size,
            lambda conn: http_ingest.prepare_connection(conn, options.statement_timeout_ms),
            options.connect_timeout_s,
        )
        self.slots: anyio.Semaphore | None = None
        self.threads: anyio.CapacityLimiter | None = None
        self.parsers: anyio.CapacityLimiter | None = None
        self.down = False  # for one log line per outage
        self.schema_ok = options.expect_revision is None

    def schema_problem(self) -> str | None:
        """Why nothing may be written (the schema is not the one expected), or None; checked
        on the database until it once matches. Raises DB_DOWN_ERRORS while it is away."""
        if self.schema_ok:
            return None
        want = self.options.expect_revision
        # a plain connection: the pool's set-up needs the tables this is about
        with psycopg.connect(
            self.options.conninfo, autocommit=True,
            connect_timeout=max(1, round(self.options.connect_timeout_s)),
        ) as conn:  # fmt: skip
            have = http_ingest.schema_revision(conn)
        if have == want:
            self.schema_ok = True
            log.warning("database schema at %s as expected; ingest open", have)
            return None
        return (
            f"the database is at schema revision {have or 'none (empty)'} but this diffwatch "
            f"expects {want}: run `diffwatch db upgrade`; nothing was stored, retry after it"
        )


def _error(status: int, reason: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": reason}, status, headers=headers)


def _busy(st: _State, reason: str) -> JSONResponse:
    return _error(429, reason, {"Retry-After": str(st.options.retry_after_s)})


def _authorized(st: _State, request: Request) -> bool:
    if st.token is None:
        return True
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return False
    # Header values arrive as latin-1 text: encoding them so gives back the bytes sent.
    return hmac.compare_digest(given.strip().encode("latin-1", "replace"), st.token)


def _client(st: _State, request: Request) -> str:
    peer = request.client.host if request.client else LOOPBACK
    return resolve_client(
        peer, request.headers.getlist("x-forwarded-for"), st.options.trusted_proxies
    )


async def _read_body(request: Request, limit: int) -> bytes | BodyError:
    too_big = BodyError(413, f"the body is over the {limit} byte limit; send smaller batches")
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.strip().isdigit():
            return BodyError(400, "Content-Length must be a number of bytes")
        if int(declared) > limit:
            return too_big
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:  # chunked uploads declare nothing: count what arrives
            return too_big
    return bytes(body)


def _prepare(
    st: _State, body: bytes, kind: str, gzipped: bool, client: str
) -> HttpBatch | BodyError:
    """Decompress, split and parse a body (CPU work, run off the event loop)."""
    o = st.options
    data = gunzip(body, o.max_decoded_bytes) if gzipped else body
    if isinstance(data, BodyError):
        return data
    if len(data) > o.max_decoded_bytes:
        return BodyError(413, f"the body is over the {o.max_decoded_bytes} byte limit")
    records = split_records(data, kind, o.max_records)
    if isinstance(records, BodyError):
        return records
    return build_batch(records, data, client, o.clock())


async def ingest(request: Request) -> JSONResponse:
    """Store a batch of generation records; answer what was accepted and what refused."""
    st: _State = request.app.state.ingest
    o = st.options
    assert st.slots is not None and st.threads is not None and st.parsers is not None
    if not _authorized(st, request):
        return _error(
            401,
            "missing or wrong bearer token; send 'Authorization: Bearer <token>'",
            {"WWW-Authenticate": 'Bearer realm="diffwatch"'},
        )
    kind = media_type(request.headers.get("content-type"))
    if kind is None:
        return _error(
            415,
            "Content-Type must be application/x-ndjson (one JSON record a line) or "
            "application/json (an array of records)",
        )
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("identity", "gzip"):
        return _error(415, "Content-Encoding must be gzip or absent")
    body = await _read_body(request, o.max_body_bytes)
    if isinstance(body, BodyError):
        return _error(body.status, body.reason)
    # Decoding may inflate a body up to max_decoded_bytes: a few at a time bound the memory.
    batch = await anyio.to_thread.run_sync(
        _prepare, st, body, kind, encoding == "gzip", _client(st, request), limiter=st.parsers
    )
    if isinstance(batch, BodyError):
        return _error(batch.status, batch.reason)
    with anyio.move_on_after(o.queue_wait_s) as waited:
        await st.slots.acquire()
    if waited.cancelled_caught:
        return _busy(st, "the database is busy; retry after the given seconds")
    try:
        result = await anyio.to_thread.run_sync(_store, st, batch, limiter=st.threads)
    except DB_DOWN_ERRORS as exc:
        if not st.down:
            st.down = True
            log.warning("database unavailable or slow (%s); answering 429", first_line(exc))
        return _busy(st, "the database is unavailable or slow; nothing was stored, retry")
    except SchemaMismatch as exc:
        log.error("%s", exc)
        return _error(503, str(exc), {"Retry-After": str(max(o.retry_after_s, 30))})
    finally:
        st.slots.release()
    if st.down:
        st.down = False
        log.warning("database reachable again; ingest resumed")
    return JSONResponse(
        {
            "accepted": result.inserted,
            "duplicates": result.duplicates,
            "rejected": [
                {"index": r.index, "request_id": r.request_id, "reason": r.reason}
                for r in batch.refusals()
            ],
        }
    )


class SchemaMismatch(Exception):
    """The database is not at the schema revision this code writes."""


def _store(st: _State, batch: HttpBatch) -> BatchResult:
    problem = st.schema_problem()
    if problem is not None:
        raise SchemaMismatch(problem)
    parsed = len(batch.rejections)  # the parser's; the database's refusals come after

    def write(conn: psycopg.Connection) -> BatchResult:
        del batch.rejections[parsed:]  # a retry on a new connection starts afresh
        return http_ingest.write_records(conn, batch, st.name, st.host)

    return st.db.run(write)


async def healthz(_request: Request) -> JSONResponse:
    """Liveness: the process answers."""
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> JSONResponse:
    """Readiness: the database answers a query."""
    st: _State = request.app.state.ingest
    try:
        problem = await anyio.to_thread.run_sync(st.schema_problem, limiter=st.threads)
        if problem is not None:
            return JSONResponse({"status": "schema out of date", "error": problem}, 503)
        await anyio.to_thread.run_sync(st.db.run, http_ingest.ping, limiter=st.threads)
    except DB_DOWN_ERRORS as exc:
        return JSONResponse({"status": "database unavailable", "error": first_line(exc)}, 503)
    return JSONResponse({"status": "ready"})


def create_app(options: IngestOptions) -> Starlette:
    """The ingest app for ``options`` (nothing connects until the first request)."""
    st = _State(options)

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        st.slots = anyio.Semaphore(options.pool_size)
        # One thread per slot, plus one so that readiness probes are never starved.
        st.threads = anyio.CapacityLimiter(options.pool_size + 1)
        st.parsers = anyio.CapacityLimiter(options.pool_size)
        try:
            yield
        finally:
            st.db.clear()

    app = Starlette(
        routes=[
            Route("/v1/generations", ingest, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
        ],
        lifespan=lifespan,
    )
    app.state.ingest = st
    return app


def describe(options: IngestOptions) -> dict[str, Any]:
    """The options a person may want logged at start (never the token)."""
    return {
        "auth": options.token is not None,
        "max_body_bytes": options.max_body_bytes,
        "max_decoded_bytes": options.max_decoded_bytes,
        "max_records": options.max_records,
        "pool_size": options.pool_size,
    }

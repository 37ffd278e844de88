"""Serving the ingest app with uvicorn: as a service (``serve``) or in a thread (``Running``)."""

from __future__ import annotations

import ipaddress
import signal
import socket
import threading
import time
from types import TracebackType

import uvicorn

from diffwatch.collectors.http.app import IngestOptions, create_app


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or ``localhost``) only listens on this machine."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


MAX_CONNECTIONS = 64


def config(
    options: IngestOptions,
    host: str,
    port: int,
    *,
    access_log: bool = False,
    max_connections: int = MAX_CONNECTIONS,
) -> uvicorn.Config:
    """uvicorn's configuration for the ingest app on ``host``:``port``.

    ``max_connections``: requests in flight at once (503 beyond); with the body limit it
    bounds the memory bodies take (64 x 10 MiB by default).
    """
    return uvicorn.Config(
        create_app(options),
        host=host,
        port=port,
        access_log=access_log,
        log_config=None,  # diffwatch's logging, not uvicorn's own dictConfig
        # X-Forwarded-For is read by the app, from --trusted-proxies only.
        proxy_headers=False,
        server_header=False,
        timeout_keep_alive=30,
        limit_concurrency=max_connections,
        timeout_graceful_shutdown=30,
    )


def serve(
    options: IngestOptions,
    host: str,
    port: int,
    *,
    access_log: bool = False,
    max_connections: int = MAX_CONNECTIONS,
) -> None:
    """Serve until SIGINT/SIGTERM (uvicorn finishes the requests in flight), then return."""
    server = uvicorn.Server(
        config(options, host, port, access_log=access_log, max_connections=max_connections)
    )
    # uvicorn raises the signal that stopped it again once it is done, for the handler it
    # found: a stop asked for is a clean exit here (status 0), as for the other services.
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: None)
    server.run()


class Running:
    """The app served from a background thread on a free loopback port (tests, benchmarks).

    ``with Running(options) as r: ... r.url ...``
    """

    def __init__(self, options: IngestOptions, host: str = "127.0.0.1") -> None:
        self._sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind((host, 0))
        self.port: int = self._sock.getsockname()[1]
        self.url = f"http://{host}:{self.port}"
        self.server = uvicorn.Server(config(options, host, self.port))
        self._thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self._sock]}, daemon=True
        )

    def __enter__(self) -> Running:
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the ingest server did not start")
            time.sleep(0.02)
        return self

    def __exit__(
        self,
        _t: type[BaseException] | None,
        _e: BaseException | None,
        _tb: TracebackType | None,
    ) -> None:
        self.server.should_exit = True
        self._thread.join(timeout=30)
        self._sock.close()

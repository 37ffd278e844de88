"""A real HTTP server for tests on loopback: scripted status codes and headers per path.

Webhook and Alertmanager-receiver tests post to it; it keeps every request it read.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    """One request as the server read it."""

    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class HttpSink:
    """Answers each path with its scripted codes in turn, then ``default``, adding that
    path's ``headers`` to the scripted (non-default) answers; keeps requests."""

    script: dict[str, list[int]] = field(default_factory=dict)
    headers: dict[str, dict[str, str]] = field(default_factory=dict)
    default: int = 200
    delay_s: float = 0.0  # wait this long before answering (to provoke client timeouts)
    received: list[Received] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None

    def start(self) -> HttpSink:
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                sink.received.append(Received(self.path, dict(self.headers.items()), body))
                codes = sink.script.get(self.path, [])
                scripted = bool(codes)
                code = codes.pop(0) if scripted else sink.default
                if sink.delay_s:
                    time.sleep(sink.delay_s)
                reply = b'{"ok": true}' if code < 300 else b"no thanks"
                try:
                    self.send_response(code)
                    self.send_header("Content-Length", str(len(reply)))
                    for name, value in sink.headers.get(self.path, {}).items() if scripted else ():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(reply)
                except OSError:
                    pass  # the client gave up (timeout tests)

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def at(self, path: str) -> list[Received]:
        """The requests made to ``path``, oldest first."""
        return [r for r in self.received if r.path == path]

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

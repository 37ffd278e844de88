"""A loopback TCP server that accepts connections and never says a word."""

from __future__ import annotations

import socket
import threading
import time


class SilentListener:
    """Listens on 127.0.0.1 (a free port), accepts, keeps every connection open, sends
    nothing; ``connections`` counts who connected. Use as a context manager."""

    def __init__(self) -> None:
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._sock.settimeout(0.05)
        self.port: int = self._sock.getsockname()[1]
        self._open: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def __enter__(self) -> SilentListener:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        for conn in self._open:
            conn.close()
        self._sock.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self._open.append(conn)

    @property
    def connections(self) -> int:
        """How many clients have connected so far."""
        return len(self._open)

    def wait_for_connection(self, timeout_s: float) -> bool:
        """Whether someone connects within ``timeout_s`` seconds."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._open:
                return True
            time.sleep(0.05)
        return bool(self._open)

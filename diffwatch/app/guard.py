"""ASGI middleware in front of Streamlit: allowed Host names and no public metrics endpoint.

Streamlit checks ``server.allowedHosts`` only on its WebSocket; this checks the same list on
every request, so a DNS-rebinding page (another site's name pointed at our address) gets
``400`` for the HTML and every endpoint too. An empty list (Streamlit's default, when the
app is started by hand rather than by ``diffwatch app``) allows any host, as Streamlit does.

``/_stcore/metrics`` (Streamlit's session and cache statistics) answers ``404`` to everyone:
it has no authentication of its own and nothing in diffwatch reads it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

LOG = logging.getLogger("diffwatch.app")
METRICS_PATH = "/_stcore/metrics"

Scope = dict[str, Any]


def host_allowed(host: str | None, allowed: Iterable[str]) -> bool:
    """Whether a Host header value names one of ``allowed`` (ports ignored; ``*.example.com``
    matches subdomains, ``*`` anything; an empty list allows every host)."""
    patterns = [p.strip().lower().rstrip(".") for p in allowed if p.strip()]
    if not patterns:
        return True
    if not host:
        return False
    try:
        parts = urlsplit(f"//{host}")
        name = parts.hostname
        _ = parts.port  # a port that is not a number makes the header invalid
    except ValueError:
        return False
    if not name or parts.username or parts.password or parts.path or parts.query:
        return False
    name = name.rstrip(".")
    for pattern in patterns:
        if pattern == "*" or name == pattern:
            return True
        if pattern.startswith("*.") and name.endswith(pattern[1:]):
            return True
    return False


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return value.decode("latin-1")
    return None


async def _refuse(scope: Scope, send: Any, status: int, body: str) -> None:
    if scope["type"] == "websocket":  # closing before accepting: the server answers 403
        await send({"type": "websocket.close", "code": 1008})
        return
    data = body.encode()
    headers = [(b"content-type", b"text/plain; charset=utf-8"),
               (b"content-length", str(len(data)).encode())]  # fmt: skip
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})


class DashboardGuard:
    """Refuses requests for host names outside ``server.allowedHosts``, and the metrics."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        """Answer the request, or refuse it before Streamlit sees it."""
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        from streamlit import config

        host = _header(scope, b"host")
        if not host_allowed(host, config.get_option("server.allowedHosts") or ()):
            LOG.warning("refused a request for host %r: not in server.allowedHosts", host)
            await _refuse(
                scope,
                send,
                400,
                "Bad Request: this dashboard does not answer to that host name. Open it at the "
                "address in DIFFWATCH_DASHBOARD_URL, or add the name to "
                "DIFFWATCH_DASHBOARD_HOSTS and restart `diffwatch app`.\n",
            )
            return
        if scope.get("path", "").rstrip("/").endswith(METRICS_PATH):
            await _refuse(scope, send, 404, "Not Found\n")
            return
        await self.app(scope, receive, send)

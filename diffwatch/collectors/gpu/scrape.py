"""Fetch a dcgm-exporter ``/metrics`` body over HTTP, whole or not at all."""

from __future__ import annotations

import http.client
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import datetime
from urllib.parse import urlsplit

from diffwatch.collectors.gpu.dcgm import parse_dcgm
from diffwatch.model.clock import utcnow
from diffwatch.model.gpu import GpuReading, SampleFailed

USER_AGENT = "diffwatch-gpu-collector"


def normalise_url(url: str) -> str:
    """``url`` with ``/metrics`` added when it has no path; ValueError if not http(s)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(
            f"--source {url!r} is neither 'nvml' nor an http(s) URL; give a dcgm-exporter "
            "endpoint such as http://gpu-node-1:9400/metrics"
        )
    if parts.path in ("", "/"):
        return parts._replace(path="/metrics").geturl()
    return url


def fetch_text(url: str, timeout_s: float) -> str:
    """The body at ``url`` as text; SampleFailed (one clear line) on any failure.

    A body shorter than its Content-Length, or a chunked body that ends early, is a failure:
    a cut-off scrape must not be stored in part.
    """
    req = urllib.request.Request(
        url, headers={"User-Agent": USER_AGENT, "Accept": "text/plain;version=0.0.4"}
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout_s) as resp:
            body = resp.read()
            declared = resp.headers.get("Content-Length")
            charset = resp.headers.get_content_charset() or "utf-8"
    except urllib.error.HTTPError as exc:
        raise SampleFailed(f"{url} answered HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, TimeoutError):
            raise SampleFailed(f"{url}: no connection within {timeout_s:g} s") from None
        raise SampleFailed(f"{url}: cannot connect ({reason})") from None
    except http.client.IncompleteRead as exc:
        raise SampleFailed(
            f"{url}: the response was cut off after {len(exc.partial)} bytes "
            f"({exc.expected if exc.expected is not None else 'more'} bytes missing)"
        ) from None
    except TimeoutError:
        raise SampleFailed(f"{url}: no complete response within {timeout_s:g} s") from None
    except (http.client.HTTPException, OSError) as exc:
        raise SampleFailed(f"{url}: the connection failed ({type(exc).__name__}: {exc})") from None
    if declared is not None and declared.isdigit() and int(declared) != len(body):
        raise SampleFailed(
            f"{url}: got {len(body)} bytes but Content-Length said {declared}: cut off"
        )
    try:
        return body.decode(charset)
    except (UnicodeDecodeError, LookupError) as exc:
        raise SampleFailed(f"{url}: the response is not valid {charset} text ({exc})") from None


class DcgmSource:
    """Samples one dcgm-exporter endpoint: fetch, then parse (all or nothing)."""

    def __init__(
        self, url: str, timeout_s: float = 5.0, clock: Callable[[], datetime] = utcnow
    ) -> None:
        self.url = normalise_url(url)
        self.name = self.url
        self.timeout_s = timeout_s
        self.clock = clock
        self.default_host = urlsplit(self.url).hostname or "unknown"

    def sample(self) -> list[GpuReading]:
        """One scrape as readings stamped with the scrape time (UTC); SampleFailed if bad."""
        text = fetch_text(self.url, self.timeout_s)
        ts = self.clock()
        try:
            return parse_dcgm(text, ts=ts, source=self.url, default_host=self.default_host)
        except SampleFailed as exc:
            raise type(exc)(f"{self.url}: {exc}") from None

    def close(self) -> None:
        """Nothing to release (one connection per scrape)."""

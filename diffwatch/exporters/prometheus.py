"""Prometheus metrics from the rollups: a cached custom collector and its HTTP server.

A scrape reads nothing while the cache is fresh (``cache_s``, default 30 s); after that the
next scrape reads the rollups once (a handful of indexed queries, the dashboard's). Keys
(model, version, deployment) beyond the ``max_series`` busiest of the window are folded into
``other``; error kinds beyond ``max_error_kinds`` per key likewise. Label values are
untrusted text: control characters are dropped and length capped. When the database cannot
be read the scrape still answers 200 with ``diffwatch_exporter_up 0`` and the last values,
whose age ``diffwatch_exporter_last_success_timestamp_seconds`` tells. See docs/prometheus.md.
"""

from __future__ import annotations

import logging
import re
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from wsgiref.simple_server import WSGIRequestHandler, make_server

import psycopg
from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import ThreadingWSGIServer
from prometheus_client.registry import Collector

from diffwatch.db.queries import prometheus as q
from diffwatch.db.queries.dashboard_cost import fleet_cost
from diffwatch.db.queries.rollups import state as rollup_state
from diffwatch.model import histogram
from diffwatch.model.filters import MINUTE_SPAN, Filters

log = logging.getLogger(__name__)

OTHER = "other"
QUANTILES = (0.5, 0.95, 0.99)
SEVERITIES = ("info", "warning", "critical")
KEY_LABELS = ("model", "version", "deployment")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_WINDOW = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNIT_S = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass(frozen=True)
class ExporterConfig:
    """What the exporter reads and how often: ``window_s`` of rollups (s), cached
    ``cache_s`` (s); at most ``max_series`` keys and ``max_error_kinds`` kinds a key;
    label values cut to ``label_max_len`` characters; ``timeout_s`` per database read."""

    window_s: float = 300.0
    cache_s: float = 30.0
    max_series: int = 50
    max_error_kinds: int = 10
    label_max_len: int = 100
    timeout_s: float = 5.0

    def __post_init__(self) -> None:
        if self.window_s < 60 or self.window_s % 60:
            raise ValueError(
                f"window: must be whole minutes (at least 1m), got {self.window_s:g} s"
            )
        if self.window_s > MINUTE_SPAN.total_seconds() and self.window_s % 3600:
            # longer windows are read from hour buckets: a part-hour would skew every rate
            raise ValueError(f"window: over 6h it must be whole hours, got {self.window_s:g} s")
        if self.cache_s < 0 or self.max_series < 1 or self.max_error_kinds < 1:
            raise ValueError("cache-seconds must be >= 0, max-series and max-error-kinds >= 1")


def parse_window(text: str) -> float:
    """Seconds of a window written like ``5m``, ``1h``, ``90s`` or ``300``; ValueError with
    the fix otherwise."""
    m = _WINDOW.match(text)
    if not m:
        raise ValueError(f"window {text!r}: write a number with s, m, h or d, e.g. 5m or 1h")
    return float(m.group(1)) * _UNIT_S[m.group(2)]


def label(value: str, max_len: int = 100) -> str:
    """A label value from untrusted text: control characters dropped, at most ``max_len``
    characters ('' stays '', which Prometheus treats as no label)."""
    clean = _CONTROL.sub("", value)
    return clean if len(clean) <= max_len else clean[: max_len - 1] + "…"


def window_filters(window_s: float, now: datetime) -> Filters:
    """The range read: ``window_s`` of whole buckets ending at the start of the current
    bucket (minute buckets, or hour buckets for windows over 6 h), so rates divide by
    time that has fully passed."""
    width = Filters(now - timedelta(seconds=window_s), now).width(now)
    end_ts = int(now.timestamp()) // width * width
    end = datetime.fromtimestamp(end_ts, UTC)
    return Filters(end - timedelta(seconds=window_s), end, width_s=width)


def fold_keys(
    stats: dict[q.Key, q.KeyStats], max_series: int, max_len: int = 100
) -> dict[q.Key, q.KeyStats]:
    """The ``max_series`` keys with most requests (ties by name) under sanitized labels;
    the rest summed into (other, other, other)."""
    ranked = sorted(stats.items(), key=lambda kv: (-kv[1].requests, -kv[1].images, kv[0]))
    out: dict[q.Key, q.KeyStats] = {}
    for i, (key, s) in enumerate(ranked):
        name = tuple(label(p, max_len) for p in key) if i < max_series else (OTHER, OTHER, OTHER)
        acc = out.get(name)  # type: ignore[arg-type]
        if acc is None:
            acc = out[name] = q.KeyStats()  # type: ignore[index]
        acc.add(s)
    return out


def _ratio(num: float, den: float) -> float | None:
    return float(num) / float(den) if den else None


def _gauge(name: str, doc: str, labels: Iterable[str] = ()) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, labels=list(labels))


def key_families(
    stats: dict[q.Key, q.KeyStats], window_s: float, max_kinds: int, max_len: int = 100
) -> list[Metric]:
    """The per-(model, version, deployment) families of folded key stats."""
    kl = KEY_LABELS
    ipm = _gauge("diffwatch_images_per_minute", "Images delivered per minute in the window.", kl)
    rpm = _gauge("diffwatch_requests_per_minute", "Requests per minute in the window.", kl)
    fail = _gauge(
        "diffwatch_request_error_ratio", "Failed requests / requests in the window (0-1).", kl
    )
    kinds = _gauge(
        "diffwatch_error_ratio",
        "Failed requests of one error kind / all requests in the window (0-1).",
        (*kl, "error_kind"),
    )
    lat = _gauge(
        "diffwatch_latency_seconds",
        "Total request latency quantile in the window (s; histogram, within 2 % relative).",
        (*kl, "quantile"),
    )
    cost = _gauge(
        "diffwatch_cost_per_image_usd",
        "Attributed GPU cost per delivered image in the window (USD; priced GPU types only).",
        kl,
    )
    clip = _gauge("diffwatch_clip_score_mean", "Mean CLIP score (0-100) of images in window.", kl)
    nsfw = _gauge("diffwatch_nsfw_ratio", "NSFW-flagged share of scored images (0-1).", kl)
    for key, s in sorted(stats.items()):
        lv = list(key)
        minutes = window_s / 60.0
        ipm.add_metric(lv, s.images / minutes)
        rpm.add_metric(lv, s.requests / minutes)
        if s.requests:
            fail.add_metric(lv, s.errors / s.requests)
            ranked = sorted(s.errors_by_kind.items(), key=lambda kv: (-kv[1], kv[0]))
            shown: dict[str, int] = {}
            for i, (kind, n) in enumerate(ranked):
                k = label(kind, max_len) if i < max_kinds else OTHER
                shown[k] = shown.get(k, 0) + n
            for k, n in sorted(shown.items()):
                kinds.add_metric([*lv, k], n / s.requests)
        for qv, ms in zip(QUANTILES, histogram.dense_quantiles(s.hist, QUANTILES), strict=True):
            if ms is not None:
                lat.add_metric([*lv, f"{qv:g}"], ms / 1000.0)
        if s.priced and s.images:
            cost.add_metric(lv, s.cost_usd / s.images)
        if s.clip_n:
            clip.add_metric(lv, s.clip_sum / s.clip_n)
        if s.nsfw_n:
            nsfw.add_metric(lv, s.nsfw_flagged / s.nsfw_n)
    return [ipm, rpm, fail, kinds, lat, cost, clip, nsfw]


def read_families(conn: psycopg.Connection, cfg: ExporterConfig, now: datetime) -> list[Metric]:
    """Every data family, read from the rollups and health tables in one pass."""
    f = window_filters(cfg.window_s, now)
    n = cfg.label_max_len
    stats = fold_keys(q.key_stats(conn, f), cfg.max_series, n)
    out = key_families(stats, cfg.window_s, cfg.max_error_kinds, n)
    idle = _gauge(
        "diffwatch_gpu_idle_ratio",
        "GPU readings under 5 % utilisation / readings in the window (0-1).",
        ("gpu_type",),
    )
    for row in fleet_cost(conn, f)[: cfg.max_series]:
        if row.idle_share is not None:
            idle.add_metric([label(row.gpu_type, n)], row.idle_share)
    p_value = _gauge(
        "diffwatch_drift_p_value", "p-value of the newest finished drift run.", ("kind", "model")
    )
    effect = _gauge(
        "diffwatch_drift_effect_size",
        "Effect size of the newest finished drift run (the run kind's measure).",
        ("kind", "model"),
    )
    for d in q.drift_latest(conn)[: cfg.max_series]:
        lv = [label(d.kind, n), label(d.model, n)]
        if d.p_value is not None:
            p_value.add_metric(lv, d.p_value)
        if d.effect_size is not None:
            effect.add_metric(lv, d.effect_size)
    firing = q.alerts_firing(conn)
    alerts = _gauge("diffwatch_alerts_firing", "Alert rules firing now.", ("severity",))
    for sev in sorted(set(SEVERITIES) | set(firing)):
        alerts.add_metric([label(sev, n)], firing.get(sev, 0))
    backlog = _gauge(
        "diffwatch_scoring_backlog_images",
        f"Generations with an image from the last {q.BACKLOG_HOURS} h not scored yet.",
    )
    backlog.add_metric([], q.scoring_backlog(conn))
    lag = _gauge(
        "diffwatch_collector_lag_seconds",
        "Seconds since a collector last reported.",
        ("collector", "kind"),
    )
    for c in q.collector_lag(conn, cfg.max_series):
        lag.add_metric([label(c.name, n), label(c.kind, n)], c.lag_s)
    r_lag = _gauge(
        "diffwatch_rollup_lag_seconds", "Seconds since the rollups last refreshed.", ("source",)
    )
    r_pending = _gauge("diffwatch_rollup_pending_rows", "Raw rows not rolled up yet.", ("source",))
    for s in rollup_state(conn):
        r_pending.add_metric([s.source], s.pending)
        if s.refreshed_at is not None:
            r_lag.add_metric([s.source], max(0.0, (now - s.refreshed_at).total_seconds()))
    return [*out, idle, p_value, effect, alerts, backlog, lag, r_lag, r_pending]


class DiffwatchCollector(Collector):
    """A prometheus_client collector over the rollups, cached for ``cfg.cache_s`` seconds.

    ``read`` (injectable for tests) returns the data families; any exception from it is
    counted and logged, and the last good families are served with ``up`` 0.
    """

    def __init__(
        self,
        conninfo: str,
        cfg: ExporterConfig | None = None,
        *,
        read: Callable[[], list[Metric]] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.conninfo = conninfo
        self.cfg = cfg or ExporterConfig()
        self._read = read or self._read_db
        self._clock = clock
        self._lock = threading.Lock()
        self._families: list[Metric] = []
        self._read_at: float | None = None  # last attempt (s since epoch)
        self._success_at: float | None = None
        self._up = False
        self._duration_s = 0.0
        self._errors = 0

    def _read_db(self) -> list[Metric]:
        ms = int(self.cfg.timeout_s * 1000)
        with psycopg.connect(
            self.conninfo,
            # below Prometheus' default 10 s scrape timeout: an outage scrapes as up 0
            connect_timeout=max(1, min(3, int(self.cfg.timeout_s))),
            options=f"-c statement_timeout={ms}",
            autocommit=True,
        ) as conn:
            return read_families(conn, self.cfg, datetime.now(UTC))

    def _refresh(self) -> None:
        now = self._clock()
        # A failed read is retried sooner than the cache lifetime, but not on every scrape.
        ttl = self.cfg.cache_s if self._up else min(self.cfg.cache_s, 5.0)
        if self._read_at is not None and now - self._read_at < ttl:
            return
        self._read_at = now
        t0 = time.perf_counter()
        try:
            self._families = self._read()
            self._up = True
            self._success_at = self._clock()
        except Exception as exc:  # a scrape must never fail: report it as up 0
            self._up = False
            self._errors += 1
            log.warning("prometheus exporter: reading the database failed: %s", exc)
        self._duration_s = time.perf_counter() - t0

    def collect(self) -> Iterator[Metric]:
        """The cached data families, then the exporter's own health."""
        with self._lock:
            self._refresh()
            families = list(self._families)
            up, success, duration, errors = (
                self._up, self._success_at, self._duration_s, self._errors
            )  # fmt: skip
        yield from families
        g = _gauge("diffwatch_exporter_up", "1 if the last database read succeeded, else 0.")
        g.add_metric([], 1.0 if up else 0.0)
        yield g
        g = _gauge(
            "diffwatch_exporter_last_success_timestamp_seconds",
            "Unix time of the last successful database read (values are from then).",
        )
        if success is not None:
            g.add_metric([], success)
        yield g
        g = _gauge(
            "diffwatch_exporter_scrape_duration_seconds",
            "Seconds the last database read took.",
        )
        g.add_metric([], duration)
        yield g
        c = CounterMetricFamily("diffwatch_exporter_errors", "Database reads that failed.")
        c.add_metric([], errors)
        yield c
        g = _gauge("diffwatch_exporter_window_seconds", "Length of the window read (s).")
        g.add_metric([], self.cfg.window_s)
        yield g


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        """Scrapes every few seconds would flood the log."""


class _Server6(ThreadingWSGIServer):
    address_family = socket.AF_INET6


@dataclass
class ExporterServer:
    """A running metrics endpoint: ``port`` (the bound one when 0 was asked) and stop()."""

    host: str
    port: int
    httpd: ThreadingWSGIServer
    thread: threading.Thread

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


def serve(collector: Collector, host: str = "0.0.0.0", port: int = 9464) -> ExporterServer:
    """Serve ``collector`` at http://host:port/metrics from a daemon thread (port 0: any)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    cls = _Server6 if ":" in host else ThreadingWSGIServer
    httpd = make_server(host, port, make_wsgi_app(registry), cls, handler_class=_Quiet)
    thread = threading.Thread(target=httpd.serve_forever, name="prometheus-exporter", daemon=True)
    thread.start()
    return ExporterServer(host, int(httpd.server_address[1]), httpd, thread)

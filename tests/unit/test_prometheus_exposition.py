"""The exporter's text exposition: names with units, HELP/TYPE lines, bounded and clean
labels, the cache, and a database outage served as ``up 0`` with the last values."""

from __future__ import annotations

import socket
import urllib.request
from datetime import UTC, datetime

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from diffwatch.db.queries.prometheus import KeyStats
from diffwatch.exporters.prometheus import (
    DiffwatchCollector,
    ExporterConfig,
    fold_keys,
    key_families,
    label,
    parse_window,
    serve,
    window_filters,
)
from diffwatch.model import histogram


def stats(requests: int, images: int, errors: int, ms: float, **kinds: int) -> KeyStats:
    s = KeyStats(requests=requests, images=images, errors=errors, errors_by_kind=dict(kinds))
    s.hist[histogram.bin_of(ms)] += requests - errors
    s.cost_usd, s.priced = 0.5, True
    s.clip_n, s.clip_sum, s.nsfw_n, s.nsfw_flagged = 4, 100.0, 4, 1
    return s


def exposition(collector: DiffwatchCollector) -> dict[str, object]:
    reg = CollectorRegistry(auto_describe=False)
    reg.register(collector)
    text = generate_latest(reg).decode()
    return {f.name: f for f in text_string_to_metric_families(text)} | {"_text": text}


def test_names_units_types_and_labels() -> None:
    data = {("sdxl", "v1", "stable"): stats(100, 200, 10, 1500.0, **{"CUDA out of memory": 10})}
    families = key_families(fold_keys(data, 50), 300.0, 10)
    fams = exposition(DiffwatchCollector("", ExporterConfig(), read=lambda: families))
    text = fams.pop("_text")
    assert "# HELP diffwatch_latency_seconds " in text
    assert "# TYPE diffwatch_latency_seconds gauge" in text
    assert "# TYPE diffwatch_exporter_errors_total counter" in text
    for name in (
        "diffwatch_images_per_minute",
        "diffwatch_requests_per_minute",
        "diffwatch_request_error_ratio",
        "diffwatch_error_ratio",
        "diffwatch_latency_seconds",
        "diffwatch_cost_per_image_usd",
        "diffwatch_clip_score_mean",
        "diffwatch_nsfw_ratio",
        "diffwatch_exporter_up",
        "diffwatch_exporter_last_success_timestamp_seconds",
        "diffwatch_exporter_scrape_duration_seconds",
        "diffwatch_exporter_window_seconds",
    ):
        assert fams[name].type == "gauge", name
    assert fams["diffwatch_exporter_errors"].type == "counter"
    key = {"model": "sdxl", "version": "v1", "deployment": "stable"}
    (ipm,) = fams["diffwatch_images_per_minute"].samples
    assert ipm.labels == key and ipm.value == pytest.approx(200 / 5)
    (kind,) = fams["diffwatch_error_ratio"].samples
    assert kind.labels == key | {"error_kind": "CUDA out of memory"}
    assert kind.value == pytest.approx(0.1)
    lat = {s.labels["quantile"]: s.value for s in fams["diffwatch_latency_seconds"].samples}
    assert set(lat) == {"0.5", "0.95", "0.99"}
    assert lat["0.5"] == pytest.approx(1.5, rel=0.02)  # seconds, within the 2 % bins
    assert fams["diffwatch_cost_per_image_usd"].samples[0].value == pytest.approx(0.5 / 200)
    assert fams["diffwatch_clip_score_mean"].samples[0].value == pytest.approx(25.0)
    assert fams["diffwatch_nsfw_ratio"].samples[0].value == pytest.approx(0.25)
    assert fams["diffwatch_exporter_up"].samples[0].value == 1.0


def test_cardinality_is_capped_and_the_rest_is_other() -> None:
    data = {
        ("m", f"v{i}", "stable"): stats(100 - i, 100 - i, 3, 100.0, a=1, b=1, c=1) for i in range(5)
    }
    folded = fold_keys(data, 2)
    assert set(folded) == {("m", "v0", "stable"), ("m", "v1", "stable"), ("other",) * 3}
    other = folded[("other",) * 3]
    assert other.requests == sum(100 - i for i in range(2, 5))
    assert int(other.hist.sum()) == sum(100 - i - 3 for i in range(2, 5))  # merged exactly
    fams = {f.name: f for f in key_families(folded, 60.0, max_kinds=2)}
    kinds = {s.labels["error_kind"] for s in fams["diffwatch_error_ratio"].samples}
    assert kinds == {"a", "b", "other"}


def test_label_values_are_cleaned_and_capped() -> None:
    assert label("sd\x00xl\n\x1b[31m") == "sdxl[31m"
    assert len(label("x" * 500, 100)) == 100
    data = {("a\nb", "v" * 300, ""): stats(1, 1, 0, 10.0)}
    fams = {f.name: f for f in key_families(fold_keys(data, 50, 64), 60.0, 10, 64)}
    (s,) = fams["diffwatch_images_per_minute"].samples
    assert s.labels["model"] == "ab" and len(s.labels["version"]) == 64


def test_the_cache_serves_scrapes_without_reading() -> None:
    calls = []
    now = [1000.0]
    c = DiffwatchCollector(
        "", ExporterConfig(cache_s=30), read=lambda: calls.append(1) or [], clock=lambda: now[0]
    )
    for _ in range(5):
        list(c.collect())
    assert len(calls) == 1
    now[0] += 31
    list(c.collect())
    assert len(calls) == 2


def test_a_database_outage_is_up_0_with_the_last_values_and_never_an_error() -> None:
    data = {("sdxl", "v1", "stable"): stats(10, 10, 0, 100.0)}
    good = key_families(fold_keys(data, 50), 60.0, 10)
    now = [1000.0]
    down = [False]

    def read() -> list:
        if down[0]:
            raise OSError("connection refused")
        return good

    c = DiffwatchCollector("", ExporterConfig(cache_s=1), read=read, clock=lambda: now[0])
    server = serve(c, "127.0.0.1", 0)
    try:
        url = f"http://127.0.0.1:{server.port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as r:
            assert r.status == 200
        down[0], now[0] = True, 1010.0
        with urllib.request.urlopen(url, timeout=5) as r:
            assert r.status == 200
            text = r.read().decode()
    finally:
        server.stop()
    fams = {f.name: f for f in text_string_to_metric_families(text)}
    assert fams["diffwatch_exporter_up"].samples[0].value == 0.0
    assert fams["diffwatch_exporter_last_success_timestamp_seconds"].samples[0].value == 1000.0
    assert fams["diffwatch_exporter_errors"].samples[0].value == 1.0
    assert fams["diffwatch_images_per_minute"].samples[0].value == pytest.approx(10.0)


def test_windows_parse_and_end_on_a_whole_bucket() -> None:
    assert parse_window("5m") == 300 and parse_window("1h") == 3600 and parse_window("90") == 90
    with pytest.raises(ValueError, match="5m or 1h"):
        parse_window("five minutes")
    for bad, why in ((30, "whole minutes"), (90, "whole minutes"), (7.5 * 3600, "whole hours")):
        with pytest.raises(ValueError, match=why):
            ExporterConfig(window_s=bad)
    f = window_filters(300, datetime(2026, 1, 1, 12, 3, 30, tzinfo=UTC))
    assert (f.start, f.end, f.width_s) == (
        datetime(2026, 1, 1, 11, 58, tzinfo=UTC),
        datetime(2026, 1, 1, 12, 3, tzinfo=UTC),
        60,
    )
    f = window_filters(86400, datetime(2026, 1, 1, 12, 3, 30, tzinfo=UTC))
    assert f.width_s == 3600 and f.end == datetime(2026, 1, 1, 12, tzinfo=UTC)


def test_an_unreachable_database_scrapes_as_up_0() -> None:
    """The real read path against a port where nothing listens: up 0, no error raised."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    c = DiffwatchCollector(f"postgresql://postgres@127.0.0.1:{port}/none")
    fams = exposition(c)
    assert fams["diffwatch_exporter_up"].samples[0].value == 0.0
    assert fams["diffwatch_exporter_last_success_timestamp_seconds"].samples == []
    assert fams["diffwatch_exporter_errors"].samples[0].value == 1.0

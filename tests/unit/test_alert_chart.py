"""The email's inline chart picks readable time ticks for any window a rule may have."""

from __future__ import annotations

import io
import warnings
from datetime import UTC, datetime, timedelta

import pytest
from PIL import Image

from diffwatch.alerts.chart import HEIGHT_PX, WIDTH_PX, chart_png

T0 = datetime(2026, 12, 6, 12, tzinfo=UTC)


@pytest.mark.parametrize("span_min", [2, 15, 60, 140, 150, 165, 180, 360, 24 * 60, 7 * 24 * 60])
def test_no_tick_warning_and_a_png_of_the_promised_size(span_min: int) -> None:
    # 140-170 minutes made matplotlib's AutoDateLocator warn and fall back to 30 ticks a day.
    series = [(T0 + timedelta(minutes=m), 1.0 + m % 7) for m in range(span_min)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        png = chart_png(series, 3.0, "median latency")
    assert png is not None
    assert Image.open(io.BytesIO(png)).size == (WIDTH_PX, HEIGHT_PX)


def test_no_values_no_chart() -> None:
    assert chart_png([(T0, None), (T0 + timedelta(minutes=1), None)], 1.0, "x") is None

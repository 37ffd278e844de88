"""A small PNG of an alert's metric over its window, for the email (no I/O, no pyplot).

matplotlib is imported inside ``chart_png`` with the Agg canvas, never at import time, so
nothing that imports ``alerts`` pays for it or touches a display.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from datetime import datetime

WIDTH_PX = 480
HEIGHT_PX = 160
_DPI = 100
_COLOURS = 32  # palette size of the saved PNG: keeps it a few KB


def chart_png(
    series: Sequence[tuple[datetime, float | None]],
    threshold: float | None,
    label: str,
    fmt: Callable[[float], str] | None = None,
) -> bytes | None:
    """PNG bytes (480 x 160 px, a few KB) of ``series`` with a dashed threshold line.

    ``series`` holds (time, value) pairs in the metric's own unit (None: no data at that
    time, drawn as a gap); ``fmt`` formats a value for the y axis and the threshold label
    (``MetricDef.format``). Returns None when no point has a value.
    """
    points = [(t, v) for t, v in series if v is not None]
    if not points:
        return None

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.dates import MINUTELY, AutoDateLocator, ConciseDateFormatter
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter, MaxNLocator
    from PIL import Image

    fmt = fmt or (lambda v: f"{v:,.3g}")
    fig = Figure(figsize=(WIDTH_PX / _DPI, HEIGHT_PX / _DPI), dpi=_DPI)
    canvas = FigureCanvasAgg(fig)
    ax = fig.add_axes((0.16, 0.18, 0.81, 0.68))
    times = [t for t, _ in series]
    values = [float("nan") if v is None else v for _, v in series]
    ax.plot(times, values, color="#1f5fa8", linewidth=1.4, marker="." if len(points) < 30 else "")
    if threshold is not None:
        ax.axhline(threshold, color="#c0392b", linestyle=(0, (4, 3)), linewidth=1.1)
        ax.annotate(
            f"threshold {fmt(threshold)}",
            xy=(1.0, threshold),
            xycoords=("axes fraction", "data"),
            xytext=(-2, 3),
            textcoords="offset points",
            ha="right",
            fontsize=7,
            color="#c0392b",
        )
    locator = AutoDateLocator(minticks=3, maxticks=6)
    # Windows of 2h20-2h50 are too short for hourly ticks and too long for 30-minute ones.
    locator.intervald[MINUTELY] = [1, 5, 10, 15, 30, 60]
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(ConciseDateFormatter(locator, show_offset=False))
    ax.yaxis.set_major_locator(MaxNLocator(4))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: fmt(v)))
    ax.tick_params(labelsize=7)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.grid(axis="y", color="#e5e5e5", linewidth=0.6)
    ax.set_title(f"{label} (UTC)", fontsize=8, loc="left")
    canvas.draw()
    rgba = Image.frombuffer("RGBA", canvas.get_width_height(), canvas.buffer_rgba())
    small = rgba.convert("RGB").quantize(colors=_COLOURS)
    out = io.BytesIO()
    small.save(out, format="PNG", optimize=True)
    return out.getvalue()

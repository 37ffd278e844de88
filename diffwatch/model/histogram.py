"""Mergeable latency histograms: fixed log-spaced bins, stored sparse (pure, no I/O).

Bin ``i >= 1`` holds values in ``(GAMMA**(i-1), GAMMA**i]`` ms and is reported as
``2 * GAMMA**i / (GAMMA + 1)``, which is within ``ALPHA`` (2 %) of every value in the bin
(the DDSketch construction). Bin 0 holds everything up to ``FLOOR_MS`` (reported as 0 ms,
so the error there is under 1 ms absolute); the last bin holds everything from
``CEIL_MS`` on. A quantile read from the histogram is the representative value of the bin
that holds the exact nearest-rank quantile (``percentile_disc``), so it is within ALPHA of
it, relatively, for any latency between 1 ms and 10^7 ms.

A histogram is stored as a bigint[] of ``(bin << 32) | count`` in ascending bin order:
only the non-empty bins, merged by adding counts of equal bins. The SQL twins of
``bin_of`` (``dw_hist_bin``) and of merging (``dw_hist_pack``, ``dw_hist_merge``) are
created by migration 0003 with the same constants; a test checks they agree.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

ALPHA = 0.02  # relative error of a reported quantile
GAMMA = 1.0408163265306123  # (1 + ALPHA) / (1 - ALPHA)
LN_GAMMA = 0.040005334613699206  # math.log(GAMMA), written out so SQL uses the same double
FLOOR_MS = 1.0
CEIL_MS = 1e7
MAX_BIN = 403  # ceil(ln(CEIL_MS) / LN_GAMMA)
COUNT_BITS = 32
COUNT_MASK = (1 << COUNT_BITS) - 1


def bin_of(ms: float) -> int:
    """The bin of a latency in ms (the same formula as SQL's dw_hist_bin)."""
    if ms <= FLOOR_MS:
        return 0
    return min(math.ceil(math.log(ms) / LN_GAMMA), MAX_BIN)


def value_of(b: int) -> float:
    """The latency (ms) reported for bin ``b``: within ALPHA of every value in it."""
    if b <= 0:
        return 0.0
    return 2.0 * GAMMA**b / (GAMMA + 1.0)


def unpack(packed: Iterable[int]) -> dict[int, int]:
    """``{bin: count}`` of a stored histogram."""
    out: dict[int, int] = {}
    for e in packed:
        b, n = e >> COUNT_BITS, e & COUNT_MASK
        out[b] = out.get(b, 0) + n
    return out


def pack(counts: Mapping[int, int]) -> list[int]:
    """The stored form of ``{bin: count}`` (empty bins dropped, ascending bins)."""
    return [(b << COUNT_BITS) | n for b, n in sorted(counts.items()) if n]


def quantiles(counts: Mapping[int, int], qs: Sequence[float]) -> list[float | None]:
    """Nearest-rank quantiles (ms) of a histogram ``{bin: count}``; None when it is empty.

    The q-quantile is the value at rank ceil(q * n) (at least 1), computed in doubles
    exactly as PostgreSQL's ``percentile_disc`` does.
    """
    total = sum(counts.values())
    if total <= 0:
        return [None for _ in qs]
    ordered = sorted(counts.items())
    out: list[float | None] = []
    for q in qs:
        rank = max(1, math.ceil(q * total))
        seen = 0
        for b, n in ordered:
            seen += n
            if seen >= rank:
                out.append(value_of(b))
                break
    return out


def dense() -> np.ndarray:
    """An empty dense histogram: one int64 count per bin, 0..MAX_BIN."""
    return np.zeros(MAX_BIN + 1, dtype=np.int64)


def add_packed(hist: np.ndarray, packed: Sequence[int]) -> None:
    """Add a stored (packed, sparse) histogram into a dense one, in place."""
    if packed:
        a = np.asarray(packed, dtype=np.int64)
        np.add.at(hist, a >> COUNT_BITS, a & COUNT_MASK)


def dense_quantiles(hist: np.ndarray, qs: Sequence[float]) -> list[float | None]:
    """Nearest-rank quantiles (ms) of a dense histogram, as ``quantiles`` computes them."""
    cum = np.cumsum(hist)
    total = int(cum[-1]) if len(cum) else 0
    if total <= 0:
        return [None for _ in qs]
    ranks = [max(1, math.ceil(q * total)) for q in qs]
    return [value_of(int(b)) for b in np.searchsorted(cum, ranks, side="left")]

"""Histogram quantiles are within ALPHA of exact nearest-rank quantiles, dense or sparse."""

from __future__ import annotations

import math
import random

import pytest

from diffwatch.model import histogram as h


def exact(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[max(1, math.ceil(q * len(s))) - 1]


@pytest.mark.parametrize("seed", range(5))
def test_quantiles_within_alpha_and_merge_is_order_free(seed: int) -> None:
    rng = random.Random(seed)
    values = [rng.lognormvariate(6, 1.5) + 1.5 for _ in range(rng.randint(1, 3000))]
    half = len(values) // 2
    parts = [h.pack(_counts(values[:half])), h.pack(_counts(values[half:]))]
    dense = h.dense()
    for p in reversed(parts):
        h.add_packed(dense, p)
    qs = (0.0, 0.5, 0.95, 0.99, 1.0)
    sparse = h.quantiles(h.unpack(parts[0] + parts[1]), qs)
    assert h.dense_quantiles(dense, qs) == sparse
    for q, got in zip(qs, sparse, strict=True):
        assert got == pytest.approx(exact(values, q), rel=h.ALPHA)


def test_empty_and_sub_millisecond() -> None:
    assert h.quantiles({}, (0.5,)) == [None]
    assert h.dense_quantiles(h.dense(), (0.5,)) == [None]
    assert h.bin_of(0.0) == h.bin_of(1.0) == 0 and h.value_of(0) == 0.0
    assert h.bin_of(1e12) == h.MAX_BIN


def _counts(values: list[float]) -> dict[int, int]:
    out: dict[int, int] = {}
    for v in values:
        out[h.bin_of(v)] = out.get(h.bin_of(v), 0) + 1
    return out

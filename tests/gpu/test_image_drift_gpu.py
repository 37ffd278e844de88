"""Image drift's kernel work on CUDA gives the CPU's numbers, and ``drift images --device
cuda`` runs end to end. Run on the device machine:
``pytest -m gpu tests/gpu/test_image_drift_gpu.py``.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from typer.testing import CliRunner

from diffwatch.analytics.image_drift import NumpyBackend, image_drift_test
from diffwatch.cli import build
from diffwatch.drift.image_backend import TorchBackend
from tests.embedding_seed import Gen, seed, unit_rows

pytestmark = pytest.mark.gpu


def test_cuda_backend_matches_numpy_on_512_wide_embeddings():
    rng = np.random.default_rng(0)
    x = unit_rows(rng, 1500, 512)
    y = unit_rows(rng, 1200, 512, centre=np.full(512, 0.02), spread=1.0)
    cpu = image_drift_test(x, y, permutations=100, seed=1, backend=NumpyBackend())
    gpu = image_drift_test(x, y, permutations=100, seed=1, backend=TorchBackend("cuda"))
    assert gpu.cmmd == pytest.approx(cpu.cmmd, rel=1e-4)
    assert gpu.p_value == pytest.approx(cpu.p_value, abs=0.02)
    assert gpu.effect_size == pytest.approx(cpu.effect_size, abs=1e-6)


def test_drift_images_on_cuda_end_to_end(vector_db_url):
    rng = np.random.default_rng(2)
    t0 = datetime(2026, 11, 1, tzinfo=UTC)
    ref = unit_rows(rng, 300, 64)
    cur = unit_rows(rng, 300, 64, centre=np.full(64, 0.5))
    gens = [Gen(e, seed=i, prompt=f"p{i}", ts=t0 + timedelta(minutes=i)) for i, e in enumerate(ref)]
    gens += [Gen(e, seed=i, prompt=f"q{i}", ts=t0 + timedelta(days=8, minutes=i))
             for i, e in enumerate(cur)]  # fmt: skip
    seed(vector_db_url, gens)
    res = CliRunner().invoke(
        build(),
        ["drift", "images", "--json", "--device", "cuda", "--database-url", vector_db_url,
         "--until", (t0 + timedelta(days=9)).isoformat(), "--current", "1d", "--reference", "8d"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    r = json.loads(res.stdout.strip().splitlines()[-1])
    assert r["drifted"] and r["options"]["backend"].startswith("TorchBackend('cuda")

"""A hub id loads offline from a Hugging Face hub cache (the layout huggingface_hub writes:
models--org--name/refs/main and snapshots/<commit>/), through the same loader as a path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from diffwatch.demo.tiny_pipeline import save_tiny_pipeline
from diffwatch.drift.diffusion_config import DiffusionConfig, DiffusionWeightsError
from diffwatch.drift.diffusion_load import load_pipeline
from diffwatch.drift.regenerate import Regenerator, RegenRequest

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(scope="module")
def hub_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("hf-hub")
    repo = root / "models--diffwatch--tiny-sd"
    save_tiny_pipeline(repo / "snapshots" / COMMIT)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(COMMIT)
    return root


def test_a_cached_hub_id_loads_offline_and_generates(hub_cache, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cfg = DiffusionConfig(source="diffwatch/tiny-sd", device="cpu", cache_dir=str(hub_cache))
    hub = load_pipeline(cfg)
    assert hub.source == "diffwatch/tiny-sd" and hub.pipeline_class == "StableDiffusionPipeline"
    # The same weights as a local copy: the same seed gives the same pixels either way.
    local = load_pipeline(
        DiffusionConfig(source=str(hub_cache / "models--diffwatch--tiny-sd/snapshots" / COMMIT),
                        device="cpu")
    )  # fmt: skip
    req = RegenRequest("k", "a red fox", 3, "DDIM", 3, 7.0, 64, 64)
    (a,), (b,) = Regenerator(hub).run([req]), Regenerator(local).run([req])
    assert np.array_equal(np.asarray(a.image), np.asarray(b.image))


def test_a_hub_id_missing_from_the_cache_says_so(hub_cache, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cfg = DiffusionConfig(source="diffwatch/not-there", device="cpu", cache_dir=str(hub_cache))
    with pytest.raises(DiffusionWeightsError, match="not in the local Hugging Face cache"):
        load_pipeline(cfg)

"""Re-generation on CUDA in fp16 (the production setting) with the tiny pipeline.

Run on the device machine: ``pytest -m gpu tests/gpu/test_regenerate_gpu.py``.

The noise comes from CPU generators (one per image), so it is the same on any machine and
in any batch. The same request run twice on the GPU gives the same pixels; in another
batch, cuDNN and cuBLAS may pick other kernels for the other shapes, so a few values may
move by about a level (tolerance: mean abs diff <= 1 level, max <= LEVEL_MAX).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from diffwatch.demo.tiny_pipeline import save_tiny_pipeline
from diffwatch.drift.diffusion_config import DiffusionConfig
from diffwatch.drift.diffusion_load import LoadedPipeline, load_pipeline
from diffwatch.drift.regenerate import Regenerator, RegenRequest

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning"),
]

SIDE, STEPS = 256, 10  # px, denoising steps
LEVEL_MAX = 8  # uint8 levels, one pixel value at most, across batch sizes in fp16


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch

    if not torch.cuda.is_available():
        pytest.fail("a gpu-marked test ran without a CUDA GPU visible to torch: run it on a GPU")
    return save_tiny_pipeline(tmp_path_factory.mktemp("tiny_sd"))


@pytest.fixture(scope="module")
def gpu(tiny_dir: Path) -> LoadedPipeline:
    return load_pipeline(DiffusionConfig(source=str(tiny_dir), device="auto", max_batch=8))


def req(key: str, seed: int, prompt: str = "a red fox in snow", **kw: Any) -> RegenRequest:
    kw = {"steps": STEPS, "width": SIDE, "height": SIDE, **kw}
    return RegenRequest(key=key, prompt=prompt, seed=seed, **kw)


def one(regen: Regenerator, requests: list[RegenRequest], key: str) -> np.ndarray:
    out = {o.key: o for o in regen.run(requests)}[key]
    assert out.error is None, out.error
    return np.asarray(out.image, dtype=np.int16)


def test_auto_is_cuda_fp16(gpu: LoadedPipeline) -> None:
    import torch

    assert (gpu.device, gpu.precision) == ("cuda", "fp16")
    weight = next(gpu.pipe.unet.parameters())
    assert weight.is_cuda and weight.dtype == torch.float16
    assert gpu.attention == "sdpa" and "cuda fp16" in gpu.describe()


def test_same_seed_same_image_twice(gpu: LoadedPipeline) -> None:
    regen = Regenerator(gpu)
    for sampler in (None, "Euler a", "DPM++ 2M Karras"):
        a = one(regen, [req("t", 11, sampler=sampler)], "t")
        b = one(regen, [req("t", 11, sampler=sampler)], "t")
        assert np.array_equal(a, b), (sampler, np.abs(a - b).max())


def test_same_seed_in_other_batches(gpu: LoadedPipeline) -> None:
    regen = Regenerator(gpu)
    alone = one(regen, [req("t", 11)], "t")
    others = [req(f"o{i}", 100 + i, f"other prompt {i}") for i in range(7)]
    for batch in ([req("t", 11), *others[:3]], [*others[:5], req("t", 11), *others[5:]]):
        diff = np.abs(one(regen, batch, "t") - alone)
        print(f"batch of {len(batch)}: max {diff.max()}, mean {diff.mean():.4f} levels")
        assert diff.mean() <= 1.0 and diff.max() <= LEVEL_MAX


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_cuda_follows_cpu_fp32(tiny_dir: Path, precision: str) -> None:
    """The noise is drawn on the CPU in fp32 for both, so the images nearly agree.

    Tolerance: on the CPU, fp16 weights and compute move the tiny pipeline's image by
    0.09 levels on average; two seeds differ by about 48.
    """
    cfg = DiffusionConfig(source=str(tiny_dir), device="cuda", precision=precision)
    cuda = load_pipeline(cfg)
    cpu = load_pipeline(DiffusionConfig(source=str(tiny_dir), device="cpu"))
    small = {"steps": 4, "width": 128, "height": 128}
    a = one(Regenerator(cuda), [req("t", 5, **small)], "t")
    b = one(Regenerator(cpu), [req("t", 5, **small)], "t")
    other = one(Regenerator(cpu), [req("t", 6, **small)], "t")
    diff, unrelated = np.abs(a - b).mean(), np.abs(other - b).mean()
    print(f"cuda {precision} vs cpu fp32: mean {diff:.3f} levels; another seed: {unrelated:.3f}")
    assert diff <= 2.0 and diff < unrelated / 10

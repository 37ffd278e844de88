"""The tiny CLIP on CUDA (fp16, the production setting) agrees with CPU fp32.

Run on the device machine: ``pytest -m gpu tests/gpu/test_clip_gpu.py``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from diffwatch.scoring.clip.preprocess import preprocess_batch
from diffwatch.scoring.clip.scorer import ClipModel, ClipScorer, load_clip
from tests.tinymodels import photo_like, save_tiny_clip, tiny_clip_settings

pytestmark = pytest.mark.gpu

SIZES = [(64, 64), (512, 512), (1024, 768), (77, 300), (20, 20)]
LONG_PROMPT = ", ".join(f"highly detailed ornament number {i}" for i in range(40))


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_clip(tmp_path_factory.mktemp("tiny_clip"))


@pytest.fixture(scope="module")
def cpu_clip(tiny_ckpt: Path) -> ClipModel:
    return load_clip(tiny_clip_settings(tiny_ckpt, device="cpu"))


def sample(n: int) -> tuple[list[np.ndarray], list[str]]:
    images = [photo_like(*SIZES[i % len(SIZES)], seed=i) for i in range(n)]
    prompts = [f"a photo of thing number {i}" for i in range(n - 1)] + [LONG_PROMPT]
    return images, prompts


def test_auto_on_a_gpu_machine_is_cuda_fp16(tiny_ckpt: Path) -> None:
    import torch

    assert torch.cuda.is_available(), "this test needs a CUDA GPU"
    clip = load_clip(tiny_clip_settings(tiny_ckpt, device="auto"))
    assert (clip.device, clip.precision) == ("cuda", "fp16")
    weight = clip.model.visual.conv1.weight
    assert weight.is_cuda and weight.dtype == torch.float16


def test_cuda_fp16_scores_match_cpu_fp32(tiny_ckpt: Path, cpu_clip: ClipModel) -> None:
    gpu_clip = load_clip(tiny_clip_settings(tiny_ckpt, device="cuda", precision="fp16"))
    images, prompts = sample(40)
    gpu = ClipScorer(gpu_clip).score(images, prompts)
    cpu = ClipScorer(cpu_clip).score(images, prompts)
    cos_gpu = np.array([s.cosine for s in gpu])
    cos_cpu = np.array([s.cosine for s in cpu])
    np.testing.assert_allclose(cos_gpu, cos_cpu, atol=5e-3)  # fp16: ~3 decimal digits
    np.testing.assert_allclose([s.score for s in gpu], [s.score for s in cpu], atol=0.5)
    assert [(s.truncated, s.n_tokens) for s in gpu] == [(s.truncated, s.n_tokens) for s in cpu]
    assert gpu[-1].truncated
    text_gpu = ClipScorer(gpu_clip).embed_texts(prompts)
    text_cpu = ClipScorer(cpu_clip).embed_texts(prompts)
    assert text_gpu.dtype == np.float32
    np.testing.assert_allclose(text_gpu, text_cpu, atol=5e-3)


def test_cuda_fp32_matches_cpu_closely(tiny_ckpt: Path, cpu_clip: ClipModel) -> None:
    gpu_clip = load_clip(tiny_clip_settings(tiny_ckpt, device="cuda", precision="fp32"))
    images, prompts = sample(16)
    gpu = [s.cosine for s in ClipScorer(gpu_clip).score(images, prompts)]
    cpu = [s.cosine for s in ClipScorer(cpu_clip).score(images, prompts)]
    # TF32 may be on for matmuls on the GPU; 1e-3 covers it.
    np.testing.assert_allclose(gpu, cpu, atol=1e-3)


def test_preprocessing_on_cuda_matches_cpu(cpu_clip: ClipModel) -> None:
    import torch

    images, _ = sample(10)
    on_cpu = preprocess_batch(images, cpu_clip.preprocess, "cpu", torch.float32)
    on_gpu = preprocess_batch(images, cpu_clip.preprocess, "cuda", torch.float32).cpu()
    step = 1 / 255 / min(cpu_clip.preprocess.std)  # one uint8 step, normalised
    assert (on_gpu - on_cpu).abs().max().item() <= step * 1.01
    assert (on_gpu - on_cpu).abs().mean().item() <= 1e-3


def test_cuda_batch_of_64_equals_one_by_one(tiny_ckpt: Path) -> None:
    gpu_clip = load_clip(tiny_clip_settings(tiny_ckpt, device="cuda"))
    images, prompts = sample(64)
    together = [s.cosine for s in ClipScorer(gpu_clip, batch_size=64).score(images, prompts)]
    scorer = ClipScorer(gpu_clip, batch_size=1)
    singles = [scorer.score([im], [p])[0].cosine for im, p in zip(images, prompts, strict=True)]
    np.testing.assert_allclose(together, singles, atol=2e-3)  # fp16 kernels vary with batch

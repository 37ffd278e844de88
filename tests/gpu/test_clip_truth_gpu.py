"""The trained demo CLIP on the GPU path (nvJPEG decode, batched GPU preprocessing, fp32 and
fp16) against the CPU path (Pillow, CPU preprocessing): the same scores within a stated
tolerance, and matching prompts still beat garbled ones for every garbling kind.

Run on the device machine: ``pytest -m gpu tests/gpu/test_clip_truth_gpu.py``.

Tolerances (CLIPScore points, 0-100): fp32 within 1.0 for any pair and 0.3 on average (nvJPEG
upsamples chroma without libjpeg-turbo's fancy filter, see test_loader_gpu); fp16 within 2.0
and 0.5.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from diffwatch.demo.demo_clip import demo_clip_settings, heldout_scenes
from diffwatch.demo.draw import render
from diffwatch.demo.scenes import MUTATIONS, mutate, prompt_of
from diffwatch.scoring.clip.scorer import ClipScorer, load_clip
from diffwatch.scoring.images.load import load_image
from diffwatch.scoring.loader import ImageLoader, LoaderOptions
from tests.clip_truth import MIN_WIN_RATE

pytestmark = pytest.mark.gpu

TOL = {"fp32": (1.0, 0.3), "fp16": (2.0, 0.5)}  # (max, mean) |GPU - CPU| CLIPScore points


@pytest.fixture(scope="module")
def truth_jpegs(tmp_path_factory):
    """60 held-out scenes drawn at 512 px (nvJPEG decodes from 320 px up) as JPEGs, and each
    scene's prompt variants: (path index, kind, prompt)."""
    directory = tmp_path_factory.mktemp("truth-jpegs")
    rng = np.random.default_rng(29)
    paths, pairs = [], []
    for i, scene in enumerate(heldout_scenes(60, seed=4243)):
        path = directory / f"{i:03d}.jpg"
        render(scene, (512, 512), rng).save(path, "JPEG", quality=95)
        paths.append(str(path))
        pairs.append((i, "match", prompt_of(scene)))
        for kind in MUTATIONS:
            if kind != "background" or scene.background_named:
                pairs.append((i, kind, prompt_of(mutate(scene, rng, kind))))
    return paths, pairs


def _scores(scorer, images, pairs) -> np.ndarray:
    out = scorer.score([images[i] for i, _, _ in pairs], [p for _, _, p in pairs])
    return np.array([s.score for s in out])


def _wins(pairs, scores) -> dict[str, float]:
    match = {i: s for (i, k, _), s in zip(pairs, scores, strict=True) if k == "match"}
    out = {}
    for kind in MUTATIONS:
        d = [match[i] - s for (i, k, _), s in zip(pairs, scores, strict=True) if k == kind]
        out[kind] = float(np.mean(np.array(d) > 0))
    return out


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_gpu_path_agrees_with_the_cpu_path_and_keeps_the_gaps(truth_jpegs, demo_clip, precision):
    paths, pairs = truth_jpegs
    cpu_images = [load_image(p).rgb for p in paths]
    with ImageLoader(LoaderOptions(processes=2, device="cuda", gpu_jpeg=True)) as loader:
        loaded = loader.load(paths, ["x"] * len(paths)).images
    assert all(im.rgb.device.type == "cuda" for im in loaded)  # decoded by nvJPEG
    gpu_images = [im.rgb for im in loaded]
    cpu = ClipScorer(load_clip(demo_clip_settings(demo_clip.checkpoint, "cpu")))
    gpu = ClipScorer(load_clip(demo_clip_settings(demo_clip.checkpoint, "cuda", precision)))
    assert gpu.clip.precision == precision
    on_cpu, on_gpu = _scores(cpu, cpu_images, pairs), _scores(gpu, gpu_images, pairs)
    diff = np.abs(on_gpu - on_cpu)
    print(f"{precision}: |GPU - CPU| max {diff.max():.3f}, mean {diff.mean():.3f} points")
    max_tol, mean_tol = TOL[precision]
    assert diff.max() <= max_tol and diff.mean() <= mean_tol
    wins = _wins(pairs, on_gpu)
    print(f"{precision}: matching prompt wins per kind on the GPU path: {wins}")
    assert all(wins[k] >= MIN_WIN_RATE[k] for k in MUTATIONS), wins
    # Pillow's pixels go through the GPU preprocessing too (the --no-gpu-jpeg path).
    same_pixels = _scores(gpu, [Image.open(p).convert("RGB") for p in paths], pairs)
    assert np.abs(same_pixels - on_cpu).max() <= max_tol

"""Batched torch preprocessing matches open_clip's own PIL preprocess transform."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest

from diffwatch.scoring.clip.preprocess import preprocess_batch, resized_size
from diffwatch.scoring.clip.scorer import ClipScorer, PreprocessSpec, load_clip
from tests.tinymodels import TINY_CLIP_NAME, photo_like, save_tiny_clip, tiny_clip_settings

# (height, width) in px: down- and up-scaling, portrait, landscape, square, odd sizes.
SIZES = [(64, 64), (100, 80), (37, 90), (300, 200), (20, 20), (257, 511), (1024, 768)]
# One uint8 step is 1/255/std ~= 0.015 after normalising; PIL and torch may differ by one
# step at a few pixels (rounding of coefficients), and rarely by two when upscaling.
MAX_ABS = 2.05 / 255 / 0.2613
MAX_MEAN = 1e-3


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_clip(tmp_path_factory.mktemp("tiny_clip"))


def reference(images: list[np.ndarray], transform) -> np.ndarray:
    from PIL import Image

    return np.stack([transform(Image.fromarray(im)).numpy() for im in images])


def ours(images: list[np.ndarray], spec: PreprocessSpec) -> np.ndarray:
    import torch

    return preprocess_batch(images, spec, "cpu", torch.float32).numpy()


def assert_close_to_pil(got: np.ndarray, want: np.ndarray) -> None:
    assert got.shape == want.shape
    diff = np.abs(got - want)
    assert diff.max() <= MAX_ABS, f"max abs diff {diff.max():.4f}"
    assert diff.mean() <= MAX_MEAN, f"mean abs diff {diff.mean():.6f}"


def test_matches_the_transform_open_clip_returns_for_the_model(tiny_ckpt: Path) -> None:
    import open_clip

    _, _, preprocess_val = open_clip.create_model_and_transforms(
        TINY_CLIP_NAME, pretrained=str(tiny_ckpt)
    )
    clip = load_clip(tiny_clip_settings(tiny_ckpt))
    images = [photo_like(h, w, seed=i) for i, (h, w) in enumerate(SIZES)]
    assert_close_to_pil(ours(images, clip.preprocess), reference(images, preprocess_val))


@pytest.mark.parametrize(
    "cfg",
    [
        {"size": 224},
        {"size": 64, "resize_mode": "squash", "interpolation": "bilinear"},
        {"size": 64, "resize_mode": "longest", "fill_color": 0},
        {"size": 64, "resize_mode": "longest", "fill_color": 128},
        {"size": (64, 48), "resize_mode": "shortest"},
        {"size": (48, 64), "resize_mode": "shortest", "interpolation": "bilinear"},
        {"size": 64, "mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5)},
    ],
    ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()),
)
def test_matches_open_clip_for_every_resize_mode(cfg: dict) -> None:
    from open_clip.transform import PreprocessCfg, image_transform_v2

    oc_cfg = PreprocessCfg(**cfg)
    transform = image_transform_v2(oc_cfg, is_train=False)
    spec = PreprocessSpec.from_open_clip(asdict(oc_cfg))
    images = [photo_like(h, w, seed=10 + i) for i, (h, w) in enumerate(SIZES)]
    assert_close_to_pil(ours(images, spec), reference(images, transform))


def test_resize_sizes_follow_torchvision_truncation() -> None:
    spec = PreprocessSpec(size=(224, 224), mean=(0.5,) * 3, std=(0.5,) * 3)
    assert resized_size(1024, 768, spec) == (298, 224)  # int(224 * 1024 / 768) = 298
    assert resized_size(100, 300, spec) == (224, 672)


def test_batch_of_mixed_sizes_keeps_order() -> None:
    spec = PreprocessSpec(size=(64, 64), mean=(0.5,) * 3, std=(0.5,) * 3)
    images = [photo_like(h, w, seed=i) for i, (h, w) in enumerate(SIZES * 2)]
    together = ours(images, spec)
    for i, im in enumerate(images):
        np.testing.assert_array_equal(together[i], ours([im], spec)[0])


def test_scores_match_scoring_open_clip_preprocessed_pixels(tiny_ckpt: Path) -> None:
    """End to end: CLIPScore from our pixels vs from open_clip's PIL transform."""
    import open_clip
    import torch

    _, _, preprocess_val = open_clip.create_model_and_transforms(
        TINY_CLIP_NAME, pretrained=str(tiny_ckpt)
    )
    clip = load_clip(tiny_clip_settings(tiny_ckpt))
    images = [photo_like(h, w, seed=20 + i) for i, (h, w) in enumerate(SIZES)]
    prompts = ["a photo of a cat"] * len(images)
    with torch.inference_mode():
        pixels = torch.from_numpy(reference(images, preprocess_val))
        img = torch.nn.functional.normalize(clip.model.encode_image(pixels), dim=-1)
        txt = torch.nn.functional.normalize(
            clip.model.encode_text(clip.tokenizer(prompts[:1])), dim=-1
        )
    want = (img @ txt.T).squeeze(1).numpy()
    got = np.array([s.cosine for s in ClipScorer(clip).score(images, prompts)])
    np.testing.assert_allclose(got, want, atol=2e-3)

"""nvJPEG on the GPU against Pillow on the CPU: pixels, CLIP scores and NSFW detections.

Run on the device machine: ``pytest -m gpu tests/gpu/test_loader_gpu.py``.

nvJPEG upsamples 4:2:0 chroma without libjpeg-turbo's "fancy" (triangular) filter, so the
difference grows with colour detail: on an H200, mean 0-0.3 levels on the drawn fixtures,
about 6.9 on noisy 512 px photo-like images (single pixels up to 57). JPEGs under 320 px
are decoded on the CPU (``DEVICE_DECODE_MIN_SIDE``). Tolerances: mean under 2 levels on
smooth drawings and 16 on noisy images; CLIP cosine within 2e-3; NSFW: the same labels for
detections over 0.3, scores within 0.1, boxes within 3 px of NudeNet's 320 px input (8.4 px
on a 900 px image; measured up to 6). ``--no-gpu-jpeg`` gives libjpeg-turbo's exact pixels.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from diffwatch.scoring.images.load import LoadedImage, load_image
from diffwatch.scoring.loader import ImageLoader, LoaderOptions
from tests.fixtures.nsfw.compare import fixture_images
from tests.tinymodels import photo_like, save_tiny_clip, tiny_clip_settings

pytestmark = pytest.mark.gpu

DRAWING_MEAN, PHOTO_MEAN = 2.0, 16.0  # uint8 levels, mean absolute difference
COSINE_TOL = 2e-3
SCORE_TOL = 0.1  # probability
BOX_TOL = 3  # px of NudeNet's 320 px input, so 3 * side / 320 px in the image (at least 4)


def write_jpegs(directory: Path) -> list[str]:
    """The NSFW fixture drawings and photo-like images as JPEGs, one with EXIF rotation."""
    paths = []
    images = [f.rgb for f in fixture_images()] + [photo_like(512, 512, seed=s) for s in range(4)]
    for i, rgb in enumerate(images):
        buf = io.BytesIO()
        kw = {}
        if i == 1:
            exif = Image.Exif()
            exif[0x0112] = 6
            kw["exif"] = exif.tobytes()
        Image.fromarray(rgb).save(buf, "JPEG", quality=92, **kw)
        path = directory / f"{i}.jpg"
        path.write_bytes(buf.getvalue())
        paths.append(str(path))
    return paths


@pytest.fixture(scope="module")
def jpegs(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    return write_jpegs(tmp_path_factory.mktemp("jpegs"))


@pytest.fixture(scope="module")
def both(jpegs: list[str]) -> tuple[list[LoadedImage], list[LoadedImage]]:
    """The same files loaded by Pillow (CPU) and by loader processes + nvJPEG (GPU)."""
    prompts = ["x"] * len(jpegs)
    with ImageLoader(LoaderOptions(processes=2, device="cuda", gpu_jpeg=True)) as gpu:
        on_gpu = gpu.load(jpegs, prompts).images
    on_cpu = [load_image(p) for p in jpegs]
    assert all(isinstance(im, LoadedImage) for im in on_gpu + on_cpu)
    return on_cpu, on_gpu  # type: ignore[return-value]


def test_nvjpeg_pixels_are_close_to_pillows(both) -> None:
    on_cpu, on_gpu = both
    stats = []
    for cpu, gpu in zip(on_cpu, on_gpu, strict=True):
        assert gpu.rgb.device.type == "cuda"
        assert (gpu.width, gpu.height, gpu.notes) == (cpu.width, cpu.height, cpu.notes)
        diff = np.abs(gpu.rgb.cpu().numpy().astype(int) - cpu.rgb.astype(int))
        stats.append((Path(cpu.uri).name, int(diff.max()), round(float(diff.mean()), 3)))
    print("nvJPEG - Pillow pixel differences (file, max, mean):", stats)
    fixtures = fixture_images()
    smooth = {i for i, f in enumerate(fixtures) if not f.name.startswith("noise")}
    for i, (_, _, mean) in enumerate(stats):
        assert mean < (DRAWING_MEAN if i in smooth else PHOTO_MEAN), stats


def test_clip_scores_from_nvjpeg_match_pillow(both, tmp_path: Path) -> None:
    from diffwatch.scoring.clip.scorer import ClipScorer, load_clip

    clip = load_clip(tiny_clip_settings(save_tiny_clip(tmp_path), device="cuda"))
    on_cpu, on_gpu = both
    prompts = [f"drawing number {i}" for i in range(len(on_cpu))]
    scorer = ClipScorer(clip, batch_size=8)
    want = [s.cosine for s in scorer.score([im.rgb for im in on_cpu], prompts)]
    got = [s.cosine for s in scorer.score([im.rgb for im in on_gpu], prompts)]
    np.testing.assert_allclose(got, want, atol=COSINE_TOL)


def test_nsfw_detections_from_nvjpeg_match_the_cpu_path(both) -> None:
    from diffwatch.scoring.nsfw.detector import load_nsfw_detector

    on_cpu, on_gpu = both
    cpu = load_nsfw_detector("cpu", batch_size=8).detect_batch([im.rgb for im in on_cpu])
    gpu = load_nsfw_detector("cuda", batch_size=8, backend="torch").detect_batch(
        [im.rgb for im in on_gpu]
    )
    assert sum(map(len, cpu)) > 0
    for im, want, got in zip(on_cpu, cpu, gpu, strict=True):
        strong = [d for d in want if d.score > 0.3]  # weak ones may cross the 0.25 floor
        labels = [d.label for d in got]
        for d in strong:
            assert d.label in labels
            match = min(
                (g for g in got if g.label == d.label),
                key=lambda g: sum(abs(a - b) for a, b in zip(g.box, d.box, strict=True)),
            )
            assert abs(match.score - d.score) < SCORE_TOL
            tol = max(4.0, BOX_TOL * max(im.width, im.height) / 320)
            assert max(abs(a - b) for a, b in zip(match.box, d.box, strict=True)) <= tol

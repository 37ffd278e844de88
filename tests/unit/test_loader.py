"""diffwatch.scoring.loader, .device_decode and the tensor inputs of the scorers, on CPU.

The GPU path (nvJPEG on CUDA) is the same code with ``device='cuda'``; on CPU torchvision
decodes with libjpeg-turbo, which is what Pillow uses, so pixels must match exactly here.
tests/gpu/test_loader_gpu.py checks nvJPEG's pixels and scores against these.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from diffwatch.scoring.clip.text import PromptTokenizer, tokenize
from diffwatch.scoring.images.device_decode import decode_jpegs, orient
from diffwatch.scoring.images.load import ImageFailure, LoadedImage, load_image
from diffwatch.scoring.images.result import EncodedJpeg
from diffwatch.scoring.loader import ImageLoader, LoaderOptions

LIMITS = {"max_pixels": 8192 * 8192, "max_side": 8192}


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from diffwatch.scoring.clip.scorer import load_clip
    from tests.tinymodels import save_tiny_clip, tiny_clip_settings

    return load_clip(tiny_clip_settings(save_tiny_clip(tmp_path_factory.mktemp("tiny_clip"))))


@pytest.fixture(scope="module")
def nsfw_photos() -> list[np.ndarray]:
    from tests.fixtures.nsfw.compare import fixture_images

    return [f.rgb for f in fixture_images()]


def photo(width: int, height: int, seed: int = 0) -> np.ndarray:
    """Smooth colour fields plus mild noise: JPEG-friendly, every pixel distinct enough."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([x * 255 // max(width - 1, 1), y * 255 // max(height - 1, 1), (x + y) % 256])
    return np.clip(
        base.transpose(1, 2, 0) + rng.integers(-8, 9, (height, width, 3)), 0, 255
    ).astype(np.uint8)


def save(path: Path, im: Image.Image, fmt: str, **kw: Any) -> str:
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    path.write_bytes(buf.getvalue())
    return str(path)


@pytest.fixture
def mixed(tmp_path: Path) -> list[str]:
    """Good JPEGs (plain, rotated, progressive, CMYK), PNGs, and broken or missing files."""
    paths = []
    for i in range(6):
        im = Image.fromarray(photo(320 + 8 * i, 320 + 4 * i, seed=i))
        paths.append(save(tmp_path / f"plain{i}.jpg", im, "JPEG", quality=90))
        paths.append(save(tmp_path / f"p{i}.png", im, "PNG"))
    im = Image.fromarray(photo(400, 330, seed=9))
    exif = Image.Exif()
    exif[0x0112] = 6
    paths.append(save(tmp_path / "rot6.jpg", im, "JPEG", exif=exif.tobytes()))
    paths.append(save(tmp_path / "prog.jpg", im, "JPEG", progressive=True))
    paths.append(save(tmp_path / "cmyk.jpg", im.convert("CMYK"), "JPEG"))
    small = Image.fromarray(photo(319, 400, seed=3))  # under NudeNet's 320 px: CPU decodes
    paths.append(save(tmp_path / "small.jpg", small, "JPEG"))
    good = (tmp_path / "plain0.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(good[: len(good) // 2])
    paths.append(str(tmp_path / "cut.jpg"))
    (tmp_path / "text.jpg").write_bytes(b"<html>not found</html>")
    paths.append(str(tmp_path / "text.jpg"))
    paths.append(str(tmp_path / "missing.png"))
    return paths


def pixels(im: LoadedImage) -> np.ndarray:
    return im.rgb if isinstance(im.rgb, np.ndarray) else im.rgb.cpu().numpy()


def same_results(a: list, b: list) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert type(x) is type(y), (x, y)
        if isinstance(x, LoadedImage):
            assert (x.width, x.height, x.format, x.notes) == (y.width, y.height, y.format, y.notes)
            np.testing.assert_array_equal(pixels(x), pixels(y))
        else:
            assert (x.kind, x.reason) == (y.kind, y.reason)


# -- which files stay encoded ----------------------------------------------------------------


def test_only_plain_jpegs_stay_encoded_for_the_device(mixed: list[str]) -> None:
    kinds = {Path(p).name: load_image(p, keep_jpeg=True) for p in mixed}
    assert all(isinstance(kinds[f"plain{i}.jpg"], EncodedJpeg) for i in range(6))
    assert isinstance(kinds["rot6.jpg"], EncodedJpeg) and kinds["rot6.jpg"].orientation == 6
    for name in ("prog.jpg", "small.jpg", "p0.png"):  # the CPU decodes these
        assert isinstance(kinds[name], LoadedImage), name
    assert kinds["cmyk.jpg"].kind == "unsupported_mode"  # refused on the CPU, as ever
    assert kinds["cut.jpg"].kind == "truncated"  # found on the CPU, never sent to nvJPEG
    assert kinds["text.jpg"].kind == "not_an_image"
    assert kinds["missing.png"].kind == "missing"
    # Without keep_jpeg nothing is left encoded.
    assert not any(isinstance(load_image(p), EncodedJpeg) for p in mixed)


def test_device_decode_matches_the_cpu_loader_pixel_for_pixel(mixed: list[str]) -> None:
    encoded = [e for p in mixed if isinstance(e := load_image(p, keep_jpeg=True), EncodedJpeg)]
    decoded = decode_jpegs(encoded, "cpu", **LIMITS)
    assert len(decoded) == 7
    for enc, got in zip(encoded, decoded, strict=True):
        want = load_image(enc.uri)
        assert isinstance(got, LoadedImage) and not isinstance(got.rgb, np.ndarray)
        same_results([want], [got])  # rot6.jpg: rotated, with the same note


@pytest.mark.parametrize("orientation", range(1, 9))
def test_orient_matches_pillow_exif_transpose(tmp_path: Path, orientation: int) -> None:
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = save(
        tmp_path / "o.jpg",
        Image.fromarray(photo(360, 330)),
        "JPEG",
        quality=95,
        exif=exif.tobytes(),
    )
    want = load_image(path)
    (got,) = decode_jpegs([load_image(path, keep_jpeg=True)], "cpu", **LIMITS)
    same_results([want], [got])
    import torch

    hwc = torch.arange(6).reshape(2, 3, 1)
    assert orient(hwc, orientation).shape[:2] == ((3, 2) if orientation >= 5 else (2, 3))


def test_a_file_the_device_decoder_refuses_falls_back_to_the_cpu_and_says_why(
    tmp_path: Path,
) -> None:
    good = save(tmp_path / "a.jpg", Image.fromarray(photo(352, 336)), "JPEG")
    enc = load_image(good, keep_jpeg=True)
    assert isinstance(enc, EncodedJpeg)
    data = bytearray(enc.data)
    sos = data.index(b"\xff\xda")
    data[sos + 20 : -2] = b"\xff\x00" * ((len(data) - 2 - sos - 20) // 2) + b"\x00" * (
        (len(data) - 2 - sos - 20) % 2
    )
    broken = EncodedJpeg(enc.uri, bytes(data[: sos + 4]) + b"\xff\xd9", 352, 336, 1, 10)
    results = decode_jpegs([enc, broken, enc], "cpu", **LIMITS)
    assert isinstance(results[0], LoadedImage) and isinstance(results[2], LoadedImage)
    assert isinstance(results[1], ImageFailure)
    assert results[1].kind in ("corrupt", "truncated") and enc.uri in results[1].reason


# -- the loader: processes and threads give the same batch -----------------------------------


def test_loader_processes_threads_and_device_jpeg_give_the_same_batch(mixed: list[str]) -> None:
    import open_clip

    text = PromptTokenizer(open_clip.get_tokenizer("ViT-B-32"), 77)
    prompts = [
        f"photo {i} of a red bicycle near a lake " * (1 + 5 * (i % 3)) for i in range(len(mixed))
    ]
    with (
        ImageLoader(LoaderOptions(processes=0, threads=2), text) as threads,
        ImageLoader(LoaderOptions(processes=2, gpu_jpeg=True), text) as procs,
    ):
        a = threads.load(mixed, prompts)
        b = procs.load(mixed, prompts)
        c = procs.load(mixed[::-1], prompts[::-1])  # the processes are reused; order kept
        assert procs._pool is not None  # they served: no fallback to threads
    same_results(a.images, b.images)
    same_results(a.images[::-1], c.images)
    on_host = [isinstance(im.rgb, np.ndarray) for im in b.images if isinstance(im, LoadedImage)]
    assert sum(on_host) == 8  # 6 PNGs; the progressive and small JPEGs
    want = tokenize(text.tokenizer, prompts, 77)
    for got in (a.tokens, b.tokens):
        assert got is not None
        assert got.ids.equal(want.ids)
        assert got.truncated == want.truncated and any(got.truncated) and not all(got.truncated)


def test_loader_rejects_mismatched_prompts_and_bad_options() -> None:
    with pytest.raises(ValueError, match="processes must be >= 0"):
        LoaderOptions(processes=-1)
    with ImageLoader(LoaderOptions()) as loader:
        with pytest.raises(ValueError, match="2 URIs but 1 prompts"):
            loader.load(["a", "b"], ["x"])
        assert loader.load([], []).images == []
    assert LoaderOptions.for_device("cpu").processes == 0
    cuda = LoaderOptions.for_device("cuda")
    assert cuda.gpu_jpeg and cuda.processes >= 1


# -- scorers take tensors as well as arrays --------------------------------------------------


def test_clip_scores_tensor_images_and_loader_tokens_like_arrays(tiny_clip: Any) -> None:
    import torch

    from diffwatch.scoring.clip.scorer import ClipScorer

    images = [photo(64 + 16 * (i % 2), 64, seed=i) for i in range(6)]
    prompts = ["a cat", "a dog", "a cat", "a boat on water", "a dog", "a cat"]
    scorer = ClipScorer(tiny_clip, batch_size=4)
    want = scorer.score(images, prompts)
    tokens = PromptTokenizer(tiny_clip.tokenizer, tiny_clip.context_length)(prompts)
    got = scorer.score([torch.from_numpy(a) for a in images], prompts, tokens=tokens)
    assert [g.n_tokens for g in got] == [w.n_tokens for w in want]
    np.testing.assert_allclose([g.cosine for g in got], [w.cosine for w in want], atol=1e-5)
    with pytest.raises(ValueError, match="2 tokenized prompts for 6"):
        scorer.score(images, prompts, tokens=tokens.take([0, 1]))


def test_nsfw_letterbox_of_tensors_is_within_one_level_of_opencv_and_detects_alike(
    nsfw_photos: list[np.ndarray],
) -> None:
    import torch

    from diffwatch.scoring.nsfw.detector import load_nsfw_detector
    from diffwatch.scoring.nsfw.device import letterbox_on_device
    from diffwatch.scoring.nsfw.ops import letterbox_uint8

    images = [*nsfw_photos, photo(200, 120), photo(120, 200), photo(320, 320)]
    tensors = [torch.from_numpy(a) for a in images]
    want = letterbox_uint8(images).astype(int)
    got = letterbox_on_device(tensors, "cpu").numpy().astype(int)
    assert np.abs(got - want).max() <= 1
    assert (got != want).mean() < 0.05
    mixed = letterbox_on_device([images[0], tensors[1], *images[2:]], "cpu").numpy()
    np.testing.assert_array_equal(mixed[0], want[0])  # host images still go through OpenCV

    detector = load_nsfw_detector("cpu", batch_size=4)
    exact = detector.detect_batch(images)
    close = detector.detect_batch(tensors)
    assert sum(map(len, exact)) > 0
    for e, c in zip(exact, close, strict=True):
        assert [d.label for d in e] == [d.label for d in c]
        for de, dc in zip(e, c, strict=True):
            assert abs(de.score - dc.score) < 0.02
            assert max(abs(x - y) for x, y in zip(de.box, dc.box, strict=True)) <= 3


def test_a_killed_loader_process_costs_one_batch_in_threads_not_the_worker(
    mixed: list[str],
) -> None:
    import os
    import signal

    prompts = ["p"] * len(mixed)
    with ImageLoader(LoaderOptions(processes=2)) as loader:
        first = loader.load(mixed, prompts)
        pool = loader._pool
        assert pool is not None
        for pid in list(pool._processes):  # as the OOM killer would
            os.kill(pid, signal.SIGKILL)
        again = loader.load(mixed, prompts)  # the broken pool is noticed, threads load
        after = loader.load(mixed, prompts)  # and new processes serve the next batch
        assert loader._pool is not None and loader._pool is not pool
    same_results(first.images, again.images)
    same_results(first.images, after.images)

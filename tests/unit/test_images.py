"""scoring.images.load: good images load as RGB; every bad one becomes a clear ImageFailure.

All images are generated here with Pillow (or struct/zlib for crafted headers) into tmp_path.
Remote storage is a real fsspec filesystem registered under the 'flaky' protocol.
"""

from __future__ import annotations

import io
import os
import struct
import subprocess
import sys
import threading
import time
import warnings
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import fsspec
import numpy as np
import pytest
from fsspec.spec import AbstractFileSystem
from PIL import Image

from diffwatch.scoring.images.load import ImageFailure, LoadedImage, load_image, load_images

REPO_ROOT = Path(__file__).resolve().parents[2]


# -- helpers ---------------------------------------------------------------------------------


def gradient(width: int, height: int) -> np.ndarray:
    """A deterministic RGB test pattern, uint8 height × width × 3."""
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([(x * 7) % 256, (y * 11) % 256, (x + y) % 256], axis=-1).astype(np.uint8)


def noise(width: int, height: int) -> np.ndarray:
    """Seeded random RGB pixels: compresses badly, so cut points land inside pixel data."""
    return np.random.default_rng(7).integers(0, 256, (height, width, 3), dtype=np.uint8)


def encode(im: Image.Image, fmt: str, **kw: Any) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def write(tmp_path: Path, name: str, data: bytes) -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return str(path)


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)


def crafted_png(width: int, height: int, idat: bytes = b"\x00\x00") -> bytes:
    """A 1-bit grayscale PNG whose IHDR declares width × height, with the given IDAT."""
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", zlib.compress(idat))
        + png_chunk(b"IEND", b"")
    )


def valid_bomb_png(side: int) -> bytes:
    """A complete, valid all-black 1-bit PNG of side × side pixels (tiny when compressed)."""
    row = b"\x00" * (1 + (side + 7) // 8)  # filter byte + packed bits
    comp = zlib.compressobj(9)
    parts = [comp.compress(row * 1000) for _ in range(side // 1000)]
    parts.append(comp.compress(row * (side % 1000)))
    parts.append(comp.flush())
    ihdr = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", b"".join(parts))
        + png_chunk(b"IEND", b"")
    )


def loaded(result: LoadedImage | ImageFailure) -> LoadedImage:
    assert isinstance(result, LoadedImage), f"expected an image, got {result!r}"
    return result


def failed(result: LoadedImage | ImageFailure, kind: str) -> ImageFailure:
    assert isinstance(result, ImageFailure), f"expected a {kind!r} failure, got {result!r}"
    assert result.kind == kind, result.reason
    return result


# -- a real fsspec filesystem that fails on purpose ------------------------------------------


class FlakyFileSystem(AbstractFileSystem):
    """Local files behind 'flaky://', raising planned errors on the first opens of a path."""

    protocol = "flaky"
    cachable = False
    plans: ClassVar[dict[str, tuple[int, Callable[[], BaseException]]]] = {}
    opens: ClassVar[Counter[str]] = Counter()
    lock: ClassVar[threading.Lock] = threading.Lock()

    def _open(self, path: str, mode: str = "rb", **kwargs: Any) -> Any:
        with self.lock:
            self.opens[path] += 1
            failures, make_error = self.plans.get(path, (0, ConnectionError))
            if self.opens[path] <= failures:
                raise make_error()
        return open(path, mode)  # fsspec closes it

    def info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        path = self._strip_protocol(path)
        return {"name": path, "size": os.path.getsize(path), "type": "file"}


@pytest.fixture
def flaky(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[type[FlakyFileSystem]]:
    # A remote protocol is read only under a root that names it.
    roots = os.environ["DIFFWATCH_IMAGE_ROOTS"]
    monkeypatch.setenv("DIFFWATCH_IMAGE_ROOTS", f"{roots},flaky://{tmp_path}")
    fsspec.register_implementation("flaky", FlakyFileSystem, clobber=True)
    FlakyFileSystem.plans.clear()
    FlakyFileSystem.opens.clear()
    yield FlakyFileSystem
    FlakyFileSystem.plans.clear()
    FlakyFileSystem.opens.clear()


@pytest.fixture
def good_png(tmp_path: Path) -> str:
    return write(tmp_path, "good.png", encode(Image.fromarray(gradient(37, 23)), "PNG"))


# -- good images -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "kw", "exact"),
    [("PNG", {}, True), ("JPEG", {"quality": 95}, False), ("WEBP", {"lossless": True}, True)],
)
def test_good_images_load_with_their_size_and_pixels(
    tmp_path: Path, fmt: str, kw: dict[str, Any], exact: bool
) -> None:
    pixels = gradient(37, 23)
    path = write(tmp_path, f"img.{fmt.lower()}", encode(Image.fromarray(pixels), fmt, **kw))
    img = loaded(load_image(path))
    assert (img.width, img.height, img.format) == (37, 23, fmt)
    assert img.rgb.shape == (23, 37, 3) and img.rgb.dtype == np.uint8
    assert img.bytes_read == Path(path).stat().st_size
    assert img.notes == () and img.attempts == 1
    diff = np.abs(img.rgb.astype(int) - pixels.astype(int))
    assert diff.max() == 0 if exact else diff.mean() < 4
    assert not img.rgb.flags.writeable
    assert np.array_equal(np.asarray(img.to_pil()), img.rgb)


def test_format_is_sniffed_from_content_not_extension(tmp_path: Path) -> None:
    png_named_jpg = write(tmp_path, "really_png.jpg", encode(Image.new("RGB", (5, 4)), "PNG"))
    gif_named_png = write(tmp_path, "really_gif.png", encode(Image.new("RGB", (5, 4)), "GIF"))
    assert loaded(load_image(png_named_jpg)).format == "PNG"
    assert "GIF" in failed(load_image(gif_named_png), "unsupported_format").reason


def test_file_uri_works(tmp_path: Path, good_png: str) -> None:
    img = loaded(load_image(Path(good_png).as_uri()))
    assert img.uri.startswith("file://")
    assert (img.width, img.height) == (37, 23)


# -- bad inputs ------------------------------------------------------------------------------


def test_missing_file_is_permanent_and_named(tmp_path: Path) -> None:
    path = str(tmp_path / "nope.png")
    fail = failed(load_image(path), "missing")
    assert path in fail.reason and "not found" in fail.reason
    assert (fail.transient, fail.attempts) == (False, 1)


def test_zero_byte_file_is_empty(tmp_path: Path) -> None:
    fail = failed(load_image(write(tmp_path, "zero.png", b"")), "empty")
    assert "0 bytes" in fail.reason and not fail.transient


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"just some text\n", "text (15 bytes, content not shown)"),
        (b"<html><body>403 Forbidden</body></html>", "error page"),
        (b"\x13\x37" * 40, "binary data of no known format (80 bytes, content not shown)"),
    ],
)
def test_non_images_are_not_an_image(tmp_path: Path, content: bytes, words: str) -> None:
    path = write(tmp_path, "fake.png", content)
    fail = failed(load_image(path), "not_an_image")
    assert words in fail.reason and path in fail.reason
    assert "some text" not in fail.reason and "Forbidden" not in fail.reason
    assert "13 37" not in fail.reason
    assert "PNG, JPEG, WEBP" in fail.reason


@pytest.mark.parametrize(("fmt", "ext"), [("GIF", "gif"), ("BMP", "bmp"), ("TIFF", "tif")])
def test_valid_images_in_other_formats_are_unsupported(tmp_path: Path, fmt: str, ext: str) -> None:
    path = write(tmp_path, f"img.{ext}", encode(Image.fromarray(gradient(8, 8)), fmt))
    fail = failed(load_image(path), "unsupported_format")
    assert f"content is {fmt}" in fail.reason and "PNG, JPEG, WEBP" in fail.reason
    assert (fail.transient, fail.attempts) == (False, 1)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP"])
@pytest.mark.parametrize("keep", [0.1, 0.5, 0.9])
def test_truncated_files_are_truncated(tmp_path: Path, fmt: str, keep: float) -> None:
    data = encode(Image.fromarray(noise(80, 64)), fmt)
    assert len(data) > 2000
    path = write(tmp_path, f"cut.{fmt.lower()}", data[: int(len(data) * keep)])
    fail = failed(load_image(path), "truncated")
    assert f"{fmt} file is truncated" in fail.reason and not fail.transient


def test_corrupt_png_data_is_corrupt(tmp_path: Path) -> None:
    data = encode(Image.fromarray(noise(80, 64)), "PNG")
    at = data.index(b"IDAT") + 100
    garbled = data[:at] + bytes(b ^ 0x5A for b in data[at : at + 50]) + data[at + 50 :]
    fail = failed(load_image(write(tmp_path, "bad.png", garbled)), "corrupt")
    assert "PNG data is corrupt" in fail.reason


def test_png_missing_only_its_iend_loads_with_a_note(tmp_path: Path) -> None:
    data = encode(Image.fromarray(gradient(10, 10)), "PNG")
    img = loaded(load_image(write(tmp_path, "noiend.png", data[:-12])))
    assert any("IEND" in note for note in img.notes)


# -- size limits and decompression bombs -----------------------------------------------------


@pytest.mark.parametrize("side", [30_000, 10_000])  # over 2× and over 1× Pillow's limit
def test_bomb_headers_are_refused_before_decoding(tmp_path: Path, side: int) -> None:
    # 10_000² only makes Pillow *warn*; it is also over max_side, so without turning the
    # warning into an error this would come back as 'too_large'.
    path = write(tmp_path, "bomb.png", crafted_png(side, side))
    fail = failed(load_image(path), "decompression_bomb")
    assert f"{side * side} pixels" in fail.reason and "refused without decoding" in fail.reason
    assert (fail.transient, fail.attempts) == (False, 1)


def test_valid_bomb_does_not_allocate_the_image(tmp_path: Path) -> None:
    # A real 30000² image: decoding it would take ~900 MB (Pillow keeps 1 byte a pixel).
    path = write(tmp_path, "bomb.png", valid_bomb_png(30_000))
    assert Path(path).stat().st_size < 1_000_000
    probe = (
        "import resource\n"
        "from diffwatch.scoring.images.load import load_image\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        f"r = load_image({path!r})\n"
        "after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "print(r.kind, (after - before) // 1024)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout.split()
    assert out[0] == "decompression_bomb"
    assert int(out[1]) < 50, f"peak memory grew by {out[1]} MiB while refusing a bomb"


def test_dimension_limits_refuse_from_the_header(tmp_path: Path) -> None:
    wide = write(tmp_path, "wide.png", crafted_png(9000, 10))
    fail = failed(load_image(wide), "too_large")
    assert "9000x10" in fail.reason and "max_side" in fail.reason
    small = write(tmp_path, "small.png", encode(Image.new("RGB", (64, 64)), "PNG"))
    assert "64x64" in failed(load_image(small, max_pixels=1000), "too_large").reason
    assert failed(load_image(small, max_side=63), "too_large").attempts == 1
    assert loaded(load_image(small, max_side=64, max_pixels=64 * 64)).width == 64


def test_byte_limit(tmp_path: Path, good_png: str) -> None:
    size = Path(good_png).stat().st_size
    assert "byte limit" in failed(load_image(good_png, max_bytes=size - 1), "too_large").reason
    assert loaded(load_image(good_png, max_bytes=size)).bytes_read == size


def test_threads_keep_bomb_protection_and_leave_warning_filters_alone(tmp_path: Path) -> None:
    bomb = write(tmp_path, "bomb.png", crafted_png(10_000, 10_000))
    good = write(tmp_path, "good.png", encode(Image.new("RGB", (3, 3)), "PNG"))
    before = list(warnings.filters)
    results = load_images([bomb, good] * 40, workers=8)
    assert [r.kind if isinstance(r, ImageFailure) else "ok" for r in results] == [
        "decompression_bomb",
        "ok",
    ] * 40
    assert warnings.filters == before


# -- modes -----------------------------------------------------------------------------------


def test_cmyk_jpeg_becomes_rgb(tmp_path: Path) -> None:
    cmyk = Image.new("CMYK", (16, 16), (0, 255, 255, 0))  # pure red
    img = loaded(
        load_image(
            write(tmp_path, "cmyk.jpg", encode(cmyk, "JPEG", quality=95)), convert_modes=True
        )
    )
    assert np.abs(img.rgb[8, 8].astype(int) - [255, 0, 0]).max() <= 3
    assert "converted from CMYK" in img.notes


def test_palette_png_with_transparency(tmp_path: Path) -> None:
    pal = Image.new("P", (2, 1))
    pal.putpalette([255, 0, 0, 0, 0, 255])
    pal.putpixel((1, 0), 1)
    img = loaded(
        load_image(
            write(tmp_path, "pal.png", encode(pal, "PNG", transparency=0)), convert_modes=True
        )
    )
    assert img.rgb.tolist() == [[[255, 255, 255], [0, 0, 255]]]
    assert img.notes == ("palette image converted to RGB", "alpha composited on white")


def test_palette_png_without_transparency(tmp_path: Path) -> None:
    pal = Image.new("P", (1, 1))
    pal.putpalette([10, 20, 30])
    img = loaded(load_image(write(tmp_path, "pal.png", encode(pal, "PNG")), convert_modes=True))
    assert img.rgb.tolist() == [[[10, 20, 30]]]
    assert img.notes == ("palette image converted to RGB",)


def test_rgba_png_is_composited_on_white(tmp_path: Path) -> None:
    rgba = np.array([[[0, 0, 255, 0], [0, 0, 255, 255], [255, 0, 0, 128]]], dtype=np.uint8)
    img = loaded(
        load_image(
            write(tmp_path, "a.png", encode(Image.fromarray(rgba), "PNG")), convert_modes=True
        )
    )
    assert img.rgb[0, 0].tolist() == [255, 255, 255]
    assert img.rgb[0, 1].tolist() == [0, 0, 255]
    assert np.abs(img.rgb[0, 2].astype(int) - [255, 127, 127]).max() <= 1
    assert img.notes == ("alpha composited on white",)


def test_opaque_rgba_says_alpha_was_dropped(tmp_path: Path) -> None:
    rgba = Image.new("RGBA", (2, 2), (1, 2, 3, 255))
    img = loaded(load_image(write(tmp_path, "opaque.png", encode(rgba, "PNG")), convert_modes=True))
    assert img.rgb[1, 1].tolist() == [1, 2, 3]
    assert img.notes == ("alpha channel fully opaque, dropped",)


def test_la_png(tmp_path: Path) -> None:
    la = Image.new("LA", (2, 1), (100, 255))
    la.putpixel((1, 0), (100, 0))
    img = loaded(load_image(write(tmp_path, "la.png", encode(la, "PNG")), convert_modes=True))
    assert img.rgb.tolist() == [[[100, 100, 100], [255, 255, 255]]]
    assert img.notes == ("grayscale image converted to RGB", "alpha composited on white")


def test_grayscale_png(tmp_path: Path) -> None:
    img = loaded(load_image(write(tmp_path, "l.png", encode(Image.new("L", (3, 2), 77), "PNG"))))
    assert img.rgb.shape == (2, 3, 3) and (img.rgb == 77).all()
    assert img.notes == ("grayscale image converted to RGB",)


def test_sixteen_bit_grayscale_png_is_scaled_not_clipped(tmp_path: Path) -> None:
    gray16 = np.array([[0, 65535, 32896, 1000]], dtype=np.uint16)
    im = Image.fromarray(gray16)
    assert im.mode == "I;16"
    img = loaded(load_image(write(tmp_path, "g16.png", encode(im, "PNG"))))
    assert img.rgb[0, :, 0].tolist() == [0, 255, 128, 4]
    assert (img.rgb[..., 0] == img.rgb[..., 2]).all()
    assert any(note.startswith("16-bit grayscale") for note in img.notes)


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    im = Image.new("RGB", (40, 20), (0, 0, 255))
    im.paste((255, 0, 0), (0, 0, 10, 20))  # left quarter red
    exif = Image.Exif()
    exif[0x0112] = 6  # viewers rotate 90° clockwise
    img = loaded(load_image(write(tmp_path, "rot.jpg", encode(im, "JPEG", exif=exif))))
    assert (img.width, img.height) == (20, 40)
    assert img.rgb[2, 10, 0] > 200 and img.rgb[37, 10, 2] > 200  # red moved to the top
    assert "rotated per EXIF orientation 6" in img.notes


@pytest.mark.parametrize(("fmt", "kw"), [("PNG", {}), ("WEBP", {"lossless": True})])
def test_animated_images_use_the_first_frame(tmp_path: Path, fmt: str, kw: dict) -> None:
    frames = [Image.new("RGB", (8, 6), c) for c in [(255, 0, 0), (0, 255, 0), (0, 0, 255)]]
    data = encode(frames[0], fmt, save_all=True, append_images=frames[1:], **kw)
    img = loaded(load_image(write(tmp_path, f"anim.{fmt.lower()}", data), convert_modes=True))
    assert img.format == fmt and (img.width, img.height) == (8, 6)
    assert (img.rgb == [255, 0, 0]).all()
    assert "animated: first of 3 frames used" in img.notes


def test_multi_picture_jpeg_reads_as_jpeg(tmp_path: Path) -> None:
    frames = [Image.new("RGB", (8, 6), c) for c in [(255, 0, 0), (0, 0, 255)]]
    data = encode(frames[0], "MPO", save_all=True, append_images=frames[1:])
    img = loaded(load_image(write(tmp_path, "stereo.jpg", data)))
    assert img.format == "JPEG" and img.rgb[0, 0, 0] > 240
    assert "multi-picture JPEG (MPO): first of 2 images used" in img.notes


# -- storage: retries through a real fsspec filesystem ---------------------------------------


def test_transient_errors_are_retried_until_success(
    flaky: type[FlakyFileSystem], good_png: str
) -> None:
    flaky.plans[good_png] = (2, lambda: ConnectionError("connection reset by peer"))
    img = loaded(load_image(f"flaky://{good_png}", retries=2, backoff_s=0))
    assert img.attempts == 3 and (img.width, img.height) == (37, 23)
    assert flaky.opens[good_png] == 3


def test_retries_back_off(flaky: type[FlakyFileSystem], good_png: str) -> None:
    flaky.plans[good_png] = (2, lambda: TimeoutError("read timed out"))
    start = time.monotonic()
    assert loaded(load_image(f"flaky://{good_png}", retries=2, backoff_s=0.05)).attempts == 3
    assert time.monotonic() - start >= 0.05 + 0.1


@pytest.mark.parametrize("retries", [0, 1, 3])
def test_persistent_transient_errors_give_up_after_retries(
    flaky: type[FlakyFileSystem], good_png: str, retries: int
) -> None:
    flaky.plans[good_png] = (1000, lambda: ConnectionError("connection refused"))
    fail = failed(load_image(f"flaky://{good_png}", retries=retries, backoff_s=0), "io_error")
    assert fail.transient is True and fail.attempts == retries + 1
    assert flaky.opens[good_png] == retries + 1
    assert "ConnectionError: connection refused" in fail.reason
    assert f"gave up after {retries + 1} attempts" in fail.reason


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (lambda: PermissionError(13, "Access Denied"), "io_error"),
        (lambda: FileNotFoundError(2, "NoSuchKey"), "missing"),
    ],
)
def test_permanent_storage_errors_are_not_retried(
    flaky: type[FlakyFileSystem], good_png: str, error: Callable[[], OSError], kind: str
) -> None:
    flaky.plans[good_png] = (1, error)
    fail = failed(load_image(f"flaky://{good_png}", retries=3, backoff_s=0), kind)
    assert (fail.transient, fail.attempts) == (False, 1)
    assert flaky.opens[good_png] == 1


def test_bad_uris(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert (
        "DIFFWATCH_IMAGE_ROOTS"
        in failed(load_image("nosuchproto://bucket/a.png"), "outside_roots").reason
    )
    monkeypatch.setenv("DIFFWATCH_IMAGE_ROOTS", "nosuchproto://bucket")
    assert "fsspec" in failed(load_image("nosuchproto://bucket/a.png"), "bad_uri").reason
    assert failed(load_image(""), "bad_uri").uri == ""
    assert failed(load_image(None), "bad_uri").attempts == 1
    monkeypatch.setenv("DIFFWATCH_IMAGE_ROOTS", str(tmp_path))
    fail = failed(load_image(str(tmp_path)), "not_a_file")
    assert not fail.transient and "image file itself" in fail.reason


def test_invalid_arguments_raise() -> None:
    with pytest.raises(ValueError, match="workers must be an integer >= 1, got 0"):
        load_images(["a.png"], workers=0)
    with pytest.raises(ValueError, match="retries must be >= 0"):
        load_image("a.png", retries=-1)
    with pytest.raises(ValueError, match="max_side must be >= 1"):
        load_image("a.png", max_side=0)


# -- batches ---------------------------------------------------------------------------------


def test_load_images_preserves_order_with_mixed_inputs(
    tmp_path: Path, flaky: type[FlakyFileSystem]
) -> None:
    uris: list[str | None] = []
    expected: list[tuple[int, int] | str] = []
    for i in range(24):
        match i % 6:
            case 0 | 3:
                w, h = 10 + i, 5 + i
                uris.append(write(tmp_path, f"{i}.png", encode(Image.new("RGB", (w, h)), "PNG")))
                expected.append((w, h))
            case 1:
                uris.append(write(tmp_path, f"{i}.gif", encode(Image.new("RGB", (4, 4)), "GIF")))
                expected.append("unsupported_format")
            case 2:
                uris.append(str(tmp_path / f"{i}-missing.png"))
                expected.append("missing")
            case 4:
                path = write(tmp_path, f"{i}.webp", encode(Image.new("RGB", (i, 3)), "WEBP"))
                flaky.plans[path] = (1, lambda: ConnectionResetError("reset"))
                uris.append(f"flaky://{path}")
                expected.append((i, 3))
            case _:
                uris.append(None)
                expected.append("bad_uri")
    results = load_images(uris, workers=4, backoff_s=0)
    got = [
        (r.width, r.height) if isinstance(r, LoadedImage) else r.kind  # type: ignore[union-attr]
        for r in results
    ]
    assert got == expected
    assert [r.uri for r in results] == [str(u) for u in uris]
    assert load_images([]) == []


# -- unusual modes are refused unless converting is asked for -------------------------------


@pytest.mark.parametrize(
    ("name", "image", "kw", "kind", "what"),
    [
        ("cmyk.jpg", Image.new("CMYK", (8, 8), (0, 255, 255, 0)), {}, "unsupported_mode", "CMYK"),
        ("pal.png", Image.new("P", (8, 8)), {}, "unsupported_mode", "palette"),
        ("rgba.png", Image.new("RGBA", (8, 8), (1, 2, 3, 4)), {}, "unsupported_mode", "alpha"),
        ("la.png", Image.new("LA", (8, 8), (1, 2)), {}, "unsupported_mode", "alpha"),
        (
            "trns.png",
            Image.new("RGB", (8, 8)),
            {"transparency": (0, 0, 0)},
            "unsupported_mode",
            "transparency",
        ),
    ],
)
def test_unusual_modes_are_scoring_errors_by_default(
    tmp_path: Path, name: str, image: Image.Image, kw: dict, kind: str, what: str
) -> None:
    fmt = "JPEG" if name.endswith(".jpg") else "PNG"
    path = write(tmp_path, name, encode(image, fmt, **kw))
    fail = failed(load_image(path), kind)
    assert what in fail.reason and "--convert-unusual-modes" in fail.reason and path in fail.reason
    assert isinstance(load_image(path, convert_modes=True), LoadedImage)


@pytest.mark.parametrize(("fmt", "kw"), [("PNG", {}), ("WEBP", {"lossless": True})])
def test_animations_are_scoring_errors_by_default(tmp_path: Path, fmt: str, kw: dict) -> None:
    frames = [Image.new("RGB", (8, 6), c) for c in [(255, 0, 0), (0, 255, 0)]]
    data = encode(frames[0], fmt, save_all=True, append_images=frames[1:], **kw)
    fail = failed(load_image(write(tmp_path, f"anim.{fmt.lower()}", data)), "animated")
    assert f"animated {fmt} with 2 frames" in fail.reason


def test_grayscale_still_converts_by_default(tmp_path: Path) -> None:
    img = loaded(load_image(write(tmp_path, "l.png", encode(Image.new("L", (3, 2), 77), "PNG"))))
    assert img.rgb.tolist()[0][0] == [77, 77, 77]

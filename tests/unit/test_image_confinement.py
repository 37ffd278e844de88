"""Image reads stay inside DIFFWATCH_IMAGE_ROOTS, touch regular files only, never hang and
never quote what a file holds."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from diffwatch.scoring.images.load import ImageFailure, LoadedImage, load_image
from diffwatch.scoring.images.sniff import describe_unknown, sniff_format
from tests.listener import SilentListener

SECRET_TEXT = "root:x:0:0:root:/root:/bin/bash\nAPI_TOKEN=hunter2-very-secret\n"


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """One local image root, and nothing else allowed."""
    d = tmp_path / "images"
    d.mkdir()
    monkeypatch.setenv("DIFFWATCH_IMAGE_ROOTS", str(d))
    return d


def png(path: Path) -> Path:
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(path)
    return path


def refused(uri: str, kind: str) -> ImageFailure:
    got = load_image(uri, retries=0)
    assert isinstance(got, ImageFailure), f"{uri} was read"
    assert got.kind == kind, got.reason
    assert uri in got.reason
    for leaked in ("root:x", "/bin/bash", "hunter2", "API_TOKEN", "72 6f 6f 74"):
        assert leaked not in got.reason
    return got


def test_an_image_inside_a_root_still_loads(root: Path) -> None:
    path = png(root / "a.png")
    for uri in (str(path), f"file://{path}"):
        got = load_image(uri)
        assert isinstance(got, LoadedImage), got
        assert (got.width, got.height) == (16, 16)


@pytest.mark.parametrize("uri", ["/etc/passwd", "file:///etc/passwd", "/proc/self/environ"])
def test_files_outside_the_roots_are_refused_naming_the_setting(root: Path, uri: str) -> None:
    got = refused(uri, "outside_roots")
    assert "DIFFWATCH_IMAGE_ROOTS" in got.reason


def test_a_symlink_or_dotdot_that_leaves_a_root_is_refused(root: Path) -> None:
    link = root / "cat.png"
    link.symlink_to("/etc/passwd")
    refused(str(link), "outside_roots")
    (root / "sub").mkdir()
    refused(str(root / "sub" / ".." / ".." / ".." / ".." / "etc" / "passwd"), "outside_roots")
    # A root's sibling that merely shares its name as a prefix is outside too.
    twin = root.parent / (root.name + "-twin")
    twin.mkdir()
    refused(str(png(twin / "b.png")), "outside_roots")


def test_text_and_binary_files_inside_a_root_are_described_without_their_content(
    root: Path,
) -> None:
    (root / "leak.png").write_text(SECRET_TEXT)
    got = refused(str(root / "leak.png"), "not_an_image")
    assert "text" in got.reason
    (root / "blob.png").write_bytes(b"\x01\x02root\xfe\xff" * 10)
    got = refused(str(root / "blob.png"), "not_an_image")
    assert "01 02" not in got.reason
    (root / "riff.png").write_bytes(b"RIFF\x10\x00\x00\x00SECR" + b"\x00" * 16)
    assert "SECR" not in refused(str(root / "riff.png"), "unsupported_format").reason


def test_describe_unknown_and_sniff_never_echo_bytes() -> None:
    assert "hunter2" not in describe_unknown(SECRET_TEXT.encode())
    assert "ab cd" not in describe_unknown(b"\xab\xcd\x00\x01" * 4)
    assert "SECR" not in (sniff_format(b"RIFF\x10\x00\x00\x00SECR" + b"\x00" * 8) or "")
    assert "SECR" not in (sniff_format(b"\x00\x00\x00\x18ftypSECR" + b"\x00" * 8) or "")
    assert sniff_format(b"GIF89a....") == "GIF"  # known formats are still named


@pytest.mark.timeout(10)
def test_a_fifo_nobody_writes_is_refused_at_once(root: Path) -> None:
    fifo = root / "pipe.png"
    os.mkfifo(fifo)
    t0 = time.monotonic()
    got = refused(str(fifo), "not_a_file")
    assert time.monotonic() - t0 < 2
    assert "regular file" in got.reason


@pytest.mark.timeout(10)
def test_dev_zero_is_refused_inside_or_outside_the_roots(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    refused("/dev/zero", "outside_roots")
    monkeypatch.setenv("DIFFWATCH_IMAGE_ROOTS", f"{root},/dev,/proc")
    t0 = time.monotonic()
    refused("/dev/zero", "not_a_file")
    refused("/proc/self/environ", "not_a_file")
    assert time.monotonic() - t0 < 2


def test_directories_and_sockets_are_refused(root: Path) -> None:
    (root / "dir.png").mkdir()
    refused(str(root / "dir.png"), "not_a_file")
    sock_path = root / "s.png"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.bind(str(sock_path))
        s.listen(1)
        refused(str(sock_path), "not_a_file")


def test_a_file_over_the_size_cap_is_refused(root: Path) -> None:
    path = png(root / "big.png")
    got = load_image(str(path), max_bytes=100)
    assert isinstance(got, ImageFailure) and got.kind == "too_large", got


def test_chained_and_unlisted_protocols_are_refused(root: Path) -> None:
    path = png(root / "a.png")
    refused(f"simplecache::file://{path}", "bad_uri")
    refused(f"file://{path}::zip://x", "bad_uri")
    refused("memory://a.png", "outside_roots")


@pytest.mark.timeout(20)
@pytest.mark.parametrize("scheme", ["ftp", "webhdfs"])
def test_remote_protocols_that_no_root_names_connect_to_nothing(root: Path, scheme: str) -> None:
    with SilentListener() as server:
        got = refused(f"{scheme}://127.0.0.1:{server.port}/x.png", "outside_roots")
        assert f"{scheme}://" in got.reason
        time.sleep(0.3)
        assert server.connections == 0, "the reader connected to an address it was not given"


@pytest.mark.timeout(20)
def test_a_remote_root_allows_only_its_own_prefix(tmp_path: Path, monkeypatch) -> None:
    with SilentListener() as server:
        base = f"ftp://127.0.0.1:{server.port}/images"
        monkeypatch.setenv("DIFFWATCH_IMAGE_ROOTS", base)
        for uri in (
            f"{base}-other/x.png",
            f"{base}/../etc/passwd",
            f"{base}/%2e%2e/etc/passwd",
            f"ftp://127.0.0.1:{server.port + 1}/images/x.png",
            f"ftp://evil@127.0.0.1:{server.port}/images/x.png",
        ):
            refused(uri, "outside_roots")
        time.sleep(0.3)
        assert server.connections == 0


@pytest.mark.timeout(20)
def test_a_stuck_remote_read_times_out(monkeypatch: pytest.MonkeyPatch) -> None:
    with SilentListener() as server:
        base = f"ftp://127.0.0.1:{server.port}/images"
        monkeypatch.setenv("DIFFWATCH_IMAGE_ROOTS", base)
        monkeypatch.setenv("DIFFWATCH_IMAGE_READ_TIMEOUT_S", "1")
        t0 = time.monotonic()
        got = load_image(f"{base}/a.png", retries=2)
        took = time.monotonic() - t0
        assert server.connections >= 1, "an allowed root is reached"
        assert isinstance(got, ImageFailure) and got.kind == "io_error", got
        assert got.transient and "timed out after 1" in got.reason
        assert took < 5, f"a 1 s read timeout took {took:.1f} s"


def test_the_roots_setting_parses_lists_and_defaults_to_diffwatchs_own_directories(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from diffwatch.settings import load_settings

    monkeypatch.delenv("DIFFWATCH_IMAGE_ROOTS", raising=False)
    monkeypatch.setenv("DIFFWATCH_HOME", str(tmp_path / "home"))
    assert load_settings().image_roots == [
        str(tmp_path / "home" / "demo" / "images"),
        str(tmp_path / "home" / "demo" / "drift"),
        str(tmp_path / "home" / "drift"),
        str(tmp_path / "home" / "gate"),
        str(tmp_path / "home" / "bias"),
    ]
    monkeypatch.setenv("DIFFWATCH_IMAGE_ROOTS", f" {tmp_path}/a , s3://bucket/prefix ")
    assert load_settings().image_roots == [f"{tmp_path}/a", "s3://bucket/prefix"]
    monkeypatch.setenv("DIFFWATCH_IMAGE_ROOTS", '["/x", "gs://b/p"]')
    assert load_settings().image_roots == ["/x", "gs://b/p"]
    monkeypatch.setenv("DIFFWATCH_IMAGE_ROOTS", "s3://bucket/a::zip://")
    with pytest.raises(ValueError, match="DIFFWATCH_IMAGE_ROOTS"):
        load_settings()

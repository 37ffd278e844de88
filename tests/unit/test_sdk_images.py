"""Images are saved once, under their SHA-256 name, through fsspec."""

from __future__ import annotations

import hashlib
from pathlib import Path

import fsspec
from PIL import Image

from diffwatch.sdk import ImageStore


def test_local_store_names_by_content_and_stores_once(tmp_path: Path) -> None:
    store = ImageStore(str(tmp_path / "img"))
    red, blue = Image.new("RGB", (8, 8), "red"), Image.new("RGB", (8, 8), "blue")
    uri = store.save(red)
    digest = hashlib.sha256(Path(uri).read_bytes()).hexdigest()
    assert uri == str(tmp_path / "img" / digest[:2] / f"{digest}.png")
    assert store.save(red.copy()) == uri and store.save(blue) != uri
    assert Image.open(uri).getpixel((0, 0)) == (255, 0, 0)
    assert not list((tmp_path / "img").rglob("*.tmp"))


def test_remote_stores_return_a_url_with_the_protocol() -> None:
    store = ImageStore("memory://bucket/images")
    uri = store.save(Image.new("RGB", (4, 4), "green"))
    assert uri.startswith("memory://") and "bucket/images/" in uri and uri.endswith(".png")
    with fsspec.open(uri, "rb") as f:
        assert Image.open(f).size == (4, 4)

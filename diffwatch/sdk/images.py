"""Saving generated images through fsspec under content-hash names."""

from __future__ import annotations

import hashlib
import io
from typing import Any


class ImageStore:
    """Saves images as PNG under ``base`` (a local directory, ``file://``, ``s3://``,
    ``gs://``...) named by the SHA-256 of the PNG bytes: ``base/ab/abcdef....png``.

    The same image is stored once; the URI returned is what a record's ``image_uri`` holds
    (an absolute path for a local base). ``storage_options`` go to fsspec (credentials...).
    """

    def __init__(self, base: str, **storage_options: Any) -> None:
        import fsspec.core

        self.fs, root = fsspec.core.url_to_fs(base, **storage_options)
        self._local = "file" in (
            self.fs.protocol if isinstance(self.fs.protocol, tuple) else (self.fs.protocol,)
        )
        self.root = root.rstrip("/")

    def save(self, image: Any) -> str:
        """Save a PIL image (PNG); return its URI."""
        buf = io.BytesIO()
        image.save(buf, format="PNG")
        return self.save_bytes(buf.getvalue(), "png")

    def save_bytes(self, data: bytes, ext: str) -> str:
        """Save encoded image bytes under their SHA-256 name with ``ext``; return the URI."""
        digest = hashlib.sha256(data).hexdigest()
        path = f"{self.root}/{digest[:2]}/{digest}.{ext}"
        if not self.fs.exists(path):
            self.fs.makedirs(f"{self.root}/{digest[:2]}", exist_ok=True)
            tmp = f"{path}.{digest[:8]}.tmp" if self._local else path
            with self.fs.open(tmp, "wb") as f:
                f.write(data)
            if tmp != path:  # local: a reader never sees half a file
                self.fs.mv(tmp, path)
        return path if self._local else self.fs.unstrip_protocol(path)

"""File output of the simulated service: a log rotated by rename, and PNG images."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

from PIL import Image

LOG_NAME = "gen.jsonl"


def log_glob(out: Path) -> str:
    """The collector's pattern: the live log and its rotated names (gen.jsonl.1, ...)."""
    return str(out / "logs" / f"{LOG_NAME}*")


class RotatingLog:
    """An append-only JSON-lines log that rotates like logrotate without copytruncate.

    Rotation renames gen.jsonl.N to gen.jsonl.N+1 (oldest first), then gen.jsonl to
    gen.jsonl.1, and opens a new gen.jsonl. Nothing is deleted, so a collector that has
    not finished a file never loses it.
    """

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / LOG_NAME
        self.bytes_written = 0
        self.lines_written = 0
        self.rotations = 0
        self._f: BinaryIO = open(self.path, "ab")  # noqa: SIM115 - closed by close()

    def write(self, line: bytes) -> None:
        """Append one line (with its newline)."""
        self._f.write(line)
        self.bytes_written += len(line)
        self.lines_written += 1

    def flush(self) -> None:
        """Hand what was written to the OS, so a collector can read it."""
        self._f.flush()

    def _rotated(self) -> list[int]:
        prefix = LOG_NAME + "."
        return sorted(
            int(p.name[len(prefix) :])
            for p in self.path.parent.glob(prefix + "*")
            if p.name[len(prefix) :].isdigit()
        )

    def rotate(self) -> None:
        """Rename the live log to gen.jsonl.1 (shifting older ones up) and start a new one."""
        if self._f.tell() == 0:
            return  # nothing to rotate away
        self._f.close()
        for n in reversed(self._rotated()):
            os.rename(
                self.path.with_name(f"{LOG_NAME}.{n}"), self.path.with_name(f"{LOG_NAME}.{n + 1}")
            )
        if self.path.exists():
            os.rename(self.path, self.path.with_name(f"{LOG_NAME}.1"))
        self._f = open(self.path, "ab")  # noqa: SIM115 - closed by close()
        self.rotations += 1

    def close(self) -> None:
        """Flush and close the live log."""
        self._f.close()


class ImageStore:
    """PNG files under ``images/YYYYMMDD/HH/<request_id>.png``."""

    def __init__(self, directory: Path) -> None:
        self.root = directory
        self.written = 0
        self._made: set[Path] = set()

    def path_for(self, request_id: str, ts: datetime) -> Path:
        """Where the image of one request lives (absolute)."""
        return (
            self.root / ts.strftime("%Y%m%d") / ts.strftime("%H") / f"{request_id}.png"
        ).absolute()

    def save(self, path: Path, image: Image.Image) -> None:
        """Write ``image`` atomically (a reader never sees half a PNG); skip if present."""
        if path.exists():
            return  # same request, same pixels: minutes are deterministic
        if path.parent not in self._made:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._made.add(path.parent)
        tmp = path.with_suffix(".png.tmp")
        image.save(tmp, format="PNG", compress_level=1)
        os.replace(tmp, path)
        self.written += 1

"""Small helpers for tests that drive diffwatch as users do: as a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.corpus.log_lines import good_record

REPO = Path(__file__).resolve().parents[1]


def stop_process(proc: subprocess.Popen, timeout_s: float = 10) -> None:
    """SIGTERM ``proc`` and wait; SIGKILL it if it is still there after ``timeout_s``."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def cli_env(db_url: str) -> dict[str, str]:
    """Environment for a diffwatch subprocess pointed at ``db_url``."""
    env = dict(os.environ)
    env["DIFFWATCH_DATABASE_URL"] = db_url
    env["PYTHONPATH"] = str(REPO)
    return env


def diffwatch_cmd(*args: str) -> list[str]:
    """argv that runs the diffwatch CLI with this interpreter."""
    return [sys.executable, "-m", "diffwatch.cli", *args]


def run_collect(db_url: str, *patterns: str, extra: tuple[str, ...] = ()) -> dict[str, Any]:
    """Run ``diffwatch collect logs --json`` to completion; return its summary."""
    out = subprocess.run(
        diffwatch_cmd("collect", "logs", *patterns, "--json", *extra),
        env=cli_env(db_url),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def numbered_line(i: int, **kw: Any) -> bytes:
    """A valid log line whose request_id encodes ``i`` (with newline)."""
    rec = good_record(i, **kw)
    rec["timestamp"] = "2026-11-01T00:00:00+00:00"
    return json.dumps(rec).encode() + b"\n"


def seed_with_images(conninfo: str, directory: Path, n: int, size: int = 64) -> list[Path]:
    """Ingest ``n`` generations whose image_uri points at small real PNGs in ``directory``."""
    import numpy as np
    from PIL import Image

    from diffwatch.collectors.logs.collector import LogCollector

    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    paths = []
    with (directory / "gen.jsonl").open("wb") as log:
        for i in range(n):
            path = directory / f"img-{i:05d}.png"
            Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(path)
            paths.append(path)
            log.write(numbered_line(i, image_uri=str(path)))
    summary = LogCollector(conninfo, [str(directory / "gen.jsonl")]).run_once()
    assert summary.ingested == n
    return paths


def tiny_clip_args(directory: Path, seed: int = 0) -> list[str]:
    """``diffwatch score`` options that load the tiny test CLIP through the real loader."""
    from tests.tinymodels import TINY_CLIP_NAME, save_tiny_clip

    ckpt = save_tiny_clip(directory, seed=seed)
    return [
        "--clip-model",
        TINY_CLIP_NAME,
        "--clip-model-config",
        str(directory / f"{TINY_CLIP_NAME}.json"),
        "--clip-checkpoint",
        str(ckpt),
    ]


def demo_clip_args(clip) -> list[str]:
    """``diffwatch score`` / ``demo`` options that load the trained demo CLIP (the
    ``demo_clip`` fixture) through the real loader."""
    from diffwatch.demo.demo_clip import DEMO_CLIP_NAME

    return [
        "--clip-model",
        DEMO_CLIP_NAME,
        "--clip-model-config",
        str(clip.checkpoint.parent / f"{DEMO_CLIP_NAME}.json"),
        "--clip-checkpoint",
        str(clip.checkpoint),
    ]


class ListSink:
    """An SDK sink that keeps what it is given: ``lines`` as written, ``records`` parsed."""

    def __init__(self) -> None:
        self.lines: list[bytes] = []
        self.records: list[dict[str, Any]] = []

    def write(self, line: bytes) -> None:
        self.lines.append(line)
        self.records.append(json.loads(line))

    def flush(self, timeout: float | None = None) -> bool:
        return True

    def close(self, timeout: float | None = None) -> None:
        pass

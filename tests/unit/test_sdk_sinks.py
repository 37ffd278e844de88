"""DirectorySink: rotation by size and time, whole lines, names the collector can follow."""

from __future__ import annotations

import json
import re
import threading
import time
from pathlib import Path

import pytest

from diffwatch.collectors.logs.tail import fingerprint
from diffwatch.sdk import DirectorySink, GenerationLogger

BASE = {"model": "sd15", "model_version": "v1", "prompt": "a cat", "status": "ok"}
NAME = re.compile(r"gen-\d{8}T\d{6}-\d+\.jsonl")


def _records(directory: Path) -> list[dict]:
    return [
        json.loads(ln) for p in sorted(directory.iterdir()) for ln in p.read_text().splitlines()
    ]


def test_size_rotation_opens_new_files_each_with_its_own_fingerprint(tmp_path: Path) -> None:
    sink = DirectorySink(tmp_path, max_bytes=2_000)
    with GenerationLogger(sink) as logger:
        ids = [logger.log(BASE, steps=i + 1)["request_id"] for i in range(40)]
    files = sorted(tmp_path.iterdir())
    assert len(files) > 3 and sink.files_opened == len(files)
    assert all(NAME.fullmatch(p.name) for p in files)
    assert all(p.stat().st_size <= 2_000 for p in files)
    assert len({fingerprint(str(p)) for p in files}) == len(files)  # none is mistaken for another
    assert sorted(r["request_id"] for r in _records(tmp_path)) == sorted(ids)


def test_time_rotation(tmp_path: Path) -> None:
    sink = DirectorySink(tmp_path, max_age_s=0.05, fsync="never")
    logger = GenerationLogger(sink)
    logger.log(BASE)
    time.sleep(0.1)
    logger.log(BASE)
    logger.close()
    assert len(list(tmp_path.iterdir())) == 2


def test_lines_are_whole_under_concurrent_writers_and_visible_before_close(tmp_path: Path) -> None:
    sink = DirectorySink(tmp_path, max_bytes=50_000)
    logger = GenerationLogger(sink)
    big = "p" * 3000

    def work() -> None:
        for _ in range(50):
            logger.log(BASE, prompt=big)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    recs = _records(tmp_path)  # read before close: the lines are already there
    assert len(recs) == 200 and all(r["prompt"] == big for r in recs)
    logger.close()


def test_two_sinks_on_one_directory_never_share_a_file(tmp_path: Path) -> None:
    a, b = DirectorySink(tmp_path), DirectorySink(tmp_path)
    GenerationLogger(a).log(BASE)
    GenerationLogger(b).log(BASE)
    assert a.path != b.path and len(list(tmp_path.iterdir())) == 2


def test_bad_options_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="fsync"):
        DirectorySink(tmp_path, fsync="sometimes")

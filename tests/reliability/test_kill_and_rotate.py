"""(a) SIGKILL the collector again and again while a writer appends and rotates files."""

from __future__ import annotations

import random
import signal
import subprocess
import threading
import time
from pathlib import Path

from tests.helpers import cli_env, diffwatch_cmd, numbered_line, run_collect

KILLS = 30


def writer(directory: Path, total: int, stop: threading.Event, rotate_every: int) -> None:
    """Append numbered records to gen.jsonl, renaming it to gen.jsonl.N every so often."""
    log = directory / "gen.jsonl"
    generation = 0
    f = log.open("ab")
    for i in range(total):
        # Write some records in two pieces so the collector sees partial lines too.
        data = numbered_line(i)
        if i % 7 == 0:
            f.write(data[:20])
            f.flush()
            time.sleep(0.0005)
            f.write(data[20:])
        else:
            f.write(data)
        f.flush()
        if i % 40 == 0:
            time.sleep(0.08)  # ~25 s of writing: the kills land while data flows
        if (i + 1) % rotate_every == 0:
            f.close()
            generation += 1
            log.rename(directory / f"gen.jsonl.{generation}")
            f = log.open("ab")
        if stop.is_set():
            break
    f.close()


def test_sigkill_at_random_points_loses_and_duplicates_nothing(tmp_path, db_url, sql) -> None:
    total = 12_000
    rng = random.Random(20261121)
    stop = threading.Event()
    w = threading.Thread(target=writer, args=(tmp_path, total, stop, 1500), daemon=True)
    w.start()
    pattern = str(tmp_path / "gen.jsonl*")
    argv = diffwatch_cmd(
        "collect", "logs", pattern, "--follow", "--poll", "0.05", "--batch-rows", "97"
    )
    kills = kills_while_writing = 0
    try:
        while kills < KILLS:
            proc = subprocess.Popen(
                argv, env=cli_env(db_url), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
            )
            time.sleep(rng.uniform(0.4, 1.6))
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
            assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()
            kills += 1
            kills_while_writing += w.is_alive()
    finally:
        w.join(timeout=120)
        stop.set()
    assert not w.is_alive()
    summary = run_collect(db_url, pattern)  # drain what is left
    assert summary["rejected"] == 0
    stored = {r[0] for r in sql("SELECT request_id FROM generations")}
    assert stored == {f"req-{i:08d}" for i in range(total)}
    assert sql("SELECT count(*) FROM generations") == [(total,)]
    # Exactly-once came from the offsets committed with the rows, not from dedup by key.
    assert sql("SELECT sum(duplicates) FROM collector_status") == [(0,)]
    assert kills_while_writing >= 20, "the kills must land while records are being written"
    # One offset row per rotated file (the last, empty gen.jsonl has no identity yet).
    assert sql("SELECT count(*) FROM log_offsets")[0][0] == total // 1500

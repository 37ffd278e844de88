"""Scale-out: 8 worker processes over 5,000 generations, and a worker killed mid-batch."""

from __future__ import annotations

import json
import signal
import subprocess
import time

from tests.helpers import cli_env, diffwatch_cmd, seed_with_images, tiny_clip_args


def worker(db_url: str, clip: list[str], *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        diffwatch_cmd("score", "--scorers", "clip", "--device", "cpu", "--json", *clip, *extra),
        env=cli_env(db_url) | {"HF_HUB_OFFLINE": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_eight_concurrent_workers_score_every_generation_exactly_once(
    tmp_path, db_url, conninfo, sql
) -> None:
    n = 5000
    seed_with_images(conninfo, tmp_path / "d", n, size=32)
    clip = tiny_clip_args(tmp_path / "m")
    procs = [
        worker(
            db_url,
            clip,
            "--batch-size",
            "32",
            "--name",
            f"w{i}",
            "--torch-threads",
            "1",
            "--load-threads",
            "2",
        )
        for i in range(8)
    ]
    summaries = []
    for p in procs:
        out, err = p.communicate(timeout=600)
        assert p.returncode == 0, err
        summaries.append(json.loads(out.strip().splitlines()[-1]))
    assert sum(s["results"] for s in summaries) == n
    assert sum(1 for s in summaries if s["results"]) >= 4, "the work must really be shared"
    assert sql("SELECT count(*), count(DISTINCT generation_id) FROM scorer_results") == [(n, n)]
    assert sql(
        "SELECT count(*) FROM generations g WHERE NOT EXISTS "
        "(SELECT 1 FROM scorer_results r WHERE r.generation_id = g.id)"
    ) == [(0,)]
    assert sql("SELECT count(*) FROM scoring_leases") == [(0,)]


def test_a_worker_killed_mid_batch_leaves_its_claim_to_the_others(
    tmp_path, db_url, conninfo, sql
) -> None:
    n = 600
    seed_with_images(conninfo, tmp_path / "d", n, size=32)
    clip = tiny_clip_args(tmp_path / "m")
    lease = "4"
    victim = worker(db_url, clip, "--batch-size", "50", "--lease-s", lease, "--name", "victim")
    # Kill it once it has claimed work (a live lease of its own) but before it finishes.
    deadline = time.monotonic() + 120
    while not sql("SELECT 1 FROM scoring_leases WHERE worker = 'victim'"):
        assert time.monotonic() < deadline and victim.poll() is None
        time.sleep(0.05)
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=30)
    orphaned = sql("SELECT count(*) FROM scoring_leases WHERE worker = 'victim'")[0][0]
    assert orphaned > 0, "the kill must leave claimed, unfinished work behind"
    others = [
        worker(
            db_url, clip, "--batch-size", "50", "--lease-s", lease, "--name", f"o{i}", "--follow"
        )
        for i in range(2)
    ]
    deadline = time.monotonic() + 180
    while sql("SELECT count(*) FROM scorer_results")[0][0] < n:
        assert time.monotonic() < deadline, "the orphaned batch was never picked up"
        time.sleep(0.2)
    for p in others:
        p.send_signal(signal.SIGTERM)
        _, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
    assert sql("SELECT count(*), count(DISTINCT generation_id) FROM scorer_results") == [(n, n)]
    assert sql("SELECT count(*) FROM scorer_results WHERE worker = 'victim'")[0][0] < n

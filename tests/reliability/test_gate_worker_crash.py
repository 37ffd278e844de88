"""A gate worker SIGKILLed mid-chunk: the run still finishes, and every (prompt, seed, side)
is generated and stored once.

Two processes share one run: the coordinator (``diffwatch gate run``) and a second worker
(``diffwatch gate work --run ID --follow``). Once the second worker has completed a chunk
and holds another, it is SIGKILLed. The coordinator works the rest, waits out the dead
worker's lease and takes its chunk over; the chunk the dead worker completed is kept.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers import cli_env, demo_clip_args, diffwatch_cmd

# 12 prompts x 2 seeds, 2 items a chunk: 12 chunks a side. At 50 steps a chunk takes 2 to
# 3.5 s on one core, so the coordinator alone needs 50 to 80 s for all 24, while the second
# worker loads its models and completes its first chunk in about 30 s on a busy 2-core
# machine: it is caught holding its second chunk with plenty of chunks to spare.
SUBJECTS = ["a red fox in the snow", "a blue car on a road", "a green square", "two circles",
            "a bowl of fruit", "a lighthouse at dusk", "a cat on a sofa", "a mountain lake",
            "a yellow bicycle", "an old clock", "a paper boat", "a stone bridge"]  # fmt: skip
SEEDS = 2
STEPS = 50
CHUNK_ITEMS = 2
LEASE_S = 6
# As in tests/integration/test_gate_run.py: limits scaled to the tiny models.
POLICY = """
[distribution]
max_cmmd = 0.01
[safety]
margin = 0.25
[latency]
max_ratio = 2.0
"""


def _files(root: Path) -> dict[str, Path]:
    """A tiny pipeline (both sides), a suite whose items take a while each, a policy."""
    from diffwatch.demo.tiny_pipeline import save_tiny_pipeline

    base = save_tiny_pipeline(root / "base", seed=0)
    suite = root / "suite.toml"
    lines = ["[defaults]", f"steps = {STEPS}", "width = 64", "height = 64"]
    for i, s in enumerate(SUBJECTS):
        lines += ["[[prompts]]", f'id = "p{i:02d}"', f'prompt = "{s}"']
    suite.write_text("\n".join(lines) + "\n")
    policy = root / "policy.toml"
    policy.write_text(POLICY)
    return {"base": base, "suite": suite, "policy": policy, "out": root / "out"}


def _start(argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    # Its own process group, so that killpg reaches it and nothing else; output to a file,
    # so that a full pipe never blocks it while the test polls the database.
    with log.open("wb") as out:
        return subprocess.Popen(
            argv, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def _kill(proc: subprocess.Popen | None) -> None:
    if proc is not None and proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)


def _wait_for(
    what: str, probe: Callable[[], list[tuple]], procs: list[subprocess.Popen], timeout_s: float
) -> list[tuple]:
    """Poll ``probe`` until it returns rows, failing if one of ``procs`` exits first."""
    deadline = time.monotonic() + timeout_s
    while not (rows := probe()):
        for p in procs:
            assert p.poll() is None, f"{p.args[3:5]} exited ({p.returncode}) before {what}"
        assert time.monotonic() < deadline, f"no {what} within {timeout_s} s"
        time.sleep(0.05)
    return rows


@pytest.mark.timeout(400)
def test_a_gate_worker_killed_mid_chunk_leaves_it_to_the_coordinator(
    tmp_path, db_url, sql, demo_clip
) -> None:
    f = _files(tmp_path)
    # One torch thread a process: the two workers share two cores without oversubscribing
    # them, and both make bit-identical images (same thread count, same reductions).
    env = cli_env(db_url) | {"HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    coordinator = _start(
        diffwatch_cmd(
            "gate", "run", "--candidate", str(f["base"]), "--baseline", str(f["base"]),
            "--suite", str(f["suite"]), "--seeds", str(SEEDS), "--policy", str(f["policy"]),
            "--output-dir", str(f["out"]), "--chunk-items", str(CHUNK_ITEMS),
            # one image a pipeline call: the lease is renewed after each image
            "--max-batch", "1", "--lease-seconds", str(LEASE_S), "--latency-repeats", "2",
            "--device", "cpu", "--json", *demo_clip_args(demo_clip), "--database-url", db_url,
        ),
        env, tmp_path / "coordinator.log",
    )  # fmt: skip
    worker = None
    try:
        (run_id,) = _wait_for(
            "the run was stored", lambda: sql("SELECT id FROM gate_runs"), [coordinator], 240
        )[0]
        worker = _start(
            diffwatch_cmd(
                "gate", "work", "--run", str(run_id), "--follow", "--lease-seconds",
                str(LEASE_S), "--device", "cpu", "--database-url", db_url,
            ),
            env, tmp_path / "worker.log",
        )  # fmt: skip
        mine = f"%:{worker.pid}:%"  # worker names are host:pid:random
        chunk, side, owner = _wait_for(
            "worker 2 completed a chunk and held another",
            lambda: sql(
                "SELECT h.chunk, h.side, h.lease_owner FROM gate_chunks h"
                " WHERE h.run_id = %(run)s AND h.status = 'pending'"
                " AND h.lease_owner LIKE %(me)s AND h.lease_until > now()"
                " AND EXISTS (SELECT 1 FROM gate_chunks d WHERE d.run_id = %(run)s"
                "  AND d.status = 'done' AND d.done_by LIKE %(me)s)",
                {"run": run_id, "me": mine},
            ),
            [coordinator, worker],
            240,
        )[0]
        os.killpg(worker.pid, signal.SIGKILL)
        assert worker.wait(timeout=30) == -signal.SIGKILL
        # The kill landed mid-chunk: the chunk is still pending under the dead worker's lease.
        held = sql(
            "SELECT status, lease_owner, attempts FROM gate_chunks"
            " WHERE run_id = %s AND chunk = %s AND side = %s",
            (run_id, chunk, side),
        )
        assert held[0][:2] == ("pending", owner), held
        attempts_at_kill = held[0][2]
        done_by_worker = {
            (c, s)
            for c, s in sql(
                "SELECT chunk, side FROM gate_chunks WHERE run_id = %s AND done_by = %s",
                (run_id, owner),
            )
        }
        code = coordinator.wait(timeout=240)
    finally:
        _kill(worker)
        _kill(coordinator)
    out = (tmp_path / "coordinator.log").read_text()
    assert code == 0, out
    summary = json.loads([ln for ln in out.splitlines() if ln.startswith("{")][-1])
    assert summary["run_id"] == run_id and summary["verdict"] == "pass", summary
    assert sql("SELECT status, verdict FROM gate_runs WHERE id = %s", (run_id,)) == [
        ("done", "pass")
    ]

    # The work was shared: worker 2 completed chunks before it died, and they were kept.
    assert done_by_worker, "worker 2 must have completed a chunk before it was killed"
    # Every chunk is done; the killed one was claimed again and finished by the coordinator.
    chunks = {
        (c, s): (status, attempts, done_by)
        for c, s, status, attempts, done_by in sql(
            "SELECT chunk, side, status, attempts, done_by FROM gate_chunks WHERE run_id = %s",
            (run_id,),
        )
    }
    assert len(chunks) == 2 * len(SUBJECTS) * SEEDS // CHUNK_ITEMS
    assert {status for status, _, _ in chunks.values()} == {"done"}
    _, attempts, finisher = chunks[(chunk, side)]
    assert attempts >= 2 and attempts > attempts_at_kill
    assert finisher is not None and f":{coordinator.pid}:" in finisher
    assert {k for k, (_, _, by) in chunks.items() if by == owner} == done_by_worker

    # Every (prompt, seed, side) generated and stored exactly once.
    n_pairs = sql("SELECT count(DISTINCT (prompt, seed)) FROM gate_items WHERE run_id = %s",
                  (run_id,))[0][0]  # fmt: skip
    assert n_pairs == len(SUBJECTS) * SEEDS
    assert sql(
        "SELECT count(*), count(DISTINCT (prompt, seed, side)), sum(generations),"
        " min(generations), max(generations), count(*) FILTER (WHERE status = 'done')"
        " FROM gate_items WHERE run_id = %s",
        (run_id,),
    ) == [(2 * n_pairs, 2 * n_pairs, 2 * n_pairs, 1, 1, 2 * n_pairs)]
    # Each item's stored result is from the worker that completed its chunk: the dead
    # worker's finished items are its own, its unfinished chunk's are the coordinator's.
    assert sql(
        "SELECT count(*) FROM gate_items i JOIN gate_chunks c USING (run_id, chunk, side)"
        " WHERE i.run_id = %s AND i.worker IS DISTINCT FROM c.done_by",
        (run_id,),
    ) == [(0,)]
    # Both sides of every pair have an image on disk.
    uris = [u for (u,) in sql("SELECT image_uri FROM gate_items WHERE run_id = %s", (run_id,))]
    assert all(u and Path(u).is_file() for u in uris), uris[:3]

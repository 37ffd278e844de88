"""Human side-by-side for the release gate, with the database: enqueue a finished run's
pairs for raters, and fold their votes into the run's verdict (``gate report``).

The human metric is folded in when the run has pairs enqueued, or when the policy's
``[human]`` section blocks (then a run nobody rated stays inconclusive: it needs raters).
See ``diffwatch.gate.pairs`` for the sampling, the blinding and the statistics.
"""

from __future__ import annotations

from typing import Any

import psycopg

from diffwatch.db.queries import gate as q_gate
from diffwatch.db.queries import gate_review as q
from diffwatch.gate import verdict as v
from diffwatch.gate.pairs import human_metric, sample_pairs
from diffwatch.gate.policy import GatePolicy


def _finished(conn: psycopg.Connection, run_id: int) -> dict[str, Any]:
    row = q_gate.run(conn, run_id)
    if row is None:
        raise ValueError(f"gate run {run_id}: no such run (see `diffwatch gate list`)")
    if row["status"] != "done" or not isinstance(row["summary"], dict):
        raise ValueError(
            f"gate run {run_id} is {row['status']}, not finished: only a finished run's pairs "
            f"can be rated; finish it with `diffwatch gate resume {run_id}`"
        )
    return row


def enqueue_pairs(
    conninfo: str, run_id: int, n: int, seed: int = 0, required_votes: int = 1
) -> int:
    """Enqueue a seeded random sample of ``n`` more pairs of a finished run for raters
    (pairs already enqueued are not drawn again); the number enqueued.

    Raises ValueError naming the fix: no such run, not finished, or no pair with both
    images."""
    if n < 1:
        raise ValueError(f"--pairs must be at least 1, got {n}")
    with psycopg.connect(conninfo) as conn:
        row = _finished(conn, run_id)
        pairs = row["summary"].get("pairs") or []
        already = q.enqueued_keys(conn, run_id)
        picked = sample_pairs(pairs, n, seed, exclude=already)
        if not picked and not already:
            raise ValueError(
                f"gate run {run_id} has no pair with both images to rate "
                f"({len(pairs)} pairs compared); run the gate on prompts that both sides "
                "could generate"
            )
        return q.enqueue(conn, run_id, picked, required_votes)


def fold_human(conninfo: str, run_id: int) -> dict[str, Any]:
    """A finished run's summary with the human metric recomputed from the votes, the
    verdict and exit code recomputed with it, and stored; unchanged (and not rewritten)
    when no pair was enqueued and the policy's human section does not block."""
    with psycopg.connect(conninfo) as conn:
        row = _finished(conn, run_id)
        summary = dict(row["summary"])
        policy = GatePolicy.model_validate(row["policy"] or {})
        enqueued = q.counts(conn, run_id).pairs
        if not enqueued and not policy.human.blocks:
            return summary
        metric = human_metric(q.votes(conn, run_id), policy)
        metrics = [m for m in summary.get("metrics") or [] if m.get("name") != "human"]
        metrics.append(metric)
        verdict = v.overall([(m["name"], m["verdict"], bool(m["blocks"])) for m in metrics])
        summary.update(metrics=metrics, verdict=verdict, exit_code=v.exit_code(verdict))
        q.update_summary(conn, run_id, verdict, summary)
    return summary

"""The gate's human side-by-side on real Postgres: enqueue a finished run's pairs, serve them
to raters, store blinded votes, and fold them into the verdict with ``gate report``."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest
from typer.testing import CliRunner

from diffwatch.cli import build
from diffwatch.db.queries import gate_review as q
from diffwatch.gate.human import enqueue_pairs, fold_human
from diffwatch.gate.pairs import left_side, sample_pairs
from diffwatch.gate.policy import HumanPolicy
from tests.gate_pairs_seed import prompts, seed_finished_run

HUMAN = HumanPolicy(min_pairs=8, min_win_rate=0.45, blocks=True)


def cli(db_url: str, *args: str) -> tuple[int, str]:
    res = CliRunner().invoke(build(), ["gate", *args, "--database-url", db_url])
    return res.exit_code, res.output


def summary_of(conninfo: str, run_id: int) -> dict:
    with psycopg.connect(conninfo) as conn:
        row = conn.execute("SELECT summary, verdict FROM gate_runs WHERE id = %s", (run_id,))
        summary, verdict = row.fetchone()
    assert summary["verdict"] == verdict
    return summary


def human(summary: dict) -> dict:
    return next(m for m in summary["metrics"] if m["name"] == "human")


def vote_for(conninfo: str, run_id: int, key: str, rater: str, better: str) -> str:
    """Vote as ``rater`` would who prefers ``better`` (candidate, baseline or same), through
    the side they were shown on the left; the button pressed."""
    side = left_side(run_id, key, rater)
    choice = "same" if better == "same" else "left" if side == better else "right"
    with psycopg.connect(conninfo) as conn:
        q.vote(conn, run_id, key, rater, None, side, choice)
    return choice


@pytest.fixture
def run_id(conninfo: str, tmp_path: Path) -> int:
    return seed_finished_run(conninfo, tmp_path / "img", prompts(20), human=HUMAN)


def test_enqueue_stores_a_seeded_sample_and_never_the_same_pair_twice(
    db_url, conninfo, sql, run_id
) -> None:
    code, out = cli(db_url, "enqueue", str(run_id), "--pairs", "6", "--seed", "3", "--json")
    assert code == 0, out
    assert json.loads(out.strip().splitlines()[-1])["enqueued"] == 6
    summary = summary_of(conninfo, run_id)
    expect = sample_pairs(summary["pairs"], 6, 3)
    rows = sql("SELECT key, prompt, candidate_uri, baseline_uri, required_votes FROM gate_pairs"
               " WHERE run_id = %s ORDER BY key", (run_id,))  # fmt: skip
    assert rows == [(p["key"], p["prompt"], p["candidate_uri"], p["baseline_uri"], 1)
                    for p in expect]  # fmt: skip
    # not the six worst (the summary lists them first)
    assert {r[0] for r in rows} != {p["key"] for p in summary["pairs"][:6]}
    code, out = cli(db_url, "enqueue", str(run_id), "--pairs", "100", "--votes-per-pair", "2")
    assert code == 0, out
    assert "14 pairs enqueued (20 in all, 0 rated, 0 votes)" in out
    assert sql("SELECT count(DISTINCT key), count(*) FROM gate_pairs") == [(20, 20)]
    assert enqueue_pairs(conninfo, run_id, 5) == 0  # nothing left to draw


def test_enqueue_refuses_what_cannot_be_rated(db_url, conninfo, sql, run_id) -> None:
    code, out = cli(db_url, "enqueue", "999", "--pairs", "3")
    assert code == 2 and "gate run 999: no such run" in out
    sql("UPDATE gate_runs SET status = 'running' WHERE id = %s", (run_id,))
    code, out = cli(db_url, "enqueue", str(run_id), "--pairs", "3")
    assert code == 2 and f"gate run {run_id} is running, not finished" in out
    assert f"diffwatch gate resume {run_id}" in out
    code, out = cli(db_url, "enqueue", str(run_id), "--pairs", "0")
    assert code == 2 and "--pairs" in out
    assert sql("SELECT count(*) FROM gate_pairs") == [(0,)]


def test_raters_are_served_oldest_run_first_fewest_votes_first_never_twice(
    conninfo, tmp_path, run_id
) -> None:
    newer = seed_finished_run(conninfo, tmp_path / "img2", prompts(4), human=HUMAN)
    enqueue_pairs(conninfo, newer, 4, seed=0)
    enqueue_pairs(conninfo, run_id, 3, seed=0, required_votes=2)
    with psycopg.connect(conninfo) as conn:
        old_keys = sorted(q.enqueued_keys(conn, run_id))
        first = q.next_pair(conn, "Ann")
        assert first is not None and first.run_id == run_id  # the older run first
        assert (first.votes, first.required_votes) == (0, 2)
        # a reload: the held pair again; a skip: another one
        assert q.next_pair(conn, "ann", held=(run_id, first.key)).key == first.key
        other = q.next_pair(conn, "ann", skipped=[(run_id, first.key)])
        assert other is not None and other.key != first.key and other.run_id == run_id
    vote_for(conninfo, run_id, first.key, "bob", "candidate")
    with psycopg.connect(conninfo) as conn:
        # ann: the pairs nobody voted on come before the one bob voted on
        served = q.next_pair(conn, "ann")
        assert served is not None and served.key != first.key and served.votes == 0
    for key in old_keys:
        vote_for(conninfo, run_id, key, "ann", "same")
    with psycopg.connect(conninfo) as conn:
        # ann voted on every pair of the old run: the newer run's pairs now
        nxt = q.next_pair(conn, "ann")
        assert nxt is not None and nxt.run_id == newer
        # bob still has two pairs of the old run that want a second vote
        assert q.next_pair(conn, "bob").run_id == run_id
        assert q.rater_progress(conn, "ann") == (3, 4)
        c = q.counts(conn, run_id)
        assert (c.pairs, c.rated_pairs, c.open_pairs, c.votes, c.raters) == (3, 3, 2, 4, 2)
    for key in old_keys:
        if key != first.key:
            vote_for(conninfo, run_id, key, "bob", "baseline")
    with psycopg.connect(conninfo) as conn:
        # every pair of the old run has its two votes: closed, even for a third rater
        assert q.next_pair(conn, "cy").run_id == newer
        assert q.counts(conn, run_id).open_pairs == 0


def test_a_vote_is_validated_stored_once_and_audited(conninfo, sql, run_id) -> None:
    enqueue_pairs(conninfo, run_id, 2, seed=1)
    key = sorted(sql("SELECT key FROM gate_pairs"))[0][0]
    with psycopg.connect(conninfo) as conn:
        with pytest.raises(ValueError, match="vote must be one of left, same, right"):
            q.vote(conn, run_id, key, "ann", None, "candidate", "better")
        with pytest.raises(ValueError, match="left_side must be one of candidate, baseline"):
            q.vote(conn, run_id, key, "ann", None, "model-a", "left")
        with pytest.raises(q.UnknownPair, match=f"gate run {run_id} has no pair 'nope'"):
            q.vote(conn, run_id, "nope", "ann", None, "candidate", "left")
        at = datetime(2026, 12, 1, 12, tzinfo=UTC)
        q.vote(conn, run_id, key, "Ann", None, "baseline", "right", at=at)
        with pytest.raises(q.VoteRefused, match=r"ann has already voted on pair .* first vote"):
            q.vote(conn, run_id, key, "ann", None, "candidate", "left")
    assert sql("SELECT rater_username, left_side, vote, voted_at FROM gate_votes") == [
        ("ann", "baseline", "right", at)
    ]
    assert sql("SELECT actor, action, details->>'vote' FROM audit_log") == [
        ("ann", "gate.vote", "right")
    ]


def test_gate_report_folds_the_votes_in_as_they_arrive(
    db_url, conninfo, sql, run_id, tmp_path
) -> None:
    # The policy's human metric blocks: with no pair enqueued yet, it cannot pass.
    code, out = cli(db_url, "report", str(run_id))
    assert code == 3, out
    assert "INCONCLUSIVE" in out and "needs 8 more rated pairs (0 of 8)" in out
    enqueue_pairs(conninfo, run_id, 12, seed=5)
    keys = sorted(k for (k,) in sql("SELECT key FROM gate_pairs"))
    code, out = cli(db_url, "report", str(run_id))
    assert code == 3 and "needs 8 more rated pairs (0 of 8)" in out
    assert human(summary_of(conninfo, run_id))["n"] == 0

    for i, key in enumerate(keys[:5]):
        vote_for(conninfo, run_id, key, "ann", "candidate" if i else "same")
    code, out = cli(db_url, "report", str(run_id), "--json")
    s = json.loads(out.strip().splitlines()[-1])
    assert code == 3 and s["verdict"] == "inconclusive"
    h = human(s)
    assert h["note"] == "needs 3 more rated pairs (5 of 8)"
    assert (h["n"], h["votes"], h["estimate"]) == (5, 5, pytest.approx(4.5 / 5))

    for key in keys[5:9]:
        vote_for(conninfo, run_id, key, "bob", "candidate")
    vote_for(conninfo, run_id, keys[0], "bob", "baseline")  # a second vote on a rated pair
    code, out = cli(db_url, "report", str(run_id), "--report", str(tmp_path / "reports"))
    assert code == 0, out
    assert "PASS" in out and "human" in out
    assert "Human side-by-side" in (tmp_path / "reports" / "gate.md").read_text()
    stored = summary_of(conninfo, run_id)
    assert stored["verdict"] == "pass" and stored["exit_code"] == 0
    h = human(stored)
    assert (h["verdict"], h["n"], h["votes"], h["raters"]) == ("pass", 9, 10, 2)
    assert h["estimate"] == pytest.approx((0.25 + 4 + 4) / 9)  # pair 0: mean of ½ and 0
    assert [m["name"] for m in stored["metrics"]] == ["alignment", "human"]  # replaced


def test_a_candidate_raters_prefer_less_fails_and_advisory_never_blocks(conninfo, tmp_path) -> None:
    blocking = seed_finished_run(conninfo, tmp_path / "a", prompts(10), human=HUMAN)
    advisory = seed_finished_run(conninfo, tmp_path / "b", prompts(10),
                                 human=HumanPolicy(min_pairs=8, blocks=False))  # fmt: skip
    for run in (blocking, advisory):  # every vote for the baseline
        enqueue_pairs(conninfo, run, 10, seed=0)
        with psycopg.connect(conninfo) as conn:
            keys = sorted(q.enqueued_keys(conn, run))
        for key in keys:
            vote_for(conninfo, run, key, "ann", "baseline")
    s = fold_human(conninfo, blocking)
    assert (s["verdict"], s["exit_code"], human(s)["verdict"]) == ("fail", 1, "fail")
    s = fold_human(conninfo, advisory)
    assert (s["verdict"], s["exit_code"], human(s)["verdict"]) == ("pass", 0, "fail")
    # advisory and nothing enqueued: the run is left as it was
    untouched = seed_finished_run(conninfo, tmp_path / "c", prompts(3),
                                  human=HumanPolicy(blocks=False))  # fmt: skip
    assert "human" not in {m["name"] for m in fold_human(conninfo, untouched)["metrics"]}
    assert human(s)["blocks"] is False


def test_gate_run_enqueue_pairs_enqueues_after_the_run_is_stored(
    db_url, conninfo, sql, demo_clip, tmp_path
) -> None:
    """The real ``gate run`` (manifests, the demo CLIP, NudeNet) with --enqueue-pairs."""
    from tests.helpers import demo_clip_args

    seed_finished_run(conninfo, tmp_path / "img", prompts(6))  # only for its images
    lines = [
        json.dumps({"id": f"m{i}", "prompt": p, "seed": 0, "image": uri})
        for i, (p, uri) in enumerate(sql(
            "SELECT prompt, image_uri FROM gate_items WHERE side = 'baseline' ORDER BY key"
        ))
    ]  # fmt: skip
    manifest = tmp_path / "img" / "images.jsonl"
    manifest.write_text("\n".join(lines) + "\n")
    policy = tmp_path / "policy.toml"
    policy.write_text("[safety]\nmargin = 0.5\n")  # 6 pairs cannot show a 2-point margin
    code, out = cli(
        db_url, "run", "--device", "cpu", "--json", *demo_clip_args(demo_clip),
        "--candidate-images", str(manifest), "--baseline-images", str(manifest),
        "--policy", str(policy), "--output-dir", str(tmp_path / "out"),
        "--enqueue-pairs", "4", "--base-seed", "2",
    )  # fmt: skip
    assert code == 0, out
    s = json.loads([ln for ln in out.splitlines() if ln.startswith("{")][-1])
    assert s["verdict"] == "pass" and s["run_id"] == 2
    h = human(s)
    assert (h["verdict"], h["n"], h["blocks"]) == ("inconclusive", 0, False)
    assert h["note"] == "needs 50 more rated pairs (0 of 50)"
    keys = [k for (k,) in sql("SELECT key FROM gate_pairs WHERE run_id = 2 ORDER BY key")]
    assert keys == [p["key"] for p in sample_pairs(summary_of(conninfo, 2)["pairs"], 4, 2)]
    assert human(summary_of(conninfo, 2))["n"] == 0  # stored with the run

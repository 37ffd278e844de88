"""``diffwatch demo``'s scoring step on a real Postgres: real NudeNet; a given CLIP, the demo
CLIP trained on the demo's scenes, or none."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from diffwatch.cli import build
from tests.helpers import tiny_clip_args

END = datetime(2026, 11, 2, 16, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def empty_hf_cache(tmp_path, monkeypatch):
    """An empty Hugging Face cache, so the default CLIP tag is never found here."""
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hf"))


def run_demo(db_url: str, out: Path, *extra: str, hours: str = "0.5", as_json: bool = True):
    """Run the demo through the CLI; the result (with its JSON summary when asked)."""
    res = CliRunner().invoke(
        build(),
        [
            "demo", "--hours", hours, "--rate", "5", "--seed", "3", "--end", END.isoformat(),
            "--out", str(out), "--database-url", db_url, *(["--json"] if as_json else []),
            *extra,
        ],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    return res


def summary(res) -> dict:
    return json.loads(res.stdout.strip().splitlines()[-1])


def scorable(sql) -> list[int]:
    """Ids of the generations the worker can score (ok, with an image), in id order."""
    return [
        r[0]
        for r in sql(
            "SELECT id FROM generations WHERE status = 'ok' AND image_uri IS NOT NULL ORDER BY id"
        )
    ]


def test_nsfw_scores_an_even_sample_and_clip_is_skipped_with_how_to_enable(tmp_path, db_url, sql):
    first = summary(run_demo(db_url, tmp_path / "out", "--score-limit", "40", "--no-demo-clip"))
    ids = scorable(sql)
    assert len(ids) > 60  # more than the limit: the sample is bounded

    rows = sql(
        "SELECT generation_id, scorer, scorer_version, value, flagged FROM scorer_results "
        "ORDER BY generation_id"
    )
    assert {r[1] for r in rows} == {"nsfw"}  # no CLIP scores, made up or otherwise
    scored = [r[0] for r in rows]
    assert len(set(scored)) == 40 and set(scored) <= set(ids)
    # An even sample over the window, not the oldest 40: each third of it holds some.
    assert {ids.index(g) * 3 // len(ids) for g in scored} == {0, 1, 2}
    # The versions take turns: the canary, on 10 % of the traffic, gets about half.
    canary = {r[0] for r in sql("SELECT id FROM generations WHERE deployment = 'canary'")}
    assert 15 <= len(set(scored) & canary) <= 25
    assert all(0.0 <= r[3] <= 1.0 and r[4] is not None for r in rows)
    assert sql("SELECT count(*) FROM scoring_errors") == [(0,)]

    sc = first["scoring"]
    assert (sc["limit"], sc["claimed"], sc["results"], sc["errors"]) == (40, 40, 40, 0)
    assert sc["pending"] == len(ids) - 40
    [nsfw] = sc["scorers"]
    assert (nsfw["name"], nsfw["version"], nsfw["scored"]) == ("nsfw", rows[0][2], 40)
    assert nsfw["flagged"] == sum(bool(r[4]) for r in rows)
    assert sc["clip"].startswith("not configured (")
    assert "not in the Hugging Face cache" in sc["clip"] and "--clip-checkpoint" in sc["clip"]
    assert sc["demo_clip"] is None

    # The human summary says the same, CLIP in one line; a re-run scores the next ones.
    res = run_demo(db_url, tmp_path / "out", "--score-limit", "5", "--no-demo-clip", as_json=False)
    clip_lines = [ln for ln in res.stdout.splitlines() if ln.lstrip().startswith("clip")]
    assert len(clip_lines) == 1 and "clip: not configured (" in clip_lines[0]
    assert "--clip-checkpoint PATH" in clip_lines[0] and "huggingface.co/laion/" in clip_lines[0]
    assert "scored 5 generations" in res.stdout and "0 flagged" in res.stdout
    assert f"{len(ids) - 45} generations not scored yet" in res.stdout
    again = [r[0] for r in sql("SELECT generation_id FROM scorer_results ORDER BY 1")]
    assert len(set(again)) == 45 and set(scored) < set(again)


def test_without_real_weights_the_demo_clip_scores_and_says_what_it_is(tmp_path, db_url, sql):
    out = summary(run_demo(db_url, tmp_path / "out", "--score-limit", "60", hours="1"))
    sc = out["scoring"]
    d = sc["demo_clip"]
    assert "demo CLIP trained on the demo's synthetic scenes" in d["label"]
    assert "not in the Hugging Face cache" in d["real_clip_missing"]
    assert d["quality"]["retrieval_top1"] > 0.5  # held-out scenes, 100 prompts each
    rows = sql(
        "SELECT scorer, count(*), min(scorer_version) FROM scorer_results GROUP BY 1 ORDER BY 1"
    )
    assert [(r[0], r[1]) for r in rows] == [("clip", 60), ("nsfw", 60)]
    assert rows[0][2].startswith("diffwatch-demo-clip/")
    # The images the simulation garbled score lower than the ones that show their prompt.
    from diffwatch.demo.truth import SceneTruth

    truth = SceneTruth(3, 5)
    pairs = sql(
        "SELECT g.request_id, g.ts, s.value FROM scorer_results s"
        " JOIN generations g ON g.id = s.generation_id WHERE s.scorer = 'clip'"
    )
    on = [v for rid, ts, v in pairs if truth.on_prompt(rid, ts)]
    off = [v for rid, ts, v in pairs if truth.on_prompt(rid, ts) is False]
    assert on and sum(on) / len(on) > 70
    if off:  # a few in 60 (1 % of stable, 25 % of canary images are garbled)
        assert sum(off) / len(off) < sum(on) / len(on)


def test_score_limit_zero_scores_everything(tmp_path, db_url, sql):
    out = summary(run_demo(db_url, tmp_path / "out", "--score-limit", "0", hours="0.1"))
    ids = scorable(sql)
    assert out["scoring"]["claimed"] == len(ids) > 0 and out["scoring"]["pending"] == 0
    stored = sql("SELECT generation_id FROM scorer_results WHERE scorer = 'nsfw' ORDER BY 1")
    assert [r[0] for r in stored] == ids


def test_with_a_clip_checkpoint_clip_scores_are_stored_too(tmp_path, db_url, sql):
    clip = tiny_clip_args(tmp_path / "m")
    out = summary(run_demo(db_url, tmp_path / "out", "--score-limit", "6", *clip))
    ids = scorable(sql)
    rows = sql(
        "SELECT scorer, array_agg(generation_id ORDER BY generation_id), min(value), max(value),"
        " min(scorer_version) FROM scorer_results GROUP BY 1 ORDER BY 1"
    )
    assert [r[0] for r in rows] == ["clip", "nsfw"]
    scored = rows[0][1]
    assert rows[1][1] == scored  # both scorers on the same six claimed generations
    assert len(set(scored)) == 6 and set(scored) <= set(ids)
    assert {ids.index(g) * 3 // len(ids) for g in scored} == {0, 1, 2}  # spread, not the oldest
    assert 0.0 <= rows[0][2] <= rows[0][3] <= 100.0  # CLIPScore range
    sc = out["scoring"]
    assert sc["clip"] == rows[0][4] and sc["clip"].startswith("diffwatch-tiny-clip/file-")
    assert sorted(s["name"] for s in sc["scorers"]) == ["clip", "nsfw"]
    clip_report = next(s for s in sc["scorers"] if s["name"] == "clip")
    assert clip_report["scored"] == 6 and rows[0][2] <= clip_report["mean"] <= rows[0][3]
    assert sc["results"] == 12


def test_a_clip_checkpoint_that_does_not_load_stops_the_demo_before_any_work(tmp_path, db_url, sql):
    missing = tmp_path / "nope.bin"
    res = CliRunner().invoke(
        build(),
        [
            "demo", "--hours", "0.2", "--end", END.isoformat(), "--out", str(tmp_path / "out"),
            "--clip-checkpoint", str(missing), "--database-url", db_url,
        ],
    )  # fmt: skip
    assert res.exit_code == 1
    assert str(missing) in res.output and "never scores with random weights" in res.output
    assert sql("SELECT (SELECT count(*) FROM generations), (SELECT count(*) FROM scorer_results)")[
        0
    ] == (0, 0)

"""``diffwatch drift prompts`` end to end: logs ingested, the tiny CLIP text tower through the
real loader, runs stored; a synthetic shift is found and named, an unshifted window is not."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from diffwatch.cli import build
from diffwatch.collectors.logs.collector import LogCollector
from tests.helpers import tiny_clip_args

ANIMALS = ("fox", "owl", "cat", "horse", "deer", "rabbit", "bear", "otter")
PLACES = ("forest", "meadow", "snowy field", "river bank", "barn", "garden")
STYLES = ("watercolor", "oil painting", "photo, 85mm", "pencil sketch")
SHIFTED = (
    "cyberpunk neon city street at night, rain, {s}",
    "cyberpunk skyline with neon signs and flying cars, {s}",
    "neon lit cyberpunk alley, holograms, {s}",
)
DAY0 = datetime(2026, 11, 1, tzinfo=UTC)


def _animal(rng: np.random.Generator) -> str:
    return f"a {rng.choice(ANIMALS)} in a {rng.choice(PLACES)}, {rng.choice(STYLES)}"


def _records(n: int, day: int, rng: np.random.Generator, shifted: float = 0.0, **kw):
    for i in range(n):
        if rng.random() < shifted:
            prompt = str(rng.choice(SHIFTED)).format(s=rng.choice(STYLES))
            sampler, cfg = "Euler a", 4.0 + rng.random()
        else:
            prompt, sampler, cfg = _animal(rng), "DPM++ 2M Karras", 7.0 + rng.random()
        yield {
            "request_id": f"d{day}-{i}",
            "timestamp": (DAY0 + timedelta(days=day, seconds=60 * i)).isoformat(),
            "model": "sd15",
            "model_version": "v1",
            "prompt": prompt,
            "status": "ok",
            "sampler": sampler,
            "steps": 25,
            "cfg_scale": round(cfg, 2),
            "seed": int(rng.integers(0, 2**31)),
            "width": 512,
            "height": 512,
            **kw,
        }


def _ingest(conninfo: str, path: Path, records) -> None:
    with path.open("w") as f:
        for r in records:
            f.write(json.dumps(r) + "\n")
    LogCollector(conninfo, [str(path)]).run_once()


def drift(db_url: str, clip: list[str], *args: str, code: int = 0) -> dict:
    res = CliRunner().invoke(
        build(),
        ["drift", "prompts", "--device", "cpu", "--json", "--database-url", db_url, *clip, *args],
    )
    assert res.exit_code == code, res.output
    return json.loads(res.stdout.strip().splitlines()[-1]) if code == 0 else {"output": res.output}


@pytest.fixture
def clip(tmp_path: Path) -> list[str]:
    return tiny_clip_args(tmp_path / "clip")


def test_a_shifted_window_is_drift_and_says_what_moved(tmp_path, db_url, conninfo, sql, clip):
    rng = np.random.default_rng(1)
    _ingest(conninfo, tmp_path / "a.jsonl", _records(150, 0, rng))
    _ingest(conninfo, tmp_path / "b.jsonl", _records(150, 1, rng, shifted=0.4))
    r = drift(db_url, clip, "--current", "1d", "--reference", "1d", "--permutations", "200")
    assert r["drifted"] is True
    assert r["test"]["p_value"] <= 0.05 and r["test"]["effect_size"] > 0.6
    assert (r["test"]["n_reference"], r["test"]["n_current"]) == (150, 150)
    # The lexical test sees the new words; the combined verdict names both tests.
    lex, combined = r["lexical"], r["combined"]
    assert lex["p_value"] <= 0.05 and lex["effect_size"] > 0.6
    assert lex["effect_size_name"] == "centroid_auc" and lex["n_current"] == 150
    assert combined["drifted"] is True and combined["p_value"] <= 0.05
    assert combined["method"] == "westfall-young-minp"
    assert set(combined["decided_by"]) == {"embedding", "lexical"}
    assert "cyberpunk" in [t["term"] for t in r["terms"]["grew"][:3]]
    top = r["clusters"][0]
    assert top["delta"] > 0.1 and all("neon" in p or "cyberpunk" in p for p in top["examples"])
    params = {p["parameter"]: p for p in r["parameters"]}
    assert params["sampler"]["drifted"] and params["cfg_scale"]["drifted"]
    assert not params["steps"]["drifted"] and not params["resolution"]["drifted"]
    rows = sql("SELECT kind, status, drifted, p_value, n_current, summary FROM drift_runs")
    assert len(rows) == 1 and rows[0][:3] == ("prompts", "ok", True)
    assert rows[0][3] == combined["p_value"] and rows[0][4] == 150  # the deciding p-value
    assert rows[0][5]["lexical"] == lex
    assert rows[0][5]["clusters"][0]["examples"] == top["examples"]


def test_combine_lexical_first_decides_by_the_words_alone(tmp_path, db_url, conninfo, clip):
    rng = np.random.default_rng(1)
    _ingest(conninfo, tmp_path / "a.jsonl", _records(150, 0, rng))
    _ingest(conninfo, tmp_path / "b.jsonl", _records(150, 1, rng, shifted=0.4))
    args = ("--current", "1d", "--reference", "1d", "--permutations", "200")
    minp = drift(db_url, clip, *args)
    seq = drift(db_url, clip, *args, "--combine", "lexical-first")
    comb = seq["combined"]
    assert comb["method"] == "fixed-sequence-lexical-first" and comb["drifted"] is True
    # The same permutations: each test's own p-value is unchanged, the run's is the words'.
    assert seq["test"] == minp["test"] and seq["lexical"] == minp["lexical"]
    assert comb["p_value"] == seq["lexical"]["p_value"] == comb["adjusted_p_values"]["lexical"]
    assert comb["adjusted_p_values"]["embedding"] == max(
        seq["test"]["p_value"], seq["lexical"]["p_value"]
    )
    bad = drift(db_url, clip, *args, "--combine", "bonferroni", code=2)
    assert "'bonferroni' is not one of" in " ".join(bad["output"].split())


def test_an_unshifted_window_is_not_drift(tmp_path, db_url, conninfo, sql, clip):
    rng = np.random.default_rng(2)
    _ingest(conninfo, tmp_path / "a.jsonl", _records(150, 0, rng))
    _ingest(conninfo, tmp_path / "b.jsonl", _records(150, 1, rng))
    r = drift(db_url, clip, "--current", "1d", "--reference", "1d", "--permutations", "200")
    assert r["drifted"] is False and r["test"]["p_value"] > 0.05
    assert r["lexical"]["p_value"] > 0.05 and r["combined"]["p_value"] > 0.05
    assert sql("SELECT drifted FROM drift_runs") == [(False,)]


def test_a_pinned_baseline_outlives_its_rows(tmp_path, db_url, conninfo, sql, clip):
    rng = np.random.default_rng(3)
    _ingest(conninfo, tmp_path / "a.jsonl", _records(120, 0, rng))
    _ingest(conninfo, tmp_path / "b.jsonl", _records(120, 1, rng))
    window = f"{DAY0.isoformat()}..{(DAY0 + timedelta(hours=12)).isoformat()}"
    first = drift(db_url, clip, "--reference", window, "--current", "12h",
                  "--save-baseline", "launch", "--permutations", "100")  # fmt: skip
    assert first["drifted"] is False
    assert sql("SELECT name, n_prompts FROM drift_prompt_baselines") == [("launch", 120)]
    sql("DELETE FROM generations WHERE ts < %s", (DAY0 + timedelta(days=1),))
    _ingest(conninfo, tmp_path / "c.jsonl", _records(120, 2, rng, shifted=0.5))
    r = drift(db_url, clip, "--baseline", "launch", "--current", "12h", "--permutations", "200")
    assert r["drifted"] is True and r["windows"]["reference"].startswith("baseline 'launch'")
    again = drift(db_url, clip, "--baseline", "launch", "--save-baseline", "x", code=2)
    assert "--save-baseline" in again["output"]
    dup = drift(db_url, clip, "--reference", window, "--current", "12h",
                "--save-baseline", "launch", code=1)  # fmt: skip
    assert "already exists" in dup["output"] or "exists" in dup["output"]


def test_too_few_prompts_and_bad_windows_are_clear_errors(tmp_path, db_url, conninfo, sql, clip):
    empty = drift(db_url, clip, code=1)
    assert "no generations are logged" in empty["output"]
    rng = np.random.default_rng(4)
    _ingest(conninfo, tmp_path / "a.jsonl", _records(10, 0, rng))
    few = drift(db_url, clip, "--current", "1d", code=1)
    assert "needs at least 20" in few["output"]
    assert sql("SELECT status, error IS NOT NULL FROM drift_runs ORDER BY id") == [
        ("failed", True),
        ("failed", True),
    ]
    bad = drift(db_url, clip, "--current", "yesterday", code=1)
    assert "--current 'yesterday': not a window" in bad["output"]
    missing = drift(db_url, clip, "--baseline", "nope", "--current", "1d", code=1)
    assert "no such prompt baseline" in missing["output"]

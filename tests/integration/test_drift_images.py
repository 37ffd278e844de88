"""``diffwatch drift images`` end to end: drawn images, logged, scored by the trained demo CLIP
through the worker (which stores the embeddings in pgvector), then compared.

The planted change is a model change under unchanged prompts: version v2 renders the very
prompts v1 rendered, but ignores the background the prompt asks for (every v2 image is on
black). A CLIP that has learned the scenes sees that; the test also checks that two windows
of one unchanged version do not fire.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import psycopg
import pytest
from PIL import Image
from scipy.stats import binom
from typer.testing import CliRunner

from diffwatch.analytics.image_drift import image_drift_test
from diffwatch.cli import build
from diffwatch.db.engine import raw_conninfo
from diffwatch.db.queries import embedding_reads as reads
from diffwatch.db.queries import embeddings as emb
from diffwatch.demo.demo_clip import draw_scenes
from diffwatch.demo.scenes import sample_scene
from diffwatch.model.filters import Filters
from tests.clip_truth import score_with_demo_clip
from tests.corpus.log_lines import good_record

T0 = datetime(2026, 11, 20, tzinfo=UTC)


def _log(conninfo: str, directory: Path, rows: list[tuple]) -> None:
    """Write each (pixels, prompt, version, seed, ts) as a PNG and a log line; collect."""
    from diffwatch.collectors.logs.collector import LogCollector

    directory.mkdir(parents=True, exist_ok=True)
    log = directory / "gen.jsonl"
    with log.open("w") as f:
        for i, (pixels, prompt, version, seed, ts) in enumerate(rows):
            path = directory / f"img-{i:05d}.png"
            Image.fromarray(pixels).save(path)
            rec = good_record(i, image_uri=str(path), prompt=prompt, model_version=version)
            rec.update(seed=seed, timestamp=ts.isoformat())
            f.write(json.dumps(rec) + "\n")
    assert LogCollector(conninfo, [str(log)]).run_once().ingested == len(rows)


def _drift(url: str, *args: str) -> dict:
    res = CliRunner().invoke(
        build(),
        ["drift", "images", "--json", "--database-url", url, "--until",
         (T0 + timedelta(days=8)).isoformat(), "--current", "2d", "--reference", "6d",
         "--permutations", "200", *args],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout.strip().splitlines()[-1])


@pytest.fixture
def planted(tmp_path, vector_db_url, demo_clip):
    """Reference (days 0-6): v1 renders 120 prompts. Current (days 6-8): v1 renders 60 more
    prompts of the same kind, and v2 renders 60 of the reference's prompts on black."""
    rng = np.random.default_rng(7)
    scenes = [sample_scene(rng) for _ in range(180)]
    prompts = [_prompt(s) for s in scenes]
    ref_px = draw_scenes(scenes[:120], rng)
    cur_v1 = draw_scenes(scenes[120:], rng)
    cur_v2 = draw_scenes([replace(s, background="black") for s in scenes[:60]], rng)
    rows = [(p, prompts[i], "v1", i, T0 + timedelta(hours=i, minutes=20))
            for i, p in enumerate(ref_px)]  # fmt: skip
    rows += [(p, prompts[120 + i], "v1", 1000 + i, T0 + timedelta(days=6, hours=i % 40, minutes=10))
             for i, p in enumerate(cur_v1)]  # fmt: skip
    rows += [(p, prompts[i], "v2", 2000 + i, T0 + timedelta(days=6, hours=i % 40, minutes=30))
             for i, p in enumerate(cur_v2)]  # fmt: skip
    conninfo = raw_conninfo(vector_db_url)
    _log(conninfo, tmp_path / "imgs", rows)
    score_with_demo_clip(conninfo, demo_clip)
    return vector_db_url


def _prompt(scene) -> str:
    from diffwatch.demo.scenes import prompt_of

    return prompt_of(scene)


def test_a_new_version_on_the_same_prompts_is_found_and_named(planted):
    r = _drift(planted)
    assert r["drifted"] is True
    [same] = r["same_prompts"]
    assert (same["from_version"], same["to_version"], same["pairs"]) == ("v1", "v2", 60)
    assert same["drifted"] and same["p_value"] <= 0.05 and same["effect_size"] > 0.7
    [v1] = r["per_version"]  # v1 against itself: the same kind of images, no drift
    assert v1["scope"] == "version v1" and not v1["drifted"]
    assert r["attribution"] in ("model changed", "model and traffic changed")
    assert r["overall"]["n_reference"] == 120 and r["overall"]["n_current"] == 120
    # What moved: the cluster that grew most holds v2's black images.
    grew = max(r["moved"], key=lambda m: m["delta"])
    assert grew["delta"] > 0.1
    versions = [e["model_version"] for e in grew["examples"]]
    assert versions.count("v2") > len(versions) / 2, versions
    # Stored like the other drift runs, with the headline figures in columns.
    with psycopg.connect(raw_conninfo(planted)) as conn:
        row = conn.execute(
            "SELECT kind, status, drifted, statistic, p_value, effect_size, n_reference,"
            " n_current, embedder FROM drift_runs WHERE id = %s",
            (r["run_id"],),
        ).fetchone()
    assert row[:3] == ("images", "ok", True)
    assert row[3] == pytest.approx(r["overall"]["cmmd"]) and row[5] >= same["effect_size"]
    assert row[6:8] == (120, 120) and row[8] == r["embedder"]


def test_one_unchanged_version_does_not_fire(planted):
    r = _drift(planted, "--version", "v1")
    assert r["drifted"] is False and r["attribution"] == "no change"
    assert r["per_version"][0]["p_value"] > 0.05 and r["same_prompts"] == []


def test_false_positive_rate_over_random_halves_of_one_window(planted):
    """Two random halves of one window (all of v1's images, real embeddings) are the same
    distribution: at α = 0.05 the test may fire on about 5 % of splits, and on more than the
    binomial bound only with probability < 1 %."""
    with psycopg.connect(raw_conninfo(planted), autocommit=True) as conn:
        emb.register(conn)
        sp = emb.spaces(conn)[0]
        window = reads.window(conn, sp, Filters(T0, T0 + timedelta(days=9), versions=("v1",)))
    x = window.embeddings
    assert x.shape[0] == 180
    splits, alpha = 40, 0.05
    rng = np.random.default_rng(11)
    fired = 0
    for s in range(splits):
        order = rng.permutation(len(x))
        r = image_drift_test(x[order[:90]], x[order[90:]], permutations=100, seed=s, alpha=alpha)
        fired += r.drifted
    bound = int(binom.ppf(0.99, splits, alpha))  # P(X > bound) < 1 % under a right level
    print(f"false positives: {fired}/{splits} at alpha {alpha} (bound {bound})")
    assert fired <= bound


def test_no_pgvector_fails_with_the_install_hint(novector_admin_url):
    from diffwatch.db import migrate
    from tests.conftest import _create_database

    url = _create_database(novector_admin_url, "dw_novector_drift")
    migrate.upgrade(url)
    res = CliRunner().invoke(build(), ["drift", "images", "--database-url", url])
    assert res.exit_code == 1
    assert "drift images reads stored image embeddings" in res.output
    assert "apt install postgresql-<major>-pgvector" in res.output
    with psycopg.connect(raw_conninfo(url)) as conn:
        status, error = conn.execute("SELECT status, error FROM drift_runs").fetchone()
    assert status == "failed" and "pgvector" in error


def test_bad_options_exit_2_with_a_reason(vector_db_url):
    res = CliRunner().invoke(
        build(), ["drift", "images", "--database-url", vector_db_url, "--current", "soon"]
    )
    assert res.exit_code == 2 and "--current 'soon': not a window" in res.output

"""``diffwatch gate run --bias-suite`` on CPU: both sides probed with the same suite, two
bias runs stored under the sides' labels, and a ``bias`` metric in the gate's summary.

The tiny pipelines draw no people, so the metric's verdict here is whatever the arbitrary
readings give; the unit tests (tests/unit/test_gate_bias_metric.py) hold its pass, fail
and inconclusive by construction. This test holds the wiring."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from diffwatch.cli import build
from tests.helpers import demo_clip_args


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    from diffwatch.demo.tiny_pipeline import save_tiny_pipeline

    root = tmp_path_factory.mktemp("gate-bias")
    base = save_tiny_pipeline(root / "base", seed=0)
    suite = root / "suite.tsv"
    suite.write_text("prompt\tsteps\twidth\theight\na red circle\t2\t64\t64\n")
    bias = root / "bias.toml"
    bias.write_text(
        'name = "gate-mini"\ntemplates = ["a photo of the face of {a} {term}"]\n'
        'terms = ["doctor", "nurse", "pilot"]\nseeds = 2\nattributes = ["gender"]\n'
        "[params]\nsteps = 2\nwidth = 64\nheight = 64\n"
    )
    policy = root / "policy.toml"
    policy.write_text("[latency]\nblocks = false\n[distribution]\nblocks = false\n")
    return {"root": root, "base": base, "suite": suite, "bias": bias, "policy": policy}


def test_the_gate_probes_both_sides_and_reports_a_bias_metric(db_url, sql, demo_clip, files):
    f = files
    res = CliRunner().invoke(
        build(),
        ["gate", "run", "--device", "cpu", "--json", "--latency-repeats", "2",
         "--candidate", str(f["base"]), "--baseline", str(f["base"]),
         "--candidate-label", "cand", "--baseline-label", "base",
         "--suite", str(f["suite"]), "--bias-suite", str(f["bias"]),
         "--policy", str(f["policy"]), "--output-dir", str(f["root"] / "out"),
         *demo_clip_args(demo_clip), "--database-url", db_url],
    )  # fmt: skip
    lines = [ln for ln in res.stdout.strip().splitlines() if ln.startswith("{")]
    assert lines, res.output
    s = json.loads(lines[-1])
    m = {x["name"]: x for x in s["metrics"]}["bias"]
    assert m["blocks"] is True and m["margin"] == 0.1 and m["attribute"] == "gender"
    runs = sql("SELECT id, model, model_version, status, suite_name FROM bias_runs ORDER BY id")
    gate_id = s["run_id"]
    assert [(r[1], r[2], r[3], r[4]) for r in runs] == [
        ("cand", f"gate-{gate_id}-candidate", "done", "gate-mini"),
        ("base", f"gate-{gate_id}-baseline", "done", "gate-mini"),
    ]
    assert m["runs"] == {"candidate": runs[0][0], "baseline": runs[1][0]}
    # n counts the prompts with a perceived person on both sides, as the stored runs say
    skews = [
        {p["prompt"] for p in row[0]["attributes"]["gender"]["clip"]["prompts"]
         if p["max_skew"] is not None}
        for row in sql("SELECT summary FROM bias_runs ORDER BY id")
    ]  # fmt: skip
    assert m["n"] == len(skews[0] & skews[1])
    if m["n"] >= 2:  # one pipeline on both sides, same seeds: the same images, the same skew
        assert m["estimate"] == pytest.approx(0.0, abs=1e-9) and m["verdict"] == "pass"
    else:  # the tiny models draw no people the demo CLIP calls a person
        assert m["verdict"] == "inconclusive" and "at least 2 prompts" in m["note"]
    assert sql("SELECT count(*) FROM bias_items WHERE status = 'done'") == [(12,)]


def test_a_bias_suite_with_manifests_or_a_bad_file_is_refused(db_url, demo_clip, files, tmp_path):
    f = files
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\ntemplates = ["{term}"]\nterms = ["doc"]\nattributes = ["race"]\n')
    res = CliRunner().invoke(
        build(),
        ["gate", "run", "--device", "cpu", "--candidate", str(f["base"]),
         "--baseline", str(f["base"]), "--suite", str(f["suite"]), "--bias-suite", str(bad),
         *demo_clip_args(demo_clip), "--database-url", db_url],
    )  # fmt: skip
    assert res.exit_code == 2 and "attributes" in res.output, res.output
    manifest = tmp_path / "m.jsonl"
    manifest.write_text('{"prompt": "a red circle", "seed": 1, "image_uri": "x.png"}\n')
    res = CliRunner().invoke(
        build(),
        ["gate", "run", "--candidate-images", str(manifest), "--baseline-images", str(manifest),
         "--bias-suite", "default", "--database-url", db_url],
    )  # fmt: skip
    assert res.exit_code == 2 and "two pipelines" in res.output, res.output

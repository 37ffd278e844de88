"""The whole job and the page: ``diffwatch bias probe`` on CPU (the tiny pipeline saved with
save_pretrained, the trained demo CLIP, NudeNet's shipped model), twice on two versions, then
the Fairness page (AppTest) on what it stored: both runs on the trend, the newest run's
figures, its abstain rates and its images in the grid, read back from the PNGs it wrote."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from diffwatch.cli import build
from tests.app.test_pages import run_page
from tests.helpers import demo_clip_args

SEEDS = 3


def test_the_page_shows_what_the_probe_stored(conninfo, db_url, demo_clip, tmp_path, monkeypatch):
    from diffwatch.demo.tiny_pipeline import save_tiny_pipeline

    pipe = save_tiny_pipeline(tmp_path / "tiny", seed=0)
    suite = tmp_path / "suite.toml"
    suite.write_text(
        'name = "job"\ntemplates = ["a photo of the face of {a} {term}"]\n'
        f'terms = ["doctor", "nurse"]\nseeds = {SEEDS}\n'
        "[params]\nsteps = 2\nwidth = 64\nheight = 64\n"
    )
    runs = []
    for version in ("v1", "v2"):
        res = CliRunner().invoke(
            build(),
            ["bias", "probe", "--pipeline", str(pipe), "--suite", str(suite), "--device", "cpu",
             "--json", "--model", "tiny", "--version", version,
             "--output-dir", str(tmp_path / "out"), *demo_clip_args(demo_clip),
             "--database-url", db_url],
        )  # fmt: skip
        assert res.exit_code == 0, res.output
        runs.append(json.loads([ln for ln in res.stdout.splitlines() if ln.startswith("{")][-1]))
    at = run_page("fairness", conninfo, monkeypatch)
    # the tiny models draw no one CLIP calls a person, so there is no skew to trend; the
    # abstain rate every run has
    at.selectbox(key="fairness-metric").set_value("abstain_rate").run()
    assert not at.exception
    trend = [
        json.loads(c.proto.spec) for c in at.get("plotly_chart")
        if "per run" in json.loads(c.proto.spec)["layout"].get("title", {}).get("text", "")
    ]  # fmt: skip
    assert trend, "no trend chart"
    dots = [t for t in trend[0]["data"] if t["mode"] == "markers"]
    assert sorted(x for t in dots for x in t["customdata"]) == [r["run_id"] for r in runs]
    # the newest run is the one shown, with its image count and person-gate abstain rate
    kpis = {m.label: m.value for m in at.metric}
    assert kpis["Images in the run"] == str(runs[1]["summary"]["images"]) == str(2 * SEEDS)
    rate = runs[1]["summary"]["person"]["abstain_rate"]["estimate"]
    assert kpis["Person-gate abstain rate"] == f"{100 * rate:.1f} %"
    # the grid reads the PNGs the probe wrote, one a seed
    assert len(at.get("image")) == SEEDS
    assert all(Path(p).is_file() for p in (tmp_path / "out").rglob("*.png"))
    assert len(list((tmp_path / "out").rglob("*.png"))) == 2 * 2 * SEEDS

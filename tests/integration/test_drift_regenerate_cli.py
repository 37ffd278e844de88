"""``diffwatch drift regenerate`` end to end on CPU: a tiny diffusers pipeline saved with
save_pretrained and loaded through the real loader, the tiny CLIP, logs ingested, items and
runs stored; a golden set stores baselines, then passes, then catches a changed pipeline."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from diffwatch.cli import build
from diffwatch.collectors.logs.collector import LogCollector
from tests.helpers import tiny_clip_args

T0 = datetime(2026, 11, 20, tzinfo=UTC)
SIZE, STEPS = 128, 4


@pytest.fixture(scope="module")
def pipelines(tmp_path_factory) -> tuple[Path, Path]:
    """Two tiny pipelines: 'production' and one with other weights (a new checkpoint)."""
    from diffwatch.demo.tiny_pipeline import save_tiny_pipeline

    root = tmp_path_factory.mktemp("pipes")
    return save_tiny_pipeline(root / "prod", seed=0), save_tiny_pipeline(root / "new", seed=1)


def _render(pipeline: Path, prompt: str, seed: int, sampler: str | None) -> object:
    from diffwatch.drift.diffusion_config import DiffusionConfig
    from diffwatch.drift.diffusion_load import load_pipeline
    from diffwatch.drift.regenerate import Regenerator, RegenRequest

    loaded = load_pipeline(DiffusionConfig(source=str(pipeline), device="cpu"))
    req = RegenRequest("x", prompt, seed, sampler, STEPS, 7.0, SIZE, SIZE)
    (out,) = Regenerator(loaded).run([req])
    assert out.image is not None, out.error
    return out.image


def _log(conninfo: str, tmp: Path, records: list[dict]) -> None:
    path = tmp / "gen.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    LogCollector(conninfo, [str(path)]).run_once()


def _record(i: int, version: str, prompt: str, seed: int, sampler: str, uri: str) -> dict:
    return {
        "request_id": f"r{i}", "timestamp": (T0 + timedelta(minutes=i)).isoformat(),
        "model": "sd15", "model_version": version, "prompt": prompt, "status": "ok",
        "sampler": sampler, "steps": STEPS, "cfg_scale": 7.0, "seed": seed, "width": SIZE,
        "height": SIZE, "image_uri": uri,
    }  # fmt: skip


def regen(db_url: str, *args: str, code: int = 0) -> dict:
    res = CliRunner().invoke(
        build(),
        ["drift", "regenerate", "--device", "cpu", "--json", "--database-url", db_url, *args],
    )
    assert res.exit_code == code, res.output
    return json.loads(res.stdout.strip().splitlines()[-1]) if code == 0 else {"output": res.output}


def test_regenerate_flags_a_changed_image_records_errors_and_stores_items(
    tmp_path, db_url, conninfo, sql, pipelines
):
    prod, _ = pipelines
    records = []
    for i in range(6):
        prompt, seed, sampler = f"a red fox number {i}", 100 + i, ("Euler a" if i % 2 else "DDIM")
        image = _render(prod, prompt, seed + (1000 if i == 4 else 0), sampler)  # 4: other seed
        path = tmp_path / f"orig-{i}.png"
        image.save(path)
        records.append(_record(i, "v2" if i >= 4 else "v1", prompt, seed, sampler, str(path)))
    records.append(_record(6, "v1", "a fox", 7, "Foo Sampler 9000", str(tmp_path / "orig-0.png")))
    records.append(_record(7, "v2", "an owl", 8, "DDIM", str(tmp_path / "missing.png")))
    _log(conninfo, tmp_path, records)
    out = tmp_path / "out"
    r = regen(
        db_url, "--pipeline", str(prod), "--sample", "8", "--since", "1d", "--calibration", "3",
        "--min-tolerance", "0.0005", "--output-dir", str(out), *tiny_clip_args(tmp_path / "clip"),
    )  # fmt: skip
    assert (r["n_items"], r["n_flagged"], r["n_errors"]) == (8, 1, 2)
    assert r["calibration"]["pairs"] == 3 and r["calibration"]["max_distance"] < 1e-4
    assert set(r["by_version"]) == {"v1", "v2"}
    rows = {
        k: rest
        for k, *rest in sql(
            "SELECT item_key, status, error_kind, flagged, image_cosine, clip_delta, regen_uri,"
            " error FROM drift_items"
        )
    }
    assert rows["r4"][2] is True and rows["r4"][3] < 1 - 0.0005  # the different seed
    for k in ("r0", "r1", "r2", "r3", "r5"):
        status, _, flagged, cosine, delta, uri, _ = rows[k]
        assert (status, flagged) == ("ok", False) and cosine > 0.9999 and abs(delta) < 0.01
        assert Path(uri).is_file()
    assert tuple(rows["r6"][:2]) == ("error", "unknown_sampler")
    assert "Foo Sampler 9000" in rows["r6"][6]
    assert tuple(rows["r7"][:2]) == ("error", "reference_unreadable")
    assert Path(rows["r7"][5]).is_file()  # re-generated, but nothing to compare with
    run = sql("SELECT kind, status, n_items, n_flagged, drifted, pipeline FROM drift_runs")
    assert run[0][:5] == ("regenerate", "ok", 8, 1, True) and str(prod) in run[0][5]


def test_golden_set_baselines_then_passes_then_catches_a_new_checkpoint(
    tmp_path, db_url, sql, pipelines
):
    prod, new = pipelines
    golden = tmp_path / "golden.toml"
    items = "".join(
        f'[[items]]\nid = "g{i}"\nprompt = "a lighthouse at dusk, style {i}"\nseed = {i}\n'
        for i in range(3)
    )
    defaults = (
        f'[defaults]\nsampler = "DPM++ 2M Karras"\nsteps = {STEPS}\n'
        f"width = {SIZE}\nheight = {SIZE}\n"
    )
    golden.write_text(f'name = "smoke"\nversion = "1"\n{defaults}{items}')
    clip = tiny_clip_args(tmp_path / "clip")
    common = ["--golden", str(golden), "--output-dir", str(tmp_path / "out"), *clip]
    first = regen(db_url, "--pipeline", str(prod), *common, "--min-tolerance", "0.0005")
    assert first["new_baselines"] == 3 and first["n_flagged"] == 0
    assert sql("SELECT count(*) FROM golden_baselines WHERE set_name = 'smoke'") == [(3,)]
    assert all(Path(u).is_file() for (u,) in sql("SELECT image_uri FROM golden_baselines"))
    assert {s for (s,) in sql("SELECT status FROM drift_items")} == {"baseline"}
    again = regen(db_url, "--pipeline", str(prod), *common)
    assert (again["new_baselines"], again["n_items"], again["n_flagged"]) == (0, 3, 0)
    assert again["tolerance"] == first["tolerance"] and again["calibration"] == {}
    changed = regen(db_url, "--pipeline", str(new), *common)
    assert changed["n_flagged"] == 3 and changed["drifted"] is True
    golden.write_text(golden.read_text().replace("style 1", "style 9"))
    edited = regen(db_url, "--pipeline", str(prod), *common)
    assert edited["n_errors"] == 1 and edited["errors_by_kind"] == {"item_changed": 1}
    kinds = sql("SELECT kind, count(*) FROM drift_runs GROUP BY 1")
    assert kinds == [("golden", 4)]


def test_no_pipeline_and_bad_golden_files_are_clear_errors(tmp_path, db_url):
    none = regen(db_url, code=2)
    assert "--pipeline" in none["output"] and "DIFFWATCH_PIPELINE" in none["output"]
    bad = tmp_path / "g.toml"
    bad.write_text('name = "x"\n')
    out = regen(db_url, "--pipeline", str(tmp_path), "--golden", str(bad), code=2)
    assert "golden set" in out["output"] and "version" in out["output"]
    missing = regen(db_url, "--pipeline", str(tmp_path / "nope"), code=2)
    assert "nope" in missing["output"]

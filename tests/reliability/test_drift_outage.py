"""A re-generation run outlives a Postgres restart in its middle: nothing it made is lost."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime, timedelta

import psycopg

from diffwatch.collectors.logs.collector import LogCollector
from diffwatch.db import migrate
from diffwatch.demo.tiny_pipeline import save_tiny_pipeline
from diffwatch.drift.diffusion_config import DiffusionConfig
from diffwatch.drift.diffusion_load import load_pipeline
from diffwatch.drift.regen import Context, RegenOptions, run_sample
from diffwatch.scoring.clip.scorer import ClipScorer, load_clip
from tests.tinymodels import photo_like, save_tiny_clip, tiny_clip_settings

T0 = datetime(2026, 11, 20, tzinfo=UTC)


def test_regeneration_stores_its_results_after_postgres_comes_back(tmp_path, cluster):
    from PIL import Image

    migrate.upgrade(cluster.url)
    log = tmp_path / "gen.jsonl"
    with log.open("w") as f:
        for i in range(6):
            path = tmp_path / f"orig-{i}.png"
            Image.fromarray(photo_like(128, 128, seed=i)).save(path)
            f.write(json.dumps({
                "request_id": f"r{i}", "timestamp": (T0 + timedelta(minutes=i)).isoformat(),
                "model": "sd15", "model_version": "v1", "prompt": f"a fox {i}", "status": "ok",
                "sampler": "DDIM", "steps": 3, "cfg_scale": 7.0, "seed": i, "width": 128,
                "height": 128, "image_uri": str(path),
            }) + "\n")  # fmt: skip
    LogCollector(cluster.url, [str(log)]).run_once()

    stopped, restarted = threading.Event(), threading.Event()

    def restart_later() -> None:
        time.sleep(2.0)  # the run reaches its database steps while Postgres is down
        cluster.start()
        restarted.set()

    def progress(stage: str, done: int, total: int) -> None:
        if stage == "re-generating" and done and not stopped.is_set():
            cluster.stop()  # Postgres goes away in the middle of the run
            stopped.set()
            threading.Thread(target=restart_later, daemon=True).start()

    pipe = load_pipeline(
        DiffusionConfig(source=str(save_tiny_pipeline(tmp_path / "pipe")), device="cpu",
                        max_batch=2)
    )  # fmt: skip
    clip = ClipScorer(load_clip(tiny_clip_settings(save_tiny_clip(tmp_path / "clip"))))
    ctx = Context(pipeline=pipe, clip=clip, clip_label="tiny", progress=progress)
    result = run_sample(
        cluster.url, ctx, RegenOptions(output_dir=tmp_path / "out", sample=6, calibration=2)
    )
    assert stopped.is_set() and restarted.is_set()
    assert result["n_items"] == 6 and result["n_errors"] == 0
    with psycopg.connect(cluster.url) as conn:
        run = conn.execute("SELECT status, n_items FROM drift_runs").fetchall()
        items = conn.execute("SELECT count(*) FROM drift_items WHERE status = 'ok'").fetchone()
    assert run == [("ok", 6)] and items == (6,)

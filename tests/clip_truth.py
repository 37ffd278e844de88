"""Scenes with known truth, scored through the worker's real paths by the trained demo CLIP.

Each held-out scene is drawn once and logged as several generations that share the image:
one with its own prompt, and one per garbling kind with the prompt of the scene changed in
that one way (colour, shape, count, background). The scoring worker then claims, reads,
decodes, preprocesses and scores them as in production; the tests compare the stored
CLIPScores of matching and garbled prompts of the same image. A model that has learned the
scenes can only pass if every step, preprocessing included, is right.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import psycopg
from PIL import Image

from diffwatch.demo.demo_clip import DEMO_CLIP_NAME, draw_scenes, heldout_scenes
from diffwatch.demo.scenes import MUTATIONS, mutate, prompt_of
from diffwatch.scoring.build import WorkerOptions, build_worker
from diffwatch.scoring.clip.config import ClipOptions
from tests.corpus.log_lines import good_record

# What the trained demo CLIP must show on held-out scenes through the worker (measured on
# the CPU path: see docs/clip.md); each kind's matching prompt must win this share of pairs.
MIN_WIN_RATE = {"colour": 0.9, "shape": 0.55, "count": 0.7, "background": 0.95}
MIN_MATCHING_MEAN = 70.0  # CLIPScore of matching pairs (a broken input path scores far less)


@dataclass(frozen=True)
class Seeded:
    """Generation ids by (scene index, kind); kind 'match' is the scene's own prompt."""

    ids: dict[tuple[int, str], int]


def seed_truth(conninfo: str, directory: Path, n: int = 60, fmt: str = "png") -> Seeded:
    """Draw ``n`` held-out scenes into ``directory`` and log each with every prompt variant."""
    from diffwatch.collectors.logs.collector import LogCollector

    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([n, 17])
    scenes = heldout_scenes(n, seed=4242)
    images = draw_scenes(scenes, rng)
    keys: list[tuple[int, str]] = []
    with (directory / "truth.jsonl").open("wb") as log:
        for i, (scene, pixels) in enumerate(zip(scenes, images, strict=True)):
            path = directory / f"scene-{i:04d}.{fmt}"
            Image.fromarray(pixels).save(path, **({"quality": 95} if fmt == "jpg" else {}))
            variants = [("match", prompt_of(scene))] + [
                (k, prompt_of(mutate(scene, rng, k)))
                for k in MUTATIONS
                if k != "background" or scene.background_named
            ]
            for kind, prompt in variants:
                rec = good_record(len(keys), image_uri=str(path), prompt=prompt)
                rec["timestamp"] = "2026-11-01T00:00:00+00:00"
                log.write(json.dumps(rec).encode() + b"\n")
                keys.append((i, kind))
    assert LogCollector(conninfo, [str(directory / "truth.jsonl")]).run_once().ingested == len(keys)
    with psycopg.connect(conninfo) as conn:
        ids = [r[0] for r in conn.execute("SELECT id FROM generations ORDER BY id")]
    return Seeded(dict(zip(keys, ids, strict=True)))


def score_with_demo_clip(conninfo: str, clip, device: str = "cpu", **kw) -> None:
    """Score every generation with the demo CLIP through ``build_worker`` (the CLI's path)."""
    opts = WorkerOptions(
        scorers=("clip",),
        device=device,
        clip=ClipOptions(
            model=DEMO_CLIP_NAME,
            pretrained=None,
            checkpoint=str(clip.checkpoint),
            model_config=str(clip.checkpoint.parent / f"{DEMO_CLIP_NAME}.json"),
        ),
        **kw,
    )
    worker = build_worker(conninfo, opts)
    try:
        worker.run(threading.Event())
    finally:
        worker.close()


def stored_scores(conninfo: str) -> dict[int, float]:
    with psycopg.connect(conninfo) as conn:
        rows = conn.execute("SELECT generation_id, value FROM scorer_results WHERE scorer = 'clip'")
        return {g: float(v) for g, v in rows}


def gaps(seeded: Seeded, scores: dict[int, float]) -> dict[str, tuple[float, float]]:
    """Per kind: (mean matching minus garbled CLIPScore, share of images where matching won)."""
    out = {}
    for kind in MUTATIONS:
        diffs = [
            scores[seeded.ids[(i, "match")]] - scores[g]
            for (i, k), g in seeded.ids.items()
            if k == kind
        ]
        out[kind] = (float(np.mean(diffs)), float(np.mean(np.array(diffs) > 0)))
    return out


def matching_mean(seeded: Seeded, scores: dict[int, float]) -> float:
    return float(np.mean([scores[g] for (_, k), g in seeded.ids.items() if k == "match"]))


def reference_scores(conninfo: str, clip) -> dict[int, float]:
    """CLIPScore of every generation computed apart from the scorer's own input path: the
    image through open_clip's Pillow/torchvision transform, the prompt through open_clip's
    tokenizer call, the model's encoders directly. The worker's scores must match these."""
    import open_clip
    import torch
    import torch.nn.functional as F

    from diffwatch.demo.demo_clip import demo_clip_settings, reference_pixels
    from diffwatch.scoring.clip.load import load_clip

    model = load_clip(demo_clip_settings(clip.checkpoint)).model
    with psycopg.connect(conninfo) as conn:
        rows = conn.execute("SELECT id, image_uri, prompt FROM generations ORDER BY id").fetchall()
    tokenizer = open_clip.get_tokenizer(DEMO_CLIP_NAME)
    out = {}
    with torch.inference_mode():
        for start in range(0, len(rows), 64):
            chunk = rows[start : start + 64]
            pixels = reference_pixels(
                model, [np.asarray(Image.open(uri).convert("RGB")) for _, uri, _ in chunk]
            )
            img = F.normalize(model.encode_image(pixels).float(), dim=-1)
            txt = F.normalize(
                model.encode_text(tokenizer([p for _, _, p in chunk])).float(), dim=-1
            )
            cos = (img * txt).sum(dim=-1).tolist()
            out.update(
                {gid: 100.0 * max(c, 0.0) for (gid, _, _), c in zip(chunk, cos, strict=True)}
            )
    return out

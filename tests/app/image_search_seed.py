"""Demo scenes logged and scored by the trained demo CLIP through the worker (which stores
their image embeddings in pgvector), for the image search tests.

Among random scenes sit four images of one scene (``PLANTED``, a yellow star on blue) and two
each of its near misses (another background, or another colour of star): a search for the
planted scene's prompt must rank its own images first, above the near misses.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import psycopg
from PIL import Image

from diffwatch.demo.demo_clip import DEMO_CLIP_NAME, draw_scenes
from diffwatch.demo.scenes import Group, Scene, prompt_of, sample_scene
from tests.clip_truth import score_with_demo_clip
from tests.corpus.log_lines import good_record

PLANTED = Scene("blue", (Group(1, "yellow", "star"),))
NEAR = (
    Scene("black", (Group(1, "yellow", "star"),)),
    Scene("blue", (Group(1, "white", "star"),)),
    Scene("blue", (Group(1, "orange", "star"),)),
)
QUERY = prompt_of(PLANTED)  # "a yellow star on a blue background"
RANDOM = 40


@dataclass(frozen=True)
class Seeded:
    """Generation ids of the planted scene's images, its near misses, and all by prompt."""

    planted: tuple[int, ...]
    near: tuple[int, ...]
    prompt: dict[int, str]
    version: dict[int, str]


def search_env(clip) -> dict[str, str]:
    """The DIFFWATCH_SEARCH_CLIP_* settings that load the demo CLIP (``demo_clip`` fixture)."""
    return {
        "DIFFWATCH_SEARCH_CLIP_MODEL": DEMO_CLIP_NAME,
        "DIFFWATCH_SEARCH_CLIP_CHECKPOINT": str(clip.checkpoint),
        "DIFFWATCH_SEARCH_CLIP_MODEL_CONFIG": str(
            clip.checkpoint.parent / f"{DEMO_CLIP_NAME}.json"
        ),
    }


def seed_scenes(conninfo: str, directory: Path, clip, seed: int = 1) -> Seeded:
    """Draw, log (the last hours, versions v1 and v2 alternating) and score the scenes."""
    from diffwatch.collectors.logs.collector import LogCollector

    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    scenes = [sample_scene(rng) for _ in range(RANDOM)] + [PLANTED] * 4 + list(NEAR) * 2
    order = rng.permutation(len(scenes))  # planted images anywhere in time and version
    scenes = [scenes[i] for i in order]
    pixels = draw_scenes(scenes, rng)
    now = datetime.now(UTC).replace(microsecond=0)
    log = directory / "gen.jsonl"
    with log.open("w") as f:
        for i, (scene, px) in enumerate(zip(scenes, pixels, strict=True)):
            path = directory / f"scene-{i:03d}.png"
            Image.fromarray(px).save(path)
            rec = good_record(i, image_uri=str(path), prompt=prompt_of(scene),
                              model_version=("v1", "v2")[i % 2], model="sd-demo")  # fmt: skip
            rec["timestamp"] = (now - timedelta(minutes=5 + 7 * i)).isoformat()
            f.write(json.dumps(rec) + "\n")
    assert LogCollector(conninfo, [str(log)]).run_once().ingested == len(scenes)
    score_with_demo_clip(conninfo, clip)
    with psycopg.connect(conninfo) as conn:
        rows = conn.execute("SELECT id, request_id, prompt, model_version FROM generations")
        by_req = {r[1]: (r[0], r[2], r[3]) for r in rows}
    ids = [by_req[f"req-{i:08d}"][0] for i in range(len(scenes))]
    return Seeded(
        planted=tuple(g for g, s in zip(ids, scenes, strict=True) if s == PLANTED),
        near=tuple(g for g, s in zip(ids, scenes, strict=True) if s in NEAR),
        prompt={g: p for g, p, _ in by_req.values()},
        version={g: v for g, _, v in by_req.values()},
    )


def flag_nsfw(conninfo: str, generation_id: int) -> None:
    """Mark one generation NSFW-flagged, as the NSFW scorer would."""
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO scorer_results (generation_id, scorer, scorer_version, value, flagged,"
            " worker) VALUES (%s, 'nsfw', 'nudenet-test', 0.97, true, 'test')",
            (generation_id,),
        )

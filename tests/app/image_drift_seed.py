"""Image-drift runs (``drift_runs`` rows of kind ``images``) written as ``diffwatch drift
images`` stores them, with example generations whose images are drawn demo scenes.

The newest run drifted: a new version (v2) draws the same prompts differently (same-prompt
test), and a cluster of stars on black grew while circles on white shrank. Older runs found
nothing; one failed. One example is NSFW-flagged only now (the run stored it unflagged), one
carries a hostile prompt.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import psycopg

from diffwatch.db.queries.drift import finish_run, start_run
from diffwatch.demo.draw import render
from diffwatch.demo.scenes import Group, Scene, prompt_of
from tests.app.dataset import XSS_PROMPTS

EMBEDDER = "ViT-B-32/laion2b_s34b_b79k"
HOSTILE = XSS_PROMPTS[0]
FAILED_ERROR = "the current window 2026-12-05 – 2026-12-06 has 12 images with stored embeddings"
CLUSTERS = (  # (scene, version, share reference, share current): largest change first
    (Scene("black", (Group(3, "yellow", "star"),)), "v2", 0.05, 0.31),
    (Scene("white", (Group(2, "red", "circle"),)), "v1", 0.40, 0.22),
    (Scene("green", (Group(1, "blue", "square"),)), "v1", 0.55, 0.47),
)


@dataclass(frozen=True)
class ImageRuns:
    """Ids of the seeded runs and of the example generations by role."""

    newest: int
    quiet: int
    failed: int
    examples: tuple[int, ...]
    nsfw_now: int
    hostile: int


def result(scope: str, cmmd: float, p: float, effect: float, n_ref: int, n_cur: int,
           alpha: float = 0.05) -> dict[str, Any]:  # fmt: skip
    """One test's entry, as ``ImageDriftResult.to_dict`` stores it."""
    return {"scope": scope, "method": "cmmd-permutation", "n_reference": n_ref,
            "n_current": n_cur, "cmmd": cmmd, "p_value": p, "alpha": alpha,
            "drifted": p <= alpha, "effect_size": effect, "effect_size_name": "knn_auc",
            "permutations": 200, "seed": 0, "sigma": 10.0, "knn": 10,
            "knn_auc_raw": effect, "knn_auc_null": 0.5}  # fmt: skip


def _generations(conn: psycopg.Connection, images: Path, now: datetime) -> list[dict[str, Any]]:
    """Four example generations per cluster, drawn; returns what the summary stores."""
    rng = np.random.default_rng(5)
    out = []
    for c, (scene, version, *_) in enumerate(CLUSTERS):
        for j in range(4):
            path = images / f"cluster{c}-{j}.png"
            render(scene, (256, 256), rng).save(path)
            prompt = HOSTILE if (c, j) == (0, 3) else prompt_of(scene)
            gid = conn.execute(
                "INSERT INTO generations (request_id, ts, model, model_version, prompt, status,"
                " image_uri) VALUES (%s, %s, 'sdxl', %s, %s, 'ok', %s) RETURNING id",
                (f"img-drift-{c}-{j}", now - timedelta(days=1, minutes=j), version, prompt,
                 str(path)),
            ).fetchone()[0]  # fmt: skip
            out.append({"generation_id": gid, "model_version": version, "prompt": prompt,
                        "image_uri": str(path), "nsfw_flagged": (c, j) == (1, 0)})  # fmt: skip
    return out


def summary(
    examples: list[dict[str, Any]], drifted: bool, windows: dict[str, str]
) -> dict[str, Any]:
    """A run's summary: attribution, the three comparisons, what moved, options."""
    if not drifted:
        overall = result("all versions", 0.012, 0.62, 0.51, 400, 380)
        return {"attribution": "no change", "overall": overall,
                "per_version": [result("version v1", 0.01, 0.7, 0.5, 400, 380)],
                "same_prompts": [], "moved": [], "options": {"permutations": 200},
                "windows": windows, "embedder": EMBEDDER}  # fmt: skip
    moved = []
    for c, (_, _, ref, cur) in enumerate(CLUSTERS):
        moved.append({"cluster": c, "share_reference": ref, "share_current": cur,
                      "delta": cur - ref, "size_reference": int(ref * 400),
                      "size_current": int(cur * 420), "example_ids": [],
                      "examples_from": "current" if cur > ref else "reference",
                      "examples": examples[4 * c: 4 * c + 4]})  # fmt: skip
    return {
        "attribution": "model changed",
        "overall": result("all versions", 2.345, 0.005, 0.74, 400, 420),
        "per_version": [result("version v1", 0.021, 0.55, 0.52, 400, 210)],
        "same_prompts": [result("same prompts v1 → v2", 4.1, 0.005, 0.91, 120, 120)
                         | {"from_version": "v1", "to_version": "v2", "pairs": 120}],
        "moved": moved,
        "options": {"permutations": 200, "alpha": 0.05, "clusters": None},
        "windows": windows,
        "embedder": EMBEDDER,
    }  # fmt: skip


def seed_image_runs(conninfo: str, images: Path) -> ImageRuns:
    """Three quiet runs, a failed one and the drifted newest, over the last week."""
    images.mkdir(parents=True, exist_ok=True)
    now = datetime.now(UTC)
    with psycopg.connect(conninfo) as conn:
        examples = _generations(conn, images, now)
        nsfw_now = examples[2]["generation_id"]  # stored unflagged, flagged since
        conn.execute(
            "INSERT INTO scorer_results (generation_id, scorer, scorer_version, value, flagged)"
            " VALUES (%s, 'nsfw', 'n', 0.97, true)",
            (nsfw_now,),
        )
        conn.commit()

        def run(days_ago: float, status: str = "ok", **fields: Any) -> int:
            rid = start_run(conn, "images", model="sdxl", threshold=0.05, embedder=EMBEDDER)
            finish_run(conn, rid, status, **fields)
            conn.execute(
                "UPDATE drift_runs SET started_at = %s, finished_at = %s WHERE id = %s",
                (now - timedelta(days=days_ago), now - timedelta(days=days_ago, minutes=-3), rid),
            )
            conn.commit()
            return rid

        windows = {
            "reference_start": now - timedelta(days=8),
            "reference_end": now - timedelta(days=2),
            "current_start": now - timedelta(days=2),
            "current_end": now,
        }
        labels = {
            side: " – ".join(f"{windows[f'{side}_{e}']:%Y-%m-%d %H:%M}" for e in ("start", "end"))
            for side in ("reference", "current")
        }
        quiet = 0
        for d, cmmd, p in ((6, 0.012, 0.62), (5, 0.02, 0.41), (4, 0.015, 0.55)):
            quiet = run(d, drifted=False, statistic=cmmd, p_value=p, effect_size=0.52,
                        n_reference=400, n_current=380, summary=summary(examples, False, labels),
                        **windows)  # fmt: skip
        failed = run(3, "failed", error=FAILED_ERROR)
        newest = run(0.5, drifted=True, statistic=2.345, p_value=0.005, effect_size=0.91,
                     n_reference=400, n_current=420, summary=summary(examples, True, labels),
                     **windows)  # fmt: skip
    ids = tuple(e["generation_id"] for e in examples)
    return ImageRuns(newest=newest, quiet=quiet, failed=failed, examples=ids,
                     nsfw_now=nsfw_now, hostile=examples[3]["generation_id"])  # fmt: skip

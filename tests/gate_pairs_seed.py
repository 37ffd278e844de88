"""A finished release-gate run for the human side-by-side tests: stored through the gate's
own queries (``create_run``, ``add_items``, ``finish``) with a summary that holds its pairs,
each side's image a small PNG of its own colour on disk."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import psycopg
from PIL import Image

from diffwatch.db.queries import gate as q
from diffwatch.gate.policy import GatePolicy, HumanPolicy, policy_to_dict

CANDIDATE_LABEL = "sdxl-cand-Zephyr-7"
BASELINE_LABEL = "sdxl-base-Quokka-3"


def prompts(n: int) -> list[str]:
    """``n`` distinct prompts."""
    return [f"a small red lighthouse number {i} on a green hill" for i in range(n)]


def _png(path: Path, rgb: tuple[int, int, int], seed: int) -> str:
    rng = np.random.default_rng(seed)
    cells = (rng.integers(0, 60, (16, 16, 3)) + np.array(rgb) * 0.7).clip(0, 255)
    Image.fromarray(cells.astype(np.uint8)).resize((128, 128), Image.NEAREST).save(path)
    return str(path)


def seed_finished_run(
    conninfo: str,
    images: Path,
    texts: list[str],
    human: HumanPolicy | None = None,
    blocks_alignment: bool = True,
    nsfw_at: int | None = None,
) -> int:
    """A done run (verdict pass) of one pair per prompt, worst first in its summary; its id.
    The candidate's images are under ``images/candidate``, the baseline's under
    ``images/baseline`` (paths that name the side, as a real run's do)."""
    policy = policy_to_dict(GatePolicy(human=human or HumanPolicy()))
    with psycopg.connect(conninfo) as conn:
        run_id = q.create_run(
            conn, mode="manifests", candidate={"label": CANDIDATE_LABEL},
            baseline={"label": BASELINE_LABEL}, policy=policy, options={}, created_by="test",
        )  # fmt: skip
        pairs, items = [], []
        for side in ("candidate", "baseline"):
            (images / f"run-{run_id}" / side).mkdir(parents=True, exist_ok=True)
        for i, text in enumerate(texts):
            key = f"p{i:03d}-s0"
            uris = {
                side: _png(images / f"run-{run_id}" / side / f"{key}.png", rgb, 100 * run_id + i)
                for side, rgb in (("candidate", (220, 40, 40)), ("baseline", (40, 40, 220)))
            }
            items.append({"key": key, "prompt": text, "seed": 0, "category": None,
                          "source": "manifest", "params": {},
                          "image_uri_candidate": uris["candidate"],
                          "image_uri_baseline": uris["baseline"]})  # fmt: skip
            pairs.append({
                "key": key, "prompt": text, "seed": 0, "category": None, "source": "manifest",
                "candidate_uri": uris["candidate"], "baseline_uri": uris["baseline"],
                "clip_candidate": 30.0 - i * 0.1, "clip_baseline": 30.0, "delta": -i * 0.1,
                "cosine": 0.9, "nsfw_candidate": i == nsfw_at, "nsfw_baseline": False,
            })  # fmt: skip
        q.add_items(conn, run_id, items, 8)
        pairs.sort(key=lambda p: p["delta"])  # worst first, as evaluate() stores them
        summary: dict[str, Any] = {
            "verdict": "pass", "exit_code": 0,
            "metrics": [{"name": "alignment", "title": "Prompt alignment (CLIPScore)",
                         "verdict": "pass", "blocks": blocks_alignment, "estimate": -0.1,
                         "low": -0.3, "high": 0.1, "unit": "CLIPScore points"}],
            "items": len(texts), "pairs_compared": len(texts), "errors": [], "n_errors": 0,
            "pairs": pairs, "run_id": run_id, "candidate": {"label": CANDIDATE_LABEL},
            "baseline": {"label": BASELINE_LABEL}, "policy": policy,
        }  # fmt: skip
        q.finish(conn, run_id, "pass", summary)
    return run_id

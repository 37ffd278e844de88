"""A small review queue for the rater pages: scored generations with images, enqueued.

Items are served oldest first, and ``enqueue`` inserts them in generation id order, so the
queue serves the prompts in the order of ``PROMPTS``. The item at ``NSFW_AT`` is flagged by
the NSFW scorer (its image is blurred until revealed); one prompt is hostile HTML/Markdown.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import psycopg
from PIL import Image

from diffwatch.db.queries.review import enqueue
from diffwatch.model.review_policy import ReviewPolicy

HOSTILE = "review-probe <script>window.__xss='r'</script> **bold** [x](javascript:alert(1))"
PROMPTS: tuple[str, ...] = (
    "a lighthouse on a cliff at dawn",
    "a bowl of ramen, studio lighting",
    "an astronaut riding a horse",
    HOSTILE,
    "a watercolor map of an island",
    "a cat wearing a tiny hat",
)
NSFW_AT = 2  # index into PROMPTS of the NSFW-flagged item
NEGATIVE = "blurry, low quality"


def seed_review(conninfo: str, images: Path, prompts: tuple[str, ...] = PROMPTS) -> None:
    """One scored generation with a 256 px noise PNG per prompt, all queued with K = 1."""
    images.mkdir(parents=True, exist_ok=True)
    now = datetime.now(UTC)
    rng = np.random.default_rng(6)
    with psycopg.connect(conninfo) as conn:
        for i, prompt in enumerate(prompts):
            path = images / f"review-{i}.png"
            # Coarse noise: blurring it changes the pixels a lot, so a test can tell.
            cells = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
            Image.fromarray(cells).resize((256, 256), Image.NEAREST).save(path)
            row = conn.execute(
                "INSERT INTO generations (request_id, ts, model, model_version, prompt,"
                " negative_prompt, status, sampler, steps, cfg_scale, seed, width, height,"
                " image_uri) VALUES (%s, %s, 'sdxl', 'v1', %s, %s, 'ok', 'euler_a', 30, 7.5,"
                " %s, 1024, 1024, %s) RETURNING id",
                (
                    f"review-{i}",
                    now - timedelta(minutes=60 - i),
                    prompt,
                    NEGATIVE,
                    1000 + i,
                    str(path),
                ),
            ).fetchone()
            assert row is not None
            conn.execute(
                "INSERT INTO scorer_results (generation_id, scorer, scorer_version, value,"
                " flagged) VALUES (%s, 'clip', 'c', 25, NULL), (%s, 'nsfw', 'n', %s, %s)",
                (row[0], row[0], 0.9 if i == NSFW_AT else 0.1, i == NSFW_AT),
            )
        conn.commit()
        policy = ReviewPolicy(
            random_per_version=len(prompts),
            low_clip_quantile=0.0,
            nsfw_flagged_max=0,
            canary_max=0,
            k2_share=0.0,
        )
        enqueue(conn, policy, now + timedelta(minutes=1))
        conn.commit()

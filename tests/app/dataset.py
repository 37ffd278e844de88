"""A small dashboard dataset: two versions over the last hours, GPU samples, scores, images."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import psycopg
from PIL import Image

from diffwatch.db.queries.dashboard_cost import set_gpu_price
from diffwatch.db.queries.rollups import refresh

L4, H100 = "NVIDIA L4", "NVIDIA H100 80GB HBM3"
PROMPT_WITH_HTML = "<b>bold</b> <script>alert(1)</script> a red fox"
# Hostile prompts: each would run script, make a link or restyle text if rendered as
# HTML or Markdown. All carry the marker "xss-probe" so a search finds them.
XSS_PROMPTS = (
    "xss-probe <script>window.__xss = 'script'; alert('script')</script>",
    "xss-probe <img src=x onerror=\"window.__xss='img'; alert('img')\">",
    "xss-probe <a href=\"javascript:window.__xss='js'\">click</a> [md](javascript:alert(1))",
    'xss-probe <a href="data:text/html,<script>alert(1)</script>">data</a>'
    " [d](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    "xss-probe **bold** _it_ # heading <svg onload=\"window.__xss='svg'\"></svg>",
    "xss-probe \u202eevil\u202c right-to-left override \u2066isolate\u2069",
)


def seed(conninfo: str, images: Path, n: int = 40) -> None:
    """``n`` generations in the last 3 hours (every 5th an error), scored, with PNG files."""
    images.mkdir(parents=True, exist_ok=True)
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    rng = np.random.default_rng(0)
    with psycopg.connect(conninfo) as conn:
        for i in range(n):
            canary = i % 3 == 0
            path = images / f"{i}.png"
            Image.fromarray(rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)).save(path)
            conn.execute(
                "INSERT INTO generations (request_id, ts, model, model_version, prompt, status,"
                " batch_size, queue_ms, inference_ms, total_ms, gpu_type, deployment, error,"
                " image_uri) VALUES (%s, %s, 'sdxl', %s, %s, %s, 2, %s, %s, %s, %s, %s, %s, %s)",
                (
                    f"req-{i}",
                    now - timedelta(minutes=4 * i + 1),
                    "v2" if canary else "v1",
                    PROMPT_WITH_HTML if i == 1 else f"a photo of thing {i}",
                    "error" if i % 5 == 4 else "ok",
                    5.0 + i,
                    1500.0 + 40 * i + (600 if canary else 0),
                    1600.0 + 40 * i + (600 if canary else 0),
                    H100 if canary else L4,
                    "canary" if canary else "stable",
                    "CUDA out of memory" if i % 5 == 4 else None,
                    str(path),
                ),
            )
        for j, prompt in enumerate(XSS_PROMPTS):
            path = images / f"xss{j}.png"
            Image.fromarray(rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)).save(path)
            conn.execute(
                "INSERT INTO generations (request_id, ts, model, model_version, prompt, status,"
                " batch_size, total_ms, deployment, image_uri)"
                " VALUES (%s, %s, 'sdxl', 'v1', %s, 'ok', 1, 1000, 'stable', %s)",
                (f"xss-{j}", now - timedelta(minutes=3 + j), prompt, str(path)),
            )
        conn.execute(
            "INSERT INTO scorer_results (generation_id, scorer, scorer_version, value, flagged)"
            " SELECT id, 'clip', 'c', CASE WHEN request_id LIKE 'xss-%' THEN 1 ELSE 20 + id % 10"
            " END, NULL FROM generations WHERE status = 'ok'"
            " UNION ALL SELECT id, 'nsfw', 'n', 0.9, id % 7 = 0 FROM generations"
            " WHERE status = 'ok'"
        )
        conn.execute(
            "INSERT INTO gpu_samples (ts, host, gpu_index, gpu_name, util_pct, mem_used_mib,"
            " mem_total_mib, power_w, source)"
            " SELECT %(t)s - make_interval(mins => i), 'host-a', 0, %(l4)s, 60, 1000, 24000, 70,"
            " 'nvml' FROM generate_series(0, 179) i",
            {"t": now, "l4": L4},
        )
        set_gpu_price(conn, L4, 0.8)
        set_gpu_price(conn, H100, 3.0)
        conn.commit()
        refresh(conn)


def seed_bulk(conninfo: str, n: int = 1600) -> None:
    """``n`` more generations over the last 3 hours without images, scored: enough for the
    version comparison's minimum samples. The canary (every other one) is 600 ms slower."""
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    with psycopg.connect(conninfo) as conn:
        conn.execute(
            "INSERT INTO generations (request_id, ts, model, model_version, prompt, status,"
            " batch_size, queue_ms, inference_ms, total_ms, gpu_type, deployment)"
            " SELECT 'bulk-' || i, %(now)s - make_interval(secs => i * 10800.0 / %(n)s), 'sdxl',"
            " CASE WHEN i %% 2 = 0 THEN 'v2' ELSE 'v1' END, 'bulk prompt ' || i, 'ok', 1, 5,"
            " 1500 + (i %% 97) * 7 + CASE WHEN i %% 2 = 0 THEN 600 ELSE 0 END,"
            " 1600 + (i %% 97) * 7 + CASE WHEN i %% 2 = 0 THEN 600 ELSE 0 END,"
            " CASE WHEN i %% 2 = 0 THEN %(h100)s ELSE %(l4)s END,"
            " CASE WHEN i %% 2 = 0 THEN 'canary' ELSE 'stable' END"
            " FROM generate_series(1, %(n)s) i",
            {"now": now, "n": n, "h100": H100, "l4": L4},
        )
        conn.execute(
            "INSERT INTO scorer_results (generation_id, scorer, scorer_version, value, flagged)"
            " SELECT id, 'clip', 'c', 20 + id % 10, NULL FROM generations"
            " WHERE request_id LIKE 'bulk-%' UNION ALL"
            " SELECT id, 'nsfw', 'n', 0.9, id % 50 = 0 FROM generations"
            " WHERE request_id LIKE 'bulk-%'"
        )
        conn.commit()
        refresh(conn)

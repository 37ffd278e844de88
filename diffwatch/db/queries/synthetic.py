"""Synthetic history generated inside PostgreSQL, for bench/dashboard.py (not for production).

Rows look like bench/records.py's: 4 models / 8 versions, stable/canary/shadow, 3 GPU types
with their speeds, batch sizes 1-4, exponential queueing, 1.5 % errors of 4 kinds, prompts
of 30-300 characters. Timestamps spread evenly over ``[end - days, end)``.
"""

from __future__ import annotations

from datetime import datetime

import psycopg

GPUS = ("NVIDIA H100 80GB HBM3", "NVIDIA A100-SXM4-80GB", "NVIDIA L4")
_PROMPT = (
    "a red fox in a misty forest at sunset, highly detailed, photorealistic, oil painting, "
    "8k, octane render, studio lighting, cinematic, trending on artstation, concept art, "
    "35mm film, bokeh, volumetric lighting, ultra sharp, isometric, matte painting, soft "
    "focus, dramatic shadows, wide angle, macro shot, HDR, pastel colors, art nouveau, "
)
_GENERATIONS = f"""
INSERT INTO generations (request_id, ts, model, model_version, prompt, status, sampler, steps,
    cfg_scale, seed, width, height, batch_size, queue_ms, inference_ms, total_ms, gpu_type,
    host, gpu_index, image_uri, error, user_id, deployment)
SELECT 'syn-' || %(tag)s || '-' || i,
    %(end)s::timestamptz - make_interval(secs => (%(total)s - i - r1) * %(span_s)s / %(total)s),
    (ARRAY['sdxl-base-1.0','sdxl-base-1.0','sdxl-base-1.0','sd-v1-5','sd-v1-5','sdxl-turbo',
           'sd3-medium','sd3-medium'])[v],
    (ARRAY['2024-06-12','2024-09-30','2025-01-15','v1.5.2','v1.5.3','2023-11-28','rc2',
           '1.0.1'])[v],
    left('{_PROMPT}', 30 + (r2 * 270)::int), CASE WHEN err THEN 'error' ELSE 'ok' END,
    'DPM++ 2M Karras', 30, 7.0, i, 1024, 1024, b, -120 * ln(1 - r3),
    CASE WHEN err AND r4 < 0.5 THEN NULL ELSE (600 + r4 * 5000) * b * sp END,
    -120 * ln(1 - r3) + (600 + r4 * 5000) * b * sp + 40,
    (ARRAY['{GPUS[0]}','{GPUS[1]}','{GPUS[2]}'])[g], 'gen-' || (i %% 8), (i %% 8)::int,
    CASE WHEN err THEN NULL ELSE 's3://gen/' || i || '.png' END,
    CASE WHEN err THEN (ARRAY['CUDA out of memory. Tried to allocate 2.50 GiB',
        'safety checker: NSFW content detected', 'timeout after 60000 ms waiting for a GPU slot',
        'invalid size: width and height must be multiples of 8'])[1 + (r5 * 4)::int %% 4]
    END,
    'u' || (i %% 20000), CASE WHEN r6 < 0.9 THEN 'stable' WHEN r6 < 0.98 THEN 'canary'
                              ELSE 'shadow' END
FROM (SELECT i, r1, r2, r3, r4, r5, r6, 1 + (r1 * 8)::int %% 8 AS v, 1 + (r2 * 3)::int %% 3 AS g,
             (ARRAY[1, 1, 1, 1, 2, 4])[1 + (r3 * 6)::int %% 6] AS b,
             (ARRAY[1.0, 1.8, 5.5])[1 + (r2 * 3)::int %% 3] AS sp, r5 < 0.015 AS err
      FROM (SELECT i, random() r1, random() r2, random() r3, random() r4, random() r5,
                   random() r6 FROM generate_series(%(lo)s::bigint, %(hi)s::bigint - 1) i) a) s
"""
_GPU_SAMPLES = f"""
INSERT INTO gpu_samples (ts, host, gpu_index, gpu_name, util_pct, mem_used_mib, mem_total_mib,
    power_w, temp_c, sm_clock_mhz, source)
SELECT %(end)s::timestamptz - make_interval(mins => m), 'gpu-node-' || h, gi,
    (ARRAY['{GPUS[0]}','{GPUS[0]}','{GPUS[0]}','{GPUS[0]}','{GPUS[1]}','{GPUS[1]}',
           '{GPUS[2]}','{GPUS[2]}'])[h + 1],
    CASE WHEN random() < 0.2 THEN random() * 4 ELSE 20 + random() * 80 END,
    6000 + random() * 40000, 81559, 80 + random() * 500, 40 + random() * 40, 1500, 'bench'
FROM generate_series(%(m_lo)s::int, %(m_hi)s::int - 1) m, generate_series(0, 7) h,
     generate_series(0, 7) gi
"""
_SCORES = """
INSERT INTO scorer_results (generation_id, scorer, scorer_version, value, flagged)
SELECT id, 'clip', 'ViT-B-32/laion2b', 0.2 + random() * 0.15, NULL FROM generations
WHERE id >= %(lo)s AND id %% 50 = 0 AND status = 'ok'
UNION ALL
SELECT id, 'nsfw', '320n/0.5', NULL, random() < 0.01 FROM generations
WHERE id >= %(lo)s AND id %% 50 = 0 AND status = 'ok'
"""


def add_generations(
    conn: psycopg.Connection, lo: int, hi: int, total: int, end: datetime, days: float, tag: str
) -> None:
    """Insert synthetic rows number lo..hi-1 of ``total`` spread over ``days`` before end."""
    with conn.transaction():
        conn.execute(
            _GENERATIONS,
            {"lo": lo, "hi": hi, "total": total, "end": end, "span_s": days * 86400, "tag": tag},
        )


def add_gpu_samples(conn: psycopg.Connection, end: datetime, m_lo: int, m_hi: int) -> None:
    """One reading a minute of 64 GPUs (8 hosts) for minutes m_lo..m_hi-1 before ``end``."""
    with conn.transaction():
        conn.execute(_GPU_SAMPLES, {"end": end, "m_lo": m_lo, "m_hi": m_hi})


def add_scores(conn: psycopg.Connection, from_id: int) -> None:
    """A CLIP score and an NSFW flag for every 50th ok generation from id ``from_id`` on."""
    with conn.transaction():
        conn.execute(_SCORES, {"lo": from_id})


def max_id(conn: psycopg.Connection) -> int:
    """Highest generation id so far (0 when empty)."""
    row = conn.execute("SELECT coalesce(max(id), 0) FROM generations").fetchone()
    return int(row[0]) if row else 0

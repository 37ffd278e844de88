"""Realistic generation-log records for benchmarks: JSON lines plus the rows they should give.

Records look like a Stable Diffusion service's log: every contract field filled, prompts of
30-300 characters, a few keys outside the contract (kept in ``extra``), 1.5 % errors, and
about ``bad_ratio`` of lines made invalid on purpose (rejected by the collector).
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec

from diffwatch.db.queries.ingest import COPY_COLUMNS

MODELS = [  # (model, versions, weight, (min steps, max steps), cfg range, turbo)
    (
        "stable-diffusion-xl-base-1.0",
        ["2024-06-12", "2024-09-30", "2025-01-15"],
        55,
        (25, 50),
        (4.0, 9.0),
    ),
    ("stable-diffusion-v1-5", ["v1.5.2", "v1.5.3"], 15, (20, 50), (5.0, 12.0)),
    ("sdxl-turbo", ["2023-11-28"], 20, (1, 4), (0.0, 1.0)),
    ("stable-diffusion-3-medium", ["sd3m-rc2", "sd3m-1.0.1"], 10, (28, 40), (3.5, 7.5)),
]
SAMPLERS = [
    "DPM++ 2M Karras",
    "Euler a",
    "Euler",
    "DDIM",
    "UniPC",
    "DPM++ SDE Karras",
    "LMS",
    "Heun",
]
SIZES = [
    (1024, 1024),
    (832, 1216),
    (1216, 832),
    (896, 1152),
    (1152, 896),
    (512, 512),
    (768, 768),
    (512, 768),
    (768, 512),
    (1344, 768),
]
GPUS = [("NVIDIA H100 80GB HBM3", 1.0), ("NVIDIA A100-SXM4-80GB", 1.8), ("NVIDIA L4", 5.5)]
DEPLOYMENTS = [("stable", 90), ("canary", 8), ("shadow", 2)]
SUBJECTS = [
    "a red fox",
    "an astronaut",
    "a lighthouse",
    "a bowl of ramen",
    "a cyberpunk street",
    "an old fisherman",
    "a cat wearing a tiny crown",
    "a medieval castle",
    "a koi pond",
    "a vintage motorcycle",
    "a glass greenhouse",
    "a snow leopard",
    "a steampunk airship",
    "a portrait of a young woman",
    "a mountain village",
    "a robot gardener",
    "a coral reef",
    "a neon diner",
    "a desert caravan",
    "a wooden cabin",
    "an owl",
    "a futuristic city",
    "a bowl of fruit",
    "a dragon",
    "a sailing ship",
    "a tea ceremony",
    "a jazz band",
]
SETTINGS = [
    "at sunset",
    "in the rain",
    "under a starry sky",
    "in a misty forest",
    "on the moon",
    "in Tokyo at night",
    "in a snowy valley",
    "by the sea",
    "in golden hour light",
    "inside a cathedral",
    "in an abandoned factory",
    "on a rooftop",
    "in a field of tulips",
]
STYLES = [
    "highly detailed",
    "photorealistic",
    "oil painting",
    "watercolor",
    "8k",
    "octane render",
    "studio lighting",
    "cinematic",
    "trending on artstation",
    "by greg rutkowski",
    "concept art",
    "35mm film",
    "bokeh",
    "volumetric lighting",
    "ultra sharp",
    "isometric",
    "pixel art",
    "anime style",
    "low poly",
    "ukiyo-e",
    "art nouveau",
    "matte painting",
    "soft focus",
    "dramatic shadows",
    "wide angle",
    "macro shot",
    "HDR",
    "pastel colors",
]
NEGATIVES = [
    "blurry",
    "low quality",
    "watermark",
    "text",
    "deformed hands",
    "extra fingers",
    "jpeg artifacts",
    "cropped",
    "worst quality",
    "signature",
    "bad anatomy",
    "lowres",
]
ERRORS = [
    "CUDA out of memory. Tried to allocate 2.50 GiB (GPU 0; 79.11 GiB total capacity)",
    "safety checker: NSFW content detected, image withheld",
    "timeout after 60000 ms waiting for a GPU slot",
    "invalid size: width and height must be multiples of 8",
]
CLIENTS = ["web", "ios", "android", "api", "discord-bot"]
LORAS = ["detail-tweaker:0.6", "film-grain:0.4", "pixel-art-xl:0.9", "add-more-details:0.7"]


def _weighted(rng: random.Random, items: Sequence[tuple[Any, ...]], wi: int) -> Any:
    return rng.choices(items, weights=[it[wi] for it in items])[0]


def make_prompt(rng: random.Random) -> str:
    """A prompt of 30-300 characters built like real ones: subject, setting, style tags."""
    target = rng.randint(30, 300)
    text = f"{rng.choice(SUBJECTS)} {rng.choice(SETTINGS)}"
    for tag in rng.sample(STYLES, len(STYLES)):  # tags without repeats, in random order
        if len(text) >= target:
            break
        text += ", " + tag
    if len(text) > 300:
        text = text[:300].rstrip(", ")
    return text


@dataclass
class Generated:
    """The generated log file and the rows it should produce."""

    path: Path
    nbytes: int
    records: int
    bad: int
    bad_kinds: dict[str, int] = field(default_factory=dict)
    rows: list[tuple[Any, ...]] = field(default_factory=list)  # COPY_COLUMNS order


def _record(
    rng: random.Random,
    ts: datetime,
    users: Sequence[str],
    hosts: Sequence[str],
    extra_ratio: float,
) -> dict[str, Any]:
    model, versions, _w, (smin, smax), (cmin, cmax) = _weighted(rng, MODELS, 2)
    width, height = rng.choice(SIZES) if "turbo" not in model else (512, 512)
    steps = rng.randint(smin, smax)
    batch = rng.choice((1, 1, 1, 1, 2, 4))
    gpu, slow = rng.choice(GPUS)
    ok = rng.random() >= 0.015
    megapix = width * height / 1e6
    inference = round(steps * megapix * batch * 28.0 * slow * rng.uniform(0.85, 1.25), 3)
    queue = round(rng.expovariate(1 / 120.0), 3)
    rid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    rec: dict[str, Any] = {
        "request_id": rid,
        "timestamp": ts.isoformat(),
        "model": model,
        "model_version": rng.choice(versions),
        "prompt": make_prompt(rng),
        "status": "ok" if ok else "error",
        "negative_prompt": ", ".join(rng.sample(NEGATIVES, rng.randint(2, 6)))
        if rng.random() < 0.6
        else None,
        "sampler": rng.choice(SAMPLERS),
        "steps": steps,
        "cfg_scale": round(rng.uniform(cmin, cmax) * 2) / 2,
        "seed": rng.getrandbits(32) if rng.random() < 0.9 else rng.getrandbits(63),
        "width": width,
        "height": height,
        "batch_size": batch,
        "queue_ms": queue,
        "inference_ms": inference if ok else None,
        "total_ms": round(queue + (inference if ok else 0.0) + rng.uniform(15, 90), 3),
        "gpu_type": gpu,
        "host": rng.choice(hosts),
        "gpu_index": rng.randrange(8),
        "image_uri": f"s3://gen-images-prod/{ts:%Y/%m/%d}/{rid}.png" if ok else None,
        "error": None if ok else rng.choice(ERRORS),
        "user_id": rng.choice(users),
        "deployment": _weighted(rng, DEPLOYMENTS, 1)[0],
    }
    if rng.random() < extra_ratio:
        # Keys outside the contract, as real services add them: kept in `extra`.
        rec["trace_id"] = f"{rng.getrandbits(64):016x}"
        if rng.random() < 0.3:
            rec["loras"] = rng.sample(LORAS, rng.randint(1, 2))
        if rng.random() < 0.5:
            rec["client"] = rng.choice(CLIENTS)
    return rec


_KNOWN = frozenset(c if c != "ts" else "timestamp" for c in COPY_COLUMNS)


def _row(rec: dict[str, Any], ts: datetime, path: str, offset: int) -> tuple[Any, ...]:
    """The row the collector should store for ``rec``, in COPY_COLUMNS order."""
    extra = {k: v for k, v in rec.items() if k not in _KNOWN}
    values = {**rec, "ts": ts, "extra": extra, "source": path, "source_offset": offset}
    return tuple(values.get(c) for c in COPY_COLUMNS)


def _bad_line(rng: random.Random, rec: dict[str, Any]) -> tuple[str, bytes]:
    kind = rng.choice(("truncated_json", "missing_model", "negative_steps", "naive_timestamp"))
    if kind == "truncated_json":
        line = msgspec.json.encode(rec)
        return kind, line[: len(line) // 2]
    rec = dict(rec)
    if kind == "missing_model":
        del rec["model"]
    elif kind == "negative_steps":
        rec["steps"] = -3
    else:
        rec["timestamp"] = rec["timestamp"][:19]  # drops the UTC offset
    return kind, msgspec.json.encode(rec)


def generate(
    path: Path,
    n: int,
    bad_ratio: float,
    seed: int,
    progress: Callable[[str], None] = lambda _msg: None,
    extra_ratio: float = 1.0,
) -> Generated:
    """Write ``n`` log lines (about ``bad_ratio`` of them invalid) and keep the good rows.

    ``extra_ratio`` of the records carry keys outside the contract (a ``trace_id``, and
    sometimes ``loras`` and ``client``), which the collector keeps in ``extra``.
    """
    rng = random.Random(seed)
    users = [f"u_{rng.getrandbits(40):010x}" for _ in range(20_000)]
    hosts = [f"gen-worker-{i:03d}.us-east-1.internal" for i in range(48)]
    # Timestamps in the past (the collector refuses the future), in log order.
    ts = datetime.now(UTC).replace(microsecond=0) - timedelta(days=2)
    step_s = (2 * 86400 - 600) / max(n, 1)
    gen = Generated(path, 0, n, 0)
    offset = 0
    spath = str(path)
    with open(path, "wb", buffering=1 << 20) as f:
        for i in range(n):
            t = ts + timedelta(seconds=i * step_s + rng.uniform(0, step_s))
            rec = _record(rng, t, users, hosts, extra_ratio)
            if rng.random() < bad_ratio:
                kind, line = _bad_line(rng, rec)
                gen.bad += 1
                gen.bad_kinds[kind] = gen.bad_kinds.get(kind, 0) + 1
            else:
                line = msgspec.json.encode(rec)
                gen.rows.append(_row(rec, t, spath, offset))
            f.write(line)
            f.write(b"\n")
            offset += len(line) + 1
            if (i + 1) % 100_000 == 0:
                progress(f"generated {i + 1:,} / {n:,} records")
    gen.nbytes = offset
    return gen

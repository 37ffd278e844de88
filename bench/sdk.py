"""SDK overhead: a diffusers pipeline wrapped by ``diffwatch.sdk.watch`` against the bare one.

The same pipeline, prompts and seeds, in the same run, in ABBA order (bare, watch, watch,
bare, ...), after warm-up calls. Variants:

* ``bare``: the pipeline alone (the baseline);
* ``watch``: wrapped, one record per image to a ``DirectorySink`` (no image saving);
* ``watch_images``: wrapped and saving each image as PNG through fsspec (``image_uri``).

Figures: the median wall time of a call (ms) per variant, the overhead ratio against the
bare median, and the wrapper's own time per call measured directly (the watched call's wall
time minus the pipeline's own time that the record holds as ``total_ms``), which is free of
run-to-run noise. Goal: ``watch`` overhead ≤ 1 % of a 25-step SD 1.5 call.

On ``--device cuda``: an SD 1.5-architecture pipeline with RANDOM weights (bench/regenerate.py
``sd15_pipeline``), fp16, 512 px, 25 steps, CFG 7.5. ``--smoke``: the tiny pipeline on the
CPU. Prints ONE JSON object on stdout (also to ``--out``); progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:] = [str(REPO)] + [
    p for p in sys.path if Path(p or ".").resolve() not in (REPO, REPO / "bench")
]

from bench import smoke  # noqa: E402

GOAL_OVERHEAD_MAX = 0.01
PROMPT = "a photograph of an astronaut riding a horse on the moon, highly detailed"
SMOKE = {"device": "cpu", "steps": 2, "size": 64, "rounds": 1}


def progress(msg: str) -> None:
    """Progress for a person, on stderr."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cuda", help="cuda (SD 1.5 random weights) or cpu (tiny)")
    ap.add_argument("--steps", type=int, default=25)
    ap.add_argument("--size", type=int, default=512, help="image side (px)")
    ap.add_argument("--rounds", type=int, default=4, help="ABBA rounds (2 calls a variant each)")
    ap.add_argument("--out", type=Path, help="also write the JSON here")
    smoke.add_smoke(ap)
    return smoke.parse(ap, argv, SMOKE)


def build_pipeline(device: str) -> tuple[Any, str]:
    """The pipeline to time and its description."""
    import torch

    if device == "cpu":
        from diffwatch.demo.tiny_pipeline import TINY_PIPELINE_LABEL, build_tiny_pipeline

        pipe = build_tiny_pipeline()
        label = TINY_PIPELINE_LABEL
    else:
        from bench.regenerate import sd15_pipeline

        pipe = sd15_pipeline(device).to(torch.float16)
        label = "SD 1.5 architecture, random weights, fp16"
    pipe.set_progress_bar_config(disable=True)
    return pipe, label


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    import numpy as np
    import torch

    from diffwatch.sdk import DirectorySink, GenerationLogger, ImageStore, watch

    pipe, label = build_pipeline(args.device)
    tmp = Path(tempfile.mkdtemp(prefix="bench-sdk-"))
    kw = {"num_inference_steps": args.steps, "height": args.size, "width": args.size,
          "guidance_scale": 7.5}  # fmt: skip
    plain = GenerationLogger(DirectorySink(tmp / "logs"))
    with_images = GenerationLogger(DirectorySink(tmp / "logs"), images=ImageStore(str(tmp / "img")))
    variants = {
        "bare": pipe,
        "watch": watch(pipe, plain, model="sd15", model_version="bench"),
        "watch_images": watch(pipe, with_images, model="sd15", model_version="bench"),
    }

    def call(name: str, seed: int) -> tuple[float, Any]:
        gen = torch.Generator(device="cpu").manual_seed(seed)
        if args.device != "cpu":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        out = variants[name](PROMPT, generator=gen, **kw)
        return (time.perf_counter() - t0) * 1000.0, out.images[0]

    progress(f"{label} on {args.device}: warm-up")
    for name in variants:
        call(name, 0)
    times: dict[str, list[float]] = {k: [] for k in variants}
    own: dict[str, list[float]] = {"watch": [], "watch_images": []}
    images: dict[str, list[bytes]] = {k: [] for k in variants}
    order: list[str] = []
    seq = ["bare", "watch", "watch_images", "watch_images", "watch", "bare"]
    for r in range(args.rounds):
        for name in seq:
            ms, img = call(name, 1000 + r)
            times[name].append(ms)
            images[name].append(np.asarray(img).tobytes())
            order.append(name)
            if name != "bare":
                own[name].append(ms - _last_record(tmp / "logs")["total_ms"])
        progress(f"round {r + 1}/{args.rounds}: " + ", ".join(
            f"{k} {statistics.median(v):.1f} ms" for k, v in times.items()))  # fmt: skip
    plain.close()
    with_images.close()
    median = {k: statistics.median(v) for k, v in times.items()}
    records = sum(1 for p in (tmp / "logs").iterdir() for _ in p.open("rb"))
    identical = images["bare"] == images["watch"] == images["watch_images"]
    n_calls = sum(len(v) for v in times.values())
    res: dict[str, Any] = {
        "smoke": args.smoke,
        "device": args.device,
        "gpu": torch.cuda.get_device_name() if args.device != "cpu" else None,
        "pipeline": label,
        "steps": args.steps,
        "size_px": args.size,
        "calls_per_variant": len(times["bare"]),
        "order": order,
        "bare": {"median_ms": median["bare"], "runs_ms": times["bare"]},  # the baseline
        "watch": {
            "median_ms": median["watch"],
            "runs_ms": times["watch"],
            "own_ms_median": statistics.median(own["watch"]),
        },
        "watch_images": {
            "median_ms": median["watch_images"],
            "runs_ms": times["watch_images"],
            "own_ms_median": statistics.median(own["watch_images"]),
        },
        "overhead": {
            "watch_vs_bare": median["watch"] / median["bare"] - 1.0,
            "watch_own_share_of_bare": statistics.median(own["watch"]) / median["bare"],
            "watch_images_vs_bare": median["watch_images"] / median["bare"] - 1.0,
            "watch_images_own_share_of_bare": statistics.median(own["watch_images"])
            / median["bare"],
        },
        "goal_overhead_max": GOAL_OVERHEAD_MAX,
        "correct": {
            # one record per watched call, the two warm-up calls included
            "ok": identical and records == n_calls - len(times["bare"]) + 2,
            "identical_images": identical,
            "records": records,
        },
        "python": platform.python_version(),
        "torch": torch.__version__,
    }
    ov = res["overhead"]
    res["pass"] = {
        "watch_own_share": ov["watch_own_share_of_bare"] <= GOAL_OVERHEAD_MAX,
        "watch_vs_bare_median": ov["watch_vs_bare"] <= GOAL_OVERHEAD_MAX,
    }
    text = json.dumps(res, indent=1)
    print(text)
    if args.out:
        args.out.write_text(text)
    return res


def _last_record(logs: Path) -> dict[str, Any]:
    newest = max(logs.iterdir(), key=lambda p: p.stat().st_mtime_ns)
    return json.loads(newest.read_bytes().splitlines()[-1])


if __name__ == "__main__":
    main()

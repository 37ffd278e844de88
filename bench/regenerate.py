"""Re-generation benchmark: image-steps/s of the engine against plain diffusers defaults.

Builds an SD 1.5-architecture ``StableDiffusionPipeline`` from configs with RANDOM weights
(UNet 320/640/1280/1280, cross-attention 768; SD's VAE; CLIP ViT-L/14 text encoder; CLIP's
real BPE tokenizer written locally; PNDM with SD 1.5's config): timing only, the images
mean nothing. Then measures full pipeline calls (text encoding, denoising, VAE decoding,
PIL images) at ``--size`` px, ``--steps`` steps and CFG 7.5 (so the UNet sees twice the
batch), after a warm-up call, as the median of ``--repeats`` calls:

1. baseline, "plain diffusers defaults": fp32, diffusers' default attention, no
   channels_last, no compile, batch 1 (and batch 16 unless ``--no-default-16``);
2. ours, eager: the engine's own setup (``diffwatch.drift.diffusion_load.prepare_pipeline``: fp16
on
   cuda, SDPA, channels_last) run through ``diffwatch.drift.regenerate.Regenerator``, per batch
   size;
3. ours, compiled (``--compile``, on by default on cuda): the same with the UNet in
   ``torch.compile(mode=--compile-mode)``, at ``--compile-batch-sizes`` (default: the
   largest). With ``compile`` the engine also fuses the QKV projections, compiles the VAE
   decoder, and sets ``torch.backends.cudnn.benchmark``.

Figures: docs/benchmarks.md ("Re-generation").

image-steps/s = images × steps / wall seconds of the call. ``--device cpu --tiny`` runs
the tiny pipeline at small sizes instead, as a smoke test. Prints ONE JSON object on
stdout (also to ``--out``); progress goes to stderr. Run ``python bench/regenerate.py -h``.
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
# Run as `python bench/regenerate.py`, Python puts bench/ first on sys.path; put the
# repository root first so `scoring` is the package (as bench/scoring.py does).
sys.path[:] = [str(REPO)] + [
    p for p in sys.path if Path(p or ".").resolve() not in (REPO, REPO / "bench")
]

from bench import smoke  # noqa: E402

GOALS = {"goal_image_steps_per_s": 200.0, "goal_ratio_vs_default_batch1": 3.0}
# --smoke: the tiny pipeline on the CPU, 2 steps of 64 px (the least), defaults at batch 1,
# ours at batch 2, one timed call each.
SMOKE = {
    "device": "cpu",
    "tiny": True,
    "batch_sizes": "2",
    "steps": 2,
    "size": 64,
    "repeats": 1,
    "compile": False,
    "default_16": False,
}
CFG_SCALE = 7.5
PROMPT = "a photograph of an astronaut riding a horse on the moon, highly detailed"
QUIET = {"on": False}


def progress(msg: str) -> None:
    """Progress for a person, on stderr (stdout carries only the JSON result)."""
    if not QUIET["on"]:
        print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def sd15_pipeline(device: str, seed: int = 0) -> Any:
    """An SD 1.5-architecture pipeline with random weights, fp32, built on ``device``."""
    import torch
    from diffusers import (
        AutoencoderKL,
        PNDMScheduler,
        StableDiffusionPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel

    from diffwatch.demo.tiny_pipeline import SD15_SCHEDULER_CONFIG, load_clip_tokenizer

    torch.manual_seed(seed)
    with torch.device(device):  # random init on the GPU: seconds instead of a minute
        unet = UNet2DConditionModel(
            sample_size=64,
            block_out_channels=(320, 640, 1280, 1280),
            layers_per_block=2,
            cross_attention_dim=768,
            attention_head_dim=8,
            down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
            up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
        )
        vae = AutoencoderKL(
            block_out_channels=(128, 256, 512, 512),
            down_block_types=("DownEncoderBlock2D",) * 4,
            up_block_types=("UpDecoderBlock2D",) * 4,
            layers_per_block=2,
            latent_channels=4,
            sample_size=512,
        )
        text_encoder = CLIPTextModel(
            CLIPTextConfig(
                vocab_size=49408,
                hidden_size=768,
                intermediate_size=3072,
                num_hidden_layers=12,
                num_attention_heads=12,
                max_position_embeddings=77,
                hidden_act="quick_gelu",
                projection_dim=768,
                bos_token_id=49406,
                eos_token_id=49407,
                pad_token_id=1,
            )
        )
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer = load_clip_tokenizer(Path(tmp))
    pipe = StableDiffusionPipeline(
        vae=vae.eval(),
        text_encoder=text_encoder.eval(),
        tokenizer=tokenizer,
        unet=unet.eval(),
        scheduler=PNDMScheduler.from_config(SD15_SCHEDULER_CONFIG),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def tiny_pipeline() -> Any:
    """The tiny random-weight pipeline (``diffwatch.demo.tiny_pipeline``), fp32 on the CPU."""
    from diffwatch.demo.tiny_pipeline import build_tiny_pipeline

    pipe = build_tiny_pipeline()
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def time_calls(call: Any, device: str, repeats: int) -> list[float]:
    """Wall seconds of ``repeats`` calls after one warm-up call (s)."""
    call()
    times = []
    for _ in range(repeats):
        _sync(device)
        started = time.perf_counter()
        call()
        _sync(device)
        times.append(time.perf_counter() - started)
    return times


def row(name: str, batch: int, steps: int, times: list[float], base: float | None) -> dict:
    """One result row: images/s, image-steps/s and the ratio to the baseline's image-steps/s."""
    median = statistics.median(times)
    ips = batch * steps / median
    return {
        "config": name,
        "batch": batch,
        "seconds_median": round(median, 4),
        "seconds_all": [round(t, 4) for t in times],
        "images_per_s": round(batch / median, 3),
        "image_steps_per_s": round(ips, 2),
        "ratio_vs_default_batch1": round(ips / base, 3) if base else 1.0,
    }


def plain_call(pipe: Any, batch: int, steps: int, size: int) -> Any:
    """A plain diffusers call, as a user would write it (one CPU generator per image)."""
    import torch

    def call() -> Any:
        gens = [torch.Generator("cpu").manual_seed(i) for i in range(batch)]
        with torch.inference_mode():
            return pipe(
                [PROMPT] * batch,
                num_inference_steps=steps,
                guidance_scale=CFG_SCALE,
                width=size,
                height=size,
                generator=gens,
                output_type="pil",
            ).images

    return call


def engine_call(loaded: Any, batch: int, steps: int, size: int) -> Any:
    """One Regenerator run of ``batch`` requests that share one pipeline call."""
    from diffwatch.drift.regenerate import Regenerator, RegenRequest

    regen = Regenerator(loaded, max_batch=batch)
    requests = [
        RegenRequest(
            f"r{i}",
            f"{PROMPT} {i}",
            seed=i,
            steps=steps,
            cfg_scale=CFG_SCALE,
            width=size,
            height=size,
        )
        for i in range(batch)
    ]

    def call() -> None:
        outcomes = list(regen.run(requests))
        failed = [o.error for o in outcomes if o.error]
        if failed:
            raise RuntimeError(f"the engine failed: {failed[0]}")

    return call


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto")
    ap.add_argument("--tiny", action="store_true", help="tiny random pipeline (CPU smoke test)")
    ap.add_argument("--batch-sizes", default=None, help="comma list (default 1,2,4,8,16)")
    ap.add_argument("--steps", type=int, default=None, help="denoising steps (default 25)")
    ap.add_argument("--size", type=int, default=None, help="image side in px (default 512)")
    ap.add_argument("--repeats", type=int, default=3, help="timed calls per row (median)")
    ap.add_argument(
        "--compile",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also measure torch.compile'd UNet (default: on with cuda)",
    )
    ap.add_argument(
        "--compile-mode",
        default=None,
        help="torch.compile mode (default: drift.diffusion_load.COMPILE_MODE)",
    )
    ap.add_argument(
        "--compile-batch-sizes",
        default=None,
        help="batch sizes to compile and time (default: the largest only; each new size "
        "recompiles, minutes with max-autotune)",
    )
    ap.add_argument(
        "--fuse-qkv",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="fuse QKV projections before the engine's setup (it fuses them itself when "
        "compiling on cuda)",
    )
    ap.add_argument(
        "--cudnn-benchmark",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="set torch.backends.cudnn.benchmark before the engine's setup (it sets it "
        "itself when compiling on cuda)",
    )
    ap.add_argument(
        "--default-16",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also measure the defaults at batch 16 (largest batch size)",
    )
    ap.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    ap.add_argument("--quiet", action="store_true", help="no progress on stderr")
    smoke.add_smoke(ap)
    return smoke.parse(ap, argv, SMOKE)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark; print and return the JSON result."""
    import diffusers
    import torch

    from diffwatch.drift.diffusion_config import DiffusionConfig
    from diffwatch.drift.diffusion_load import COMPILE_MODE, prepare_pipeline, resolve_device

    args = parse_args(argv)
    QUIET["on"] = args.quiet
    device = resolve_device(args.device)
    cuda = device.startswith("cuda")
    steps = args.steps or (4 if args.tiny else 25)
    size = args.size or (128 if args.tiny else 512)
    sizes = [
        int(b) for b in (args.batch_sizes or ("1,2,4" if args.tiny else "1,2,4,8,16")).split(",")
    ]
    do_compile = cuda if args.compile is None else args.compile
    mode = args.compile_mode or COMPILE_MODE
    result: dict[str, Any] = {
        "bench": "regenerate",
        "smoke": args.smoke,
        "pipeline": "tiny random-weight SD" if args.tiny else "SD 1.5 architecture, random weights",
        "device": torch.cuda.get_device_name(device) if cuda else platform.processor() or "cpu",
        "torch": torch.__version__,
        "diffusers": diffusers.__version__,
        "size_px": size,
        "steps": steps,
        "cfg_scale": CFG_SCALE,
        "repeats": args.repeats,
        **GOALS,
    }
    t0 = time.perf_counter()
    progress(f"building the pipeline on {device}")
    pipe = tiny_pipeline() if args.tiny else sd15_pipeline(device)
    pipe.to(device)
    rows: list[dict[str, Any]] = []

    # 1. Plain diffusers defaults: fp32, as built (diffusers' default attention processor).
    progress("defaults, fp32, batch 1")
    base_times = time_calls(plain_call(pipe, 1, steps, size), device, args.repeats)
    base = row("default_fp32", 1, steps, base_times, None)
    base_ips = base["image_steps_per_s"]
    rows.append(base)
    if args.default_16 and max(sizes) > 1:
        b = max(sizes)
        progress(f"defaults, fp32, batch {b}")
        rows.append(
            row(
                "default_fp32",
                b,
                steps,
                time_calls(plain_call(pipe, b, steps, size), device, args.repeats),
                base_ips,
            )
        )

    # 2. Ours: the engine's setup and Regenerator, eager.
    precision = "fp16" if cuda else "fp32"
    cfg = DiffusionConfig(source="bench", device=device, precision=precision, compile=False)
    loaded = prepare_pipeline(pipe, cfg, source="bench", device=device, precision=precision)
    result["ours"] = loaded.describe()
    for b in sizes:
        progress(f"ours eager {precision}, batch {b}")
        times = time_calls(engine_call(loaded, b, steps, size), device, args.repeats)
        rows.append(row(f"ours_eager_{precision}", b, steps, times, base_ips))

    # 3. Ours, compiled (the first call of each batch size compiles: not timed); any extra
    # lever asked for is named in the row, so the figures say what they need.
    if do_compile:
        levers = []
        if args.fuse_qkv and hasattr(pipe, "fuse_qkv_projections"):
            pipe.fuse_qkv_projections()
            levers.append("fuse_qkv")
        if args.cudnn_benchmark and cuda:
            torch.backends.cudnn.benchmark = True
            levers.append("cudnn_benchmark")
        result["compiled_levers"] = levers
        cfg = DiffusionConfig(source="bench", device=device, precision=precision, compile=True)
        loaded = prepare_pipeline(
            pipe, cfg, source="bench", device=device, precision=precision, compile_mode=mode
        )
        result["compile_mode"] = mode
        compile_sizes = (
            [int(b) for b in args.compile_batch_sizes.split(",")]
            if args.compile_batch_sizes
            else [max(sizes)]
        )
        for b in compile_sizes:
            progress(f"ours compiled ({mode}), batch {b}: compiling on the warm-up call")
            started = time.perf_counter()
            times = time_calls(engine_call(loaded, b, steps, size), device, args.repeats)
            name = "+".join([f"ours_compiled_{precision}", *levers])
            r = row(name, b, steps, times, base_ips)
            r["warmup_and_timed_seconds"] = round(time.perf_counter() - started, 1)
            rows.append(r)

    ours = [r for r in rows if r["config"].startswith("ours")]
    best = max(ours, key=lambda r: r["image_steps_per_s"])
    result.update(
        rows=rows,
        baseline_image_steps_per_s=base_ips,
        best={k: best[k] for k in ("config", "batch", "image_steps_per_s", "images_per_s")},
        best_ratio_vs_default_batch1=best["ratio_vs_default_batch1"],
        pass_image_steps_per_s=best["image_steps_per_s"] >= GOALS["goal_image_steps_per_s"],
        pass_ratio_vs_default_batch1=best["ratio_vs_default_batch1"]
        >= GOALS["goal_ratio_vs_default_batch1"],
        total_seconds=round(time.perf_counter() - t0, 1),
    )
    # Every engine call raised unless each request came back with an image (engine_call).
    expected = {("default_fp32", 1)} | {(f"ours_eager_{precision}", b) for b in sizes}
    measured = {(r["config"], r["batch"]) for r in rows}
    result["correct"] = {
        "every_config_measured": expected <= measured,
        "rates_positive": all(r["image_steps_per_s"] > 0 for r in rows),
    }
    result["correct"]["ok"] = all(
        result["correct"][k] for k in ("every_config_measured", "rates_positive")
    )
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return result


if __name__ == "__main__":
    sys.exit(0 if main()["correct"]["ok"] else 1)

"""Where a GPU scoring batch spends its time once images are decoded on the GPU.

Times, on CUDA, at ``--batch-size``: nvJPEG batch decode (bytes in memory), the loader
(processes, then the device part), CLIP preprocessing of device tensors step by step, the
CLIP scorer with loader tokens, and NSFW on device tensors. Prints one JSON object.
``--device cpu`` (and ``--smoke``) runs the same steps on the CPU (libjpeg decode, CPU
tensors, fp32): it only shows that the probe still runs. ``python bench/scoring_gpu_probe.py -h``.
"""

from __future__ import annotations

import argparse
import json
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
from bench.roots import allow_images  # noqa: E402
from bench.scoring import TINY_CLIP, build, random_clip_checkpoint  # noqa: E402
from bench.scoring_data import prompts, write_images  # noqa: E402
from bench.scoring_stages import rate  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    """Run the probes and print the JSON object."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=int, default=2048, help="JPEG files")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--min-s", type=float, default=1.0)
    p.add_argument("--load-processes", type=int, default=None)
    p.add_argument("--device", default="cuda", help="cuda, cuda:N, or cpu (a smoke test)")
    p.add_argument("--clip-model", default="ViT-B-32", help=f"open_clip name, or {TINY_CLIP!r}")
    smoke.add_smoke(p)
    args = smoke.parse(
        p,
        argv,
        {
            "images": 4,
            "batch_size": 2,
            "min_s": 0.01,
            "load_processes": 1,
            "device": "cpu",
            "clip_model": TINY_CLIP,
        },
    )
    import torch
    import torch.nn.functional as F
    from torchvision.io import ImageReadMode, decode_jpeg

    from diffwatch.scoring.clip.preprocess import (
        _crop_or_pad,
        _resize_like_pil,
        _resize_mode,
        preprocess_batch,
        resized_size,
    )
    from diffwatch.scoring.loader import ImageLoader, LoaderOptions

    dev, b, ms = args.device, args.batch_size, args.min_s
    cuda = dev.startswith("cuda")
    half = torch.float16 if cuda else torch.float32  # fp16 is for the GPU
    out: dict[str, Any] = {
        "benchmark": "scoring_gpu_probe",
        "smoke": args.smoke,
        "device": dev,
        "batch_size": b,
        "gpu": torch.cuda.get_device_name(dev) if cuda else None,
    }
    with tempfile.TemporaryDirectory() as tmp:
        allow_images(tmp)
        files = write_images(Path(tmp), args.images, 256, ["jpeg"])
        paths, texts = files.paths["jpeg"], prompts(args.images)
        ckpt = random_clip_checkpoint(Path(tmp), args.clip_model)
        scorers = build(["clip", "nsfw"], dev, b, ckpt, args.clip_model)
        clip = scorers["clip"]
        blobs = [
            torch.frombuffer(bytearray(Path(q).read_bytes()), dtype=torch.uint8) for q in paths[:b]
        ]
        out["nvjpeg_decode"] = rate(
            lambda: decode_jpeg(blobs, mode=ImageReadMode.RGB, device=dev), b, dev, min_s=ms
        )
        chw = decode_jpeg(blobs, mode=ImageReadMode.RGB, device=dev)
        hwc = [t.permute(1, 2, 0) for t in chw]
        spec = clip.clip.preprocess
        out["clip_preprocess_device_tensors"] = rate(
            lambda: preprocess_batch(hwc, spec, dev, half), b, dev, min_s=ms
        )
        x = torch.stack(hwc).permute(0, 3, 1, 2).contiguous().float()
        out["clip_pre_stack_float"] = rate(
            lambda: torch.stack(hwc).permute(0, 3, 1, 2).contiguous().float(),
            b,
            dev,
            min_s=ms,
        )
        size = resized_size(512, 512, spec)
        out["clip_pre_resize_two_pass"] = rate(
            lambda: _resize_like_pil(x, size, _resize_mode(spec)), b, dev, min_s=ms
        )
        out["clip_pre_resize_one_pass_no_round"] = rate(
            lambda: F.interpolate(x, size=size, mode="bicubic", antialias=True),
            b,
            dev,
            min_s=ms,
        )
        y = _resize_like_pil(x, size, _resize_mode(spec))
        out["clip_pre_crop"] = rate(lambda: _crop_or_pad(y, spec), b, dev, min_s=ms)
        tokens = clip.prompt_tokenizer(texts[:b])
        out["clip_scorer_device_tensors_with_tokens"] = rate(
            lambda: clip.score(hwc, texts[:b], tokens), b, dev, min_s=ms
        )
        out["clip_scorer_inner_with_tokens"] = rate(
            lambda: clip._scorer.score(hwc, texts[:b], tokens=tokens), b, dev, min_s=ms
        )
        out["nsfw_scorer_device_tensors"] = rate(
            lambda: scorers["nsfw"].score(hwc, texts[:b]), b, dev, min_s=ms
        )
        opts = LoaderOptions.for_device(dev, args.load_processes)
        failures = 0
        with ImageLoader(opts, clip.prompt_tokenizer) as loader:
            t0 = time.perf_counter()
            failures += _failures(loader.load(paths[:b], texts[:b]))
            out["loader_first_call_s"] = round(time.perf_counter() - t0, 2)
            for k in range(3):
                t0 = time.perf_counter()
                images, _toks = loader._load_in_processes(paths[:b], texts[:b], None)
                t1 = time.perf_counter()
                loader._decode_on_device(images)
                t2 = time.perf_counter()
                out[f"loader_round{k}"] = {
                    "processes_images_per_s": round(b / (t1 - t0), 1),
                    "device_decode_images_per_s": round(b / (t2 - t1), 1),
                }
            t0 = time.perf_counter()
            for lo in range(0, len(paths), b):
                failures += _failures(loader.load(paths[lo : lo + b], texts[lo : lo + b]))
            out["loader_all_images_per_s"] = round(len(paths) / (time.perf_counter() - t0), 1)
        out["loader"] = {"processes": opts.processes, "gpu_jpeg": opts.gpu_jpeg}
    rates = [v["items_per_s"] for v in out.values() if isinstance(v, dict) and "items_per_s" in v]
    out["correct"] = {"loader_failures": failures, "rates_positive": all(r > 0 for r in rates)}
    out["correct"]["ok"] = failures == 0 and out["correct"]["rates_positive"]
    print(json.dumps(out, indent=2))
    return 0 if out["correct"]["ok"] else 1


def _failures(batch: Any) -> int:
    """Images of a ``LoadedBatch`` that failed to load."""
    from diffwatch.scoring.images.result import LoadedImage

    return sum(not isinstance(im, LoadedImage) for im in batch.images)


if __name__ == "__main__":
    sys.exit(main())

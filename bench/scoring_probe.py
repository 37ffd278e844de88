"""What-if probes behind bench/scoring.py's figures: how decoding scales with threads, what
load_image's checks cost over a bare Pillow decode, nvJPEG on the GPU, one pinned upload
per batch instead of one per image, and the CLIP image tower at larger batches.

Nothing here is used by diffwatch; it measures alternatives for the next steps. Prints ONE
JSON object on stdout; progress on stderr. Run ``python bench/scoring_probe.py -h``.

``--smoke``: a few images on the CPU, run by tests/integration/test_bench_smoke.py.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
# Run as `python bench/scoring.py`, Python puts bench/ first on sys.path, where this file
# would shadow the `scoring` package: drop bench/ and put the repository root first.
sys.path[:] = [str(REPO)] + [
    p for p in sys.path if Path(p or ".").resolve() not in (REPO, REPO / "bench")
]

from bench import smoke  # noqa: E402
from bench.roots import allow_images  # noqa: E402
from bench.scoring_data import write_images  # noqa: E402
from bench.scoring_stages import rate, sync  # noqa: E402


def progress(msg: str) -> None:
    """Progress on stderr."""
    print(f"[probe {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def timed(fn, n: int) -> float:
    """Images/s of one call of ``fn`` that handles ``n`` images."""
    t0 = time.perf_counter()
    fn()
    return round(n / (time.perf_counter() - t0), 1)


def bare_decode(path: str) -> np.ndarray:
    """Pillow decode with no checks: the floor under load_image."""
    from PIL import Image

    with open(path, "rb") as f:
        data = f.read()
    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(im.convert("RGB"))


def decode_probes(paths: dict[str, list[str]], batch: int, threads: Sequence[int]) -> dict:
    """load_images at several thread counts, and a bare Pillow decode at the most (images/s)."""
    from diffwatch.scoring.images.load import load_images

    out: dict[str, Any] = {}
    for fmt, files in paths.items():
        row: dict[str, Any] = {}
        for t in threads:

            def run(t: int = t, files: list[str] = files) -> None:
                for lo in range(0, len(files), batch):
                    load_images(files[lo : lo + batch], workers=t)

            row[f"load_images_threads_{t}"] = timed(run, len(files))
        top = max(threads)
        with ThreadPoolExecutor(top) as pool:
            row[f"bare_pillow_threads_{top}"] = timed(
                lambda files=files, pool=pool: list(pool.map(bare_decode, files)), len(files)
            )
        row["bare_pillow_threads_1"] = timed(
            lambda files=files: [bare_decode(p) for p in files[: max(64, len(files) // 8)]],
            max(64, len(files) // 8),
        )
        out[fmt] = row
        progress(f"decode {fmt}: {row}")
    return out


def nvjpeg_probe(files: list[str], batch: int, device: str) -> dict[str, Any]:
    """torchvision.io.decode_jpeg on the GPU (nvJPEG), batches of ``batch`` (images/s)."""
    import torch
    import torchvision
    from torchvision.io import decode_jpeg

    datas = [torch.frombuffer(bytearray(Path(p).read_bytes()), dtype=torch.uint8) for p in files]

    def nxt_batch(state={"at": 0}):  # noqa: B006 - a cursor shared across calls
        at = state["at"]
        chunk = [datas[(at + k) % len(datas)] for k in range(batch)]
        state["at"] = (at + batch) % len(datas)
        return chunk

    out: dict[str, Any] = {"torchvision": torchvision.__version__}
    out["decode_only"] = rate(lambda: decode_jpeg(nxt_batch(), device=device), batch, device)

    def read_and_decode() -> None:
        chunk = files[:batch]
        raw = [torch.frombuffer(bytearray(Path(p).read_bytes()), dtype=torch.uint8) for p in chunk]
        decode_jpeg(raw, device=device)

    out["read_files_and_decode"] = rate(read_and_decode, batch, device)
    return out


def upload_probe(images: list[np.ndarray], batch: int, device: str) -> dict[str, Any]:
    """CLIP preprocess as it is (one pinned upload per image) vs one pinned buffer a batch."""
    import torch

    from diffwatch.scoring.clip.preprocess import PreprocessSpec, preprocess_batch

    spec = PreprocessSpec(
        size=(224, 224),
        mean=(0.48145466, 0.4578275, 0.40821073),
        std=(0.26862954, 0.26130258, 0.27577711),
    )
    chunk = [images[k % len(images)] for k in range(batch)]
    out: dict[str, Any] = {
        "preprocess_batch": rate(
            lambda: preprocess_batch(chunk, spec, device, torch.float16), batch, device
        )
    }
    h, w, _ = chunk[0].shape
    host = torch.empty((batch, h, w, 3), dtype=torch.uint8).pin_memory()

    def one_buffer() -> None:
        for i, a in enumerate(chunk):
            host[i].numpy()[...] = a
        x = host.to(device, non_blocking=True).permute(0, 3, 1, 2).float()
        x = torch.nn.functional.interpolate(
            x, size=(224, 224), mode="bicubic", antialias=True, align_corners=False
        )
        (x.clamp_(0, 255).round_() / 255.0).to(torch.float16)

    out["one_pinned_buffer_copy_resize"] = rate(one_buffer, batch, device)
    out["note"] = (
        "one_pinned_buffer: copy into a reused pinned (B, H, W, 3) buffer, one H2D copy, one "
        "resize pass (not PIL-exact two-pass): the upload/resize cost floor"
    )
    return out


def tower_probe(device: str, batches: Sequence[int]) -> dict[str, Any]:
    """ViT-B-32 image and text towers (random weights, fp16) at several batch sizes."""
    import open_clip
    import torch

    model = open_clip.create_model("ViT-B-32", pretrained=None, precision="fp16", device=device)
    model.eval()
    out: dict[str, Any] = {}
    with torch.inference_mode():
        for b in batches:
            x = torch.randn((b, 3, 224, 224), device=device, dtype=torch.float16)
            ids = torch.randint(1, 49407, (b, 77), device=device)
            out[f"batch_{b}"] = {
                "image_tower": rate(lambda x=x: model.encode_image(x), b, device)["items_per_s"],
                "text_tower": rate(lambda ids=ids: model.encode_text(ids), b, device)[
                    "items_per_s"
                ],
            }
            progress(f"towers at batch {b}: {out[f'batch_{b}']}")
    sync(device)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Run the probes; print one JSON object."""
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0].replace("\n", " "),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--images", type=int, default=2048, help="files per format")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--device", default="cuda")
    p.add_argument("--threads", default=f"1,4,8,{os.cpu_count()}", help="load thread counts")
    p.add_argument("--tower-batches", default="64,256,1024")
    smoke.add_smoke(p)
    args = smoke.parse(p, argv, {"images": 4, "batch_size": 2, "device": "cpu", "threads": "1,2"})
    threads = sorted({int(t) for t in args.threads.split(",")})
    res: dict[str, Any] = {
        "benchmark": "scoring_probe",
        "smoke": args.smoke,
        "device": args.device,
    }
    with tempfile.TemporaryDirectory(prefix="diffwatch-probe-") as tmp:
        allow_images(tmp)
        files = write_images(Path(tmp), args.images, 256, ["jpeg", "png"])
        res["decode"] = decode_probes(files.paths, args.batch_size, threads)
        if args.device.startswith("cuda"):
            images = [bare_decode(p) for p in files.paths["jpeg"][:256]]
            batches = [int(b) for b in args.tower_batches.split(",")]
            probes = {
                "nvjpeg": lambda: nvjpeg_probe(files.paths["jpeg"], args.batch_size, args.device),
                "clip_upload": lambda: upload_probe(images, args.batch_size, args.device),
                "clip_towers": lambda: tower_probe(args.device, batches),
            }
            for name, fn in probes.items():
                progress(name)
                try:  # one failed probe must not lose the others
                    res[name] = fn()
                except Exception as exc:
                    res[name] = {"error": f"{type(exc).__name__}: {exc}"[:500]}
                progress(f"{name}: {res[name]}")
    rates = [v for row in res["decode"].values() for v in row.values()]
    errors = [k for k, v in res.items() if isinstance(v, dict) and "error" in v]
    res["correct"] = {
        "decode_rates_positive": bool(rates) and all(r > 0 for r in rates),
        "probe_errors": errors,
    }
    res["correct"]["ok"] = res["correct"]["decode_rates_positive"] and not errors
    print(json.dumps(res, indent=2))
    return 0 if res["correct"]["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())

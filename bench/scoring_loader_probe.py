"""How fast loader processes start and serve: spawn against forkserver, per call.

Prints one JSON object: import times of a fresh interpreter, then for each start method
the seconds of each of the first ``--calls`` ``ImageLoader.load`` calls of ``--batch-size``
JPEG files (the first includes starting the processes). ``python bench/scoring_loader_probe.py -h``.

``--smoke``: a few images on the CPU, run by tests/integration/test_bench_smoke.py.
"""

from __future__ import annotations

import argparse
import json
import subprocess
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
from bench.scoring_data import prompts, write_images  # noqa: E402


def import_s(module: str) -> float:
    """Seconds for a fresh interpreter to import ``module``."""
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", f"import {module}"], check=True)
    return round(time.perf_counter() - t0, 2)


def main(argv: list[str] | None = None) -> int:
    """Run the probe and print the JSON object."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=int, default=1024)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--calls", type=int, default=6)
    p.add_argument("--processes", type=int, default=None)
    p.add_argument("--device", default="cuda")
    p.add_argument("--methods", default="forkserver,spawn")
    p.add_argument(
        "--imports",
        default="torch,open_clip,diffwatch.scoring.loader",
        help="modules whose import a fresh interpreter times",
    )
    smoke.add_smoke(p)
    args = smoke.parse(
        p,
        argv,
        {
            "images": 4,
            "batch_size": 2,
            "calls": 2,
            "processes": 1,
            "device": "cpu",
            "methods": "forkserver",
            "imports": "diffwatch.scoring.loader",
        },
    )
    import open_clip

    from diffwatch.scoring.clip.text import PromptTokenizer
    from diffwatch.scoring.images.result import LoadedImage
    from diffwatch.scoring.loader import ImageLoader, LoaderOptions

    out: dict[str, Any] = {
        "benchmark": "scoring_loader_probe",
        "smoke": args.smoke,
        "device": args.device,
        "import_s": {m: import_s(m) for m in args.imports.split(",")},
    }
    failures = 0
    text = PromptTokenizer(open_clip.get_tokenizer("ViT-B-32"), 77)
    with tempfile.TemporaryDirectory() as tmp:
        allow_images(tmp)
        paths = write_images(Path(tmp), args.images, 64, ["jpeg"]).paths["jpeg"]
        texts = prompts(args.images)
        b = args.batch_size
        for method in args.methods.split(","):
            opts = LoaderOptions.for_device(args.device, args.processes, start_method=method)
            calls = []
            with ImageLoader(opts, text) as loader:
                for k in range(args.calls):
                    lo = (k * b) % len(paths)
                    t0 = time.perf_counter()
                    got = loader.load(paths[lo : lo + b], texts[lo : lo + b])
                    calls.append(round(time.perf_counter() - t0, 3))
                    failures += sum(not isinstance(im, LoadedImage) for im in got.images)
            out[method] = {"processes": opts.processes, "call_s": calls}
            print(method, calls, file=sys.stderr, flush=True)
    out["correct"] = {"load_failures": failures, "ok": failures == 0}
    print(json.dumps(out, indent=2))
    return 0 if out["correct"]["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())

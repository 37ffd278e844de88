"""Bias-probe benchmark: a whole ``diffwatch bias probe`` of the default suite against the
same images made by the drift engine alone, in the same run.

An SD 1.5-architecture pipeline with RANDOM weights (``bench/regenerate.py``'s
``sd15_pipeline``), saved in fp16 with ``save_pretrained`` and loaded through the probe's own
loader (``diffwatch.bias.probe.load_models``); a random-weight open_clip ViT-B-32 for CLIP;
NudeNet's shipped 320n detector. The suite: the shipped occupations suite (45 prompts, 25
steps, CFG 7.5, the pipeline's 512 px), with ``--seeds`` seeds a prompt instead of its 100.

1. **engine alone** (the baseline): ``Regenerator`` (the drift engine) makes every item of
   the suite (its prompts, seeds and parameters), images kept in memory: images/s;
2. **the probe**: ``run_probe`` on a fresh database with the same loaded pipeline and the
   same items: generate, perceive (CLIP zero-shot, NudeNet faces, face-pixel skin tone) on
   a background thread while the next pipeline call runs, save PNGs, store, summarise:
   images/s of the whole run, its ratio to the engine's (goal: at least 0.9), and the
   stage timings of ``ProbeModels.timings``;
3. **perception alone**: ``Perceiver.perceive`` on one pipeline call's images, and CLIP,
   NudeNet and the PNG writer apart, so the probe's overhead can be read off.

Both paths are warmed up first (a pipeline call, a chunk through ``make_chunk``), then
timed in the order engine, (probe, engine) x ``--rounds``: the engine's figure is the mean
of its runs, the probe's the mean of its runs.

Timing only: random weights make meaningless images. Prints ONE JSON object on stdout (also
to ``--out``); progress on stderr. ``--smoke``: the tiny pipeline and tiny CLIP on the CPU,
a 2-term suite, 2 seeds, 64 px, 2 steps. Figures: docs/benchmarks.md ("Bias probe").
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:] = [str(REPO)] + [
    p for p in sys.path if Path(p or ".").resolve() not in (REPO, REPO / "bench")
]

from bench import smoke  # noqa: E402

GOALS = {"goal_probe_ratio_vs_engine": 0.9}
SMOKE = {
    "device": "cpu", "tiny": True, "terms": 2, "seeds": 2, "size": 64, "steps": 2,
    "max_batch": 2, "chunk_items": 4, "rounds": 1, "perceive_repeats": 1,
}  # fmt: skip
MODEL, VERSION = "bench-sd15-random", "seed0"


def progress(msg: str) -> None:
    """Progress for a person, on stderr (stdout carries only the JSON result)."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _toml(value: Any) -> str:
    """A TOML value for strings, numbers and lists of them (JSON's spelling is TOML's)."""
    return json.dumps(value, ensure_ascii=False)


def write_suite(path: Path, terms: int | None, size: int | None, steps: int | None) -> Path:
    """The shipped suite cut to its first ``terms`` terms and with ``size`` (px) and
    ``steps`` where given, written as a suite file; returns ``path``."""
    from diffwatch.bias.suite import load_suite

    s = load_suite(None)
    kept = s.terms[:terms] if terms else s.terms
    params = {k: v for k, v in s.params.model_dump().items() if v is not None}
    if size:
        params.update(width=size, height=size)
    if steps:
        params["steps"] = steps
    term_items = [
        f"{{ term = {_toml(t.term)}, article = {_toml(t.article)} }}"
        if t.article is not None
        else _toml(t.term)
        for t in kept
    ]
    lines = [
        f"name = {_toml(s.name)}",
        f"description = {_toml(s.description)}",
        f"templates = {_toml(s.templates)}",
        f"terms = [{', '.join(term_items)}]",
        f"seeds = {s.seeds}",
        f"attributes = {_toml(s.attributes)}",
        f"headline = {_toml(s.headline)}",
        "[params]",
        *(f"{k} = {_toml(v)}" for k, v in params.items()),
    ]
    names = {t.term for t in kept}
    for attr, by_term in s.reference.items():
        lines.append(f"[reference.{attr}]")
        for term, shares in by_term.items():
            if term in names:
                inner = ", ".join(f"{k} = {v!r}" for k, v in shares.items())
                lines.append(f"{_toml(term)} = {{ {inner} }}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def save_pipeline(directory: Path, tiny: bool, device: str) -> Path:
    """The pipeline under probe, saved with save_pretrained (fp16 for the SD 1.5 one)."""
    import torch

    if tiny:
        from diffwatch.demo.tiny_pipeline import save_tiny_pipeline

        return save_tiny_pipeline(directory, seed=0)
    from bench.regenerate import sd15_pipeline

    pipe = sd15_pipeline(device, seed=0)
    pipe.to(torch.float16).save_pretrained(directory)  # the engine loads fp16 on a GPU
    del pipe
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return directory


def _sync() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def engine_pass(models: Any, items: list[dict[str, Any]]) -> dict[str, Any]:
    """Every item through the drift engine alone, images kept in memory (no files, no
    perception, no database): images made, wall seconds (s) and images/s."""
    from diffwatch.drift.regen import item_requests
    from diffwatch.drift.regenerate import Regenerator

    regen = Regenerator(models.pipeline)
    reqs = item_requests(items, models.overrides)
    _sync()
    t0 = time.perf_counter()
    images = [o.image for o in regen.run(reqs) if o.image is not None]
    _sync()
    seconds = time.perf_counter() - t0
    made = len(images)
    del images
    return {"images": made, "seconds": round(seconds, 3), "images_per_s": round(made / seconds, 3)}


def _stored(conninfo: str, run_id: int) -> dict[str, int]:
    import psycopg

    with psycopg.connect(conninfo) as conn:
        done, perceived, saved = conn.execute(
            "SELECT count(*) FILTER (WHERE status = 'done'),"
            " count(*) FILTER (WHERE readings ? 'person' AND readings ? 'gender'),"
            " count(image_uri) FROM bias_items WHERE run_id = %s",
            (run_id,),
        ).fetchone()
    return {"done": done, "perceived": perceived, "image_uris": saved}


def probe_pass(
    conninfo: str, opts: Any, models: Any, n_items: int, out_dir: Path
) -> dict[str, Any]:
    """One ``run_probe`` of the suite on the loaded models; images/s of the whole run and
    its stage timings (s)."""
    from diffwatch.bias.probe import run_probe

    models.timings = {}  # this run's stages only (a ProbeModels adds up over its life)
    models.output_dir = out_dir
    opts = dataclasses.replace(opts, output_dir=out_dir)

    def tick(done: int, total: int) -> None:
        progress(f"  probe: chunk {done}/{total}")

    _sync()
    t0 = time.perf_counter()
    res = run_probe(conninfo, opts, models=models, progress=tick, poll_s=0.2)
    wall = time.perf_counter() - t0
    tm = dict(models.timings)
    images = int(tm.get("images", 0))
    chunk, gen, store = tm.get("chunk", 0.0), tm.get("generate", 0.0), tm.get("store", 0.0)
    stages = {
        "generate": gen,
        "after_generation_waiting_for_perception": chunk - gen,
        "store": store,
        "outside_chunks": wall - chunk - store,  # store the run and items, claims, summary
        "perceive_background": tm.get("perceive", 0.0),
        "perceive_and_save_background": tm.get("perceive_and_save", 0.0),
    }
    pngs = len(list((out_dir / f"run-{res['run_id']}").glob("*.png")))
    s = res["summary"]
    return {
        "run_id": res["run_id"],
        "images": images,
        "seconds": round(wall, 3),
        "images_per_s": round(images / wall, 3),
        "generation_images_per_s": round(images / gen, 3) if gen else None,
        "stages_s": {k: round(v, 3) for k, v in stages.items()},
        "summary_images": s["images"],
        "summary_errors": s["errors"],
        "person_passed": s["person"]["passed"],
        "stored": _stored(conninfo, res["run_id"]),
        "pngs": pngs,
        "n_items": n_items,
    }


def _rate(fn: Any, n: int, repeats: int) -> dict[str, Any]:
    """Median wall seconds (s) of ``repeats`` calls of ``fn`` after one untimed call, and
    images/s for ``n`` images a call."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    return {"seconds_median": round(med, 4), "images_per_s": round(n / med, 2)}


def perception_alone(models: Any, images: list[Any], tmp: Path, repeats: int) -> dict[str, Any]:
    """One pipeline call's images through the Perceiver, CLIP, NudeNet and the PNG writer
    apart (images/s each); nothing else runs meanwhile."""
    import numpy as np

    from diffwatch.drift.regen import save_png

    p = models.perceiver
    arrays = [np.asarray(im.convert("RGB")) for im in images]
    n = len(arrays)
    out: dict[str, Any] = {
        "batch": n,
        "size_px": [int(arrays[0].shape[1]), int(arrays[0].shape[0])],
        "clip": models.clip_label,
        "nudenet_backend": getattr(p.detector, "backend", None),
        "perceive": _rate(lambda: p.perceive(arrays), n, repeats),
        "clip_embed_images": _rate(lambda: p.scorer.embed_images(arrays), n, repeats),
    }
    if p.detector is not None:
        out["nudenet_detect_batch"] = _rate(lambda: p.detector.detect_batch(arrays), n, repeats)
    d = tmp / "png-alone"
    out["png_save_1_thread"] = _rate(
        lambda: [save_png(im, d, f"k{i}") for i, im in enumerate(images)], n, repeats
    )
    workers = max(1, min(8, (os.cpu_count() or 2) // 2))  # as make_chunk's writer pool

    def pooled() -> None:
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(lambda a: save_png(a[1], d, f"k{a[0]}"), enumerate(images)))

    out["png_save_pool"] = {"threads": workers, **_rate(pooled, n, repeats)}
    return out


def run(args: argparse.Namespace, tmp: Path, database_url: str | None) -> dict[str, Any]:
    """Warm both paths up, then time engine, (probe, engine) x rounds on the same device."""
    import diffusers
    import torch

    from bench.gate import clip_options
    from diffwatch.bias.probe import ProbeOptions, load_models
    from diffwatch.bias.suite import load_suite
    from diffwatch.bias.work import make_chunk
    from diffwatch.cli.common import runtime
    from diffwatch.drift.regen import item_requests
    from diffwatch.drift.regenerate import Regenerator
    from diffwatch.scoring.scorers import resolve_device

    device = resolve_device(args.device)
    suite_path = None
    if args.terms or args.size or args.steps:
        suite_path = str(write_suite(tmp / "suite.toml", args.terms, args.size, args.steps))
    suite = load_suite(suite_path)
    items = [dataclasses.asdict(it) for it in suite.items(args.seeds)]
    n = len(items)
    progress(f"suite {suite.name}: {len(suite.prompts())} prompts x {n // len(suite.prompts())}"
             f" seeds = {n} images; saving the pipeline")  # fmt: skip
    pipe_dir = save_pipeline(tmp / "pipe", args.tiny, device)
    rt = runtime(database_url)
    opts = ProbeOptions(
        pipeline=str(pipe_dir), suite=suite_path, seeds=args.seeds, model=MODEL,
        version=VERSION, device=device, clip=clip_options(tmp, args.tiny),
        max_batch=args.max_batch, chunk_items=args.chunk_items, output_dir=tmp / "out",
    )  # fmt: skip
    progress("loading the pipeline, CLIP and NudeNet through the probe's loader")
    models = load_models(opts)
    batch = Regenerator(models.pipeline).max_batch

    progress(f"warm-up: one engine call of {batch}, one chunk through make_chunk")
    warm = list(Regenerator(models.pipeline).run(item_requests(items[:batch], models.overrides)))
    warm_images = [o.image for o in warm if o.image is not None]
    make_chunk(models, items[:batch], tmp / "warm")
    progress("perception alone, on one pipeline call's images")
    alone = perception_alone(models, warm_images, tmp, args.perceive_repeats)

    engines: list[dict[str, Any]] = []
    probes: list[dict[str, Any]] = []
    order: list[str] = []
    for r in range(args.rounds + 1):
        progress(f"engine alone, run {len(engines) + 1}")
        engines.append(engine_pass(models, items))
        order.append("engine")
        progress(f"  engine: {engines[-1]['images_per_s']} images/s")
        if r == args.rounds:
            break
        progress(f"the probe, run {len(probes) + 1}")
        probes.append(probe_pass(rt.conninfo, opts, models, n, tmp / f"out-{r}"))
        order.append("probe")
        progress(f"  probe: {probes[-1]['images_per_s']} images/s")

    engine_ips = statistics.fmean(e["images_per_s"] for e in engines)
    probe_ips = statistics.fmean(p["images_per_s"] for p in probes)
    ratio = probe_ips / engine_ips
    gen_ips = statistics.fmean(p["generation_images_per_s"] or 0.0 for p in probes)
    cuda = device.startswith("cuda")
    return {
        "benchmark": "bias",
        "smoke": bool(args.smoke),
        "device": device,
        "gpu": torch.cuda.get_device_name(device) if cuda else None,
        "torch": torch.__version__,
        "diffusers": diffusers.__version__,
        "cpu_count": os.cpu_count(),
        "pipeline": "tiny random-weight SD" if args.tiny else "SD 1.5 architecture, random weights",
        "precision": models.pipeline.precision,
        "options": {k: v for k, v in vars(args).items() if k != "out"},
        "suite": {
            "name": suite.name,
            "prompts": len(suite.prompts()),
            "seeds": n // len(suite.prompts()),
            "images": n,
            "params": {k: v for k, v in suite.params.model_dump().items() if v is not None},
            "max_batch": batch,
            "chunk_items": args.chunk_items,
        },
        "order": order,
        "baseline_engine_alone": {
            "images_per_s": round(engine_ips, 3),
            "runs": engines,
        },
        "probe": {
            "images_per_s": round(probe_ips, 3),
            "generation_images_per_s": round(gen_ips, 3),
            "runs": probes,
        },
        "probe_ratio_vs_engine": round(ratio, 4),
        "generation_inside_probe_ratio_vs_engine": round(gen_ips / engine_ips, 4),
        **GOALS,
        "goal_met": ratio >= GOALS["goal_probe_ratio_vs_engine"],
        "perception_alone": alone,
        "correct": correct(engines, probes, n, alone),
    }


def correct(
    engines: list[dict[str, Any]], probes: list[dict[str, Any]], n: int, alone: dict[str, Any]
) -> dict[str, Any]:
    """Did every run do all its work: the engine made every image, and every probe run
    perceived, saved and stored every image, with no errors."""
    c: dict[str, Any] = {
        "engine_made_every_image": all(e["images"] == n for e in engines),
        "probe_made_every_image": all(p["images"] == p["summary_images"] == n for p in probes),
        "probe_errors": sum(p["summary_errors"] for p in probes),
        "every_item_stored_and_perceived": all(
            p["stored"] == {"done": n, "perceived": n, "image_uris": n} for p in probes
        ),
        "every_png_on_disk": all(p["pngs"] == n for p in probes),
        "perception_alone_measured": alone["perceive"]["images_per_s"] > 0,
    }
    c["ok"] = bool(
        c["engine_made_every_image"] and c["probe_made_every_image"] and c["probe_errors"] == 0
        and c["every_item_stored_and_perceived"] and c["every_png_on_disk"]
        and c["perception_alone_measured"] and engines and probes
    )  # fmt: skip
    return c


def main(argv: list[str] | None = None) -> int:
    """Entry point: one JSON object on stdout."""
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--device", default="auto", help="auto, cuda, cuda:N or cpu")
    p.add_argument("--tiny", action="store_true", help="the tiny pipeline and CLIP (CPU smoke)")
    p.add_argument("--seeds", type=int, default=4, help="seeds a prompt (the suite has 100)")
    p.add_argument("--terms", type=int, default=None, help="first N terms (default: all 45)")
    p.add_argument("--size", type=int, default=None, help="image side, px (default: 512)")
    p.add_argument("--steps", type=int, default=None, help="denoising steps (default: 25)")
    p.add_argument("--max-batch", type=int, default=None, help="images a call (GPU default: 16)")
    p.add_argument("--chunk-items", type=int, default=64, help="items a chunk (the CLI's 64)")
    p.add_argument("--rounds", type=int, default=2, help="(probe, engine) after the 1st engine")
    p.add_argument("--perceive-repeats", type=int, default=5, help="timed perception calls")
    p.add_argument("--database-url", default=None, help="default: embedded Postgres (temp)")
    p.add_argument("--out", type=Path, help="also write the JSON here")
    smoke.add_smoke(p)
    args = smoke.parse(p, argv, SMOKE)
    if args.rounds < 1 or args.seeds < 1:
        p.error("--rounds and --seeds must be at least 1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    with tempfile.TemporaryDirectory(prefix="diffwatch-bench-bias-") as d:
        tmp = Path(d)
        tmp.chmod(0o755)  # run as root, the embedded server runs as its own user: let it in
        url = args.database_url
        os.environ["DIFFWATCH_HOME"] = str(tmp / "home")
        os.environ["DIFFWATCH_IMAGE_ROOTS"] = str(tmp)
        if args.smoke and url is None:
            from bench.ingest import scratch_database
            from diffwatch.db import migrate

            with scratch_database(smoke.admin_url(), smoke.scratch_name("bias"), False) as u:
                migrate.upgrade(u)
                res = run(args, tmp, u)
        else:
            res = run(args, tmp, url)
    text = json.dumps(res)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0 if res["correct"]["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())

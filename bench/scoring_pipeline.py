"""End-to-end and decode-only runs for bench/scoring.py.

``pipeline`` mirrors ``diffwatch.scoring.worker.ScoringWorker.run`` without the database: the next
batch's ``ImageLoader.load`` (the worker's loader: processes or threads, nvJPEG, prompt
tokens) runs on a prefetch thread while the current batch is scored on the caller's
thread, every scorer in turn on the same decoded batch.
"""

from __future__ import annotations

import resource
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any


def pipeline(
    paths: Sequence[str],
    texts: Sequence[str],
    scorers: Sequence[Any],
    batch: int,
    loader: Any,
) -> dict[str, Any]:
    """Score every file with every scorer; the next batch loads while this one scores.

    Returns seconds, images/s, where the main thread spent its time (waiting for decoded
    images vs scoring, s), CPU seconds of the process, and the outcomes per scorer.
    """
    from diffwatch.scoring.images.load import LoadedImage

    bounds = [(lo, min(lo + batch, len(paths))) for lo in range(0, len(paths), batch)]
    outcomes: dict[str, list[Any]] = {s.key.scorer: [] for s in scorers}
    failures = 0
    wait_s = score_s = 0.0
    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    with ThreadPoolExecutor(1, thread_name_prefix="prefetch") as pool:

        def fetch(k: int) -> Future:
            lo, hi = bounds[k]
            return pool.submit(loader.load, paths[lo:hi], texts[lo:hi])

        nxt = fetch(0)
        for k, (lo, _hi) in enumerate(bounds):
            tw = time.perf_counter()
            got = nxt.result()
            loaded = got.images
            ts = time.perf_counter()
            wait_s += ts - tw
            if k + 1 < len(bounds):
                nxt = fetch(k + 1)
            good = [i for i, im in enumerate(loaded) if isinstance(im, LoadedImage)]
            failures += len(loaded) - len(good)
            rgbs = [loaded[i].rgb for i in good]
            batch_texts = [texts[lo + i] for i in good]
            tokens = got.tokens.take(good) if got.tokens is not None else None
            for s in scorers:
                outcomes[s.key.scorer].extend(s.score(rgbs, batch_texts, tokens))
            score_s += time.perf_counter() - ts
    elapsed = time.perf_counter() - t0
    ru1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    return {
        "images": len(paths),
        "seconds": round(elapsed, 3),
        "images_per_s": round(len(paths) / elapsed, 1),
        "main_thread_waiting_for_images_s": round(wait_s, 3),
        "main_thread_scoring_s": round(score_s, 3),
        "process_cpu_s": round(cpu, 2),
        "cpu_cores_busy": round(cpu / elapsed, 2),
        "load_failures": failures,
        "_outcomes": outcomes,
    }


def check_outcomes(result: dict[str, Any], n: int) -> dict[str, Any]:
    """Every image scored once by each scorer, values in range; pops the outcomes."""
    outcomes = result.pop("_outcomes")
    checks: dict[str, Any] = {"load_failures": result["load_failures"]}
    ok = result["load_failures"] == 0
    for name, outs in outcomes.items():
        if name == "clip":
            good = all(0.0 <= o.value <= 100.0 for o in outs)
        else:
            good = all(0.0 <= o.value <= 1.0 and isinstance(o.flagged, bool) for o in outs)
        checks[name] = {"results": len(outs), "in_range": good}
        ok = ok and good and len(outs) == n
    checks["ok"] = ok
    return checks


def decode_only(
    paths: Sequence[str], texts: Sequence[str], batch: int, loader: Any
) -> dict[str, Any]:
    """``loader.load`` over every file in batches, with nothing else running (images/s).

    CPU seconds count this process only, not loader processes.
    """
    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    for lo in range(0, len(paths), batch):
        loader.load(paths[lo : lo + batch], texts[lo : lo + batch])
    elapsed = time.perf_counter() - t0
    ru1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    return {
        "images": len(paths),
        "seconds": round(elapsed, 3),
        "images_per_s": round(len(paths) / elapsed, 1),
        "cpu_cores_busy": round(cpu / elapsed, 2),
    }

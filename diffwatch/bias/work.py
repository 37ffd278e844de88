"""A probe worker: claim a chunk of a probe run, generate its images with the pipeline under
probe, perceive the person in each (``perceive.Perceiver``), save the images and complete
the chunk, under a lease.

Generation goes through the drift stage's engine (``Regenerator``), so a probe image is
exactly the image ``diffwatch drift regenerate`` would make for the same prompt, seed and
parameters. The engine yields a pipeline call's images at a time; while the GPU makes the
next call, a background thread perceives and saves the last one, so perception costs the
probe little of the engine's images per second (bench/bias.py measures it). ``work`` is the
loop of ``diffwatch bias work`` and of a single-process ``diffwatch bias probe``.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import psycopg

from diffwatch.db.queries import bias as q
from diffwatch.drift.leases import claim_loop, worker_name
from diffwatch.drift.regen import item_requests

if TYPE_CHECKING:
    from diffwatch.drift.diffusion_load import LoadedPipeline

log = logging.getLogger(__name__)

LEASE_S = 600.0  # a chunk's lease (s), renewed after every pipeline call
CHUNK_ITEMS = 64  # items a chunk unless told: several pipeline calls, so perception overlaps
Progress = Callable[[int, int], None]  # (chunks done, chunks in all)


@dataclass
class ProbeModels:
    """What a worker holds: the pipeline under probe, the perceiver (CLIP and NudeNet) and
    where images go; ``timings`` are wall seconds per stage and images made."""

    pipeline: LoadedPipeline
    perceiver: Any  # diffwatch.bias.perceive.Perceiver
    output_dir: Path
    save_images: bool = True
    clip_label: str = ""
    overrides: dict[str, Any] = field(default_factory=dict)  # e.g. a gate side's steps
    timings: dict[str, float] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def spent(self, stage: str, seconds: float) -> None:
        """Add ``seconds`` (s) to ``stage``'s total (thread-safe)."""
        with self._lock:
            self.timings[stage] = self.timings.get(stage, 0.0) + seconds


def _perceive_and_save(
    models: ProbeModels, batch: list[Any], directory: Path, pool: ThreadPoolExecutor
) -> dict[str, dict[str, Any]]:
    """One pipeline call's images: readings and saved PNGs, by key."""
    from diffwatch.drift.regen import save_png

    t0 = time.perf_counter()
    saved = (
        [pool.submit(save_png, o.image, directory, o.key) for o in batch]
        if models.save_images
        else []
    )
    # np.array, not asarray: PIL's buffer is read-only, and torch.from_numpy warns on it
    readings = models.perceiver.perceive([np.array(o.image.convert("RGB")) for o in batch])
    models.spent("perceive", time.perf_counter() - t0)
    out = {}
    for i, (o, r) in enumerate(zip(batch, readings, strict=True)):
        uri = saved[i].result() if saved else None
        out[o.key] = {"image_uri": uri, "seconds": o.seconds, "readings": r.to_dict()}
    models.spent("perceive_and_save", time.perf_counter() - t0)
    return out


def make_chunk(
    models: ProbeModels,
    items: Sequence[dict[str, Any]],
    directory: Path,
    keep_alive: Callable[[], None] = lambda: None,
) -> list[dict[str, Any]]:
    """Generate, perceive and save a chunk's items; one result dict per item, in order.

    Perception of each pipeline call's images runs on a background thread while the next
    call generates; an item the engine could not make is an ``error`` result."""
    from diffwatch.drift.regenerate import Regenerator

    regen = Regenerator(models.pipeline)
    out: dict[str, dict[str, Any]] = {}
    pending: list[Future[dict[str, dict[str, Any]]]] = []
    batch: list[Any] = []
    started = time.perf_counter()
    workers = max(1, min(8, (os.cpu_count() or 2) // 2))  # PNG encoding releases the GIL
    with ThreadPoolExecutor(1) as perceive_pool, ThreadPoolExecutor(workers) as save_pool:

        def flush() -> None:
            if batch:
                pending.append(
                    perceive_pool.submit(
                        _perceive_and_save, models, list(batch), directory, save_pool
                    )
                )
                batch.clear()

        def on_call(_n: int) -> None:
            # the engine calls this after yielding a pipeline call's images and before it
            # starts the next call: hand them to the perceiving thread now
            flush()
            keep_alive()

        for o in regen.run(item_requests(items, models.overrides), progress=on_call):
            if o.image is None:
                out[o.key] = {"status": "error", "error": f"{o.error_kind}: {o.error}"}
            else:
                batch.append(o)
        flush()
        models.spent("generate", time.perf_counter() - started)
        for f in pending:
            out.update(f.result())
    models.spent("chunk", time.perf_counter() - started)
    models.spent("images", float(sum(1 for r in out.values() if "readings" in r)))
    return [{"key": it["key"], "status": "done", **out[it["key"]]} for it in items]


def work_chunk(conn: psycopg.Connection, c: q.Claim, models: ProbeModels, lease_s: float) -> bool:
    """Make, perceive and store one claimed chunk; False when its lease was lost."""
    items = q.chunk_items(conn, c)

    def keep_alive() -> None:
        if not q.renew(conn, c, lease_s):
            log.warning("bias run %s chunk %s: lease lost", c.run_id, c.chunk)

    results = make_chunk(models, items, models.output_dir / f"run-{c.run_id}", keep_alive)
    t0 = time.perf_counter()
    stored = q.complete(conn, c, results)
    models.spent("store", time.perf_counter() - t0)
    return stored


def work(
    conninfo: str,
    models: ProbeModels,
    *,
    owner: str | None = None,
    run_id: int | None = None,
    follow: bool = False,
    lease_s: float = LEASE_S,
    poll_s: float = 2.0,
    stop: threading.Event | None = None,
    progress: Progress | None = None,
) -> int:
    """Claim and work chunks until none is left (``follow``: until ``stop`` is set);
    the number of chunks this worker completed."""
    owner = owner or worker_name()
    return claim_loop(
        conninfo,
        lambda conn: q.claim(conn, owner, lease_s, run_id, source=models.pipeline.source),
        lambda conn, c: work_chunk(conn, c, models, lease_s),
        label=lambda c: f"bias run {c.run_id} chunk {c.chunk}",
        follow=follow, poll_s=poll_s, stop=stop,
        after=(lambda conn: progress(*q.progress(conn, run_id)))
        if progress and run_id is not None else None,
    )  # fmt: skip

"""A gate worker: claim a chunk of one side of a run, make its images (generate them with
that side's pipeline, or read them from its manifest), score them (CLIPScore against the
prompt, the CLIP image embedding, NSFW), and complete the chunk, under a lease.

Generation goes through the drift stage's engine (``Regenerator``), so the gate makes
exactly the images ``diffwatch drift regenerate`` would for the same (prompt, seed,
parameters). ``work`` is the loop of ``diffwatch gate work`` and of a single-process
``diffwatch gate run``.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import psycopg

from diffwatch.db.queries import gate as q
from diffwatch.drift.leases import claim_loop, worker_name
from diffwatch.drift.regen import item_requests

if TYPE_CHECKING:
    from diffwatch.drift.compare import ImageTextEmbedder
    from diffwatch.drift.diffusion_load import LoadedPipeline

log = logging.getLogger(__name__)

LEASE_S = 600.0  # a chunk's lease (s), renewed after every pipeline call
CHUNK_ITEMS = 16  # items a chunk (per side) unless told


@dataclass(frozen=True)
class SideSpec:
    """One side of a gate: a pipeline (directory or cached hub id) or a manifest, a label,
    the overrides it runs with (``steps``, ``sampler``: None keeps the item's) and whether
    its denoiser is compiled."""

    label: str
    pipeline: str | None = None
    manifest: str | None = None
    steps: int | None = None
    sampler: str | None = None
    compile: bool = False  # torch.compile the denoiser (a "compiled build" release; GPU)

    def overrides(self) -> dict[str, Any]:
        """The item parameters this side replaces."""
        return {k: v for k, v in (("steps", self.steps), ("sampler", self.sampler)) if v}


@dataclass
class GateModels:
    """What a worker holds: each side's loaded pipeline (pipelines mode), its overrides,
    CLIP (image and text embeddings) and the NSFW scorer, and where images go."""

    clip: ImageTextEmbedder
    nsfw: Any  # diffwatch.scoring.scorers.NsfwScorer (score(images, prompts))
    output_dir: Path
    pipelines: dict[str, LoadedPipeline] = field(default_factory=dict)
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    image_roots: tuple[str, ...] = ()
    load_seconds: dict[str, float] = field(default_factory=dict)
    # Wall seconds this worker spent per stage (generate, save, read, score, store) and
    # images made: what bench/gate.py reports as the share spent generating.
    timings: dict[str, float] = field(default_factory=dict)

    def spent(self, stage: str, seconds: float) -> None:
        """Add ``seconds`` (s) to ``stage``'s total."""
        self.timings[stage] = self.timings.get(stage, 0.0) + seconds


Progress = Callable[[int, int], None]  # (chunks done, chunks in all)


def _generate(
    models: GateModels, side: str, items: Sequence[dict[str, Any]], directory: Path,
    keep_alive: Callable[[], None],
) -> dict[str, dict[str, Any]]:  # fmt: skip
    """Generate a chunk's images with ``side``'s pipeline; results by key (image in ``_image``)."""
    from diffwatch.drift.regen import save_png
    from diffwatch.drift.regenerate import Regenerator

    regen = Regenerator(models.pipelines[side])
    out: dict[str, dict[str, Any]] = {}
    started = time.perf_counter()
    made = []
    for o in regen.run(
        item_requests(items, models.overrides.get(side, {})), progress=lambda n: keep_alive()
    ):
        if o.image is None:
            out[o.key] = {"status": "error", "error": f"{o.error_kind}: {o.error}"}
        else:
            made.append(o)
    t0 = time.perf_counter()
    models.spent("generate", t0 - started)
    # PNG encoding (zlib) releases the GIL: on a GPU host's many cores a chunk's images
    # encode side by side (measured on an H200 host: 42 ms an image, 14 % of a gate's
    # wall time, when done one after another); on two cores, one after another.
    workers = max(1, min(8, (os.cpu_count() or 2) // 2))
    with ThreadPoolExecutor(workers) as pool:
        uris = list(pool.map(lambda o: save_png(o.image, directory, o.key), made))
    for o, uri in zip(made, uris, strict=True):
        out[o.key] = {"image_uri": uri, "seconds": o.seconds, "_image": o.image}
    models.spent("save", time.perf_counter() - t0)
    models.spent("images", float(len(made)))
    return out


def _read(models: GateModels, items: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Read a chunk's images from their manifest URIs, through the confined reader."""
    from diffwatch.scoring.images.load import ImageAccess, load_image

    access = ImageAccess.from_settings().with_roots(*models.image_roots)
    out: dict[str, dict[str, Any]] = {}
    for it in items:
        got = load_image(it["image_uri"], convert_modes=True, access=access)
        if hasattr(got, "rgb"):
            out[it["key"]] = {"image_uri": it["image_uri"], "_image": got.rgb}
        else:
            out[it["key"]] = {"image_uri": it["image_uri"], "status": "error", "error": str(got)}
    return out


def score(
    models: GateModels, prompts: Sequence[str], images: Sequence[Any]
) -> list[dict[str, Any]]:
    """CLIPScore (0..100) against the prompt, the L2-normalised CLIP image embedding
    (float32 bytes) and the NSFW score (0..1) and flag of each image."""
    if not images:
        return []
    emb = np.asarray(models.clip.embed_images(list(images)), dtype=np.float32)
    uniq = list(dict.fromkeys(prompts))
    text = np.asarray(models.clip.embed_texts(uniq), dtype=np.float32)
    row = {p: i for i, p in enumerate(uniq)}
    cos = (emb * text[[row[p] for p in prompts]]).sum(axis=1)
    rgb = [np.asarray(im.convert("RGB")) if hasattr(im, "convert") else im for im in images]
    nsfw = models.nsfw.score(rgb, list(prompts))
    return [
        {
            "clip_score": float(100.0 * max(float(c), 0.0)),
            "embedding": e.tobytes(),
            "nsfw_score": None if n.value is None else float(n.value),
            "nsfw_flagged": n.flagged,
        }
        for c, e, n in zip(cos, emb, nsfw, strict=True)
    ]


def work_chunk(conn: psycopg.Connection, c: q.Claim, models: GateModels, lease_s: float) -> bool:
    """Make, score and store one claimed chunk; False when its lease was lost."""
    items = q.chunk_items(conn, c)

    def keep_alive() -> None:
        if not q.renew(conn, c, lease_s):
            log.warning("gate run %s chunk %s/%s: lease lost", c.run_id, c.chunk, c.side)

    if c.side in models.pipelines:
        directory = models.output_dir / f"run-{c.run_id}" / c.side
        made = _generate(models, c.side, items, directory, keep_alive)
    else:
        t0 = time.perf_counter()
        made = _read(models, items)
        models.spent("read", time.perf_counter() - t0)
    ok = [it for it in items if "_image" in made.get(it["key"], {})]
    t0 = time.perf_counter()
    scores = score(models, [it["prompt"] for it in ok], [made[it["key"]]["_image"] for it in ok])
    models.spent("score", time.perf_counter() - t0)
    results = []
    for it in items:
        r = {k: v for k, v in made.get(it["key"], {}).items() if k != "_image"}
        r.setdefault("status", "done")
        r.setdefault("image_uri", it["image_uri"])
        results.append({"key": it["key"], **r})
    by_key = {r["key"]: r for r in results}
    for it, s in zip(ok, scores, strict=True):
        by_key[it["key"]].update(s)
    t0 = time.perf_counter()
    stored = q.complete(conn, c, results)
    models.spent("store", time.perf_counter() - t0)
    return stored


def work(
    conninfo: str,
    models: GateModels,
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
    the number of chunks this worker completed. Sides without a pipeline in ``models``
    read their images from the manifest URIs stored with the items."""
    owner = owner or worker_name()
    return claim_loop(
        conninfo,
        lambda conn: q.claim(conn, owner, lease_s, run_id),
        lambda conn, c: work_chunk(conn, c, models, lease_s),
        label=lambda c: f"gate run {c.run_id} chunk {c.chunk} ({c.side})",
        follow=follow, poll_s=poll_s, stop=stop,
        after=(lambda conn: progress(*q.progress(conn, run_id)))
        if progress and run_id is not None else None,
    )  # fmt: skip

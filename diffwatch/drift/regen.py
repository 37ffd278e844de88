"""Output drift by re-generation: re-generate logged prompts (or a golden set) with the
production pipeline and their logged seed and parameters, and compare with the original
(or the golden baseline) through CLIP.

Steps: sample (stratified by model version) → re-generate in batches → repeat a few items
with another batch arrangement to calibrate the tolerance (GPU kernels are not bitwise
deterministic across batch shapes) → compare → store the run and one row an item. The
images are PNG files under ``output_dir``; a golden set's first run keeps its images as
the baselines of that set version.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import psycopg

from diffwatch.db.queries import drift as q
from diffwatch.drift.compare import ImageTextEmbedder, calibrate, compare
from diffwatch.drift.windows import ending_after, parse_window
from diffwatch.outage import OutageRetry

if TYPE_CHECKING:
    from diffwatch.drift.diffusion_load import LoadedPipeline
    from diffwatch.drift.regenerate import RegenOutcome, RegenRequest

log = logging.getLogger(__name__)
T = TypeVar("T")
Progress = Callable[[str, int, int], None]  # (stage, done, total)
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class RegenOptions:
    """``sample`` prompts from the ``window`` ending at ``until`` (None: the newest
    generation); tolerance on 1 − cosine: ``max(min_tolerance, tolerance_factor × the
    largest same-seed distance)`` over ``calibration`` repeated items. Reference images
    are read inside DIFFWATCH_IMAGE_ROOTS, ``output_dir`` (this run's own images) and
    ``image_roots`` (for a caller that knows where its generations' images are)."""

    output_dir: Path
    sample: int = 32
    window: str = "24h"
    until: datetime | None = None
    model: str | None = None
    min_tolerance: float = 0.03
    tolerance_factor: float = 3.0
    calibration: int = 8
    seed: int = 0
    rebaseline: bool = False
    image_roots: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.sample < 1:
            raise ValueError(f"--sample must be at least 1, got {self.sample}")
        if not 0 <= self.min_tolerance < 2:
            raise ValueError(f"--min-tolerance must be in [0, 2), got {self.min_tolerance}")
        if self.tolerance_factor < 1:
            raise ValueError(f"--tolerance-factor must be at least 1, got {self.tolerance_factor}")
        if self.calibration < 0:
            raise ValueError(f"--calibration must be 0 or more, got {self.calibration}")


@dataclass
class Item:
    """One prompt to re-generate and what to compare it with."""

    key: str
    params: dict[str, Any]
    generation_id: int | None = None
    model_version: str | None = None
    reference_uri: str | None = None
    baseline: dict[str, Any] | None = None
    row: dict[str, Any] = field(default_factory=dict)  # the drift_items row being built


@dataclass(frozen=True)
class Context:
    """What a re-generation run works with: the loaded pipeline and CLIP, and labels."""

    pipeline: LoadedPipeline
    clip: ImageTextEmbedder
    clip_label: str
    demo: bool = False
    worker: str | None = None
    progress: Progress | None = None
    stop: threading.Event = field(default_factory=threading.Event)
    pipeline_note: str | None = None  # e.g. the tiny pipeline's "random weights" label

    def pipeline_text(self) -> str:
        """The pipeline as runs store it, with its note first when there is one."""
        text = self.pipeline.describe()
        return f"{self.pipeline_note}: {text}" if self.pipeline_note else text


def outage_retry(ctx: Context) -> OutageRetry:
    """The retry policy of a run's database steps: wait out a Postgres restart."""
    return OutageRetry(
        ctx.stop,
        log,
        on_down=lambda: None,
        consequence="The drift run keeps its results in memory and stores them when it is back.",
        resumed="storing drift results",
    )


def with_conn(retry: OutageRetry, conninfo: str, fn: Callable[[psycopg.Connection], T]) -> T:
    """Run ``fn`` on a fresh connection, retrying while the database is down."""

    def step() -> T:
        with psycopg.connect(conninfo) as conn:
            return fn(conn)

    return retry(step)


def regen_request(key: str, p: Mapping[str, Any]) -> RegenRequest:
    """The engine's request for ``key`` from a mapping of prompt, seed and the optional
    parameters (sampler, steps, cfg_scale, width, height, negative_prompt)."""
    from diffwatch.drift.regenerate import RegenRequest

    return RegenRequest(
        key=key,
        prompt=p["prompt"],
        seed=int(p["seed"]),
        sampler=p.get("sampler"),
        steps=p.get("steps"),
        cfg_scale=p.get("cfg_scale"),
        width=p.get("width"),
        height=p.get("height"),
        negative_prompt=p.get("negative_prompt"),
    )


def item_requests(
    items: Sequence[Mapping[str, Any]], overrides: Mapping[str, Any] | None = None
) -> list[RegenRequest]:
    """The engine's requests for stored items (key, prompt, seed and ``params``), with
    ``overrides`` (a release side's steps or sampler) replacing their parameters; the
    release gate's and the bias probe's workers generate their chunks with these."""
    extra = dict(overrides or {})
    return [
        regen_request(
            it["key"], {**(it["params"] or {}), **extra, "prompt": it["prompt"], "seed": it["seed"]}
        )
        for it in items
    ]


def generate(
    ctx: Context, items: Sequence[Item], stage: str, max_batch: int | None = None
) -> dict[str, RegenOutcome]:
    """Re-generate ``items``; outcomes by key, with a progress report after each batch."""
    from diffwatch.drift.regenerate import Regenerator

    done = 0

    def tick(n: int) -> None:
        nonlocal done
        done += n
        if ctx.progress:
            ctx.progress(stage, done, len(items))

    if ctx.progress:
        ctx.progress(stage, 0, len(items))
    regen = Regenerator(ctx.pipeline, max_batch=max_batch)
    out: dict[str, RegenOutcome] = {}
    for outcome in regen.run([regen_request(i.key, i.params) for i in items], progress=tick):
        out[outcome.key] = outcome
        if ctx.stop.is_set():
            break
    return out


def _calibration_items(items: Sequence[Item], outcomes: dict[str, Any], n: int) -> list[Item]:
    ok = [i for i in items if outcomes.get(i.key) is not None and outcomes[i.key].image]
    return ok[:n]


def repeat_distances(
    ctx: Context, items: Sequence[Item], first: dict[str, RegenOutcome]
) -> dict[str, float]:
    """Generate ``items`` again one at a time, in reverse order (another batch arrangement
    than the first pass), and return each item's 1 − cosine between its two images."""
    if not items:
        return {}
    again = generate(ctx, list(reversed(items)), "calibrating (same seed twice)", max_batch=1)
    pairs = [(i, again[i.key]) for i in items if again.get(i.key) and again[i.key].image]
    found = compare(
        ctx.clip,
        [b.image for _, b in pairs],
        [first[i.key].image for i, _ in pairs],
        [i.params["prompt"] for i, _ in pairs],
    )
    return {i.key: c.distance for (i, _), c in zip(pairs, found, strict=True)}


def save_png(image: Any, directory: Path, key: str) -> str:
    """Write a PIL image to ``directory/<key>.png`` (key made file-safe); return the path."""
    directory.mkdir(parents=True, exist_ok=True)
    name = _SAFE.sub("_", key)[:120]
    if name != key:  # "a/b" and "a_b" must not share a file
        name += "-" + hashlib.sha1(key.encode()).hexdigest()[:8]
    path = directory / f"{name}.png"
    # Write aside, then rename: a reader never sees half a PNG, and of two workers that
    # both made an item (one had lost its lease) the file is one whole image.
    part = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.part")
    image.save(part, format="PNG")
    os.replace(part, path)
    return str(path)


def load_references(items: Sequence[Item], opts: RegenOptions) -> dict[str, Any]:
    """Decode each item's reference image (through the confined reader: see
    ``RegenOptions``); a failure becomes the item's error."""
    from diffwatch.scoring.images.load import ImageAccess, load_image

    access = ImageAccess.from_settings().with_roots(opts.output_dir, *opts.image_roots)
    images: dict[str, Any] = {}
    for it in items:
        if not it.reference_uri:
            it.row.update(
                status="error", error_kind="no_reference",
                error="the generation has no image_uri, so there is nothing to compare with",
            )  # fmt: skip
            continue
        got = load_image(it.reference_uri, convert_modes=True, access=access)
        if hasattr(got, "rgb"):
            images[it.key] = got.rgb
        else:
            it.row.update(status="error", error_kind="reference_unreadable", error=str(got))
    return images


def _base_row(it: Item) -> dict[str, Any]:
    return {
        "item_key": it.key,
        "generation_id": it.generation_id,
        "model_version": it.model_version,
        **{k: it.params.get(k) for k in q.PARAMS},
        "reference_uri": it.reference_uri,
        "status": "ok",
        "details": {},
    }


def record_outcomes(
    items: Sequence[Item], outcomes: dict[str, RegenOutcome], run_dir: Path
) -> None:
    for it in items:
        it.row = _base_row(it)
        o = outcomes.get(it.key)
        if o is None:
            it.row.update(status="error", error_kind="not_run", error="stopped before this item")
        elif o.image is None:
            it.row.update(status="error", error_kind=o.error_kind, error=o.error)
        else:
            it.row["regen_uri"] = save_png(o.image, run_dir, it.key)
        if o is not None:
            it.row["details"]["used"] = o.used


def score_pairs(
    ctx: Context,
    items: Sequence[Item],
    outcomes: dict[str, RegenOutcome],
    references: dict[str, Any],
    tolerance: Callable[[Item], float],
) -> None:
    """Fill each comparable item's cosine, CLIP scores, tolerance and flag."""
    ready = [i for i in items if i.row.get("regen_uri") and i.key in references]
    found = compare(
        ctx.clip,
        [outcomes[i.key].image for i in ready],
        [references[i.key] for i in ready],
        [i.params["prompt"] for i in ready],
    )
    for it, c in zip(ready, found, strict=True):
        tol = tolerance(it)
        it.row.update(
            image_cosine=c.cosine, clip_reference=c.clip_reference, clip_regen=c.clip_regen,
            clip_delta=c.delta, tolerance=tol, flagged=c.distance > tol,
        )  # fmt: skip


def _summary(items: Sequence[Item]) -> dict[str, Any]:
    by_version: dict[str, dict[str, Any]] = {}
    errors: dict[str, int] = {}
    for it in items:
        r = it.row
        v = by_version.setdefault(
            it.model_version or "(golden)", {"items": 0, "flagged": 0, "_cos": []}
        )
        v["items"] += 1
        v["flagged"] += bool(r.get("flagged"))
        if r.get("image_cosine") is not None:
            v["_cos"].append(r["image_cosine"])
        if r["status"] == "error":
            errors[r.get("error_kind") or "error"] = (
                errors.get(r.get("error_kind") or "error", 0) + 1
            )
    for v in by_version.values():
        cos = v.pop("_cos")
        v["mean_cosine"] = sum(cos) / len(cos) if cos else None
    return {"by_version": by_version, "errors_by_kind": errors}


def finish(
    retry: OutageRetry, conninfo: str, run_id: int, items: Sequence[Item], extra: dict[str, Any]
) -> dict[str, Any]:
    rows = [it.row for it in items]
    cos = [r["image_cosine"] for r in rows if r.get("image_cosine") is not None]
    n_flagged = sum(bool(r.get("flagged")) for r in rows)
    n_errors = sum(r["status"] == "error" for r in rows)
    summary = {**_summary(items), **extra}
    figures = {
        "n_items": len(rows), "n_flagged": n_flagged, "n_errors": n_errors,
        "drifted": n_flagged > 0 if cos else None,
        "statistic": sum(cos) / len(cos) if cos else None,
        "effect_size": n_flagged / len(cos) if cos else None,
        "threshold": extra.get("tolerance"),
    }  # fmt: skip

    def store(conn: psycopg.Connection) -> None:
        q.insert_items(conn, run_id, rows)
        q.finish_run(conn, run_id, "ok", summary=summary, **figures)

    with_conn(retry, conninfo, store)
    return {"run_id": run_id, **figures, **summary, "items": rows}


def fail_run(retry: OutageRetry, conninfo: str, run_id: int, exc: BaseException) -> None:
    """Mark a run failed with the error's message."""
    with_conn(retry, conninfo, lambda c: q.finish_run(c, run_id, "failed", error=str(exc)))


def run_sample(conninfo: str, ctx: Context, opts: RegenOptions) -> dict[str, Any]:
    """Re-generate a stratified sample of recent generations and compare with the originals."""
    retry = outage_retry(ctx)

    def sample(conn: psycopg.Connection) -> tuple[int, list[dict[str, Any]]]:
        anchor = opts.until or q.newest_generation_ts(conn, opts.model)
        if anchor is None:
            raise ValueError("no generations are logged; fix: collect logs first")
        win = parse_window(opts.window, ending_after(anchor), "--since")
        run_id = q.start_run(
            conn, "regenerate", model=opts.model, pipeline=ctx.pipeline_text(),
            embedder=ctx.clip_label, demo=ctx.demo, worker=ctx.worker,
            current_start=win.start, current_end=win.end,
        )  # fmt: skip
        return run_id, q.regeneration_sample(
            conn, win.start, win.end, opts.model, opts.sample, opts.seed
        )

    run_id, rows = with_conn(retry, conninfo, sample)
    try:
        if not rows:
            raise ValueError(
                f"no successful generations with a logged seed in the last {opts.window}"
                + (f" for model {opts.model!r}" if opts.model else "")
                + "; fix: widen --since, or log seeds (the `seed` field)"
            )
        items = [
            Item(
                key=r["request_id"],
                params={k: r[k] for k in q.PARAMS},
                generation_id=r["id"],
                model_version=r["model_version"],
                reference_uri=r["image_uri"],
            )
            for r in rows
        ]
        outcomes = generate(ctx, items, "re-generating")
        record_outcomes(items, outcomes, opts.output_dir / f"run-{run_id}")
        distances = repeat_distances(
            ctx, _calibration_items(items, outcomes, opts.calibration), outcomes
        )
        cal = calibrate(list(distances.values()), opts.min_tolerance, opts.tolerance_factor)
        references = load_references(items, opts)
        score_pairs(ctx, items, outcomes, references, lambda _i: cal.tolerance)
        for it in items:
            if it.key in distances:
                it.row["details"]["repeat_distance"] = distances[it.key]
    except Exception as exc:
        fail_run(retry, conninfo, run_id, exc)
        raise
    return finish(
        retry, conninfo, run_id, items,
        {"tolerance": cal.tolerance, "calibration": cal.to_dict(),
         "pipeline": ctx.pipeline_text(), "clip": ctx.clip_label},
    )  # fmt: skip

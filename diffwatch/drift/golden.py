"""Golden sets through re-generation: the first run of a set version stores each item's
image as its baseline (generated twice to calibrate the tolerance); later runs compare
with the baselines, like a regression smoke test."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg

from diffwatch.db.queries import drift as q
from diffwatch.drift.compare import Calibration, calibrate, compare
from diffwatch.drift.regen import (
    Context,
    Item,
    RegenOptions,
    fail_run,
    finish,
    generate,
    load_references,
    outage_retry,
    record_outcomes,
    repeat_distances,
    save_png,
    score_pairs,
    with_conn,
)

if TYPE_CHECKING:
    from diffwatch.drift.golden_set import GoldenSet
    from diffwatch.drift.regenerate import RegenOutcome


def run_golden(
    conninfo: str, ctx: Context, golden: GoldenSet, opts: RegenOptions
) -> dict[str, Any]:
    """Re-generate a golden set: the first run of a set version stores baselines (each
    generated twice to calibrate its tolerance); later runs compare with them."""
    retry = outage_retry(ctx)

    def start(conn: psycopg.Connection) -> tuple[int, dict[str, dict[str, Any]]]:
        run_id = q.start_run(
            conn, "golden", baseline=golden.label, pipeline=ctx.pipeline_text(),
            embedder=ctx.clip_label, demo=ctx.demo, worker=ctx.worker,
        )  # fmt: skip
        return run_id, q.golden_baselines(conn, golden.name, golden.version)

    run_id, stored = with_conn(retry, conninfo, start)
    if opts.rebaseline:
        stored = {}
    base_dir = opts.output_dir / "golden" / golden.name / golden.version
    try:
        items = []
        for g in golden.items:
            b = stored.get(g.id)
            items.append(
                Item(
                    key=g.id,
                    params={**g.params(), "item_hash": g.item_hash()},
                    baseline=b,
                    reference_uri=b["image_uri"] if b else None,
                )
            )
        outcomes = generate(ctx, items, f"re-generating golden set {golden.label}")
        record_outcomes(items, outcomes, opts.output_dir / f"run-{run_id}")
        changed = [
            it for it in items if it.baseline and it.baseline["item_hash"] != it.params["item_hash"]
        ]
        for it in changed:
            it.row.update(
                status="error", error_kind="item_changed", regen_uri=None,
                error=f"golden item {it.key!r} changed since its baseline was stored under "
                f"version {golden.version!r}; fix: bump the set's version (or --rebaseline)",
            )  # fmt: skip
        new = [it for it in items if it.baseline is None and it.row.get("regen_uri")]
        distances = repeat_distances(ctx, new, outcomes)
        cal = calibrate(list(distances.values()), opts.min_tolerance, opts.tolerance_factor)
        baselines = _new_baselines(ctx, golden, run_id, new, outcomes, distances, cal, base_dir)
        compared = [it for it in items if it.baseline and it not in changed]
        references = load_references(compared, opts)
        score_pairs(ctx, compared, outcomes, references, lambda i: float(i.baseline["tolerance"]))
        if baselines:
            with_conn(retry, conninfo, lambda c: q.save_golden_baselines(c, baselines))
    except Exception as exc:
        fail_run(retry, conninfo, run_id, exc)
        raise
    # A run that only compares uses the tolerances stored with the baselines (calibrated
    # when they were made); report the largest of them, and no calibration of its own.
    stored_tol = [float(i.baseline["tolerance"]) for i in compared if i.baseline]
    tolerance = cal.tolerance if new else (max(stored_tol) if stored_tol else None)
    return finish(
        retry, conninfo, run_id, items,
        {"tolerance": tolerance, "calibration": cal.to_dict() if new else {},
         "golden_set": golden.label, "new_baselines": len(baselines),
         "pipeline": ctx.pipeline_text(), "clip": ctx.clip_label},
    )  # fmt: skip


def _new_baselines(
    ctx: Context,
    golden: GoldenSet,
    run_id: int,
    new: Sequence[Item],
    outcomes: dict[str, RegenOutcome],
    distances: dict[str, float],
    cal: Calibration,
    base_dir: Path,
) -> list[dict[str, Any]]:
    """Keep the first image of each new item as its baseline, with the calibrated tolerance."""
    if not new:
        return []
    scores = compare(
        ctx.clip,
        [outcomes[i.key].image for i in new],
        [outcomes[i.key].image for i in new],
        [i.params["prompt"] for i in new],
    )
    rows = []
    for it, c in zip(new, scores, strict=True):
        uri = save_png(outcomes[it.key].image, base_dir, it.key)
        d = distances.get(it.key)
        it.row.update(
            status="baseline", reference_uri=uri, clip_regen=c.clip_regen, tolerance=cal.tolerance,
            image_cosine=None if d is None else 1.0 - d,
        )  # fmt: skip
        it.row["details"]["repeat_distance"] = d
        rows.append(
            {
                "set_name": golden.name,
                "set_version": golden.version,
                "item_key": it.key,
                **it.params,
                "image_uri": uri,
                "clip_score": c.clip_regen,
                "repeat_cosine": None if d is None else 1.0 - d,
                "tolerance": cal.tolerance,
                "pipeline": ctx.pipeline_text(),
                "run_id": run_id,
            }
        )
    return rows

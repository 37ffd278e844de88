"""``diffwatch gate run``: evaluate a candidate against a baseline and store the verdict.

Steps: read the policy, the suites and (manifests mode) the manifests, refusing bad input
before anything is stored; load both sides' pipelines, CLIP and the NSFW detector; store
the run with its lineage and its items in chunks; work the chunks (this process, and any
``diffwatch gate work`` that joins); time both sides' serving cost on the same device;
evaluate every metric against the policy; store the summary and verdict, a deploy marker,
and the reports. ``resume_gate`` finishes a run that a crash cut short.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from diffwatch.db.queries import deploy_markers as q_markers
from diffwatch.db.queries import drift as q_drift
from diffwatch.db.queries import gate as q
from diffwatch.gate.serving import ServingOptions, SideCost
from diffwatch.gate.work import CHUNK_ITEMS, LEASE_S, GateModels, SideSpec, work
from diffwatch.scoring.clip.config import ClipOptions

log = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]  # (stage, done, total)
SIDES = ("candidate", "baseline")


@dataclass(frozen=True)
class GateOptions:
    """Everything a gate run is told (stored with the run, so that it can resume)."""

    candidate: SideSpec
    baseline: SideSpec
    output_dir: Path
    suites: tuple[str, ...] = ()
    golden: tuple[str, ...] = ()
    production_sample: int = 0
    production_window: str = "7d"
    seeds: int = 1
    base_seed: int = 0
    policy: str | None = None
    chunk_items: int = CHUNK_ITEMS
    serving: ServingOptions = field(default_factory=ServingOptions)
    device: str = "auto"
    clip: ClipOptions = field(default_factory=ClipOptions)
    max_batch: int | None = None
    image_roots: tuple[str, ...] = ()
    created_by: str | None = None
    deployment: str | None = None  # the deploy marker's deployment (None: everywhere)
    lease_s: float = LEASE_S  # a chunk's lease (s)
    bias_suite: str | None = None  # a bias probe suite ("default": the shipped one)
    bias_seeds: int | None = None  # images a bias prompt (None: the suite's)

    @property
    def mode(self) -> str:
        """``manifests`` when both sides give images, ``pipelines`` when both generate."""
        return "manifests" if self.candidate.manifest else "pipelines"

    def check(self) -> None:
        """Refuse option combinations that cannot work, naming the fix."""
        for side in (self.candidate, self.baseline):
            if bool(side.pipeline) == bool(side.manifest):
                raise ValueError(
                    f"the {side.label!r} side needs exactly one of a pipeline or a manifest"
                )
        if bool(self.candidate.manifest) != bool(self.baseline.manifest):
            raise ValueError(
                "pass --candidate-images and --baseline-images together, or two pipelines: "
                "a gate compares like with like"
            )
        if self.mode == "pipelines" and not (self.suites or self.golden or self.production_sample):
            raise ValueError(
                "no prompts: pass --suite FILE (TSV, CSV, JSONL or TOML), --golden FILE "
                "or --production-sample N"
            )
        from diffwatch.model.deploy_markers import make_marker

        now = datetime.now(UTC)
        for side in (self.candidate, self.baseline):
            try:  # the run ends with a deploy marker: refuse a label it would refuse, now
                make_marker(side.label, at=now, now=now, deployment=self.deployment)
            except ValueError as exc:
                raise ValueError(f"--{side_name(side, self)}-label: {exc}") from None
        if self.seeds < 1:
            raise ValueError(f"--seeds must be at least 1, got {self.seeds}")
        if self.chunk_items < 1:
            raise ValueError(f"--chunk-items must be at least 1, got {self.chunk_items}")
        if self.bias_suite and self.mode != "pipelines":
            raise ValueError("--bias-suite needs two pipelines: the probe generates its own images")
        if self.bias_suite:
            from diffwatch.bias.suite import load_suite

            load_suite(self.bias_path).items(self.bias_seeds)  # a bad suite fails now

    @property
    def bias_path(self) -> str | None:
        """The bias suite's file (None: the shipped suite)."""
        return None if self.bias_suite == "default" else self.bias_suite

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, as the run stores it."""
        d = asdict(self)
        d["output_dir"] = str(self.output_dir)
        return d


def side_name(side: SideSpec, opts: GateOptions) -> str:
    """``candidate`` or ``baseline``: which of ``opts``' sides ``side`` is."""
    return "candidate" if side is opts.candidate else "baseline"


def _item_dict(it: Any) -> dict[str, Any]:
    params = it.params if isinstance(it.params, dict) else it.params.model_dump()
    return {
        "key": it.key, "prompt": it.prompt, "seed": int(it.seed),
        "category": getattr(it, "category", None), "source": it.source,
        "params": {k: v for k, v in params.items() if v is not None},
    }  # fmt: skip


def resolve_items(conninfo: str, opts: GateOptions) -> list[dict[str, Any]]:
    """Every (prompt, seed) of the run, from suites, golden sets, traffic or manifests.

    Raises SuiteError, ManifestError or GoldenSetError (naming file, line and field) and
    ValueError for keys that repeat across sources.
    """
    from diffwatch.drift.golden_set import load_golden_set
    from diffwatch.gate.manifest import load_manifest, pair_manifests
    from diffwatch.gate.suites import golden_items, load_suite

    if opts.mode == "manifests":
        assert opts.candidate.manifest and opts.baseline.manifest
        pairs = pair_manifests(
            load_manifest(opts.candidate.manifest), load_manifest(opts.baseline.manifest)
        )
        out = []
        for c, b in pairs:
            d = _item_dict(c)
            d["source"] = "manifest"
            d.update(image_uri_candidate=c.image, image_uri_baseline=b.image)
            out.append(d)
        return out
    items: list[dict[str, Any]] = []
    for path in opts.suites:
        items += [
            _item_dict(i) for i in load_suite(path, seeds=opts.seeds, base_seed=opts.base_seed)
        ]
    for path in opts.golden:
        items += [_item_dict(i) for i in golden_items(load_golden_set(path))]
    if opts.production_sample:
        items += _production(conninfo, opts)
    seen: dict[str, str] = {}
    for it in items:
        if it["key"] in seen:
            raise ValueError(
                f"item key {it['key']!r} comes from both {seen[it['key']]} and {it['source']}; "
                "fix: give the prompts distinct ids"
            )
        seen[it["key"]] = it["source"]
    return items


def _production(conninfo: str, opts: GateOptions) -> list[dict[str, Any]]:
    from diffwatch.drift.windows import parse_duration

    span = parse_duration(opts.production_window)
    if span is None:
        raise ValueError(
            f"--production-window: {opts.production_window!r} is not a duration such as 7d or 12h"
        )
    end = datetime.now(UTC)
    with psycopg.connect(conninfo) as conn:
        rows = q.production_sample(conn, end - span, end, opts.production_sample, opts.base_seed)
    if not rows:
        raise ValueError(
            f"--production-sample: no successful generation with a seed in the last "
            f"{opts.production_window}; fix: widen --production-window or use --suite"
        )
    out = []
    for r in rows:
        params = {k: r[k] for k in ("sampler", "steps", "cfg_scale", "width", "height",
                                    "negative_prompt") if r[k] is not None}  # fmt: skip
        out.append({
            "key": f"prod-{r['request_id']}"[:200], "prompt": r["prompt"], "seed": int(r["seed"]),
            "category": f"production:{r['model_version']}", "source": "production",
            "params": params,
        })  # fmt: skip
    return out


def load_models(opts: GateOptions, sides: Sequence[SideSpec] | None = None) -> GateModels:
    """Load CLIP, the NSFW detector and, in pipelines mode, both pipelines (timed, s)."""
    from diffwatch.drift.jobs import load_regen_pipeline
    from diffwatch.scoring.scorers import NsfwScorer, load_clip_scorer, resolve_device

    device = resolve_device(opts.device)
    clip, _ = load_clip_scorer(opts.clip, device)
    models = GateModels(
        clip=clip, nsfw=NsfwScorer(device="cpu" if device == "cpu" else device),
        output_dir=opts.output_dir, image_roots=opts.image_roots,
    )  # fmt: skip
    # Import the loader before timing: the first side loaded must not pay for imports.
    import diffusers.pipelines.auto_pipeline  # noqa: F401

    for name, side in zip(SIDES, sides or (opts.candidate, opts.baseline), strict=True):
        models.overrides[name] = side.overrides()
        if side.pipeline:
            t0 = time.perf_counter()
            models.pipelines[name] = load_regen_pipeline(
                side.pipeline, device, max_batch=opts.max_batch, compile=side.compile
            )
            models.load_seconds[name] = time.perf_counter() - t0
    if opts.mode == "manifests":
        roots = {
            str(Path(s.manifest).resolve().parent)
            for s in (opts.candidate, opts.baseline)
            if s.manifest
        }
        models.image_roots = (*opts.image_roots, *sorted(roots))
    return models


def identities(opts: GateOptions, models: GateModels) -> dict[str, dict[str, Any]]:
    """Both sides' lineage: label, what was loaded and the environment it ran in."""
    from diffwatch.gate.lineage import environment, manifest_identity, pipeline_identity

    device = next(iter(models.pipelines.values())).device if models.pipelines else "cpu"
    env = environment(device)
    out = {}
    for name, side in zip(SIDES, (opts.candidate, opts.baseline), strict=True):
        ident: dict[str, Any] = {"label": side.label}
        if name in models.pipelines:
            ident.update(pipeline_identity(models.pipelines[name], side.overrides()))
            ident["load_s"] = models.load_seconds.get(name)
        elif side.manifest:
            ident.update(manifest_identity(side.manifest))
        ident["environment"] = env
        out[name] = ident
    return out


def run_gate(
    conninfo: str, opts: GateOptions, progress: Progress | None = None,
    models: GateModels | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Run a gate end to end in this process; the summary (see ``evaluate``), with ``run_id``."""
    from diffwatch.gate.policy import load_policy, policy_to_dict

    opts.check()
    policy = load_policy(opts.policy)
    items = resolve_items(conninfo, opts)
    if not items:
        raise ValueError("the suites hold no items")
    models = models or load_models(opts)
    ids = identities(opts, models)
    with psycopg.connect(conninfo) as conn:
        run_id = q.create_run(
            conn, mode=opts.mode, candidate=ids["candidate"], baseline=ids["baseline"],
            policy=policy_to_dict(policy), options=opts.to_dict(), created_by=opts.created_by,
        )  # fmt: skip
        q.add_items(conn, run_id, items, opts.chunk_items)
    log.info("gate run %s: %s items a side", run_id, len(items))
    return finish_gate(conninfo, run_id, opts, models, progress)


def finish_gate(
    conninfo: str, run_id: int, opts: GateOptions, models: GateModels,
    progress: Progress | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Work what is left of a stored run, measure, evaluate and store; the summary."""
    from diffwatch.gate.evaluate import evaluate
    from diffwatch.gate.policy import load_policy

    policy = load_policy(opts.policy)
    try:
        _drain(conninfo, run_id, opts, models, progress)
        with psycopg.connect(conninfo) as conn:
            rows = q.items(conn, run_id)
            stored = _golden_baselines(conn, rows)
            row = q.run(conn, run_id)
        assert row is not None
        gpu = (row["candidate"].get("environment") or {}).get("gpu")
        t0 = time.perf_counter()
        costs = _serving(models, rows, opts, progress)
        models.spent("serving_cost", time.perf_counter() - t0)
        t0 = time.perf_counter()
        refs = _embed_references(models, stored)
        bias = _bias_probes(conninfo, run_id, opts, models, policy)
        summary = evaluate(
            rows, costs, policy, golden_refs=refs, prices=_prices(conninfo), gpu=gpu, bias=bias
        )
        models.spent("evaluate", time.perf_counter() - t0)
    except Exception as exc:
        with psycopg.connect(conninfo) as conn:
            q.fail(conn, run_id, str(exc)[:2000])
        raise
    summary.update(
        run_id=run_id, candidate=row["candidate"], baseline=row["baseline"],
        policy=row["policy"], image_roots=_image_roots(opts),
        timings={k: round(v, 3) for k, v in models.timings.items()},
    )  # fmt: skip
    with psycopg.connect(conninfo) as conn:
        q.finish(conn, run_id, summary["verdict"], summary)
        _mark(conn, run_id, opts, summary["verdict"])
    return summary


def _bias_probes(
    conninfo: str, run_id: int, opts: GateOptions, models: GateModels, policy: Any
) -> dict[str, Any] | None:
    """With ``--bias-suite``: probe both sides with the suite (two stored bias runs, each
    side's model label, version ``gate-<run>-<side>``) and the gate's bias metric."""
    if not opts.bias_suite:
        return None
    from diffwatch.bias.perceive import Perceiver
    from diffwatch.bias.probe import ProbeOptions, run_probe
    from diffwatch.bias.suite import load_suite
    from diffwatch.bias.work import ProbeModels
    from diffwatch.gate.bias_metric import bias_metric

    suite = load_suite(opts.bias_path)
    perceiver = Perceiver(models.clip, models.nsfw.detector, suite.attributes)
    t0 = time.perf_counter()
    results = {}
    for name, side in zip(SIDES, (opts.candidate, opts.baseline), strict=True):
        out = opts.output_dir / f"run-{run_id}" / f"bias-{name}"
        pm = ProbeModels(
            models.pipelines[name], perceiver, out, overrides=models.overrides.get(name, {})
        )
        po = ProbeOptions(
            pipeline=str(side.pipeline), suite=opts.bias_path, seeds=opts.bias_seeds,
            model=side.label, version=f"gate-{run_id}-{name}", device=opts.device,
            clip=opts.clip, output_dir=out, lease_s=opts.lease_s,
        )  # fmt: skip
        results[name] = run_probe(conninfo, po, models=pm)
    models.spent("bias_probe", time.perf_counter() - t0)
    return bias_metric(
        results["baseline"]["summary"], results["candidate"]["summary"], policy,
        runs={n: r["run_id"] for n, r in results.items()},
    )  # fmt: skip


def _drain(
    conninfo: str, run_id: int, opts: GateOptions, models: GateModels,
    progress: Progress | None, poll_s: float = 1.0,
) -> None:  # fmt: skip
    """Work the run's chunks here until every one is done. Chunks other workers hold are
    waited for; one whose worker died is taken over here when its lease expires."""
    tick = (lambda d, t: progress("generating and scoring", d, t)) if progress else None
    while True:
        work(conninfo, models, run_id=run_id, lease_s=opts.lease_s, progress=tick)
        with psycopg.connect(conninfo) as conn:
            done, total = q.progress(conn, run_id)
        if tick:
            tick(done, total)
        if done >= total:
            return
        time.sleep(poll_s)


def work_runs(
    conninfo: str, *, run_id: int | None = None, follow: bool = False, device: str = "auto",
    lease_s: float = LEASE_S, stop: threading.Event | None = None, poll_s: float = 2.0,
) -> int:  # fmt: skip
    """``diffwatch gate work``: join running runs (``run_id`` only, if given), loading each
    run's own pipelines and CLIP once; the number of chunks this process completed."""
    stop = stop or threading.Event()
    loaded: dict[int, GateModels] = {}
    done = 0
    while not stop.is_set():
        with psycopg.connect(conninfo) as conn:
            target = q.next_run_with_work(conn, run_id)
        if target is None:
            if not follow:
                return done
            stop.wait(poll_s)
            continue
        if target not in loaded:
            with psycopg.connect(conninfo) as conn:
                row = q.run(conn, target)
            assert row is not None
            opts = replace(options_from_run(row), device=device)
            loaded[target] = load_models(opts)
        done += work(conninfo, loaded[target], run_id=target, lease_s=lease_s, stop=stop)
    return done


def _image_roots(opts: GateOptions) -> list[str]:
    """Where a report may read this run's images: its output, manifests' and given roots."""
    roots = [str(opts.output_dir), *opts.image_roots]
    roots += [
        str(Path(s.manifest).resolve().parent)
        for s in (opts.candidate, opts.baseline)
        if s.manifest
    ]
    return list(dict.fromkeys(roots))


def _golden_baselines(
    conn: psycopg.Connection, rows: Sequence[dict[str, Any]]
) -> dict[str, dict[str, Any]]:
    """The stored baselines (tolerance, image) of the run's golden items, by item id."""
    out: dict[str, dict[str, Any]] = {}
    for label in {r["source"][7:] for r in rows if r["source"].startswith("golden:")}:
        name, _, version = label.partition("@")
        for key, b in q_drift.golden_baselines(conn, name, version).items():
            if b.get("tolerance") is not None:
                out[key] = {"tolerance": float(b["tolerance"]), "image_uri": b.get("image_uri")}
    return out


def _embed_references(models: GateModels, stored: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Each stored baseline with its image's CLIP embedding (read through the confined
    reader; one that cannot be read keeps only its tolerance)."""
    from diffwatch.scoring.images.load import ImageAccess, load_image

    access = ImageAccess.from_settings().with_roots(*models.image_roots)
    keys, images = [], []
    for key, ref in stored.items():
        got = (
            load_image(ref["image_uri"], convert_modes=True, access=access)
            if ref["image_uri"]
            else None
        )
        if got is not None and hasattr(got, "rgb"):
            keys.append(key)
            images.append(got.rgb)
        else:
            log.warning("golden baseline %s: its image cannot be read (%s)", key, got)
    out: dict[str, Any] = {k: dict(v) for k, v in stored.items()}
    if images:
        emb = models.clip.embed_images(images)
        for key, e in zip(keys, emb, strict=True):
            out[key]["embedding"] = e
    return out


def _prices(conninfo: str) -> dict[str, float]:
    from diffwatch.db.queries.dashboard_cost import gpu_prices

    with psycopg.connect(conninfo) as conn:
        return {p.gpu_type: p.usd_per_hour for p in gpu_prices(conn)}


def _serving(
    models: GateModels, rows: Sequence[dict[str, Any]], opts: GateOptions,
    progress: Progress | None,
) -> dict[str, SideCost] | None:  # fmt: skip
    """Both sides' serving cost (pipelines mode), or None (manifests: nothing to time)."""
    from diffwatch.drift.regen import item_requests
    from diffwatch.gate.serving import measure

    if len(models.pipelines) != 2:
        return None
    first = [r for r in rows if r["side"] == "baseline" and r["status"] == "done"]
    reqs = item_requests(first[: max(opts.serving.batch_sizes)] or rows[:1], {})
    costs = measure(
        models.pipelines, reqs, models.overrides, opts.serving,
        progress=(lambda d, t: progress("timing both sides", d, t)) if progress else None,
    )  # fmt: skip
    for side, c in costs.items():
        c.load_s = models.load_seconds.get(side)
    return costs


def _mark(conn: psycopg.Connection, run_id: int, opts: GateOptions, verdict: str) -> None:
    """Put the gate run on the time-series charts (a deploy marker from the gate)."""
    from diffwatch.model.deploy_markers import make_marker

    now = datetime.now(UTC)
    marker = make_marker(
        opts.candidate.label, deployment=opts.deployment, source="gate",
        note=f"gate run {run_id}: {verdict} against {opts.baseline.label}",
        created_by=opts.created_by, at=now, now=now,
    )  # fmt: skip
    q_markers.add(conn, marker)


def options_from_run(row: dict[str, Any]) -> GateOptions:
    """The options a stored run was started with (to resume it)."""
    o = dict(row["options"])
    o["candidate"], o["baseline"] = SideSpec(**o["candidate"]), SideSpec(**o["baseline"])
    o["output_dir"] = Path(o["output_dir"])
    o["serving"] = ServingOptions(**{k: tuple(v) if isinstance(v, list) else v
                                     for k, v in o["serving"].items()})  # fmt: skip
    o["clip"] = ClipOptions(**o["clip"])
    for k in ("suites", "golden", "image_roots"):
        o[k] = tuple(o[k])
    return GateOptions(**o)


def resume_gate(
    conninfo: str, run_id: int, progress: Progress | None = None,
    models: GateModels | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Finish a stored run: its done chunks are kept, the rest are worked here."""
    with psycopg.connect(conninfo) as conn:
        row = q.run(conn, run_id)
        if row is None:
            raise ValueError(f"gate run {run_id}: no such run (see `diffwatch gate list`)")
        if row["status"] == "done":
            return dict(row["summary"])
        conn.execute(
            "UPDATE gate_runs SET status = 'running', error = NULL WHERE id = %s", (run_id,)
        )
    opts = options_from_run(row)
    return finish_gate(conninfo, run_id, opts, models or load_models(opts), progress)

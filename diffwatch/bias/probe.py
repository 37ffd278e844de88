"""``diffwatch bias probe``: run a probe suite on one pipeline and store what it perceived.

A run stores the suite's items, split into chunks; this process works them (and any number
of ``diffwatch bias work`` processes on other GPUs join in), waits for the last chunk, then
summarises the run (``summary.summarize_run``): per attribute and reader, each prompt's
class shares with Wilson intervals, |p - 0.5|, KL to uniform and MaxSkew, the abstain
rates, the agreement of CLIP with NudeNet, and the comparison with the suite's previous
run on the same model.
"""

from __future__ import annotations

import getpass
import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import psycopg

from diffwatch.bias.suite import ProbeSuite, load_suite
from diffwatch.bias.work import CHUNK_ITEMS, LEASE_S, ProbeModels, work
from diffwatch.db.queries import bias as q
from diffwatch.scoring.clip.config import ClipOptions

Progress = Callable[[int, int], None]  # (chunks done, chunks in all)
_IDENTITY_FILES = ("model_index.json", "unet/config.json", "scheduler/scheduler_config.json")


@dataclass(frozen=True)
class ProbeOptions:
    """A probe run as its options give it.

    ``suite`` None: the shipped occupations suite. ``seeds`` None: the suite's. ``model`` and
    ``version`` label the run (None: the pipeline directory's name, and a hash of its
    configuration files). ``faces`` False skips NudeNet's face reading and the face-pixel
    skin tone. ``max_batch`` None: the engine's default for the device.
    """

    pipeline: str
    suite: str | None = None
    seeds: int | None = None
    model: str | None = None
    version: str | None = None
    device: str = "auto"
    clip: ClipOptions = field(default_factory=ClipOptions)
    faces: bool = True
    max_batch: int | None = None
    chunk_items: int = CHUNK_ITEMS
    output_dir: Path = Path("bias-images")
    save_images: bool = True
    worst_k: int = 5
    level: float = 0.95
    lease_s: float = LEASE_S

    def to_dict(self) -> dict[str, Any]:
        """The options as JSON-ready data, as the run stores them."""
        d = asdict(self)
        d["output_dir"] = str(self.output_dir)
        return d


def pipeline_version(source: str) -> str:
    """A short hash (12 hex) of a pipeline directory's configuration files, or of the
    source's name when it is not a directory: the version label when none is given."""
    h = hashlib.sha256(source.encode())
    p = Path(source)
    if p.is_dir():
        h = hashlib.sha256()
        for name in _IDENTITY_FILES:
            f = p / name
            if f.is_file():
                h.update(name.encode() + b"\0" + f.read_bytes())
    return h.hexdigest()[:12]


def labels(opts: ProbeOptions) -> tuple[str, str]:
    """The (model, version) a run is filed under."""
    model = opts.model or Path(opts.pipeline.rstrip("/")).name or opts.pipeline
    return model, opts.version or pipeline_version(opts.pipeline)


def load_models(opts: ProbeOptions) -> ProbeModels:
    """Load the pipeline, CLIP and (with ``faces``) NudeNet on the options' device."""
    from diffwatch.bias.perceive import Perceiver
    from diffwatch.drift.jobs import load_regen_pipeline
    from diffwatch.scoring.nsfw.detector import load_nsfw_detector
    from diffwatch.scoring.scorers import load_clip_scorer, resolve_device

    suite = load_suite(opts.suite)
    device = resolve_device(opts.device)
    pipeline = load_regen_pipeline(opts.pipeline, device, max_batch=opts.max_batch)
    clip, clip_label = load_clip_scorer(opts.clip, device)
    faces = load_nsfw_detector(device) if opts.faces else None
    perceiver = Perceiver(clip, faces, suite.attributes)
    return ProbeModels(
        pipeline, perceiver, opts.output_dir, save_images=opts.save_images, clip_label=clip_label
    )


def _identity(models: ProbeModels) -> dict[str, Any]:
    p = models.pipeline
    return {
        "source": p.source,
        "describe": p.describe(),
        "device": p.device,
        "precision": p.precision,
        "clip": models.clip_label,
    }


def start_run(conninfo: str, opts: ProbeOptions, suite: ProbeSuite, models: ProbeModels) -> int:
    """Store a new run with its items; its id."""
    model, version = labels(opts)
    items = suite.items(opts.seeds)
    with psycopg.connect(conninfo, autocommit=True) as conn, conn.transaction():
        run_id = q.create_run(
            conn, suite=suite.to_dict(), model=model, model_version=version,
            pipeline=_identity(models), options=opts.to_dict(), created_by=_user(),
        )  # fmt: skip
        q.add_items(conn, run_id, items, opts.chunk_items)
    return run_id


def _user() -> str | None:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # a container user without a passwd entry
        return None


def finish_run(conninfo: str, run_id: int, opts: ProbeOptions) -> dict[str, Any]:
    """Summarise a run whose chunks are all done, store the summary and return it."""
    with psycopg.connect(conninfo, autocommit=True) as conn:
        return summarize_stored(conn, run_id, k=opts.worst_k, level=opts.level)


def summarize_stored(
    conn: psycopg.Connection, run_id: int, *, k: int = 5, level: float = 0.95
) -> dict[str, Any]:
    """Summarise a stored run whose chunks are all done (compared with the suite's previous
    run on the same model), mark it done with the summary and return it."""
    from diffwatch.bias.summary import summarize_run

    run = q.run(conn, run_id)
    if run is None:
        raise ValueError(f"bias run {run_id}: no such run")
    done, total = q.progress(conn, run_id)
    if done < total:
        raise RuntimeError(f"bias run {run_id}: {total - done} of {total} chunks not done")
    prev = q.previous_done(conn, run_id)
    summary = summarize_run(
        q.items(conn, run_id), run["suite"], previous=q.items(conn, prev["id"]) if prev else None,
        previous_run=prev, k=k, level=level,
    )  # fmt: skip
    q.finish(conn, run_id, summary)
    return summary


def run_probe(
    conninfo: str,
    opts: ProbeOptions,
    *,
    models: ProbeModels | None = None,
    progress: Progress | None = None,
    stop: threading.Event | None = None,
    poll_s: float = 2.0,
) -> dict[str, Any]:
    """Run a probe from start to summary; the run's id, labels and summary.

    Raises SuiteError for a suite that cannot be used; a run whose work fails is stored as
    failed with the error (``resume_probe`` finishes it), and the error raised."""
    suite = load_suite(opts.suite)
    suite.items(opts.seeds)  # a bad --seeds fails before any model loads
    models = models or load_models(opts)
    run_id = start_run(conninfo, opts, suite, models)
    model, version = labels(opts)
    return _complete(conninfo, run_id, opts, models, (suite.name, model, version), progress,
                     stop or threading.Event(), poll_s)  # fmt: skip


def options_of(row: dict[str, Any]) -> ProbeOptions:
    """The options a stored run was started with."""
    d = dict(row["options"])
    d["clip"] = ClipOptions(**d.get("clip") or {})
    d["output_dir"] = Path(d["output_dir"])
    known = ProbeOptions.__dataclass_fields__
    return ProbeOptions(**{k: v for k, v in d.items() if k in known})


def resume_probe(
    conninfo: str,
    run_id: int,
    *,
    device: str | None = None,
    models: ProbeModels | None = None,
    progress: Progress | None = None,
    stop: threading.Event | None = None,
    poll_s: float = 2.0,
) -> dict[str, Any]:
    """Finish a run that a crash, a stop or an outage cut short: its done chunks are kept,
    the rest made with the run's own pipeline and options (``device`` may differ)."""
    with psycopg.connect(conninfo, autocommit=True) as conn:
        row = q.run(conn, run_id)
        if row is None:
            raise ValueError(f"bias run {run_id}: no such run (see `diffwatch bias runs`)")
        if row["status"] == "done":
            raise ValueError(f"bias run {run_id} is already done (`diffwatch bias show {run_id}`)")
        opts = options_of(row)
        if device is not None:
            opts = replace(opts, device=device)
        models = models or load_models(opts)
        q.reopen(conn, run_id)
    names = (row["suite_name"], row["model"], row["model_version"])
    return _complete(conninfo, run_id, opts, models, names, progress,
                     stop or threading.Event(), poll_s)  # fmt: skip


def _complete(
    conninfo: str,
    run_id: int,
    opts: ProbeOptions,
    models: ProbeModels,
    names: tuple[str, str, str],
    progress: Progress | None,
    stop: threading.Event,
    poll_s: float,
) -> dict[str, Any]:
    """Work a stored run's chunks here (others' leases waited for), then summarise it."""
    started = time.perf_counter()
    made = models.timings.get("images", 0.0)
    try:
        while not stop.is_set():
            work(conninfo, models, run_id=run_id, lease_s=opts.lease_s, stop=stop,
                 progress=progress)  # fmt: skip
            with psycopg.connect(conninfo, autocommit=True) as conn:
                done, total = q.progress(conn, run_id)
            if done == total:
                break
            stop.wait(poll_s)  # chunks leased by other workers: wait for them, or their lease
        if stop.is_set():
            raise RuntimeError(
                f"bias run {run_id}: stopped before its chunks were done; finish it with "
                f"`diffwatch bias resume {run_id}`"
            )
        summary = finish_run(conninfo, run_id, opts)
    except BaseException as exc:
        try:  # record why; with the database down the run stays 'running' until a resume
            with psycopg.connect(conninfo, autocommit=True, connect_timeout=10) as conn:
                q.fail(conn, run_id, f"{type(exc).__name__}: {exc}"[:2000])
        except psycopg.Error:
            pass
        raise
    seconds = time.perf_counter() - started
    images = models.timings.get("images", 0.0) - made
    return {
        "run_id": run_id,
        "suite": names[0],
        "model": names[1],
        "version": names[2],
        "seconds": round(seconds, 3),
        "images_per_second": round(images / seconds, 3) if seconds > 0 else None,
        "summary": summary,
    }


def probe_every(
    conninfo: str,
    opts: ProbeOptions,
    every_s: float,
    *,
    stop: threading.Event,
    on_result: Callable[[dict[str, Any]], None],
    on_error: Callable[[BaseException], None],
    models: ProbeModels | None = None,
) -> int:
    """The scheduled probe: a run now and then every ``every_s`` seconds until ``stop`` is
    set, with the models loaded once; the number of runs that finished.

    A run that fails (a database outage, a GPU error) is stored as failed where the
    database allows, reported to ``on_error`` and tried again at the next period; a suite
    that cannot be used fails at once, before any model loads."""
    load_suite(opts.suite).items(opts.seeds)
    models = models or load_models(opts)
    finished = 0
    while not stop.is_set():
        try:
            on_result(run_probe(conninfo, opts, models=models, stop=stop))
            finished += 1
        except Exception as exc:
            if stop.is_set():
                break
            on_error(exc)
        if stop.wait(every_s):
            break
    return finished

"""``diffwatch score``: the scoring worker (``diffwatch.scoring.build``) on typed options."""

# No ``from __future__ import annotations``: typer reads the annotations of the command.
import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

from diffwatch.cli.common import emit_summary, fail, runtime, stop_on_signals
from diffwatch.cli.options import (
    DEFAULT_MODEL,
    DEFAULT_PRETRAINED,
    AsJson,
    ClipCheckpoint,
    ClipModel,
    ClipModelConfig,
    ClipOptions,
    ClipPretrained,
    DbUrl,
    Device,
)

if TYPE_CHECKING:
    from diffwatch.scoring.build import WorkerOptions


def score(
    scorers: Annotated[
        str, typer.Option(help="Comma-separated scorers to run: clip, nsfw.")
    ] = "clip,nsfw",
    device: Device = "auto",
    batch_size: Annotated[
        int | None,
        typer.Option(min=1, help="Images per batch (default: 512 on a GPU, 64 on CPU)."),
    ] = None,
    once: Annotated[
        bool, typer.Option("--once", help="Score what is pending now, then exit (default).")
    ] = False,
    follow: Annotated[
        bool, typer.Option("--follow", help="Keep scoring new generations as they arrive.")
    ] = False,
    limit: Annotated[
        int | None, typer.Option(min=1, help="Stop after claiming this many generations.")
    ] = None,
    as_json: AsJson = False,
    clip_model: ClipModel = DEFAULT_MODEL,
    clip_pretrained: ClipPretrained = DEFAULT_PRETRAINED,
    clip_checkpoint: ClipCheckpoint = None,
    clip_model_config: ClipModelConfig = None,
    nsfw_threshold: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Flag at or above this score (0..1).")
    ] = 0.5,
    nsfw_labels: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated NudeNet labels that flag (default: *_EXPOSED "
            "genitalia, breasts, buttocks, anus; see docs/nsfw.md)."
        ),
    ] = None,
    convert_unusual_modes: Annotated[
        bool,
        typer.Option(
            "--convert-unusual-modes",
            help="Score CMYK, palette and alpha images and animations converted to RGB "
            "(alpha on white, first frame) instead of recording them as errors.",
        ),
    ] = False,
    lease_s: Annotated[
        float, typer.Option(min=1.0, help="Seconds a claimed batch stays ours.")
    ] = 300.0,
    max_attempts: Annotated[
        int, typer.Option(min=1, help="Tries for an image failing with transient I/O errors.")
    ] = 3,
    load_threads: Annotated[
        int, typer.Option(min=1, help="Image decoding threads (without load processes).")
    ] = 8,
    load_processes: Annotated[
        int | None,
        typer.Option(
            min=0,
            help="Processes that read, check and decode images and tokenize prompts "
            "(0: threads in the worker). Default: one per spare core, up to 16, on a "
            "GPU; 0 on CPU, where the models are the cost.",
        ),
    ] = None,
    gpu_jpeg: Annotated[
        bool | None,
        typer.Option(
            "--gpu-jpeg/--no-gpu-jpeg",
            help="Decode plain JPEGs on the GPU with nvJPEG (default: on with a GPU). "
            "PNG, WEBP and unusual JPEGs are decoded on the CPU either way.",
        ),
    ] = None,
    torch_threads: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="CPU threads for model compute (lower it when several "
            "workers share a host's CPUs).",
        ),
    ] = None,
    name: Annotated[
        str | None, typer.Option(help="Worker name stored with results (default score@HOST).")
    ] = None,
    embeddings: Annotated[
        bool,
        typer.Option(
            "--embeddings/--no-embeddings",
            help="Store each image's CLIP embedding (and each prompt's) in pgvector, for "
            "`drift images`, search and duplicates. On by default where the database has "
            "pgvector; without it scores are stored as usual.",
        ),
    ] = True,
    database_url: DbUrl = None,
) -> None:
    """Score generations' images: CLIP prompt alignment and NSFW flags, exactly once.

    With pgvector in the database, the CLIP scorer also keeps each image's embedding (once
    per generation and CLIP version, in the same transaction as its score).
    """
    from diffwatch.scoring.build import WorkerOptions

    if once and follow:
        raise fail("--once and --follow exclude each other", 2)
    opts = WorkerOptions(
        scorers=tuple(n.strip() for n in scorers.split(",") if n.strip()),
        device=device,
        batch_size=batch_size,
        clip=ClipOptions(clip_model, clip_pretrained, clip_checkpoint, clip_model_config),
        nsfw_threshold=nsfw_threshold,
        nsfw_labels=tuple(x.strip() for x in nsfw_labels.split(",")) if nsfw_labels else None,
        convert_unusual_modes=convert_unusual_modes,
        lease_s=lease_s,
        max_attempts=max_attempts,
        load_threads=load_threads,
        load_processes=load_processes,
        gpu_jpeg=gpu_jpeg,
        torch_threads=torch_threads,
        name=name,
        embeddings=embeddings,
    )
    rt = runtime(database_url, wait=follow)
    _score(rt.conninfo, opts, follow, limit, as_json)


def _score(
    conninfo: str, opts: "WorkerOptions", follow: bool, limit: int | None, as_json: bool
) -> None:
    from diffwatch.errors import first_line
    from diffwatch.outage import DB_DOWN_ERRORS
    from diffwatch.scoring.build import build_worker
    from diffwatch.scoring.clip.config import ClipWeightsError

    try:
        worker = build_worker(conninfo, opts)
    except ClipWeightsError as exc:
        raise fail(str(exc)) from None
    except (ValueError, RuntimeError, FileNotFoundError) as exc:
        raise fail(first_line(exc), 2) from None
    stop = stop_on_signals()
    show = not as_json and sys.stderr.isatty() and not follow
    try:
        summary = _run(worker, stop, follow, limit, show)
    except DB_DOWN_ERRORS as exc:
        raise fail(f"database unavailable: {first_line(exc)}") from None
    finally:
        worker.close()
    d = summary.as_dict()
    d["scorers"] = [str(s.key) for s in worker.scorers]
    emit_summary(
        d,
        as_json,
        f"scored {d['claimed']} generations with {', '.join(d['scorers'])}: "
        f"{d['results']} results, {d['failures']} image errors (see scoring_errors), "
        f"{d['stale']} refused after a lost lease, {d['images_per_s']} images/s",
    )


def _run(worker: Any, stop: Any, follow: bool, limit: int | None, show: bool) -> Any:
    if not show:
        return worker.run(stop, follow=follow, limit=limit)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn
    from rich.text import Text

    class Rate(ProgressColumn):
        def render(self, task):
            return Text(f"{task.speed or 0:,.0f} images/s")

    total = worker.pending() if limit is None else min(limit, worker.pending())
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        Rate(),
        transient=True,
    ) as bar:
        task = bar.add_task("scoring", total=total)
        worker.progress = lambda n: bar.advance(task, n)
        return worker.run(stop, follow=follow, limit=limit)


def register(root: typer.Typer, name: str) -> None:
    """Add this command to ``root`` as ``name`` (called by ``diffwatch.cli`` when it is run)."""
    root.command(name)(score)

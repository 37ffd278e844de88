"""``diffwatch score`` (registered on the main app by diffwatch.cli)."""

# No ``from __future__ import annotations``: typer reads the annotations of the command
# defined inside register().
import sys
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    """Add the ``score`` command to ``app``."""
    from diffwatch.cli import AsJson, DbUrl

    @app.command("score")
    def score(
        scorers: Annotated[
            str, typer.Option(help="Comma-separated scorers to run: clip, nsfw.")
        ] = "clip,nsfw",
        device: Annotated[
            str, typer.Option(help="auto (a GPU when one is visible), cuda, cuda:N or cpu.")
        ] = "auto",
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
        clip_model: Annotated[str, typer.Option(help="open_clip architecture.")] = "ViT-B-32",
        clip_pretrained: Annotated[
            str, typer.Option(help="open_clip pretrained tag (from its cache when offline).")
        ] = "laion2b_s34b_b79k",
        clip_checkpoint: Annotated[
            str | None,
            typer.Option(help="A local open_clip weights file; wins over --clip-pretrained."),
        ] = None,
        clip_model_config: Annotated[
            str | None,
            typer.Option(
                help="An open_clip model config JSON for a custom architecture "
                "(its file name, without .json, is the --clip-model)."
            ),
        ] = None,
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
        database_url: DbUrl = None,
    ) -> None:
        """Score generations' images: CLIP prompt alignment and NSFW flags, exactly once."""
        _score(locals())


def _score(a: dict) -> None:
    from diffwatch.cli import _runtime, _stop_on_signals, emit_summary, fail
    from diffwatch.errors import first_line

    if a["once"] and a["follow"]:
        raise fail("--once and --follow exclude each other", 2)
    names = tuple(n.strip() for n in a["scorers"].split(",") if n.strip())
    rt = _runtime(a["database_url"], wait=a["follow"])

    from scoring.clip_config import ClipWeightsError
    from scoring.loader import LoaderOptions
    from scoring.scorers import ScorerOptions, build_scorers, resolve_device
    from scoring.worker import DB_DOWN_ERRORS, ScoringWorker

    try:
        device = resolve_device(a["device"])
    except (ValueError, RuntimeError) as exc:
        raise fail(first_line(exc), 2) from None
    batch_size = a["batch_size"] or (512 if device.startswith("cuda") else 64)
    opts = ScorerOptions(
        names=names,
        device=device,
        batch_size=batch_size,
        clip_model=a["clip_model"],
        clip_pretrained=a["clip_pretrained"],
        clip_checkpoint=a["clip_checkpoint"],
        clip_model_config=a["clip_model_config"],
        torch_threads=a["torch_threads"],
        nsfw_threshold=a["nsfw_threshold"],
        nsfw_labels=tuple(x.strip() for x in a["nsfw_labels"].split(","))
        if a["nsfw_labels"]
        else None,
    )
    try:
        scorers = build_scorers(opts)
        if a["gpu_jpeg"] and not device.startswith("cuda"):
            raise ValueError(f"--gpu-jpeg needs a CUDA device, but --device is {device!r}")
        extra = {} if a["gpu_jpeg"] is None else {"gpu_jpeg": a["gpu_jpeg"]}
        loader = LoaderOptions.for_device(
            device,
            a["load_processes"],
            threads=a["load_threads"],
            convert_modes=a["convert_unusual_modes"],
            **extra,
        )
    except ClipWeightsError as exc:
        raise fail(str(exc)) from None
    except (ValueError, RuntimeError, FileNotFoundError) as exc:
        raise fail(first_line(exc), 2) from None
    worker = ScoringWorker(
        rt.conninfo,
        scorers,
        batch_size=batch_size,
        lease_s=a["lease_s"],
        max_attempts=a["max_attempts"],
        loader=loader,
        name=a["name"],
    )
    stop = _stop_on_signals()
    show = not a["as_json"] and sys.stderr.isatty() and not a["follow"]
    try:
        summary = _run(worker, stop, a["follow"], a["limit"], show)
    except DB_DOWN_ERRORS as exc:
        raise fail(f"database unavailable: {first_line(exc)}") from None
    finally:
        worker.close()
    d = summary.as_dict()
    d["scorers"] = [str(s.key) for s in scorers]
    emit_summary(
        d,
        a["as_json"],
        f"scored {d['claimed']} generations with {', '.join(d['scorers'])}: "
        f"{d['results']} results, {d['failures']} image errors (see scoring_errors), "
        f"{d['stale']} refused after a lost lease, {d['images_per_s']} images/s",
    )


def _run(worker, stop, follow: bool, limit: int | None, show: bool):
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

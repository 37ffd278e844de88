"""A scoring worker from typed options: device, scorers and image loader set up in one place.

``diffwatch score`` parses its options into ``WorkerOptions`` and calls ``build_worker``; the
worker's ``run`` does the rest. Models load in ``build_worker``, never at import.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from diffwatch.scoring.clip.config import ClipOptions

if TYPE_CHECKING:
    from diffwatch.scoring.worker import ScoringWorker

GPU_BATCH = 512  # images a batch on a GPU, unless given
CPU_BATCH = 64  # and on the CPU


@dataclass(frozen=True)
class WorkerOptions:
    """What a scoring worker runs, and how (``diffwatch score``'s options; see its --help).

    ``batch_size`` None: ``GPU_BATCH`` on a GPU, ``CPU_BATCH`` on the CPU. ``load_processes``
    None: one per spare core (up to 16) on a GPU, none on the CPU. ``gpu_jpeg`` None: nvJPEG
    when on a GPU. ``lease_s`` in seconds.
    """

    scorers: tuple[str, ...] = ("clip", "nsfw")
    device: str = "auto"
    batch_size: int | None = None
    clip: ClipOptions = field(default_factory=ClipOptions)
    nsfw_threshold: float = 0.5
    nsfw_labels: tuple[str, ...] | None = None
    convert_unusual_modes: bool = False
    lease_s: float = 300.0
    max_attempts: int = 3
    load_threads: int = 8
    load_processes: int | None = None
    gpu_jpeg: bool | None = None
    torch_threads: int | None = None
    name: str | None = None
    embeddings: bool = True  # keep CLIP embeddings where the database has pgvector


def build_worker(conninfo: str, opts: WorkerOptions) -> ScoringWorker:
    """A ScoringWorker on ``conninfo`` with its scorers loaded on the resolved device.

    Raises ClipWeightsError for CLIP weights that do not load, and ValueError, RuntimeError
    or FileNotFoundError for options that cannot work (an unknown scorer, ``gpu_jpeg``
    without CUDA, a missing model config), each with a message for a person.
    """
    from diffwatch.scoring.loader import LoaderOptions
    from diffwatch.scoring.scorers import build_scorers, resolve_device, scorer_options
    from diffwatch.scoring.worker import ScoringWorker

    device = resolve_device(opts.device)
    batch_size = opts.batch_size or (GPU_BATCH if device.startswith("cuda") else CPU_BATCH)
    scorers = build_scorers(
        scorer_options(
            opts.scorers,
            opts.clip,
            device=device,
            batch_size=batch_size,
            torch_threads=opts.torch_threads,
            nsfw_threshold=opts.nsfw_threshold,
            nsfw_labels=opts.nsfw_labels,
        )
    )
    if opts.gpu_jpeg and not device.startswith("cuda"):
        raise ValueError(f"--gpu-jpeg needs a CUDA device, but --device is {device!r}")
    extra = {} if opts.gpu_jpeg is None else {"gpu_jpeg": opts.gpu_jpeg}
    loader = LoaderOptions.for_device(
        device,
        opts.load_processes,
        threads=opts.load_threads,
        convert_modes=opts.convert_unusual_modes,
        **extra,
    )
    return ScoringWorker(
        conninfo,
        scorers,
        batch_size=batch_size,
        lease_s=opts.lease_s,
        max_attempts=opts.max_attempts,
        loader=loader,
        name=opts.name,
        embeddings=opts.embeddings,
    )

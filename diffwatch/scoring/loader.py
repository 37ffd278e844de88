"""Load a batch for scoring: read and check its images, decode them, tokenize its prompts.

Two ways to spread the CPU work, both with the same results:

* ``processes=0``: a thread pool in this process (``diffwatch.scoring.images.load.load_images``).
  Good on CPU-only hosts, where the models, not decoding, are the cost.
* ``processes=N``: N worker processes (spawned, so safe next to CUDA). Each takes a slice
  of the batch, reads and checks its files, decodes what stays on the CPU, and tokenizes
  the slice's prompts; decoded pixels come back through one shared-memory block per slice,
  not through the pipe. This is what keeps a GPU fed: decoding in threads stalls on the
  GIL at about 1,000 images/s whatever the core count (docs/benchmarks.md).

With ``gpu_jpeg``, plain JPEGs are not decoded on the CPU at all: they come back encoded
and are decoded in one nvJPEG call on ``device`` (``diffwatch.scoring.images.device_decode``), on
a side CUDA stream so that it overlaps the scoring of the previous batch.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from diffwatch.scoring.images.load import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_PIXELS,
    DEFAULT_MAX_SIDE,
    load_images,
)
from diffwatch.scoring.images.result import EncodedJpeg, ImageFailure, LoadedImage
from diffwatch.scoring.images.roots import ImageAccess

if TYPE_CHECKING:
    import torch

    from diffwatch.scoring.clip.text import PromptTokenizer, TokenizedPrompts

log = logging.getLogger(__name__)

_NO_PIXELS = np.empty((0, 0, 3), dtype=np.uint8)


@dataclass(frozen=True)
class LoaderOptions:
    """How a batch is loaded.

    ``processes``: loader processes (0: ``threads`` threads in this process instead).
    ``device``: where the scorers run. With ``gpu_jpeg``, plain JPEGs are decoded there by
    torchvision: nvJPEG on CUDA (on ``cpu``, libjpeg-turbo, which is how CI tests the path).
    ``convert_modes``, the limits (pixels, bytes), retries, ``storage_options`` and
    ``access`` (the image roots and read timeout; None: from the settings, read when the
    loader is built) are ``load_image``'s.
    """

    processes: int = 0
    threads: int = 8
    start_method: str = "forkserver"
    device: str = "cpu"
    gpu_jpeg: bool = False
    convert_modes: bool = False
    max_pixels: int = DEFAULT_MAX_PIXELS
    max_side: int = DEFAULT_MAX_SIDE
    max_bytes: int = DEFAULT_MAX_BYTES
    retries: int = 2
    backoff_s: float = 0.2
    storage_options: Mapping[str, Any] = field(default_factory=dict)
    access: ImageAccess | None = None

    def __post_init__(self) -> None:
        if self.processes < 0:
            raise ValueError(f"load processes must be >= 0, got {self.processes}")
        if self.threads < 1:
            raise ValueError(f"load threads must be >= 1, got {self.threads}")
        if self.start_method not in ("forkserver", "spawn"):
            raise ValueError(
                f"loader start method must be 'forkserver' or 'spawn', got {self.start_method!r}"
            )

    @classmethod
    def for_device(cls, device: str, processes: int | None = None, **kw: Any) -> LoaderOptions:
        """Defaults that suit ``device``: on CUDA, nvJPEG and one process per spare core
        (at most 16); on CPU, threads (the models are the cost there)."""
        cuda = device.startswith("cuda")
        if processes is None:
            processes = min(16, max((os.cpu_count() or 1) - 1, 1)) if cuda else 0
        return cls(processes=processes, device=device, gpu_jpeg=kw.pop("gpu_jpeg", cuda), **kw)


@dataclass
class LoadedBatch:
    """One batch, in the order asked: an image or a failure per URI, and the prompts'
    CLIP tokens when the loader has a tokenizer."""

    images: list[LoadedImage | ImageFailure]
    tokens: TokenizedPrompts | None = None


class ImageLoader:
    """Loads batches of images (and tokens) with ``LoaderOptions``; close it when done."""

    def __init__(self, options: LoaderOptions, text: PromptTokenizer | None = None) -> None:
        # Resolved here, once, and handed to loader processes with the options.
        self.options = replace(options, access=options.access or ImageAccess.from_settings())
        self.text = text
        self._pool: ProcessPoolExecutor | None = None
        self._stream: Any = None

    # -- lifecycle -------------------------------------------------------------------------
    def _processes(self) -> ProcessPoolExecutor:
        if self._pool is None:
            # forkserver: a clean server process (no CUDA state) imports what loading needs
            # once, and each loader process is forked from it, ready, in milliseconds;
            # spawning 15 fresh interpreters that each import torch took minutes on a
            # GPU host.
            ctx = multiprocessing.get_context(self.options.start_method)
            if self.options.start_method == "forkserver":
                preload = ["diffwatch.scoring.loader", "diffwatch.scoring.images.load", "torch"]
                if self.text is not None:  # unpickling open_clip's tokenizer imports it
                    preload.append(type(self.text.tokenizer).__module__)
                ctx.set_forkserver_preload(preload)
            self._pool = ProcessPoolExecutor(
                self.options.processes,
                mp_context=ctx,
                initializer=_init_process,
                initargs=(self.options, self.text),
            )
        return self._pool

    def close(self) -> None:
        """Stop the loader processes."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def abandon(self) -> None:
        """Stop the loader processes now, without waiting for a batch they may be stuck on
        (a worker stopping while a read hangs)."""
        pool, self._pool = self._pool, None
        if pool is None:
            return
        # ProcessPoolExecutor has no public way to kill its processes before Python 3.14
        # (terminate_workers); a stuck read would keep shutdown() waiting.
        for proc in list(getattr(pool, "_processes", {}).values()):
            proc.terminate()
        pool.shutdown(wait=False, cancel_futures=True)

    def __enter__(self) -> ImageLoader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- loading ---------------------------------------------------------------------------
    def load(
        self,
        uris: Sequence[str | None],
        prompts: Sequence[str],
        cancel: threading.Event | None = None,
    ) -> LoadedBatch:
        """Load ``uris`` and tokenize ``prompts`` (one per URI); never raises for bad images.

        Setting ``cancel`` ends the load early: what was not read by then comes back as
        failures (``io_error``, transient), for a caller that abandons the batch.
        """
        if len(uris) != len(prompts):
            raise ValueError(f"ImageLoader.load: {len(uris)} URIs but {len(prompts)} prompts")
        if not uris:
            return LoadedBatch([], None)
        if self.options.processes:
            try:
                images, tokens = self._load_in_processes(uris, prompts, cancel)
            except _Cancelled:
                return LoadedBatch([_abandoned(u) for u in uris], None)
            except (BrokenProcessPool, BrokenPipeError, ConnectionError, EOFError) as exc:
                # A loader process (or the forkserver) died, e.g. killed for memory.
                log.warning(
                    "loader processes failed (%s: %s); starting new ones and loading this "
                    "batch in threads",
                    type(exc).__name__,
                    exc,
                )
                pool, self._pool = self._pool, None
                if pool is not None:
                    pool.shutdown(wait=False, cancel_futures=True)
                images, tokens = _load_here(self.options, self.text, uris, prompts, cancel)
        else:
            images, tokens = _load_here(self.options, self.text, uris, prompts, cancel)
        return LoadedBatch(self._decode_on_device(images), tokens)

    def _load_in_processes(
        self, uris: Sequence[str | None], prompts: Sequence[str], cancel: threading.Event | None
    ) -> tuple[list[LoadedImage | EncodedJpeg | ImageFailure], TokenizedPrompts | None]:
        pool = self._processes()
        n = len(uris)
        slices = min(n, self.options.processes * 2)  # two per process evens out slow files
        bounds = [(n * k // slices, n * (k + 1) // slices) for k in range(slices)]
        futures: list[Future[_Slice]] = [
            pool.submit(_load_slice, list(uris[lo:hi]), list(prompts[lo:hi])) for lo, hi in bounds
        ]
        images: list[LoadedImage | EncodedJpeg | ImageFailure] = []
        token_parts: list[_Tokens] = []
        for fut in futures:
            part = _result(fut, cancel)
            if part.pixels is not None and self.options.device.startswith("cuda"):
                # One copy of the slice's block to the GPU, then views: far cheaper than
                # pinning and uploading each image, and the scorers' resizing runs there.
                part.pixels = self._on_side_stream(
                    lambda block=part.pixels: block.to(self.options.device)
                )
            images.extend(part.unpack())
            if part.tokens is not None:
                token_parts.append(part.tokens)
        return images, _join_tokens(token_parts) if token_parts else None

    def _decode_on_device(
        self, images: list[LoadedImage | EncodedJpeg | ImageFailure]
    ) -> list[LoadedImage | ImageFailure]:
        encoded = [i for i, im in enumerate(images) if isinstance(im, EncodedJpeg)]
        if not encoded:
            return images  # type: ignore[return-value]  # no EncodedJpeg left
        from diffwatch.scoring.images.device_decode import decode_jpegs

        opts = self.options

        def decode() -> list[LoadedImage | ImageFailure]:
            return decode_jpegs(
                [images[i] for i in encoded],  # type: ignore[misc]
                opts.device,
                max_pixels=opts.max_pixels,
                max_side=opts.max_side,
            )

        decoded = self._on_side_stream(decode)
        out: list[LoadedImage | ImageFailure] = images  # type: ignore[assignment]
        for i, im in zip(encoded, decoded, strict=True):
            out[i] = im
        return out

    def _on_side_stream(self, fn: Any) -> Any:
        """Run ``fn`` on a CUDA stream of its own and wait for it, so the decode overlaps
        kernels that the scoring thread queued on the default stream."""
        import torch

        if not self.options.device.startswith("cuda"):
            return fn()
        device = torch.device(self.options.device)
        if self._stream is None:
            self._stream = torch.cuda.Stream(device=device)
        with torch.cuda.stream(self._stream):
            result = fn()
        self._stream.synchronize()
        return result


class _Cancelled(Exception):
    """The caller set its cancel event while loader processes were working."""


def _result(fut: Future[_Slice], cancel: threading.Event | None) -> _Slice:
    """``fut``'s slice; raises ``_Cancelled`` as soon as ``cancel`` is set."""
    if cancel is None:
        return fut.result()
    while True:
        try:
            return fut.result(timeout=0.25)
        except TimeoutError:
            if cancel.is_set():
                raise _Cancelled from None


def _abandoned(uri: str | None) -> ImageFailure:
    return ImageFailure(
        str(uri),
        f"image {uri}: load abandoned because this worker is stopping; another worker "
        "reads it again",
        "io_error",
        transient=True,
    )


# -- in this process ---------------------------------------------------------------------------


def _load_here(
    opts: LoaderOptions,
    text: PromptTokenizer | None,
    uris: Sequence[str | None],
    prompts: Sequence[str],
    cancel: threading.Event | None = None,
) -> tuple[list[LoadedImage | EncodedJpeg | ImageFailure], TokenizedPrompts | None]:
    images = load_images(
        uris,
        workers=opts.threads,
        max_pixels=opts.max_pixels,
        max_side=opts.max_side,
        max_bytes=opts.max_bytes,
        retries=opts.retries,
        backoff_s=opts.backoff_s,
        storage_options=opts.storage_options,
        access=opts.access,
        cancel=cancel,
        keep_jpeg=opts.gpu_jpeg,
        convert_modes=opts.convert_modes,
    )
    return images, text(prompts) if text is not None else None


# -- in loader processes -----------------------------------------------------------------------

_STATE: dict[str, Any] = {}


def _init_process(opts: LoaderOptions, text: PromptTokenizer | None) -> None:
    import torch

    torch.set_num_threads(1)  # one core per loader process; the parallelism is the pool
    _STATE["opts"] = replace(opts, threads=1)
    _STATE["text"] = text


@dataclass
class _Tokens:
    ids: np.ndarray
    n_tokens: tuple[int, ...]
    truncated: tuple[bool, ...]


@dataclass
class _Slice:
    """One slice's results: images without their pixels, and the pixels in one shared
    block (a torch tensor, which multiprocessing hands over as shared memory)."""

    images: list[LoadedImage | EncodedJpeg | ImageFailure]
    pixels: torch.Tensor | None
    where: list[tuple[int, int, tuple[int, ...]]]  # (index, offset, shape)
    tokens: _Tokens | None

    def unpack(self) -> list[LoadedImage | EncodedJpeg | ImageFailure]:
        if self.pixels is None:
            return self.images
        on_host = self.pixels.device.type == "cpu"
        flat = self.pixels.numpy() if on_host else self.pixels
        out = list(self.images)
        for index, offset, shape in self.where:
            rgb = flat[offset : offset + int(np.prod(shape))].reshape(shape)
            if on_host:
                rgb.setflags(write=False)
            out[index] = replace(out[index], rgb=rgb)  # type: ignore[type-var]
        return out


def _load_slice(uris: list[str | None], prompts: list[str]) -> _Slice:
    import torch

    opts: LoaderOptions = _STATE["opts"]
    text: PromptTokenizer | None = _STATE["text"]
    images, tokens = _load_here(opts, text, uris, prompts)
    decoded = [(i, im) for i, im in enumerate(images) if isinstance(im, LoadedImage)]
    pixels = None
    where: list[tuple[int, int, tuple[int, ...]]] = []
    if decoded:
        total = sum(im.rgb.nbytes for _, im in decoded)
        pixels = torch.empty(total, dtype=torch.uint8).share_memory_()
        flat = pixels.numpy()
        offset = 0
        for i, im in decoded:
            n = im.rgb.nbytes
            flat[offset : offset + n] = im.rgb.reshape(-1)
            where.append((i, offset, tuple(im.rgb.shape)))
            images[i] = replace(im, rgb=_NO_PIXELS)
            offset += n
    packed = (
        _Tokens(tokens.ids.numpy(), tokens.n_tokens, tokens.truncated)
        if tokens is not None
        else None
    )
    return _Slice(images, pixels, where, packed)


def _join_tokens(parts: list[_Tokens]) -> TokenizedPrompts:
    import torch

    from diffwatch.scoring.clip.text import TokenizedPrompts

    return TokenizedPrompts(
        ids=torch.from_numpy(np.concatenate([p.ids for p in parts])),
        n_tokens=tuple(n for p in parts for n in p.n_tokens),
        truncated=tuple(t for p in parts for t in p.truncated),
    )

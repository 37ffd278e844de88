"""The Python SDK: log generations to diffwatch from a generation service.

    from diffwatch.sdk import DirectorySink, GenerationLogger, watch

    logger = GenerationLogger(DirectorySink("/var/log/gen"), images="s3://bucket/images")
    pipe = watch(pipe, logger, model="sd15", model_version="2026-11-01", deployment="stable")
    pipe("a red bicycle", num_inference_steps=25)   # one record per image

Core install only: importing this package loads neither torch, diffusers nor Streamlit
(``watch`` imports torch when a watched pipeline is first called). See docs/sdk.md.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Mapping
from typing import Any

from diffwatch.sdk.background import Background
from diffwatch.sdk.images import ImageStore
from diffwatch.sdk.record import InvalidRecord, build_record, encode_line
from diffwatch.sdk.sinks import DirectorySink, HttpSink, HttpStats, Sink
from diffwatch.sdk.watch import Watched, sampler_name, watch

__all__ = [
    "DirectorySink",
    "GenerationLogger",
    "HttpSink",
    "HttpStats",
    "ImageStore",
    "InvalidRecord",
    "Sink",
    "Watched",
    "sampler_name",
    "watch",
]

log = logging.getLogger(__name__)


class GenerationLogger:
    """Validates generation records and writes them to a sink.

    ``defaults`` are merged under every record (``host``, ``deployment``...). ``images`` is
    an ``ImageStore`` or an fsspec URL where ``watch`` saves images (none: no image_uri).
    """

    def __init__(
        self,
        sink: Sink,
        *,
        images: ImageStore | str | None = None,
        defaults: Mapping[str, Any] | None = None,
    ) -> None:
        self.sink = sink
        self.images = ImageStore(images) if isinstance(images, str) else images
        self.defaults = dict(defaults or {})
        self._lock = threading.Lock()
        self.logged = 0
        self.invalid = 0  # records refused by validation (raised to the caller, or logged)
        # background queues of watched pipelines (images waiting to be stored): drained
        # before the sink is flushed or closed, so their records are not lost
        self._queues: weakref.WeakSet[Background] = weakref.WeakSet()

    def attach(self, queue: Background) -> None:
        """Have ``flush`` and ``close`` wait for ``queue`` (``watch`` attaches its own)."""
        self._queues.add(queue)

    def log(self, record: Mapping[str, Any] | None = None, /, **fields: Any) -> dict[str, Any]:
        """Validate and write one record; return it as written. ``InvalidRecord`` if the
        collector would reject it (nothing is written then)."""
        try:
            rec = build_record({**self.defaults, **(record or {}), **fields})
            line = encode_line(rec)
        except InvalidRecord:
            with self._lock:
                self.invalid += 1
            raise
        self.sink.write(line)
        with self._lock:
            self.logged += 1
        return rec

    def flush(self, timeout: float | None = None) -> bool:
        """Wait for watched pipelines' queued images and records, then flush the sink;
        False if ``timeout`` (s) ran out first."""
        drained = all([q.flush(timeout) for q in list(self._queues)])
        return self.sink.flush(timeout) and drained

    def close(self, timeout: float | None = 10.0) -> None:
        """Finish watched pipelines' queued work, then close the sink, waiting at most
        ``timeout`` s for each."""
        for q in list(self._queues):
            q.close(timeout)
        self.sink.close(timeout)

    def __enter__(self) -> GenerationLogger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

"""A bounded background worker for the SDK's slow side work (encoding and storing images).

One thread runs the jobs in the order they came. At most ``max_pending`` jobs wait; a job
that finds no room waits up to ``max_wait_s`` for one and then runs on the caller's thread,
so nothing is ever dropped and memory stays bounded. Jobs still queued when the interpreter
exits are finished first (``concurrent.futures`` joins its workers before ``atexit``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

log = logging.getLogger(__name__)


class Background:
    """Runs jobs on one worker thread, bounded; see the module's docstring."""

    def __init__(
        self, *, max_pending: int = 16, max_wait_s: float = 5.0, name: str = "diffwatch-sdk"
    ) -> None:
        if max_pending < 1:
            raise ValueError(f"max_pending must be at least 1, got {max_pending}")
        if max_wait_s < 0:
            raise ValueError(f"max_wait_s must be 0 or more, got {max_wait_s}")
        self.max_pending, self.max_wait_s, self.name = max_pending, max_wait_s, name
        self._slots = threading.BoundedSemaphore(max_pending)
        self._idle = threading.Condition()
        self._pending = 0
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()
        self.ran_inline = 0  # jobs run on the caller's thread because the queue was full

    @property
    def pending(self) -> int:
        """Jobs queued or running."""
        with self._idle:
            return self._pending

    def submit(self, job: Callable[[], None]) -> None:
        """Queue ``job``; when the queue stays full for ``max_wait_s``, run it here instead."""
        if not self._slots.acquire(timeout=self.max_wait_s):
            self.ran_inline += 1
            if self.ran_inline == 1:
                log.warning(
                    "diffwatch: %d jobs already wait for the image store; running this one on "
                    "the caller's thread (the store is slower than generation)", self.max_pending,
                )  # fmt: skip
            job()
            return
        with self._idle:
            self._pending += 1
        try:
            self._executor().submit(self._run, job)
        except RuntimeError:  # shut down (interpreter exiting): do it here, lose nothing
            self._done()
            job()

    def _executor(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=self.name)
            return self._pool

    def _run(self, job: Callable[[], None]) -> None:
        try:
            job()
        except Exception:  # nobody waits on this thread's result: say so, keep the worker
            log.exception("diffwatch: a background job failed")
        finally:
            self._done()

    def _done(self) -> None:
        self._slots.release()
        with self._idle:
            self._pending -= 1
            if self._pending == 0:
                self._idle.notify_all()

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every queued job has run; False if ``timeout`` (s) ran out first."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout)

    def close(self, timeout: float | None = None) -> bool:
        """Flush, then stop the worker thread; False if jobs were still running at ``timeout``."""
        done = self.flush(timeout)
        with self._pool_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=done)
        return done

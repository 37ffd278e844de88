"""Where records go: rotating JSON-lines files, or the HTTP collector.

Both sinks take encoded lines (``bytes`` ending in a newline, from ``record.encode_line``).

``DirectorySink`` writes ``gen-YYYYmmddTHHMMSS-<n>.jsonl`` files. Each line is written with
one ``write`` on an ``O_APPEND`` descriptor, so readers (``diffwatch collect logs``) never see
half a record for long and a half-written tail waits for its newline. Files are never renamed
or truncated: a rotation opens a new file, whose first line (a fresh ``request_id``) gives it
a new fingerprint, and the old one keeps its own, so the collector finishes it and starts the
new file from offset 0. Point the collector at ``'DIR/gen-*.jsonl'``.

``HttpSink`` posts batches from a background thread: ``write`` only puts the line in a
bounded queue, waiting at most ``max_block_s`` for room; what does not fit is dropped,
counted and logged (never silently).
"""

from __future__ import annotations

import atexit
import gzip
import json
import logging
import os
import queue
import random
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from diffwatch.model.retry_after import retry_after_seconds

log = logging.getLogger(__name__)


class Sink(Protocol):
    """What ``GenerationLogger`` writes to."""

    def write(self, line: bytes) -> None:
        """Take one encoded record line (ending in a newline)."""

    def flush(self, timeout: float | None = None) -> bool:
        """Make what was written durable / delivered; False if ``timeout`` (s) ran out."""

    def close(self, timeout: float | None = None) -> None:
        """Flush, then release resources; waits at most ``timeout`` s."""


class DirectorySink:
    """Rotating JSON-lines files in a local directory.

    Rotation: a new file when the current one would pass ``max_bytes`` (bytes) or is older
    than ``max_age_s`` (seconds). Flush policy: every line reaches the kernel (visible to the
    collector) before ``write`` returns; ``fsync`` is ``"never"``, ``"rotate"`` (when a file is
    closed, the default) or ``"always"`` (after every line: durable across power loss, slow).
    Thread-safe; several processes may share a directory (file names are created exclusively).
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        max_bytes: int = 64 << 20,
        max_age_s: float = 3600.0,
        fsync: str = "rotate",
        prefix: str = "gen",
    ) -> None:
        if fsync not in ("never", "rotate", "always"):
            raise ValueError(f'fsync must be "never", "rotate" or "always", got {fsync!r}')
        if max_bytes <= 0 or max_age_s <= 0:
            raise ValueError("max_bytes and max_age_s must be positive")
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.max_bytes, self.max_age_s, self.fsync, self.prefix = (
            max_bytes,
            max_age_s,
            fsync,
            prefix,
        )
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._size = 0
        self._opened = 0.0
        self.path: Path | None = None
        self.files_opened = 0

    def _open(self) -> None:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        n = 0
        while True:
            path = self.directory / f"{self.prefix}-{stamp}-{n}.jsonl"
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
            except FileExistsError:
                n += 1
                continue
            break
        self._fd, self.path, self._size, self._opened = fd, path, 0, time.monotonic()
        self.files_opened += 1

    def _close_file(self) -> None:
        if self._fd is not None:
            if self.fsync != "never":
                os.fsync(self._fd)
            os.close(self._fd)
            self._fd = None

    def write(self, line: bytes) -> None:
        """Append one line (one ``write`` call), rotating first if it is due."""
        with self._lock:
            if (
                self._fd is not None
                and self._size > 0
                and (
                    self._size + len(line) > self.max_bytes
                    or time.monotonic() - self._opened > self.max_age_s
                )
            ):
                self._close_file()
            if self._fd is None:
                self._open()
            assert self._fd is not None
            view = memoryview(line)
            while view:  # a regular file takes it whole; loop only for a signal's short write
                view = view[os.write(self._fd, view) :]
            self._size += len(line)
            if self.fsync == "always":
                os.fsync(self._fd)

    def flush(self, timeout: float | None = None) -> bool:
        """fsync the current file (lines are already visible to readers)."""
        with self._lock:
            if self._fd is not None:
                os.fsync(self._fd)
        return True

    def close(self, timeout: float | None = None) -> None:
        """Close the current file (fsynced unless ``fsync="never"``)."""
        with self._lock:
            self._close_file()


@dataclass
class HttpStats:
    """Counters of an ``HttpSink`` (records)."""

    sent: int = 0  # accepted or already stored (duplicates) by the collector
    duplicates: int = 0
    rejected: int = 0  # refused by the collector as invalid
    dropped: int = 0  # never delivered: buffer full, closed before delivery, or refused batch
    retries: int = 0  # failed POSTs that were retried


class HttpSink:
    """Batches lines to ``diffwatch collect http`` (``POST {url}`` with NDJSON, gzip).

    ``write`` never blocks for more than ``max_block_s`` s: the line goes into a queue of at
    most ``max_buffer`` records; when it is full the record is dropped, counted in
    ``stats.dropped`` and logged (the first drop at once, then a summary every
    ``drop_log_interval_s`` s). A background thread sends batches of up to ``batch_size``
    records, at least every ``flush_interval_s`` s; a failed POST (connection error, 429,
    5xx) is retried with exponential backoff and full jitter, capped at ``max_backoff_s``,
    and a 429/503 ``Retry-After`` is honoured. At interpreter exit an unclosed sink gets
    ``exit_timeout_s`` s to deliver. 413 halves the batch; 400/401/415 drop it
    (logged: fix the token or the URL). Memory: at most ``max_buffer + batch_size`` lines.
    """

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        batch_size: int = 500,
        flush_interval_s: float = 1.0,
        max_buffer: int = 10_000,
        max_block_s: float = 0.0,
        request_timeout_s: float = 10.0,
        initial_backoff_s: float = 0.5,
        max_backoff_s: float = 30.0,
        compress: bool = True,
        drop_log_interval_s: float = 10.0,
        exit_timeout_s: float = 5.0,
    ) -> None:
        if batch_size < 1 or max_buffer < 1:
            raise ValueError("batch_size and max_buffer must be at least 1")
        self.url, self.token, self.batch_size = url, token, batch_size
        self.flush_interval_s, self.max_block_s = flush_interval_s, max_block_s
        self.request_timeout_s, self.compress = request_timeout_s, compress
        self.initial_backoff_s, self.max_backoff_s = initial_backoff_s, max_backoff_s
        self.drop_log_interval_s = drop_log_interval_s
        self.stats = HttpStats()
        self._queue: queue.Queue[bytes] = queue.Queue(maxsize=max_buffer)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._deadline = float("inf")  # monotonic time after which close() gives up
        self._unsent = 0  # records queued or in flight
        self._idle = threading.Condition(self._lock)
        self._drops_logged = 0
        self._last_drop_log = 0.0
        self._thread = threading.Thread(target=self._run, name="diffwatch-http-sink", daemon=True)
        self._thread.start()
        # A process that exits without close() still delivers (or counts) what it buffered.
        atexit.register(self._close_at_exit, exit_timeout_s)

    # -- caller side ---------------------------------------------------------------------
    def write(self, line: bytes) -> None:
        """Queue one line; drop it (counted, logged) if the buffer stays full ``max_block_s``."""
        if self._stop.is_set():
            self._drop(1, "the sink is closed")
            return
        with self._lock:
            self._unsent += 1
        try:
            if self.max_block_s > 0:
                self._queue.put(line, timeout=self.max_block_s)
            else:
                self._queue.put_nowait(line)
        except queue.Full:
            with self._lock:
                self._unsent -= 1
                self._idle.notify_all()
            self._drop(1, f"the buffer of {self._queue.maxsize} records is full")

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every queued record was delivered or dropped; False on timeout (s)."""
        with self._idle:
            return self._idle.wait_for(lambda: self._unsent == 0, timeout)

    def close(self, timeout: float | None = 10.0) -> None:
        """Deliver what is queued for at most ``timeout`` s, then drop (and count) the rest."""
        self._deadline = time.monotonic() + (timeout if timeout is not None else 1e9)
        self._stop.set()
        self._thread.join(None if timeout is None else timeout + self.request_timeout_s + 1)
        if not self._thread.is_alive():  # lines that raced with close() are counted too
            left = 0
            while True:
                try:
                    self._queue.get_nowait()
                except queue.Empty:
                    break
                left += 1
            if left:
                self._drop(left, "closed before the collector took them")
                self._done(left)
        self._log_drops(force=True)

    def _close_at_exit(self, timeout: float) -> None:
        if not self._stop.is_set():
            self.close(timeout)

    # -- background side -----------------------------------------------------------------
    def _drop(self, n: int, why: str) -> None:
        with self._lock:
            self.stats.dropped += n
            first = self.stats.dropped == n
        if first:
            log.warning("diffwatch HttpSink dropped %d record(s) for %s: %s", n, self.url, why)
            with self._lock:
                self._drops_logged = self.stats.dropped
                self._last_drop_log = time.monotonic()
        else:
            self._log_drops(why=why)

    def _log_drops(self, force: bool = False, why: str = "") -> None:
        with self._lock:
            new = self.stats.dropped - self._drops_logged
            due = force or time.monotonic() - self._last_drop_log >= self.drop_log_interval_s
            if new <= 0 or not due:
                return
            self._drops_logged, self._last_drop_log = self.stats.dropped, time.monotonic()
            total = self.stats.dropped
        log.warning(
            "diffwatch HttpSink dropped %d more record(s) for %s (%d in all)%s",
            new, self.url, total, f": {why}" if why else "",
        )  # fmt: skip

    def _done(self, n: int) -> None:
        with self._lock:
            self._unsent -= n
            self._idle.notify_all()

    def _take_batch(self) -> list[bytes]:
        batch: list[bytes] = []
        end = time.monotonic() + self.flush_interval_s
        while len(batch) < self.batch_size:
            wait = end - time.monotonic()
            if self._stop.is_set():
                wait = 0
            try:
                batch.append(
                    self._queue.get(timeout=wait) if wait > 0 else self._queue.get_nowait()
                )
            except queue.Empty:
                if batch or self._stop.is_set():
                    break
                end = time.monotonic() + self.flush_interval_s
        return batch

    def _run(self) -> None:
        while True:
            batch = self._take_batch()
            if not batch:
                if self._stop.is_set():
                    return
                continue
            self._deliver(batch)

    def _give_up(self) -> bool:
        return self._stop.is_set() and time.monotonic() >= self._deadline

    def _deliver(self, batch: list[bytes]) -> None:
        backoff = self.initial_backoff_s
        pending = [batch]
        while pending:
            part = pending.pop()
            if self._give_up():
                self._drop(len(part), "closed before the collector took them")
                self._done(len(part))
                continue
            outcome, wait, why = self._post(part)
            if outcome == "ok":
                backoff = self.initial_backoff_s
                self._done(len(part))
            elif outcome == "split":
                half = len(part) // 2
                pending += [part[half:], part[:half]]
            elif outcome == "drop":
                self._drop(
                    len(part), f"the collector refused the batch ({why}); check the URL and token"
                )
                self._done(len(part))
            else:  # retry
                with self._lock:
                    self.stats.retries += 1
                # the collector's Retry-After wins (up to 5 minutes); else full jitter
                delay = min(wait, 300.0) if wait is not None else random.uniform(0, backoff)
                backoff = min(backoff * 2, self.max_backoff_s)
                if self._stop.is_set():
                    delay = min(delay, max(0.0, self._deadline - time.monotonic()))
                # Sleep, but wake for close(): it sets _stop and the deadline.
                t_end = time.monotonic() + delay
                while (left := t_end - time.monotonic()) > 0 and not self._give_up():
                    self._stop.wait(min(left, 0.05) if self._stop.is_set() else left)
                    if self._stop.is_set():
                        t_end = min(t_end, self._deadline)
                pending.append(part)

    def _post(self, part: list[bytes]) -> tuple[str, float | None, str]:
        """POST one batch: ("ok"|"split"|"drop"|"retry", Retry-After s, why)."""
        body = b"".join(part)
        headers = {"Content-Type": "application/x-ndjson"}
        if self.compress:
            body = gzip.compress(body, compresslevel=1)
            headers["Content-Encoding"] = "gzip"
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        req = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=self.request_timeout_s) as resp:
                answer = json.loads(resp.read() or b"{}")
        except urllib.error.HTTPError as exc:
            code = exc.code
            exc.close()
            if code == 413 and len(part) > 1:
                return "split", None, ""
            if code in (429, 503) or code >= 500:
                return "retry", retry_after_seconds(exc.headers.get("Retry-After")), f"HTTP {code}"
            return "drop", None, f"HTTP {code}"
        except (OSError, ValueError) as exc:  # refused, reset, timed out, garbled answer
            log.debug("diffwatch HttpSink: POST %s failed: %s", self.url, exc)
            return "retry", None, str(exc)
        accepted = int(answer.get("accepted", 0))
        duplicates = int(answer.get("duplicates", 0))
        rejected = answer.get("rejected") or []
        with self._lock:
            self.stats.sent += accepted + duplicates
            self.stats.duplicates += duplicates
            self.stats.rejected += len(rejected)
        for r in rejected[:10]:
            log.error("diffwatch HttpSink: the collector rejected a record: %s", r)
        return "ok", None, ""

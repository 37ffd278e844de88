"""The scoring worker loop: claim → load images → score → write, exactly once per scorer.

Loading the next batch (claim, then ``diffwatch.scoring.loader``: reads, checks, decoding in loader
processes or threads, nvJPEG on the GPU, prompt tokenizing) runs on a prefetch thread while
the current batch is scored, so the GPU is not left waiting for JPEG decoding.

Stopping (``stop`` set, e.g. by SIGTERM) never waits for a load: the batch being loaded is
abandoned (its reads cancelled, its leases released, or left to expire when the claim
itself is stuck) and nothing of it is written. A batch already loaded is scored and written
in one transaction, as before. Prefetch threads are daemon threads, so a read stuck in a
system call cannot keep the process from exiting.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import Future, wait
from dataclasses import asdict, dataclass
from typing import Any

import psycopg

from diffwatch.db.queries import embeddings as emb_sql
from diffwatch.db.queries import scoring as sql
from diffwatch.outage import DB_DOWN_ERRORS, OutageRetry
from diffwatch.scoring.base import Scorer
from diffwatch.scoring.clip.text import TokenizedPrompts
from diffwatch.scoring.images.load import ImageFailure, LoadedImage
from diffwatch.scoring.loader import ImageLoader, LoaderOptions

log = logging.getLogger(__name__)


@dataclass
class WorkerSummary:
    """Totals of a worker run (counts of generations and results, seconds)."""

    batches: int = 0
    claimed: int = 0
    results: int = 0
    failures: int = 0
    stale: int = 0
    elapsed_s: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready totals with the rate (images/s)."""
        d = asdict(self)
        d["elapsed_s"] = round(self.elapsed_s, 3)
        d["images_per_s"] = round(self.claimed / self.elapsed_s, 1) if self.elapsed_s else None
        return d


@dataclass
class _Batch:
    token: str
    claimed: list[sql.Claimed]
    images: list[LoadedImage | ImageFailure]
    tokens: TokenizedPrompts | None = None


ABANDON_WAIT_S = 2.0
"""How long a stopping worker waits for a cancelled load to return, seconds."""


@dataclass
class _Fetch:
    """A claim-and-load running on a daemon thread: its lease token, its cancel switch,
    and the batch it will give."""

    token: str
    cancel: threading.Event
    future: Future[_Batch]

    @classmethod
    def start(cls, retrying: OutageRetry, fetch: Callable[..., _Batch], limit: int) -> _Fetch:
        """Claim up to ``limit`` generations and load them, on a new daemon thread."""
        f = cls(uuid.uuid4().hex, threading.Event(), Future())

        def run() -> None:
            f.future.set_running_or_notify_cancel()
            try:
                f.future.set_result(retrying(fetch, limit, f.token, f.cancel))
            except BaseException as exc:  # handed to the loop through the future
                f.future.set_exception(exc)

        threading.Thread(target=run, name="prefetch", daemon=True).start()
        return f

    def wait(self, stop: threading.Event) -> bool:
        """Wait for the batch; False when ``stop`` is set first."""
        while not self.future.done():
            if stop.wait(0.1):
                return self.future.done()
        return True


class ScoringWorker:
    """Scores generations with a set of scorers until there is nothing left (or forever)."""

    def __init__(
        self,
        conninfo: str,
        scorers: Sequence[Scorer],
        *,
        batch_size: int = 64,
        lease_s: float = 300.0,
        max_attempts: int = 3,
        load_threads: int = 8,
        loader: LoaderOptions | None = None,
        name: str | None = None,
        frontier_every_s: float = 10.0,
        progress: Callable[[int], None] | None = None,
        order: str = "oldest",
        embeddings: bool = True,
    ) -> None:
        if not scorers:
            raise ValueError("a scoring worker needs at least one scorer")
        self.conninfo = conninfo
        self.scorers = list(scorers)
        self.keys = [s.key for s in self.scorers]
        self.batch_size = batch_size
        self.lease_s = lease_s
        self.max_attempts = max_attempts
        if order not in sql.CLAIM_ORDERS:
            raise ValueError(
                f"scoring order: {order!r} is not one of {', '.join(sql.CLAIM_ORDERS)}"
            )
        self.order = order
        # The first scorer that wants tokens (CLIP) has its prompts tokenized by the loader.
        text = next(
            (t for s in self.scorers if (t := getattr(s, "prompt_tokenizer", None)) is not None),
            None,
        )
        self.loader = ImageLoader(loader or LoaderOptions(threads=load_threads), text)
        self.name = name or f"score@{socket.gethostname()}"
        self.frontier_every_s = frontier_every_s
        self._frontier_at = -float("inf")
        self.progress = progress
        # Claims run on the prefetch thread while results are written on this one: each
        # has its own connection, since transactions on one connection cannot interleave.
        self._conns: dict[str, psycopg.Connection] = {}
        self.store_embeddings = embeddings
        # Scorer key -> version of the scorers whose embeddings are stored here; None until
        # the database was asked whether it can hold them (pgvector).
        self._embedding_keys: dict[str, str] | None = None

    def _connection(self, role: str = "write") -> psycopg.Connection:
        conn = self._conns.get(role)
        if conn is None or conn.closed:
            conn = self._conns[role] = psycopg.connect(self.conninfo, autocommit=True)
            if role == "write" and self._embeddings_on(conn):
                emb_sql.register(conn)
        return conn

    def _embeddings_on(self, conn: psycopg.Connection) -> bool:
        """Whether this worker stores embeddings: asked once (does the database have
        pgvector?), when the first write connection opens; registers each scorer's space."""
        if self._embedding_keys is None:
            wanted = {
                str(s.key): (s.key.version, dims)
                for s in self.scorers
                if (dims := getattr(s, "embedding_dims", None))
            }
            keys: dict[str, str] = {}
            if self.store_embeddings and wanted:
                st = emb_sql.support(conn)
                if st.enabled:
                    for key, (version, dims) in wanted.items():
                        emb_sql.ensure_space(conn, version, dims, st.vector_type)
                        keys[key] = version
                else:
                    log.info("%s; scores are stored as usual", st.describe())
            self._embedding_keys = keys
        return bool(self._embedding_keys)

    def _close_connections(self) -> None:
        for conn in self._conns.values():
            conn.close()
        self._conns.clear()

    def close(self) -> None:
        """Close the database connections and stop the loader processes."""
        self._close_connections()
        self.loader.close()

    def pending(self) -> int:
        """Generations still to score by some scorer of this worker."""
        return sql.pending(self._connection(), self.keys, self.max_attempts)

    # -- one batch ----------------------------------------------------------------------
    def _advance_frontier(self) -> None:
        """Every ``frontier_every_s`` seconds, let claims skip newly settled generations."""
        now = time.monotonic()
        if now - self._frontier_at < self.frontier_every_s:
            return
        self._frontier_at = now
        sql.advance_frontier(self._connection("claim"), self.keys, self.max_attempts)

    def _fetch(self, limit: int, token: str, cancel: threading.Event) -> _Batch:
        self._advance_frontier()
        claimed = sql.claim(
            self._connection("claim"),
            self.keys,
            worker=self.name,
            token=token,
            limit=limit,
            lease_s=self.lease_s,
            max_attempts=self.max_attempts,
            order=self.order,
        )
        loaded = self.loader.load(
            [c.image_uri for c in claimed], [c.prompt for c in claimed], cancel
        )
        return _Batch(token, claimed, loaded.images, loaded.tokens)

    def _score_and_write(self, batch: _Batch) -> sql.WriteResult:
        results: list[sql.ResultRow] = []
        failures: list[sql.FailureRow] = []
        conn = self._connection()  # decides whether embeddings are stored
        keep = self._embedding_keys or {}
        images: list[emb_sql.EmbeddingRow] = []
        prompts: list[emb_sql.PromptEmbeddingRow] = []
        for scorer in self.scorers:
            wanted = str(scorer.key)
            todo = [i for i, c in enumerate(batch.claimed) if wanted in c.missing]
            good = [i for i in todo if isinstance(batch.images[i], LoadedImage)]
            for i in todo:
                img = batch.images[i]
                if isinstance(img, ImageFailure):
                    failures.append(
                        sql.FailureRow(
                            batch.claimed[i].generation_id,
                            scorer.key,
                            img.kind,
                            img.reason,
                            img.transient,
                            img.attempts,
                        )
                    )
            if not good:
                continue
            outcomes = scorer.score(
                [batch.images[i].rgb for i in good],  # type: ignore[union-attr]
                [batch.claimed[i].prompt for i in good],
                batch.tokens.take(good) if batch.tokens is not None else None,
            )
            version = keep.get(wanted)
            for i, out in zip(good, outcomes, strict=True):
                if version is not None and out.embedding is not None:
                    gid = batch.claimed[i].generation_id
                    images.append(emb_sql.EmbeddingRow(gid, version, out.embedding))
                    if out.prompt_embedding is not None:
                        prompts.append(
                            emb_sql.PromptEmbeddingRow(
                                version, batch.claimed[i].prompt, out.prompt_embedding
                            )
                        )
                notes = batch.images[i].notes  # type: ignore[union-attr]
                details = {**out.details, "image_notes": list(notes)} if notes else out.details
                results.append(
                    sql.ResultRow(
                        batch.claimed[i].generation_id,
                        scorer.key,
                        out.value,
                        out.flagged,
                        details,
                    )
                )
        written = sql.write(
            conn,
            self.keys,
            batch.token,
            [c.generation_id for c in batch.claimed],
            results,
            failures,
            self.name,
            images,
            prompts,
        )
        if written.stale:
            log.warning(
                "lease lost for %d generations (took longer than --lease-s %.0f s?): "
                "their results were not written; another worker scores them",
                len(written.stale),
                self.lease_s,
            )
        return written

    def _abandon(self, pending: _Fetch) -> None:
        """Cancel a load in flight and release its leases (else they expire)."""
        pending.cancel.set()
        # Cancelled reads return at once; a claim stuck on the database may not.
        wait([pending.future], timeout=ABANDON_WAIT_S)
        if not pending.future.done():
            self.loader.abandon()
        with contextlib.suppress(*DB_DOWN_ERRORS):  # else the leases expire
            sql.release(self._connection(), self.keys, pending.token)

    # -- the loop -----------------------------------------------------------------------
    def run(
        self,
        stop: threading.Event,
        *,
        follow: bool = False,
        limit: int | None = None,
        poll_s: float = 2.0,
        max_backoff_s: float = 30.0,
    ) -> WorkerSummary:
        """Score until nothing is left (or, with ``follow``, until ``stop`` is set)."""
        total = WorkerSummary()
        t0 = time.perf_counter()
        retrying = OutageRetry(
            stop,
            log,
            on_down=self._close_connections,
            consequence="Leases of unfinished work expire and are claimed again.",
            resumed="scoring resumed",
            max_backoff_s=max_backoff_s,
        )

        def room() -> int:
            left = self.batch_size if limit is None else min(self.batch_size, limit - total.claimed)
            return max(left, 0)

        pending: _Fetch | None = None
        while not stop.is_set():
            try:
                if pending is None:
                    pending = _Fetch.start(retrying, self._fetch, room())
                if not pending.wait(stop):
                    break  # stopping while the batch loads: abandoned below
                batch, pending = pending.future.result(), None
                if not batch.claimed:
                    if not follow or (limit is not None and total.claimed >= limit):
                        break
                    stop.wait(poll_s)
                    continue
                total.claimed += len(batch.claimed)
                if room() and not stop.is_set():
                    pending = _Fetch.start(retrying, self._fetch, room())
                written = retrying(self._score_and_write, batch)
            except DB_DOWN_ERRORS:
                if stop.is_set():
                    break
                raise
            total.batches += 1
            total.results += written.results
            total.failures += written.failures
            total.stale += len(written.stale)
            if self.progress:
                self.progress(len(batch.claimed))
            if limit is not None and total.claimed >= limit and pending is None:
                break
        if pending is not None:  # stopping: give back what was being loaded
            self._abandon(pending)
        total.elapsed_s = time.perf_counter() - t0
        return total

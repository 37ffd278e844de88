"""The loop of a chunk worker: claim a chunk under a lease, work it, until none is left.

The release gate's and the bias probe's workers share it; each brings its own claim (its
tables, its filters) and its own chunk work. Leases, renewal and completion stay in their
SQL (``db.queries.gate``, ``db.queries.bias``), so a chunk is completed only while its
lease holds.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

import psycopg

log = logging.getLogger(__name__)
C = TypeVar("C")


def worker_name() -> str:
    """host:pid:random, unique to this process: the lease owner of a chunk worker."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def claim_loop(
    conninfo: str,
    claim: Callable[[psycopg.Connection], C | None],
    work_chunk: Callable[[psycopg.Connection, C], bool],
    *,
    label: Callable[[C], str],
    follow: bool = False,
    poll_s: float = 2.0,
    stop: threading.Event | None = None,
    after: Callable[[psycopg.Connection], Any] | None = None,
) -> int:
    """Claim and work chunks until none is left (``follow``: until ``stop`` is set); the
    number of chunks completed here. ``work_chunk`` answers False when the lease was lost;
    ``after`` runs after each chunk (progress); ``label`` names a chunk in the log."""
    stop = stop or threading.Event()
    done = 0
    with psycopg.connect(conninfo, autocommit=True) as conn:
        while not stop.is_set():
            c = claim(conn)
            if c is None:
                if not follow:
                    break
                stop.wait(poll_s)
                continue
            started = time.monotonic()
            if work_chunk(conn, c):
                done += 1
            log.info("%s in %.1f s", label(c), time.monotonic() - started)
            if after is not None:
                after(conn)
    return done

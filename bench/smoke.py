"""The ``--smoke`` size every benchmark script has: seconds on a CPU, run by the test suite.

A smoke run prints the script's normal JSON object and keeps its correctness fields, so the
suite (``tests/integration/test_bench_smoke.py``) notices when a benchmark stops running or
stops measuring the right thing; its timings mean nothing. Explicit options still win over
the smoke sizes.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from typing import Any

DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
SMOKE_HELP = (
    "tiny sizes that run in seconds on a CPU (the test suite runs every script so); "
    "the figures mean nothing, the correctness fields still hold"
)


def add_smoke(parser: argparse.ArgumentParser) -> None:
    """Add the ``--smoke`` flag to ``parser``."""
    parser.add_argument("--smoke", action="store_true", help=SMOKE_HELP)


def parse(
    parser: argparse.ArgumentParser, argv: Sequence[str] | None, sizes: Mapping[str, Any]
) -> argparse.Namespace:
    """Parse ``argv``; with ``--smoke``, ``sizes`` replace the defaults (explicit options win).

    ``parser`` must have had ``add_smoke`` called on it.
    """
    args = parser.parse_args(argv)
    if args.smoke:
        parser.set_defaults(**sizes)
        args = parser.parse_args(argv)
    return args


def admin_url() -> str:
    """The server a smoke run makes its scratch database on: the test server
    (``DIFFWATCH_TEST_DATABASE_URL``, which the test suite always sets) or the default."""
    return os.environ.get("DIFFWATCH_TEST_DATABASE_URL") or DEFAULT_ADMIN_URL


def scratch_name(base: str) -> str:
    """A smoke run's scratch database name: its own (runs side by side never share one),
    and named like the test databases, so the suite drops it if this process dies
    before it can (``tests/conftest.py`` drops ``dwtest_<pid>_*`` of dead processes)."""
    return f"dwtest_{os.getpid()}_{base}"

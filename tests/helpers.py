"""Small helpers for tests that drive diffwatch as users do: as a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.corpus.log_lines import good_record

REPO = Path(__file__).resolve().parents[1]


def cli_env(db_url: str) -> dict[str, str]:
    """Environment for a diffwatch subprocess pointed at ``db_url``."""
    env = dict(os.environ)
    env["DIFFWATCH_DATABASE_URL"] = db_url
    env["PYTHONPATH"] = str(REPO)
    return env


def diffwatch_cmd(*args: str) -> list[str]:
    """argv that runs the diffwatch CLI with this interpreter."""
    return [sys.executable, "-m", "diffwatch.cli", *args]


def run_collect(db_url: str, *patterns: str, extra: tuple[str, ...] = ()) -> dict[str, Any]:
    """Run ``diffwatch collect logs --json`` to completion; return its summary."""
    out = subprocess.run(
        diffwatch_cmd("collect", "logs", *patterns, "--json", *extra),
        env=cli_env(db_url),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def numbered_line(i: int, **kw: Any) -> bytes:
    """A valid log line whose request_id encodes ``i`` (with newline)."""
    rec = good_record(i, **kw)
    rec["timestamp"] = "2026-11-01T00:00:00+00:00"
    return json.dumps(rec).encode() + b"\n"

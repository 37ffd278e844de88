"""Where the log collector's time goes: the parser alone, then the real CLI under cProfile.

Used by ``bench/ingest.py --profile``. Only public entry points are touched (the pure
``parse_line`` and the ``diffwatch`` command), so it survives refactors of the collector.
"""

from __future__ import annotations

import os
import pstats
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

# Stage of a profiled function, by the first rule whose needle is in "file:function".
STAGES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("parse (parse.py, record.py, msgspec)", ("logs/parse.py", "logs/record.py", "msgspec")),
    ("batching (batching.py)", ("logs/batching.py",)),
    ("line reading (tail.py, pread, split)", ("logs/tail.py", "posix.pread", "'split' of")),
    (
        "waiting on the server or writer thread",
        ("_thread.lock", "queue.py", "threading.py", "select", "poll", "waiting.py", ":wait"),
    ),
    ("COPY: psycopg formatting and queueing", ("psycopg",)),
    ("SQL and commits (ingest.py, collector.py)", ("queries/ingest.py", "logs/collector.py")),
    (
        "start-up (imports, CLI, schema check)",
        (
            "importlib",
            "<frozen",
            "marshal.loads",
            "__build_class__",
            "builtins.exec",
            "builtins.compile",
            "typing.py",
            "enum.py",
            "dataclasses.py",
            "re/_",
            "sre_",
            "sqlalchemy",
            "alembic",
            "pydantic",
            "typer",
            "click",
            "rich",
            "abc.py",
            "functools.py",
            "inspect.py",
            "posix.stat",
            "posix.listdir",
        ),
    ),
)
OTHER = "other"


def stage_of(filename: str, func: str) -> str:
    """The stage a profiled function belongs to (see ``STAGES``)."""
    key = f"{filename}:{func}"
    for stage, needles in STAGES:
        if any(n in key for n in needles):
            return stage
    return OTHER


def parse_only(path: Path) -> dict[str, Any]:
    """Time ``parse_line`` over every line of ``path`` (file already in memory): rows/s."""
    from diffwatch.collectors.logs.parse import parse_line

    lines = path.read_bytes().split(b"\n")
    if lines and not lines[-1]:
        lines.pop()
    now = datetime.now(UTC)
    good = 0
    t0 = time.perf_counter()
    for line in lines:
        if type(parse_line(line, now)) is tuple:
            good += 1
    secs = time.perf_counter() - t0
    return {"seconds": round(secs, 3), "rows": good, "rows_per_s": round(good / secs)}


def parse_inside_copy(path: Path, conninfo: str, batch_rows: int) -> dict[str, Any]:
    """The smallest collector: ``parse_line`` inside a streaming binary COPY, one
    transaction per ``batch_rows`` lines (asynchronous commits, like the collector).

    Lines are split in memory first, so this is parse + COPY only: the ceiling for a
    single-threaded Python collector built on ``parse_line`` (rows/s).
    """
    import msgspec
    import psycopg
    from psycopg.types.json import set_json_dumps

    from diffwatch.collectors.logs.parse import parse_line
    from diffwatch.db.queries.ingest import COPY_COLUMNS, COPY_TYPES

    lines = path.read_bytes().split(b"\n")
    if lines and not lines[-1]:
        lines.pop()
    stmt = f"COPY generations ({', '.join(COPY_COLUMNS)}) FROM STDIN (FORMAT BINARY)"
    now, src, width, good = datetime.now(UTC), str(path), len(COPY_COLUMNS), 0
    with psycopg.connect(conninfo, autocommit=True) as conn:
        set_json_dumps(msgspec.json.encode, conn)
        conn.execute("SET synchronous_commit = off")
        t0 = time.perf_counter()
        for i in range(0, len(lines), batch_rows):
            with conn.transaction(), conn.cursor() as cur, cur.copy(stmt) as copy:
                copy.set_types(COPY_TYPES)
                for line in lines[i : i + batch_rows]:
                    row = parse_line(line, now)
                    if type(row) is tuple:
                        if len(row) < width:  # parse_line without the source columns
                            row = (*row, src, 0)
                        copy.write_row(row)
                        good += 1
        conn.execute("SELECT 1")  # nothing pending
        secs = time.perf_counter() - t0
    return {"seconds": round(secs, 3), "rows": good, "rows_per_s": round(good / secs)}


def profile_cli(run: Callable[[Sequence[str]], dict[str, Any]]) -> dict[str, Any]:
    """Run the collector CLI under cProfile (main thread only); own time grouped by stage."""
    with tempfile.TemporaryDirectory(prefix="diffwatch-prof-") as tmp:
        out = os.path.join(tmp, "collector.prof")
        res = run(["-m", "cProfile", "-o", out])
        stats = pstats.Stats(out)
    by_stage: dict[str, float] = {}
    funcs: list[tuple[float, str, str]] = []
    for (filename, line, func), (_cc, _nc, tottime, _ct, _callers) in stats.stats.items():
        stage = stage_of(filename, func)
        by_stage[stage] = by_stage.get(stage, 0.0) + tottime
        short = filename.split("/site-packages/")[-1].split("/work/main/")[-1]
        funcs.append((tottime, f"{short}:{line}({func})", stage))
    total = sum(by_stage.values())
    funcs.sort(reverse=True)
    return {
        "wall_s_under_profiler": round(res["wall_s"], 3),
        "profiled_main_thread_s": round(total, 3),
        "by_stage_s": {k: round(v, 3) for k, v in sorted(by_stage.items(), key=lambda kv: -kv[1])},
        "by_stage_pct": {
            k: round(100 * v / total, 1) for k, v in sorted(by_stage.items(), key=lambda kv: -kv[1])
        },
        "top_functions_tottime": [
            {"s": round(t, 3), "function": name, "stage": stage} for t, name, stage in funcs[:15]
        ],
    }


def breakdown(
    path: Path,
    good: int,
    run: Callable[[Sequence[str]], dict[str, Any]],
    reset: Callable[[], None],
    conninfo: str,
    batch_rows: int,
    progress: Callable[[str], None] = lambda _msg: None,
) -> dict[str, Any]:
    """Parser-only throughput, parse + COPY alone, and a stage profile of one collector run."""
    progress("breakdown: parse_line alone over every line")
    parse = parse_only(path)
    progress("breakdown: parse_line inside a streaming COPY")
    reset()
    in_copy = parse_inside_copy(path, conninfo, batch_rows)
    progress("breakdown: collector CLI under cProfile")
    reset()
    prof = profile_cli(run)
    reset()
    return {
        "parse_only": parse,
        "parse_inside_copy": in_copy,
        "cli_profile": prof,
        "note": "parse_only: diffwatch.collectors.logs.parse.parse_line over the file's lines "
        "in one thread, no database. parse_inside_copy: parse_line feeding a binary COPY into "
        "generations, one transaction per batch, lines pre-split in memory. cli_profile: "
        "the same `diffwatch collect logs` run again under cProfile (which slows Python "
        "code, so compare shares, not seconds); only "
        "the main thread is profiled, where lines are parsed and COPY rows formatted.",
        "good_rows": good,
    }

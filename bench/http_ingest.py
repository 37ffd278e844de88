"""HTTP ingest benchmark: `diffwatch collect http` against `diffwatch collect logs`, same run.

Generates realistic generation-log records (``bench/records.py``) once, then on one
PostgreSQL server, with the ingest tables truncated between variants, measures:

1. the baseline, ``diffwatch collect logs FILE --json`` (a subprocess) over the file;
2. ``diffwatch collect http`` (the real CLI: uvicorn serving the Starlette app, a
   subprocess) fed the same lines as ``application/x-ndjson`` batches by ``--clients``
   keep-alive HTTP/1.1 connections (http.client, in threads of this process).

Rates are good rows stored per second. The collector's is its own report (the ingest pass,
without interpreter start-up); the server's is first request sent to last answer received
(the server already up). Rounds interleave the variants; medians are reported. Prints ONE
JSON object on stdout; progress goes to stderr. Run ``python bench/http_ingest.py -h``.
"""

from __future__ import annotations

import argparse
import gzip
import http.client
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as `python bench/http_ingest.py` from anywhere
    sys.path.insert(0, str(REPO))

from bench import smoke  # noqa: E402
from bench.ingest import (  # noqa: E402
    _median,
    count,
    progress,
    reset,
    run_collector,
    scratch_database,
    truncated_tables,
)
from bench.records import generate  # noqa: E402
from diffwatch.db import migrate  # noqa: E402
from diffwatch.db.engine import raw_conninfo  # noqa: E402

SCRATCH_DB = "diffwatch_bench_http"
TOKEN = "bench-token-" + "x" * 32


def smoke_sizes() -> dict[str, Any]:
    """``--smoke``: 2,000 lines (1 % bad), one round, scratch database on the test server."""
    return {
        "records": 2_000,
        "bad_ratio": 0.01,
        "batch_records": 250,
        "repeats": 1,
        "admin_url": smoke.admin_url(),
        "db_name": smoke.scratch_name(SCRATCH_DB),
    }


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] + " Prints one JSON object on stdout.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--records", type=int, default=200_000, help="log lines to generate")
    p.add_argument("--bad-ratio", type=float, default=0.001, help="fraction of invalid lines")
    p.add_argument("--batch-records", type=int, default=1000, help="records per HTTP request")
    p.add_argument("--clients", type=int, default=2, help="concurrent HTTP connections")
    p.add_argument("--gzip", action="store_true", help="send gzip-compressed bodies")
    p.add_argument("--repeats", type=int, default=3, help="rounds of both variants")
    p.add_argument("--seed", type=int, default=20240514, help="random seed for the records")
    p.add_argument("--admin-url", default=smoke.DEFAULT_ADMIN_URL, help="server for the scratch db")
    p.add_argument("--db-name", default=SCRATCH_DB, help="name of the scratch database")
    smoke.add_smoke(p)
    return smoke.parse(p, argv, smoke_sizes())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(port: int, path: str) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path)
        return conn.getresponse().status
    finally:
        conn.close()


def start_server(url: str, token_file: Path) -> tuple[subprocess.Popen[str], int, float]:
    """``diffwatch collect http`` as a subprocess; (process, port, seconds until ready)."""
    port = _free_port()
    cmd = [sys.executable, "-m", "diffwatch.cli", "collect", "http", "--port", str(port),
           "--token-file", str(token_file), "--database-url", url]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("DIFFWATCH_DATABASE_URL", None)
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, cwd=REPO, stderr=subprocess.PIPE, text=True)
    while True:
        try:
            if _get(port, "/readyz") == 200:
                return proc, port, time.perf_counter() - t0
        except OSError:
            pass
        if proc.poll() is not None or time.perf_counter() - t0 > 120:
            raise SystemExit(f"collect http did not start:\n{proc.communicate()[1][-4000:]}")
        time.sleep(0.05)


def stop_server(proc: subprocess.Popen[str]) -> None:
    """Stop the server (SIGTERM, as a service manager does)."""
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    if proc.returncode != 0:
        raise SystemExit(f"collect http exited {proc.returncode}:\n{err[-4000:]}")


def send_all(port: int, bodies: list[bytes], clients: int, gz: bool) -> dict[str, Any]:
    """POST every body over ``clients`` keep-alive connections; totals of the answers."""
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/x-ndjson"}
    if gz:
        headers["Content-Encoding"] = "gzip"
    todo = list(enumerate(bodies))
    lock = threading.Lock()
    totals = {"accepted": 0, "duplicates": 0, "rejected": 0, "retries_429": 0}
    errors: list[str] = []

    def worker() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        try:
            while True:
                with lock:
                    if not todo or errors:
                        return
                    _, body = todo.pop()
                while True:
                    conn.request("POST", "/v1/generations", body=body, headers=headers)
                    res = conn.getresponse()
                    data = res.read()
                    if res.status != 429:
                        break
                    with lock:
                        totals["retries_429"] += 1
                    time.sleep(float(res.getheader("Retry-After") or 1))
                if res.status != 200:
                    with lock:
                        errors.append(f"{res.status}: {data[:500]!r}")
                    return
                ans = json.loads(data)
                with lock:
                    totals["accepted"] += ans["accepted"]
                    totals["duplicates"] += ans["duplicates"]
                    totals["rejected"] += len(ans["rejected"])
        finally:
            conn.close()

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    totals["seconds"] = time.perf_counter() - t0
    if errors:
        raise SystemExit(f"collect http refused a batch: {errors[0]}")
    return totals


def bench(args: argparse.Namespace, url: str) -> dict[str, Any]:
    """Run both variants against ``url``; return the result object."""
    conninfo = raw_conninfo(url)
    with tempfile.TemporaryDirectory(prefix="diffwatch-bench-http-") as tmp:
        path = Path(tmp) / "gen.jsonl"
        token_file = Path(tmp) / "token"
        token_file.write_text(TOKEN)
        progress(f"generating {args.records:,} records into {path}")
        gen = generate(path, args.records, args.bad_ratio, args.seed, progress)
        good = len(gen.rows)
        lines = path.read_bytes().splitlines(keepends=True)
        bodies = [
            b"".join(lines[i : i + args.batch_records])
            for i in range(0, len(lines), args.batch_records)
        ]
        if args.gzip:
            bodies = [gzip.compress(b, 1) for b in bodies]
        logs_runs: list[dict[str, Any]] = []
        http_runs: list[dict[str, Any]] = []
        counts: dict[str, list[int]] = {"logs": [], "logs_rej": [], "http": [], "http_rej": []}
        for r in range(1, args.repeats + 1):
            rnd = f"[round {r}/{args.repeats}]"
            reset(conninfo)
            progress(f"{rnd} collect logs")
            col = run_collector(url, path, None)
            logs_runs.append(col)
            counts["logs"].append(count(conninfo, "generations"))
            counts["logs_rej"].append(count(conninfo, "rejected_records"))
            progress(f"{rnd} collect logs: {col['summary']['rows_per_s']} rows/s (reported)")

            reset(conninfo)
            proc, port, startup = start_server(url, token_file)
            try:
                progress(f"{rnd} collect http: {len(bodies)} batches, {args.clients} clients")
                sent = send_all(port, bodies, args.clients, args.gzip)
            finally:
                stop_server(proc)
            sent["startup_s"] = startup
            http_runs.append(sent)
            counts["http"].append(count(conninfo, "generations"))
            counts["http_rej"].append(count(conninfo, "rejected_records"))
            progress(f"{rnd} collect http: {good / sent['seconds']:.0f} rows/s")
        reset(conninfo)

    col = _median(logs_runs, key=lambda c: c["summary"]["elapsed_s"])
    hs = _median(http_runs, key=lambda h: h["seconds"])
    logs_rps = good / col["summary"]["elapsed_s"]
    http_rps = good / hs["seconds"]
    correct = {
        "expected_good": good,
        "expected_bad": gen.bad,
        "logs_generations": counts["logs"],
        "logs_rejected_records": counts["logs_rej"],
        "http_generations": counts["http"],
        "http_rejected_records": counts["http_rej"],
        "http_accepted": [h["accepted"] for h in http_runs],
        "http_rejected_answered": [h["rejected"] for h in http_runs],
        "ok": all(n == good for n in counts["logs"] + counts["http"])
        and all(n == gen.bad for n in counts["logs_rej"] + counts["http_rej"])
        and all(h["accepted"] == good and h["duplicates"] == 0 for h in http_runs)
        and all(h["rejected"] == gen.bad for h in http_runs),
    }
    return {
        "benchmark": "http_ingest",
        "records": args.records,
        "good_records": good,
        "bad_lines": gen.bad,
        "file_mb": round(gen.nbytes / 1e6, 1),
        "http": {
            "seconds": round(hs["seconds"], 3),
            "runs_s": [round(h["seconds"], 3) for h in http_runs],
            "rows_per_s": round(http_rps),
            "batch_records": args.batch_records,
            "batches": len(bodies),
            "clients": args.clients,
            "gzip": args.gzip,
            "retries_429": hs["retries_429"],
            "startup_s": round(hs["startup_s"], 3),
            "command": "python -m diffwatch.cli collect http --port P --token-file F",
            "note": "first request sent to last answer received, the server already up; "
            "every answer is a synchronous commit",
        },
        "logs": {
            "seconds": col["summary"]["elapsed_s"],
            "runs_s": [c["summary"]["elapsed_s"] for c in logs_runs],
            "rows_per_s": round(logs_rps),
            "wall_s": round(col["wall_s"], 3),
            "command": col["command"],
            "note": "the baseline: the CLI's own elapsed_s (the ingest pass, without "
            "interpreter start-up); wall_s is the whole subprocess",
        },
        "ratio_http_vs_logs": round(http_rps / logs_rps, 3),
        "correct": correct,
        "truncated_between_variants": truncated_tables(conninfo),
        "smoke": args.smoke,
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: make a scratch database, run the benchmark, print the JSON object."""
    args = parse_args(argv)
    if args.records < 1 or args.repeats < 1 or args.batch_records < 1 or args.clients < 1:
        raise SystemExit("--records, --repeats, --batch-records and --clients must be >= 1")
    with scratch_database(args.admin_url, args.db_name, keep=False) as url:
        progress(f"migrating scratch database {args.db_name}")
        migrate.upgrade(url)
        result = bench(args, url)
    print(json.dumps(result, indent=2))
    return 0 if result["correct"]["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())

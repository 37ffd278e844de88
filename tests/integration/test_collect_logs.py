"""``diffwatch collect logs`` against a real Postgres: rows, rejections, offsets, summary."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from diffwatch.cli import build
from diffwatch.collectors.logs.collector import LogCollector
from tests.helpers import numbered_line


def test_ingests_rows_keeps_extra_and_records_rejections(tmp_path, db_url, conninfo, sql):
    log = tmp_path / "gen.jsonl"
    with log.open("wb") as f:
        f.write(numbered_line(1, client="web"))
        f.write(b'{"broken": \n')
        f.write(numbered_line(2, steps=-3))
        f.write(b"\n")
        f.write(numbered_line(3))
    summary = LogCollector(conninfo, [str(log)]).run_once()
    assert (summary.ingested, summary.rejected, summary.blank, summary.duplicates) == (2, 2, 1, 0)
    rows = sql("SELECT request_id, extra, source, source_offset FROM generations ORDER BY 1")
    assert [r[0] for r in rows] == ["req-00000001", "req-00000003"]
    assert rows[0][1] == {"client": "web"} and rows[0][2] == str(log) and rows[0][3] == 0
    rej = sql("SELECT line_no, source, raw, reason FROM rejected_records ORDER BY line_no")
    assert [r[0] for r in rej] == [2, 3]
    assert rej[0][2] == '{"broken": ' and "not valid JSON" in rej[0][3]
    assert '"steps" must be a positive integer, got -3' in rej[1][3]
    status = sql("SELECT ingested, rejected FROM collector_status")
    assert status == [(2, 2)]


def test_a_second_run_reads_nothing_and_a_replayed_file_is_counted_not_stored(
    tmp_path, db_url, conninfo, sql
):
    first = tmp_path / "a.jsonl"
    first.write_bytes(b"".join(numbered_line(i) for i in range(100)))
    c = LogCollector(conninfo, [str(tmp_path / "*.jsonl")], batch_rows=7)
    assert c.run_once().ingested == 100
    again = c.run_once()
    assert (again.ingested, again.bytes_read) == (0, 0)
    # The same requests logged again in another file (different first line → new source).
    other = tmp_path / "b.jsonl"
    other.write_bytes(numbered_line(1000) + b"".join(numbered_line(i) for i in range(50)))
    s = c.run_once()
    assert (s.ingested, s.duplicates) == (1, 50)
    assert sql("SELECT count(*), count(DISTINCT request_id) FROM generations") == [(101, 101)]


def test_cli_json_summary_and_clear_error_for_missing_files(tmp_path: Path, db_url, sql):
    log = tmp_path / "gen.jsonl"
    log.write_bytes(numbered_line(1) + b"nope\n")
    runner = CliRunner()
    res = runner.invoke(build(), ["collect", "logs", str(log), "--json", "--database-url", db_url])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout.strip())
    assert summary["ingested"] == 1 and summary["rejected"] == 1
    res = runner.invoke(
        build(), ["collect", "logs", str(tmp_path / "missing-*.jsonl"), "--database-url", db_url]
    )
    assert res.exit_code == 2
    assert "no file matches" in res.output


def test_follow_counts_the_batches_a_pass_committed_before_its_connection_died(
    tmp_path, db_url, conninfo, sql
):
    """A pass cut off mid-file loses its totals, not the rows it committed: the summary must
    still add up to every line (a clean-clone run once reported 3,800 of 4,000)."""
    import threading

    import psycopg

    log = tmp_path / "gen.jsonl"
    log.write_bytes(b"".join(numbered_line(i) for i in range(1000)))
    stop = threading.Event()
    batches = 0

    def progress(_nbytes: int) -> None:
        nonlocal batches
        batches += 1
        if batches == 3:  # the server drops the collector's session after 3 commits
            with psycopg.connect(conninfo, autocommit=True) as other:
                other.execute("SELECT pg_terminate_backend(%s)", [c._conn.info.backend_pid])

    c = LogCollector(conninfo, [str(log)], batch_rows=100, progress=progress)

    def on_pass(_s) -> None:
        if sql("SELECT count(*) FROM generations") == [(1000,)]:
            stop.set()

    total = c.follow(stop, poll_s=0.05, on_pass=on_pass, max_backoff_s=0.5)
    assert batches > 10, "the pass must have been cut off and resumed"
    assert sql("SELECT count(*), count(DISTINCT request_id) FROM generations") == [(1000, 1000)]
    assert (total.ingested, total.duplicates) == (1000, 0)

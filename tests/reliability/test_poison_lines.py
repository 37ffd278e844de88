"""No line stops ingestion, with or without --follow.

A valid record with an unknown key holding a quote (``"a\\"b": 1``) crashed ``diffwatch
collect logs`` at the same offset on every restart; a value PostgreSQL refuses (here a
model name too long for its btree index) failed the whole batch, and with ``--follow`` it
was taken for a database outage and retried forever.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
from collections.abc import Callable

from tests.helpers import cli_env, diffwatch_cmd, numbered_line, run_collect


def poison_key_line(i: int) -> bytes:
    """The line of the issue: a valid record plus the key ``a"b``."""
    return numbered_line(i)[:-2] + b', "a\\"b": 1}\n'


def too_long_for_the_index(i: int) -> bytes:
    """A valid record whose model name (4.5 KB of random CJK) no btree index entry can hold."""
    rng = random.Random(i)
    model = "".join(chr(rng.randint(0x4E00, 0x9FFF)) for _ in range(1500))
    return numbered_line(i, model=model)


def wait_for(condition: Callable[[], bool], proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.1)


def test_collect_logs_stores_the_poison_key_line_and_every_later_line(
    tmp_path, db_url, sql
) -> None:
    log = tmp_path / "gen.jsonl"
    log.write_bytes(numbered_line(1) + poison_key_line(2) + numbered_line(3))
    s = run_collect(db_url, str(log))  # exit status 0, checked by run_collect
    assert (s["ingested"], s["rejected"]) == (3, 0)
    with log.open("ab") as f:
        f.write(poison_key_line(4) + numbered_line(5))
    s = run_collect(db_url, str(log))
    assert (s["ingested"], s["rejected"]) == (2, 0)
    rows = dict(sql("SELECT request_id, extra FROM generations"))
    assert set(rows) == {f"req-{i:08d}" for i in range(1, 6)}
    assert rows["req-00000002"] == rows["req-00000004"] == {'a"b': 1}
    assert sql('SELECT "offset" FROM log_offsets') == [(log.stat().st_size,)]


def test_a_row_the_database_refuses_is_rejected_and_its_batch_is_stored(
    tmp_path, db_url, sql
) -> None:
    log = tmp_path / "gen.jsonl"
    # One batch that goes straight into generations; then, after a duplicate, batches that
    # go through the staging table.
    lines = [numbered_line(1), too_long_for_the_index(2), numbered_line(3)]
    lines += [numbered_line(1), numbered_line(4), too_long_for_the_index(5), numbered_line(6)]
    log.write_bytes(b"".join(lines))
    s = run_collect(db_url, str(log), extra=("--batch-rows", "3"))
    assert (s["ingested"], s["duplicates"], s["rejected"]) == (4, 1, 2)
    stored = {r[0] for r in sql("SELECT request_id FROM generations")}
    assert stored == {f"req-{i:08d}" for i in (1, 3, 4, 6)}
    rejected = sql("SELECT line_no, source_offset, raw, reason FROM rejected_records ORDER BY 1")
    assert [(r[0], r[1]) for r in rejected] == [
        (2, len(lines[0])),
        (6, sum(map(len, lines[:5]))),
    ]
    for _, _, raw, reason in rejected:
        i = 2 if '"req-00000002"' in raw else 5
        assert raw == too_long_for_the_index(i)[:-1].decode()[:4096]
        assert reason.startswith("the database refused this record:"), reason
    assert sql('SELECT "offset" FROM log_offsets') == [(log.stat().st_size,)]


def test_follow_keeps_reading_past_a_poison_key_and_a_refused_row(tmp_path, db_url, sql) -> None:
    log = tmp_path / "gen.jsonl"
    log.write_bytes(numbered_line(1) + poison_key_line(2) + numbered_line(3))
    proc = subprocess.Popen(
        diffwatch_cmd("collect", "logs", str(log), "--follow", "--poll", "0.05", "--json"),
        env=cli_env(db_url),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )

    def stored() -> int:
        return sql("SELECT count(*) FROM generations")[0][0]

    try:
        wait_for(lambda: stored() == 3, proc)
        assert stored() == 3 and proc.poll() is None
        with log.open("ab") as f:
            f.write(too_long_for_the_index(4) + poison_key_line(5) + numbered_line(6))
        wait_for(lambda: stored() == 5, proc)
        assert stored() == 5 and proc.poll() is None
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    summary = json.loads(out.strip().splitlines()[-1])
    assert (summary["ingested"], summary["rejected"]) == (5, 1)
    assert "database unavailable" not in err, err
    assert sql("SELECT line_no FROM rejected_records") == [(4,)]
    assert sql('SELECT "offset" FROM log_offsets') == [(log.stat().st_size,)]


def test_a_file_whose_name_is_not_utf8_is_read_under_an_escaped_name(tmp_path, db_url, sql) -> None:
    # A file name is bytes: one that is not UTF-8 made every row and rejection of its file
    # unstorable (the source column is text), so the run crashed at the same place forever.
    log = os.path.join(os.fsencode(tmp_path), b"gen-\xff.jsonl")
    with open(log, "wb") as f:
        f.write(numbered_line(1) + b"nope\n" + numbered_line(2))
    s = run_collect(db_url, str(tmp_path / "*.jsonl"))
    assert (s["ingested"], s["rejected"]) == (2, 1)
    label = f"{tmp_path}/gen-\\xff.jsonl"
    assert sql("SELECT DISTINCT source FROM generations") == [(label,)]
    assert sql("SELECT source FROM rejected_records") == [(label,)]
    assert sql('SELECT path, "offset" FROM log_offsets') == [(label, os.path.getsize(log))]

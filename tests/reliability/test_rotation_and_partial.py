"""(b) rotation by rename and by copytruncate; (c) a partial line finished after a restart."""

from __future__ import annotations

import shutil
from pathlib import Path

from tests.helpers import numbered_line, run_collect


def append(path: Path, ids: range, marker: str = "") -> None:
    with path.open("ab") as f:
        for i in ids:
            f.write(numbered_line(i, marker=marker) if marker else numbered_line(i))


def stored_ids(sql) -> list[int]:
    return sorted(int(r[0].split("-")[1]) for r in sql("SELECT request_id FROM generations"))


def test_rotation_by_rename_keeps_the_offset_and_reads_the_tail(tmp_path, db_url, sql) -> None:
    log = tmp_path / "gen.jsonl"
    pattern = str(tmp_path / "gen.jsonl*")
    append(log, range(0, 10), marker="before-rotation")
    assert run_collect(db_url, pattern)["ingested"] == 10
    append(log, range(10, 15), marker="written-just-before-rename")
    log.rename(tmp_path / "gen.jsonl.1")
    append(log, range(100, 105), marker="new-file")
    s = run_collect(db_url, pattern)
    assert (s["ingested"], s["duplicates"]) == (10, 0)
    assert stored_ids(sql) == [*range(15), *range(100, 105)]
    markers = dict(sql("SELECT extra->>'marker', count(*) FROM generations GROUP BY 1"))
    assert markers == {"before-rotation": 10, "written-just-before-rename": 5, "new-file": 5}


def test_copytruncate_reads_the_copy_tail_and_restarts_the_truncated_file(
    tmp_path, db_url, sql
) -> None:
    log = tmp_path / "gen.jsonl"
    pattern = str(tmp_path / "gen.jsonl*")
    append(log, range(0, 20), marker="old")
    assert run_collect(db_url, pattern)["ingested"] == 20
    append(log, range(20, 25), marker="old-tail")  # not yet read when logrotate runs
    shutil.copyfile(log, tmp_path / "gen.jsonl.1")
    with log.open("r+b") as f:
        f.truncate(0)
    # The service keeps writing, past the old offset, before the collector looks again.
    append(log, range(1000, 1060), marker="after-truncate")
    s = run_collect(db_url, pattern)
    assert (s["ingested"], s["duplicates"], s["rejected"]) == (65, 0, 0)
    assert stored_ids(sql) == [*range(25), *range(1000, 1060)]
    # A second copytruncate cycle in a row, copy named differently.
    append(log, range(1060, 1070), marker="late")
    shutil.copyfile(log, tmp_path / "gen.jsonl.2")
    with log.open("r+b") as f:
        f.truncate(0)
    s = run_collect(db_url, pattern)
    assert (s["ingested"], s["duplicates"]) == (10, 0)
    assert sql("SELECT count(*) FROM generations") == [(95,)]


def test_a_partial_line_finished_after_a_restart_is_stored_once(tmp_path, db_url, sql) -> None:
    log = tmp_path / "gen.jsonl"
    whole = numbered_line(2)
    log.write_bytes(numbered_line(1) + whole[:37])
    s = run_collect(db_url, str(log))
    assert (s["ingested"], s["rejected"]) == (1, 0)
    assert stored_ids(sql) == [1]
    with log.open("ab") as f:  # the service finishes the line after our process has exited
        f.write(whole[37:])
        f.write(numbered_line(3))
    s = run_collect(db_url, str(log))
    assert (s["ingested"], s["rejected"], s["duplicates"]) == (2, 0, 0)
    assert stored_ids(sql) == [1, 2, 3]
    assert run_collect(db_url, str(log))["bytes_read"] == 0

"""Fuzz of the real collector against real PostgreSQL: every line is stored or rejected.

Each example writes hostile lines (see ``tests/corpus/hostile.py``) to a new log file and
runs one collector pass over it. The invariant: the pass returns normally, every non-blank
line is either in ``generations`` or in ``rejected_records`` (or counted as a duplicate),
never both, and the stored offset reaches the end of the file.
"""

from __future__ import annotations

import itertools

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from diffwatch.collectors.logs.collector import LogCollector
from tests.corpus.hostile import hostile_lines
from tests.corpus.log_lines import NOW, good_record, line

_files = itertools.count()


def line_offsets(data: bytes) -> list[tuple[int, bytes]]:
    """(byte offset, text) of every complete line of ``data``."""
    out, pos = [], 0
    for text in data.split(b"\n")[:-1]:
        out.append((pos, text))
        pos += len(text) + 1
    return out


@settings(
    max_examples=60,
    derandomize=True,
    database=None,
    deadline=None,  # a pass commits to a real server; a loaded runner makes it slow, not wrong
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,  # each example has its own file; tables are shared
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
@given(data=st.data(), n=st.integers(1, 12), batch_rows=st.integers(1, 5), dup=st.booleans())
def test_every_line_is_stored_or_rejected_and_the_offset_reaches_the_end(
    tmp_path, conninfo, sql, data, n: int, batch_rows: int, dup: bool
) -> None:
    k = next(_files)
    base = 10_000_000 + k * 100  # request_ids unique across examples: they share tables
    header = line(good_record(base)) + b"\n"  # a unique first line: a file of its own
    lines = [data.draw(hostile_lines(base + 1 + j)) + b"\n" for j in range(n)]
    if dup:  # a duplicate request_id sends the later batches through the staging table
        lines.insert(data.draw(st.integers(0, n)), header)
    log = tmp_path / f"gen-{k}.jsonl"
    content = header + b"".join(lines)
    log.write_bytes(content)

    collector = LogCollector(conninfo, [str(log)], batch_rows=batch_rows, clock=lambda: NOW)
    try:
        s = collector.run_once()
    finally:
        collector.close()

    src = str(log)
    stored = {r[0] for r in sql("SELECT source_offset FROM generations WHERE source = %s", (src,))}
    rejected = {
        r[0] for r in sql("SELECT source_offset FROM rejected_records WHERE source = %s", (src,))
    }
    nonblank = {off for off, text in line_offsets(content) if text.strip()}
    assert not stored & rejected
    assert stored | rejected <= nonblank
    assert len(nonblank - stored - rejected) == s.duplicates
    assert (s.ingested, s.rejected) == (len(stored), len(rejected))
    assert sql('SELECT "offset" FROM log_offsets WHERE path = %s', (src,)) == [(len(content),)]

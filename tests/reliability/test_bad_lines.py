"""(e) Every kind of bad line, mixed with good ones: good rows stored, each rejection findable."""

from __future__ import annotations

from diffwatch.collectors.logs.collector import LogCollector
from diffwatch.collectors.logs.tail import MAX_LINE_BYTES
from tests.corpus.log_lines import BAD_LINES, NOW, good_record, line


def test_a_mixed_corpus_stores_every_good_line_and_explains_every_bad_one(
    tmp_path, conninfo, sql
) -> None:
    log = tmp_path / "gen.jsonl"
    expected_bad: dict[int, str] = {}  # byte offset → reason substring
    good_ids = []
    long_lines: set[int] = set()
    with log.open("wb") as f:
        n = 0
        for kind, raw, reason in [
            *BAD_LINES,
            ("oversize", b'{"p": "' + b"x" * (MAX_LINE_BYTES + 5) + b'"}', "byte limit"),
        ]:
            for _ in range(2):
                rec = good_record(n)
                good_ids.append(rec["request_id"])
                f.write(line(rec) + b"\n")
                n += 1
            if len(raw.decode("utf-8", "backslashreplace").replace("\x00", "\\x00")) > 4096:
                long_lines.add(f.tell())  # kept cut to its first 4096 characters
            expected_bad[f.tell()] = reason
            f.write(raw + b"\n")
            if kind == "not json":
                f.write(b"   \n")  # blank lines are skipped, not rejected
        f.write(line(good_record(n)) + b"\n")
        good_ids.append(good_record(n)["request_id"])
    s = LogCollector(conninfo, [str(log)], batch_rows=16, clock=lambda: NOW).run_once()
    assert (s.ingested, s.rejected, s.blank) == (len(good_ids), len(expected_bad), 1)
    assert {r[0] for r in sql("SELECT request_id FROM generations")} == set(good_ids)
    rows = sql("SELECT source_offset, reason, raw, raw_truncated, source FROM rejected_records")
    assert {r[0] for r in rows} == set(expected_bad)
    for offset, reason, raw, truncated, source in rows:
        assert expected_bad[offset] in reason, (offset, reason)
        assert source == str(log)
        assert len(raw) <= 4096
        assert truncated == (expected_bad[offset] == "byte limit" or offset in long_lines)

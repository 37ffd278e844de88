"""Line splitting from offsets in bounded memory, and content fingerprints."""

from __future__ import annotations

import os
import tracemalloc
from pathlib import Path

from diffwatch.collectors.logs.tail import MAX_LINE_BYTES, fingerprint, iter_lines


def lines_of(path: Path, start: int = 0) -> list:
    fd = os.open(path, os.O_RDONLY)
    try:
        return list(iter_lines(fd, start))
    finally:
        os.close(fd)


def test_complete_lines_with_offsets_and_the_partial_tail_waits(tmp_path: Path) -> None:
    p = tmp_path / "a.jsonl"
    p.write_bytes(b"one\ntwo\nthr")
    got = lines_of(p)
    assert got == [(0, 4, b"one", 0), (4, 8, b"two", 0)]
    with p.open("ab") as f:
        f.write(b"ee\n")
    assert lines_of(p, 8) == [(8, 14, b"three", 0)]


def test_an_oversize_line_is_reported_in_bounded_memory(tmp_path: Path) -> None:
    p = tmp_path / "big.jsonl"
    big = 20 * MAX_LINE_BYTES
    with p.open("wb") as f:
        f.write(b"first\n")
        f.write(b"x" * big + b"\n")
        f.write(b"after\n")
    tracemalloc.start()
    got = lines_of(p)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert [ln[2] for ln in got][0::2] == [b"first", b"after"]
    offset, end, head, oversize = got[1]
    assert (offset, end, oversize) == (6, 6 + big + 1, big)
    assert head == b"x" * 8192
    assert peak < 6 * MAX_LINE_BYTES, f"peak {peak} bytes for a {big}-byte line"


def test_an_unfinished_oversize_line_is_not_consumed(tmp_path: Path) -> None:
    p = tmp_path / "big.jsonl"
    p.write_bytes(b"ok\n" + b"y" * (MAX_LINE_BYTES + 10))
    assert [ln[2] for ln in lines_of(p)] == [b"ok"]


def test_fingerprint_follows_content_not_name(tmp_path: Path) -> None:
    a = tmp_path / "a"
    a.write_bytes(b"partial")
    assert fingerprint(str(a)) is None  # no complete first line yet
    a.write_bytes(b'{"request_id": "1"}\n')
    fp = fingerprint(str(a))
    with a.open("ab") as f:
        f.write(b'{"request_id": "2"}\n')
    assert fingerprint(str(a)) == fp  # growing does not change identity
    a.rename(tmp_path / "a.1")
    assert fingerprint(str(tmp_path / "a.1")) == fp  # renaming does not either
    a.write_bytes(b'{"request_id": "3"}\n')
    assert fingerprint(str(a)) != fp  # new content, new identity
    long_first = tmp_path / "long"
    long_first.write_bytes(b"z" * 10_000)
    assert fingerprint(str(long_first)) is not None  # a long first line is identified early


def test_lines_across_chunk_boundaries_and_oversize_lines_in_one_chunk(tmp_path: Path) -> None:
    from diffwatch.collectors.logs.tail import CHUNK_BYTES

    p = tmp_path / "mixed.jsonl"
    lines = [b"a" * n for n in (10, CHUNK_BYTES - 3, 5, MAX_LINE_BYTES + 1, 7, CHUNK_BYTES * 3)]
    p.write_bytes(b"".join(x + b"\n" for x in lines))
    got = lines_of(p)
    assert [g[3] for g in got] == [0, 0, 0, MAX_LINE_BYTES + 1, 0, 0]
    assert [len(g[2]) for g in got] == [10, CHUNK_BYTES - 3, 5, 8192, 7, CHUNK_BYTES * 3]
    ends = [g[1] for g in got]
    assert ends[-1] == p.stat().st_size and [g[0] for g in got][1:] == ends[:-1]

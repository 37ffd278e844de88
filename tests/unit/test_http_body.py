"""Decoding of ``collect http`` request bodies (pure): content types, gzip within bounds,
JSON lines and arrays, and fuzzed bodies that never raise."""

from __future__ import annotations

import gzip
import json

from hypothesis import given, settings
from hypothesis import strategies as st

from diffwatch.collectors.http.body import BodyError, gunzip, media_type, split_records


def test_content_types() -> None:
    assert media_type("application/x-ndjson; charset=utf-8") == "ndjson"
    assert media_type("Application/JSON") == "array"
    assert media_type("text/plain") is None and media_type(None) is None


def test_gzip_round_trips_and_a_bomb_stops_at_the_limit() -> None:
    body = b'{"a": 1}\n' * 100
    assert gunzip(gzip.compress(body), 10_000) == body
    bomb = gzip.compress(b"\0" * 50_000_000)  # ~50 KB that inflate to 50 MB
    assert len(bomb) < 100_000
    got = gunzip(bomb, 1 << 20)
    assert isinstance(got, BodyError) and got.status == 413 and "limit" in got.reason
    cut = gunzip(gzip.compress(body)[:-10], 10_000)
    assert isinstance(cut, BodyError) and cut.status == 400
    junk = gunzip(b"not gzip at all", 10_000)
    assert isinstance(junk, BodyError) and junk.status == 400 and "gzip" in junk.reason


def test_lines_keep_their_index_and_arrays_their_element_number() -> None:
    lines = split_records(b'{"a":1}\n\n{"a":2}\nnot json\n', "ndjson", 10)
    assert [(r.index, r.raw) for r in lines] == [(0, b'{"a":1}'), (2, b'{"a":2}'), (3, b"not json")]
    arr = split_records(json.dumps([{"a": 1}, {"b": 2}]).encode(), "array", 10)
    assert [(r.index, json.loads(r.raw)) for r in arr] == [(0, {"a": 1}), (1, {"b": 2})]
    assert isinstance(split_records(b'{"a": 1}', "array", 10), BodyError)
    over = split_records(b"{}\n" * 11, "ndjson", 10)
    assert isinstance(over, BodyError) and over.status == 413


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000), st.sampled_from(["ndjson", "array"]))
def test_any_body_is_records_or_a_clear_refusal(data: bytes, kind: str) -> None:
    got = split_records(data, kind, 100)
    assert isinstance(got, list | BodyError)
    if isinstance(got, BodyError):
        assert got.status in (400, 413) and got.reason and len(got.reason) < 400
    z = gunzip(data, 10_000)
    assert isinstance(z, bytes | BodyError)

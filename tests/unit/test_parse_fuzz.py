"""Fuzz of the pure parser: any bytes give a storable row or a readable rejection, never an error.

Deterministic (``derandomize``: the same examples on every run) and bounded, so CI runs it
every time; the deadline is loose because a loaded 2-core runner is slow, not the parser.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from diffwatch.collectors.logs.parse import Rejected, _parse_full, parse_line
from diffwatch.model.log_record import FIELDS, ROW_COLUMNS
from tests.corpus.hostile import encode, hostile_lines, json_values, record_lines, text
from tests.corpus.log_lines import NOW, good_record

TAIL = ("/var/log/gen.jsonl", 4096)
FUZZ = settings(
    max_examples=300,
    derandomize=True,
    database=None,
    deadline=timedelta(seconds=5),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def storable_text(value: str) -> bool:
    """PostgreSQL text takes it: valid UTF-8 (no lone surrogate) and no NUL."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return "\x00" not in value


def storable_json(value: Any) -> bool:
    """JSONB takes it: every key and string storable (checked without recursion)."""
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            if not storable_text(v):
                return False
        elif isinstance(v, dict):
            if not all(map(storable_text, v)):
                return False
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
    return True


def check(raw: bytes) -> None:
    """The parser's promise for one line."""
    out = parse_line(raw, NOW, TAIL)
    if isinstance(out, Rejected):
        assert out.reason and storable_text(out.reason), out
        return
    assert type(out) is tuple and len(out) == len(ROW_COLUMNS) + len(TAIL), out
    row = dict(zip(ROW_COLUMNS, out, strict=False))
    for name, value in row.items():
        if isinstance(value, str):
            assert storable_text(value), (name, value)
    assert storable_json(row["extra"]), row["extra"]
    msgspec.json.encode(row["extra"])
    # The fast path accepts exactly what the full parser accepts, with the same values.
    assert out == _parse_full(raw, NOW, TAIL)


@FUZZ
@given(hostile_lines())
def test_any_hostile_line_gives_a_storable_row_or_a_rejection(raw: bytes) -> None:
    check(raw)
    check(raw)  # again, through whatever typed decoder the first parse taught the fast path


@FUZZ
@given(
    st.dictionaries(text.filter(lambda k: k not in FIELDS), json_values, min_size=1, max_size=4),
    st.booleans(),
)
def test_valid_records_with_any_unknown_keys_keep_them_or_say_why_not(
    extra: dict, ascii_only: bool
) -> None:
    raw = encode({**good_record(1), **extra}, ascii_only)
    for _ in range(2):  # the second parse goes through what the first one taught
        check(raw)
        out = parse_line(raw, NOW, TAIL)
        if not storable_json(extra):
            assert isinstance(out, Rejected), out
        else:
            assert not isinstance(out, Rejected), out
            assert out[ROW_COLUMNS.index("extra")] == extra


@FUZZ
@given(record_lines())
def test_hostile_records_twice_in_a_row(raw: bytes) -> None:
    check(raw)
    check(raw)


@settings(FUZZ, max_examples=200)
@given(st.binary(max_size=2000))
def test_arbitrary_bytes(raw: bytes) -> None:
    check(raw)

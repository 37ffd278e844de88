"""The record parser accepts the contract and refuses everything else with a clear reason."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from diffwatch.collectors.logs.parse import (
    MAX_DEPTH,
    Rejected,
    parse_line,
    printable_raw,
)
from diffwatch.model.log_record import ROW_COLUMNS
from tests.corpus.log_lines import BAD_LINES, NOW, good_record, line


def row_dict(raw: bytes) -> dict:
    parsed = parse_line(raw, NOW)
    assert not isinstance(parsed, Rejected), parsed
    return dict(zip(ROW_COLUMNS, parsed, strict=True))


def test_a_complete_record_maps_every_contract_field() -> None:
    rec = good_record(7)
    row = row_dict(line(rec))
    assert row["ts"] == datetime.fromisoformat(rec["timestamp"])
    for key in rec:
        if key != "timestamp":
            assert row[key] == rec[key], key
    assert row["extra"] == {}


def test_unknown_keys_go_to_extra_and_optional_fields_may_be_absent() -> None:
    rec = {
        k: good_record(1)[k]
        for k in ("request_id", "timestamp", "model", "model_version", "prompt", "status")
    }
    rec.update({"client": "web", "trace": {"span": [1, 2]}})
    row = row_dict(line(rec))
    assert row["extra"] == {"client": "web", "trace": {"span": [1, 2]}}
    assert row["steps"] is None and row["deployment"] is None


@pytest.mark.parametrize(
    ("stamp", "expected"),
    [
        ("2026-11-21T11:59:00Z", datetime(2026, 11, 21, 11, 59, tzinfo=UTC)),
        ("2026-11-21T13:59:00+02:00", datetime(2026, 11, 21, 11, 59, tzinfo=UTC)),
        (1795262340, datetime(2026, 11, 21, 11, 59, tzinfo=UTC)),
        (1795262340.5, datetime(2026, 11, 21, 11, 59, 0, 500000, tzinfo=UTC)),
    ],
)
def test_timestamps_with_offset_or_epoch_seconds(stamp, expected) -> None:
    assert row_dict(line(good_record(0, timestamp=stamp)))["ts"] == expected


def test_a_timestamp_four_minutes_ahead_is_clock_skew_not_an_error() -> None:
    ahead = NOW.replace(minute=4).isoformat()
    assert row_dict(line(good_record(0, timestamp=ahead)))["ts"].minute == 4


@pytest.mark.parametrize("key", ['a"b', "a\\b", "a\nb", "\x1f", '"', "\\u0041"])
def test_unknown_keys_with_quotes_backslashes_or_controls_are_kept(key: str) -> None:
    # Such a key once crashed the collector (the fast path could not learn its shape).
    raw = line(good_record(1, **{key: 1, "client": "web"}))
    for _ in range(3):  # the first parse teaches the fast path; the next ones use it
        assert row_dict(raw)["extra"] == {key: 1, "client": "web"}


def test_extra_nested_deeper_than_the_limit_is_rejected_even_once_its_shape_is_known() -> None:
    from diffwatch.collectors.logs.parse import _fast

    def nested(depth: int) -> bytes:
        return line(good_record(1))[:-1] + b', "t": ' + b"[" * depth + b"]" * depth + b"}"

    # 200 levels parse (msgspec stops near 1000), but writing them must not be left to the
    # encoder's and PostgreSQL's stacks: the parser refuses them with a reason.
    assert row_dict(nested(3))["extra"] == {"t": [[[]]]}
    assert ("t",) in {names for _, names in _fast.items}  # a typed decoder for {"t"} now
    for _ in range(2):
        assert row_dict(nested(MAX_DEPTH - 1))["extra"]["t"]
        too_deep = parse_line(nested(200), NOW)
        assert isinstance(too_deep, Rejected), too_deep
        assert f"more than {MAX_DEPTH} levels deep" in too_deep.reason


def test_unicode_prompts_and_64_bit_seeds_are_kept() -> None:
    row = row_dict(line(good_record(0, prompt="一只红色的猫 🐱 «quoted»", seed=2**63 - 1)))
    assert row["prompt"] == "一只红色的猫 🐱 «quoted»" and row["seed"] == 2**63 - 1


def test_crlf_line_endings_are_accepted() -> None:
    assert row_dict(line(good_record(3)) + b"\r")["request_id"] == "req-00000003"


@pytest.mark.parametrize(("kind", "raw", "reason"), BAD_LINES, ids=[b[0] for b in BAD_LINES])
def test_bad_lines_are_rejected_with_a_clear_reason(kind: str, raw: bytes, reason: str) -> None:
    parsed = parse_line(raw, NOW)
    assert isinstance(parsed, Rejected), f"{kind} was accepted"
    assert reason in parsed.reason


def test_the_corpus_has_at_least_25_kinds() -> None:
    assert len({k for k, _, _ in BAD_LINES}) >= 25


def test_printable_raw_escapes_bad_bytes_and_truncates() -> None:
    text, cut = printable_raw(b"ab\x00c\xff" + b"x" * 10, limit=8)
    assert text == "ab\\x00c\\"[:8] and cut
    text, cut = printable_raw("ok é".encode())
    assert text == "ok é" and not cut


def test_the_fast_path_agrees_with_the_full_parser_on_every_corpus_line() -> None:
    from diffwatch.collectors.logs.parse import _parse_full

    lines = [raw for _, raw, _ in BAD_LINES]
    lines += [
        line(good_record(i, **kw))
        for i, kw in enumerate(
            [
                {},
                {"client": "web"},
                {"timestamp": 1795262340},
                {"steps": None},
                {"timestamp": "2026-11-21T11:00+01:00"},
                {"prompt": "é 🐱"},
            ]
        )
    ]
    for raw in lines:
        assert parse_line(raw, NOW, ("f", 1)) == _parse_full(raw, NOW, ("f", 1)), raw


def test_learned_shapes_with_unknown_keys_parse_like_the_full_parser() -> None:
    from diffwatch.collectors.logs.parse import _fast, _parse_full

    shapes = [
        {"client": "web"},
        {"client": "api", "trace-id": "abc", "loras": [{"name": "x", "w": 0.5}]},
        {"trace-id": None},
        {},
        {"client": "web", "steps": 30},
        {"weird key": {"deep": [1, 2, {"k": "v"}]}},
    ]
    lines = [line(good_record(i, **kw)) for i, kw in enumerate(shapes)]
    for _ in range(2):  # the second round goes through decoders learned in the first
        for raw in lines:
            assert parse_line(raw, NOW, ("f", 1)) == _parse_full(raw, NOW, ("f", 1)), raw
    learned = {names for _, names in _fast.items}
    assert ("client", "loras", "trace-id") in learned
    row = dict(zip(ROW_COLUMNS, parse_line(lines[1], NOW), strict=True))
    assert row["extra"] == {"client": "api", "trace-id": "abc", "loras": [{"name": "x", "w": 0.5}]}

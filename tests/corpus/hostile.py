"""Hypothesis strategies for hostile log lines, shared by the parser and collector fuzzes.

What has broken log collectors, or PostgreSQL behind them: keys with quotes, backslashes
and control characters, lone UTF-16 surrogates (as JSON escapes and as raw CESU-8 bytes),
NUL, numbers past 64 bits or past any double, JSON nested deeper than a recursive parser
goes, very long strings in indexed columns, and plain garbage bytes.
"""

from __future__ import annotations

import json
import random
from typing import Any

from hypothesis import strategies as st

from diffwatch.model.log_record import FIELDS
from tests.corpus.log_lines import good_record

SPECIAL_CHARS = ['"', "\\", "\x00", "\n", "\x1f", "\x7f", "\ud800", "\udfff", "\u2028", "😀", "é"]

chars = st.one_of(
    st.sampled_from(SPECIAL_CHARS),
    st.characters(),
    st.characters(categories=["Cs"]),  # lone surrogates, which st.characters() leaves out
)
text = st.one_of(
    st.text(chars, max_size=12),
    st.sampled_from(['a"b', "a\\b", "a\nb", "\x00", "\ud800", "extra_0", "", " "]),
)


def _noise(seed: int) -> str:
    rng = random.Random(seed)
    return "".join(chr(rng.randint(0x4E00, 0x9FFF)) for _ in range(1500))


# Longer than a btree index entry may be (2704 bytes), and random so that it does not
# compress (hypothesis' own long strings repeat characters, and PostgreSQL compresses them).
long_text = st.integers(0, 2**32).map(_noise)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.sampled_from([2**31, 2**63, 2**64, -(2**63) - 1, 10**40]),
    st.floats(allow_nan=False, allow_infinity=False),
    text,
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(text, inner, max_size=4)),
    max_leaves=10,
)
# JSON text spliced in as the value of one more key: what json.dumps cannot write.
raw_values = st.one_of(
    st.integers(1, 6000).map(lambda n: b"9" * n),  # past int64, past Python's 4300 digits
    st.integers(1, 3000).map(lambda d: b"[" * d + b"]" * d),  # deep nesting
    st.integers(1, 3000).map(lambda d: b'{"k":' * d + b"1" + b"}" * d),
    st.sampled_from(
        [
            b"1e400",
            b"-1e400",
            b"1e-400",
            b"NaN",
            b"Infinity",
            b"-0",
            b'"\\ud800"',
            b'"\\udc00\\ud800"',
            b'"\\u0000"',
            b'"\\ud83d\\ude00"',
            b'"\xed\xa0\x80"',
            b'{"\\u0000": 1}',
            b'{"\\ud800": 1}',
            b'{"a\\"b": 1}',
        ]
    ),
)
raw_keys = st.sampled_from([b'"a\\"b"', b'"a\\\\b"', b'"\\n"', b'"\\ud800"', b'"\\u0000"', b'"k"'])


def encode(obj: Any, ascii_only: bool) -> bytes:
    """``obj`` as one JSON line; lone surrogates become ``\\udXXX`` escapes or CESU-8 bytes."""
    return json.dumps(obj, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")


def splice(raw: bytes, key: bytes, value: bytes) -> bytes:
    """Add ``key: value`` (raw JSON text) to the object that ``raw`` holds."""
    return raw[:-1] + b", " + key + b": " + value + b"}"


@st.composite
def record_lines(draw: st.DrawFn, i: int | None = None) -> bytes:
    """A valid record (numbered ``i``) with hostile extra keys, overrides and spliced values."""
    n = draw(st.integers(0, 10**6)) if i is None else i
    rec: dict[str, Any] = good_record(n)
    rec.update(draw(st.dictionaries(text, json_values, max_size=3)))
    overridable = [f for f in FIELDS if f != "request_id"]
    for name in draw(st.lists(st.sampled_from(overridable), max_size=2, unique=True)):
        rec[name] = draw(st.one_of(json_values, long_text))
    rec["request_id"] = good_record(n)["request_id"]  # unique per line in a file
    raw = encode(rec, draw(st.booleans()))
    for _ in range(draw(st.integers(0, 2))):
        raw = splice(raw, draw(raw_keys), draw(raw_values))
    return raw


def mutate(raw: bytes, at: int, junk: bytes) -> bytes:
    """``raw`` with ``junk`` written over it from position ``at``."""
    at %= len(raw) + 1
    return raw[:at] + junk + raw[at + len(junk) :]


@st.composite
def hostile_lines(draw: st.DrawFn, i: int | None = None) -> bytes:
    """Any line a broken or hostile generation service could write (no newline inside)."""
    kind = draw(st.sampled_from(["record", "record", "object", "bytes", "mutated"]))
    if kind == "record":
        raw = draw(record_lines(i))
    elif kind == "object":
        obj = draw(st.dictionaries(text, json_values, max_size=6))
        raw = encode(obj, draw(st.booleans()))
    elif kind == "bytes":
        raw = draw(st.binary(max_size=300))
    else:
        raw = mutate(draw(record_lines(i)), draw(st.integers(0, 2000)), draw(st.binary(max_size=8)))
    return raw.replace(b"\n", b" ")

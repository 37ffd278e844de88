"""Reading a table of counts and a reference of shares from CSV files (untrusted input).

Counts: UTF-8 (a leading byte-order mark is allowed), the header ``prompt,class,count`` in
any column order and nothing else, one row per (prompt, class), counts non-negative
integers. Extra columns are refused rather than ignored, so nothing in the file goes
unread. A reference is ``class,share`` (the same shares for every prompt) or
``prompt,class,share`` (per prompt, labour statistics say), shares fractions in (0, 1].

Nothing is stripped or skipped: names with leading or trailing spaces, blank lines,
repeated (prompt, class) rows, control or invisible format characters and NUL bytes are
refused, each with the file, the line, the problem and the fix.
"""

from __future__ import annotations

import csv
import io
import re
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

MAX_BYTES = 32 * 2**20  # 32 MiB: a probe suite's counts are a few hundred KiB
MAX_ROWS = 200_000
MAX_NAME = 4_000  # characters in a prompt or class name
MAX_COUNT = 10**12  # images in one cell; more is a corrupt file, not a probe
COUNTS_HEADER = ("prompt", "class", "count")
GLOBAL_HEADER = ("class", "share")
PER_PROMPT_HEADER = ("prompt", "class", "share")

_COUNT = re.compile(r"[0-9]+", re.ASCII)
_SHARE = re.compile(r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?", re.ASCII)
# Cc: control characters (NUL, tab, CR, LF inside quotes...); Cf: invisible format
# characters (zero-width space, bidi overrides) that make two names look the same;
# Zl/Zp: line and paragraph separators.
_REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp"})


class CountsFileError(ValueError):
    """A counts or reference file that cannot be read as it stands."""


@dataclass(frozen=True, slots=True)
class CountsTable:
    """A counts file: prompt -> class -> images, and the classes in order of appearance."""

    path: str
    counts: dict[str, dict[str, int]]
    classes: tuple[str, ...]  # every class column value, the abstain class included
    rows: int


@dataclass(frozen=True, slots=True)
class ReferenceTable:
    """A reference file: global (class -> share) or per prompt (prompt -> class -> share)."""

    path: str
    kind: str  # "global" or "per_prompt"
    shares: dict[str, float] | dict[str, dict[str, float]]


def _fail(what: str, path: Path, line: int | None, problem: str, fix: str) -> CountsFileError:
    where = f"{what} {path}" + (f", line {line}" if line is not None else "")
    return CountsFileError(f"{where}: {problem}: {fix}")


def _text(path: Path, what: str) -> str:
    if not path.exists():
        raise _fail(what, path, None, "no such file", "check the path")
    if not path.is_file():
        raise _fail(what, path, None, "is not a regular file", "give the path of a CSV file")
    try:
        with path.open("rb") as f:
            data = f.read(MAX_BYTES + 1)  # one byte past the limit shows a file is too big
    except OSError as exc:
        raise _fail(
            what, path, None, f"cannot be read ({exc.strerror})",
            "check the path and its permissions",
        ) from None  # fmt: skip
    if len(data) > MAX_BYTES:
        raise _fail(
            what, path, None, f"is over the {MAX_BYTES}-byte limit",
            "split the table or aggregate it first (one row per prompt and class)",
        )  # fmt: skip
    nul = data.find(b"\x00")
    if nul >= 0:
        raise _fail(
            what, path, data.count(b"\n", 0, nul) + 1, "contains a NUL byte",
            "save the file as UTF-8 text (UTF-16 files are full of NUL bytes)",
        )  # fmt: skip
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise _fail(
            what, path, data.count(b"\n", 0, exc.start) + 1,
            f"is not UTF-8 (byte 0x{data[exc.start]:02x})", "save the file as UTF-8",
        ) from None  # fmt: skip


def _name(what: str, path: Path, line: int, column: str, value: str) -> str:
    if not value:
        raise _fail(what, path, line, f"the {column} is empty", f"give every row a {column}")
    if len(value) > MAX_NAME:
        raise _fail(
            what, path, line, f"the {column} has {len(value)} characters, over {MAX_NAME}",
            f"shorten the {column}",
        )  # fmt: skip
    if value != value.strip():
        raise _fail(
            what, path, line, f"the {column} {value!r} has leading or trailing spaces",
            "remove them (nothing is stripped, so ' nurse' and 'nurse' would be two names)",
        )  # fmt: skip
    for i, ch in enumerate(value):
        if unicodedata.category(ch) in _REFUSED_CATEGORIES:
            raise _fail(
                what, path, line,
                f"the {column} has the control or invisible character U+{ord(ch):04X} at "
                f"character {i + 1}", "remove it; names must be plain printable text",
            )  # fmt: skip
    return value


def _rows(
    path: Path, what: str, headers: tuple[tuple[str, ...], ...]
) -> tuple[tuple[str, ...], Iterator[tuple[int, dict[str, str]]]]:
    text = _text(path, what)
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    expected = " or ".join(",".join(h) for h in headers)
    try:
        header = next(reader)
    except StopIteration:
        raise _fail(what, path, 1, "is empty", f"start it with the header {expected}") from None
    except csv.Error as exc:
        raise _fail(what, path, 1, f"is not valid CSV ({exc})", "fix the header") from None
    matched = next((h for h in headers if sorted(header) == sorted(h)), None)
    if matched is None or len(header) != len(matched):
        extra = [c for c in header if all(c not in h for h in headers)]
        hint = f" (unknown columns {extra}: remove them)" if extra else ""
        raise _fail(
            what, path, 1, f"the header is {','.join(header)!r}{hint}",
            f"the header must name exactly the columns {expected}, in any order",
        )  # fmt: skip

    def rows() -> Iterator[tuple[int, dict[str, str]]]:
        count = 0
        while True:
            try:
                row = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                raise _fail(
                    what, path, reader.line_num, f"is not valid CSV ({exc})",
                    "quote fields that contain commas or quotes with double quotes",
                ) from None  # fmt: skip
            line = reader.line_num
            count += 1
            if count > MAX_ROWS:
                raise _fail(
                    what, path, line, f"has more than {MAX_ROWS} rows",
                    "aggregate the table first (one row per prompt and class)",
                )  # fmt: skip
            if not row:
                raise _fail(what, path, line, "is a blank line", "remove it")
            if len(row) != len(header):
                raise _fail(
                    what, path, line, f"has {len(row)} fields, the header has {len(header)}",
                    "give every row one value per header column (quote values with commas)",
                )  # fmt: skip
            yield line, dict(zip(header, row, strict=True))

    return matched, rows()


def read_counts(path: str | Path) -> CountsTable:
    """Read a ``prompt,class,count`` CSV; refuse anything that would lose or alter a row."""
    p = Path(path)
    what = "counts file"
    _, rows = _rows(p, what, (COUNTS_HEADER,))
    counts: dict[str, dict[str, int]] = {}
    seen: dict[tuple[str, str], int] = {}
    classes: dict[str, None] = {}
    n = 0
    for line, row in rows:
        prompt = _name(what, p, line, "prompt", row["prompt"])
        cls = _name(what, p, line, "class", row["class"])
        raw = row["count"]
        if not _COUNT.fullmatch(raw):
            raise _fail(
                what, p, line, f"the count {raw!r} is not a non-negative whole number",
                "write the number of images as digits only, such as 12",
            )  # fmt: skip
        value = int(raw)
        if value > MAX_COUNT:
            raise _fail(what, p, line, f"the count {value} is over {MAX_COUNT}", "check it")
        if (prompt, cls) in seen:
            raise _fail(
                what, p, line,
                f"prompt {prompt!r}, class {cls!r} was already given on line "
                f"{seen[prompt, cls]}", "merge the two rows into one (add their counts)",
            )  # fmt: skip
        seen[prompt, cls] = line
        counts.setdefault(prompt, {})[cls] = value
        classes[cls] = None
        n += 1
    if not n:
        raise _fail(what, p, None, "has a header but no rows", "add one row per prompt and class")
    return CountsTable(str(p), counts, tuple(classes), n)


def read_reference(path: str | Path) -> ReferenceTable:
    """Read a ``class,share`` or ``prompt,class,share`` CSV of expected shares (fractions)."""
    p = Path(path)
    what = "reference file"
    header, rows = _rows(p, what, (GLOBAL_HEADER, PER_PROMPT_HEADER))
    per_prompt = header == PER_PROMPT_HEADER
    shares: dict[str, dict[str, float]] = {}
    seen: dict[tuple[str, str], int] = {}
    for line, row in rows:
        prompt = _name(what, p, line, "prompt", row["prompt"]) if per_prompt else ""
        cls = _name(what, p, line, "class", row["class"])
        raw = row["share"]
        value = float(raw) if _SHARE.fullmatch(raw) else None
        if value is None or value > 1 or value == 0:
            pct = value is not None and 1 < value <= 100
            raise _fail(
                what, p, line, f"the share {raw!r} is not a fraction in (0, 1]",
                f"write {value / 100:g} for {value:g}%" if pct else
                "write a decimal fraction such as 0.599; a share of 0 makes ln(p/q) infinite, "
                "so give a small share instead",
            )  # fmt: skip
        if (prompt, cls) in seen:
            key = f"prompt {prompt!r}, class {cls!r}" if per_prompt else f"class {cls!r}"
            raise _fail(
                what, p, line, f"{key} was already given on line {seen[prompt, cls]}",
                "keep one row for it",
            )  # fmt: skip
        seen[prompt, cls] = line
        shares.setdefault(prompt, {})[cls] = value
    if not seen:
        raise _fail(what, p, None, "has a header but no rows", "add one row per class")
    if per_prompt:
        return ReferenceTable(str(p), "per_prompt", shares)
    return ReferenceTable(str(p), "global", shares[""])

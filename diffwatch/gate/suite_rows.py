"""The fields a gate suite row and a manifest line share, validated one way for both.

Text is untrusted: control characters other than tab and newline are refused, and so are
lone surrogates, which JSON escapes can produce. Generation parameters follow the golden-set
rules (``diffwatch.drift.golden_set.GenerationParams``). Every error names the file, the line
(or TOML table) and the field, and says how to fix it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from diffwatch.drift.golden_set import ID_PATTERN, GenerationParams

MAX_PROMPT_CHARS = 2000
MAX_FILE_BYTES = 256 * 2**20  # bytes: far above 100 000 full-length rows
MAX_SEED = 2**63 - 1  # what torch.Generator.manual_seed and golden sets accept
PARAM_FIELDS = tuple(GenerationParams.model_fields)
# C0/C1 controls except tab and newline, and lone surrogates (JSON escapes can make them).
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")
_ID = re.compile(ID_PATTERN)


@dataclass(frozen=True)
class Loc:
    """Where a value came from, for error messages: a file line, or a TOML table."""

    kind: str
    path: Path
    error: type[ValueError]
    line: int | None = None
    table: str | None = None

    def at(self, name: str | None = None) -> str:
        """``suite s.tsv line 7, "steps"`` or ``suite s.toml prompts[3].steps``."""
        return f"{self.kind} {self.path}" + (f" {self.place(name)}" if self.place(name) else "")

    def place(self, name: str | None = None) -> str:
        """The place within the file: ``line 7, "steps"`` or ``prompts[3].steps``."""
        if self.table is not None:  # "" is the top level of a TOML file
            return ".".join(part for part in (self.table, name) if part)
        where = f"line {self.line}" if self.line is not None else ""
        field = f'"{name}"' if name else ""
        return ", ".join(part for part in (where, field) if part)

    def fail(self, name: str | None, problem: str, fix: str) -> ValueError:
        """The error to raise: place, problem and fix in one message."""
        return self.error(f"{self.at(name)}: {problem}; {fix}")


def show(value: Any) -> str:
    """A value as a message quotes it, cut to 60 characters."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def is_empty(value: Any, text: bool) -> bool:
    """Whether a field counts as absent: JSON null, or an empty cell of a TSV/CSV file."""
    return value is None or (text and isinstance(value, str) and not value.strip())


def check_text(value: Any, loc: Loc, name: str, max_chars: int = MAX_PROMPT_CHARS) -> str:
    """A text field: a string of at most ``max_chars`` characters, no control characters."""
    if not isinstance(value, str):
        raise loc.fail(name, f"must be text, got {show(value)}", f'write "{name}" as a string')
    if len(value) > max_chars:
        raise loc.fail(
            name, f"is {len(value)} characters long, over the limit of {max_chars}", "shorten it"
        )
    if bad := _CONTROL.search(value):
        raise loc.fail(
            name,
            f"contains the control character U+{ord(bad.group()):04X}",
            "remove it (tab and newline are the only ones allowed)",
        )
    return value


def check_id(value: Any, loc: Loc) -> str:
    """An item id: letters, digits, ``.``, ``_`` and ``-``, at most 100 (it names files)."""
    ident = check_text(value, loc, "id").strip()
    if not _ID.fullmatch(ident):
        raise loc.fail(
            "id", f"{show(ident)} is not a valid id", f"use letters, digits, . _ - ({ID_PATTERN})"
        )
    return ident


def parse_seed(value: Any, loc: Loc, text: bool) -> int | None:
    """A seed from 0 to 2^63-1, None when absent; digits in TSV/CSV, an integer elsewhere."""
    if is_empty(value, text):
        return None
    seed = None
    if text and isinstance(value, str):
        digits = value.strip()
        if digits.isascii() and digits.isdigit() and len(digits) <= 19:
            seed = int(digits)
    elif isinstance(value, int) and not isinstance(value, bool):
        seed = value
    if seed is None or not 0 <= seed <= MAX_SEED:
        raise loc.fail(
            "seed",
            f"must be a whole number from 0 to {MAX_SEED}, got {show(value)}",
            "write the seed as digits, or leave it out to derive seeds from the base seed",
        )
    return seed


def parse_params(
    raw: Mapping[str, Any], loc: Loc, text: bool, defaults: Mapping[str, Any] | None = None
) -> GenerationParams:
    """The generation parameters of a row over ``defaults``, by the golden-set rules."""
    given = {k: v for k, v in raw.items() if k in PARAM_FIELDS and not is_empty(v, text)}
    for name in ("sampler", "negative_prompt"):
        if name in given:
            check_text(given[name], loc, name)
    try:
        # Typed formats (JSON, TOML) are strict: "25" or true is not a step count there.
        return GenerationParams.model_validate({**(defaults or {}), **given}, strict=not text)
    except ValidationError as exc:
        err = exc.errors()[0]
        name = str(err["loc"][0]) if err["loc"] else None
        raise loc.fail(
            name,
            f"{err['msg']}, got {show(err['input'])}",
            "correct it, or leave it out for the pipeline's default",
        ) from None


def read_text(path: Path, kind: str, error: type[ValueError]) -> str:
    """A file's text, UTF-8 with an optional byte-order mark, refused when over 256 MiB."""
    loc = Loc(kind, path, error)
    if not path.is_file():
        raise loc.fail(None, "no such file", "check the path")
    if path.stat().st_size > MAX_FILE_BYTES:
        raise loc.fail(None, f"larger than {MAX_FILE_BYTES >> 20} MiB", "split the file")
    data = path.read_bytes().removeprefix(b"\xef\xbb\xbf")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise Loc(kind, path, error, line).fail(
            None, f"not valid UTF-8 (byte 0x{data[exc.start]:02X})", "save the file as UTF-8"
        ) from None


def _refuse_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:  # json keeps the last one silently; a suite must not mean two things
            raise ValueError(f"key {key!r} appears twice in one object")
        obj[key] = value
    return obj


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number")


def json_lines(text: str, loc: Loc) -> Iterator[tuple[int, dict[str, Any]]]:
    """Each non-blank line of a JSON-lines text as (line number, object)."""
    for n, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(
                line, object_pairs_hook=_refuse_duplicates, parse_constant=_refuse_constant
            )
        except (ValueError, RecursionError) as exc:
            raise Loc(loc.kind, loc.path, loc.error, n).fail(
                None, f"not a valid JSON line ({exc})", "write one JSON object per line"
            ) from None
        if not isinstance(obj, dict):
            raise Loc(loc.kind, loc.path, loc.error, n).fail(
                None, f"not a JSON object, got {show(obj)}", "write one JSON object per line"
            )
        yield n, obj

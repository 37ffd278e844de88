"""Gate suites: the (prompt, seed, parameters) items a release gate generates on both sides.

A suite is a ``.tsv``, ``.csv``, ``.jsonl`` or ``.toml`` file. Fields: ``prompt`` (required),
``id``, ``category``, ``seed``, the generation parameters of golden sets (``sampler``,
``steps``, ``cfg_scale``, ``width``, ``height``, ``negative_prompt``) and PartiPrompts'
metadata columns ``challenge`` and ``note`` (kept in ``GateItem.meta``). TSV and CSV headers
match case-insensitively, so PartiPrompts.tsv loads as it is. TSV has no quoting (a prompt
may start with a double quote); a TOML suite has ``[defaults]`` and ``[[prompts]]`` tables.

A row with a ``seed`` gives one item; a row without gives ``seeds`` items whose seeds derive
from ``base_seed`` and the prompt, so a re-run gets the same seeds. Item keys are
``<id or row number>-s<seed>``, the row number counting prompts from 1.
"""

from __future__ import annotations

import csv
import hashlib
import io
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from diffwatch.drift.golden_set import GenerationParams, GoldenSet
from diffwatch.gate.suite_rows import (
    MAX_SEED,
    PARAM_FIELDS,
    Loc,
    check_id,
    check_text,
    is_empty,
    json_lines,
    parse_params,
    parse_seed,
    read_text,
    show,
)

MAX_ITEMS = 100_000  # items (prompts x seeds) in one suite file
META_FIELDS = ("challenge", "note")
SUITE_FIELDS = ("prompt", "id", "category", "seed", *PARAM_FIELDS, *META_FIELDS)
SUFFIXES = (".tsv", ".csv", ".jsonl", ".toml")


class SuiteError(ValueError):
    """A suite file that cannot be used; the message names the file, the line and the fix."""


@dataclass(frozen=True)
class GateItem:
    """One generation request of a gate run, identical on the candidate and baseline side."""

    key: str
    prompt: str
    seed: int
    category: str | None
    source: str
    params: GenerationParams
    meta: Mapping[str, str] = field(default_factory=dict, hash=False)


def _tabular(text: str, loc: Loc, tsv: bool) -> Iterator[tuple[Loc, dict[str, Any]]]:
    if tsv:  # TSV has no quoting: a cell is whatever lies between tabs
        lines = (line.removesuffix("\r").split("\t") for line in text.split("\n"))
        numbered: Iterator[tuple[int, list[str]]] = enumerate(lines, start=1)
    else:
        reader = csv.reader(io.StringIO(text, newline=""))

        def _rows() -> Iterator[tuple[int, list[str]]]:
            start = 1
            try:
                for row in reader:
                    yield start, row
                    start = reader.line_num + 1
            except csv.Error as exc:
                raise Loc(loc.kind, loc.path, loc.error, start).fail(
                    None, f"not valid CSV ({exc})", "quote cells that hold commas or quotes"
                ) from None

        numbered = _rows()
    _, header = next(numbered, (1, []))
    names = [h.strip().lower() for h in header]
    head = Loc(loc.kind, loc.path, loc.error, 1)
    if unknown := [h for h in names if h not in SUITE_FIELDS]:
        raise head.fail(
            None,
            f"unknown column {show(unknown[0])}",
            f"use only the columns {', '.join(SUITE_FIELDS)} (any case)",
        )
    if dup := next((h for h in names if names.count(h) > 1), None):
        raise head.fail(None, f"column {show(dup)} appears twice", "keep one of them")
    if "prompt" not in names:
        raise head.fail(
            None, f'no "prompt" column (the header is {show(header)})', 'name one column "prompt"'
        )
    for n, cells in numbered:
        if not any(c.strip() for c in cells):
            continue
        row_loc = Loc(loc.kind, loc.path, loc.error, n)
        if len(cells) > len(names):
            raise row_loc.fail(
                None,
                f"{len(cells)} cells but the header has {len(names)} columns",
                "remove the extra cells (a TSV prompt cannot hold a tab)",
            )
        yield row_loc, dict(zip(names, cells, strict=False))


def _toml(text: str, loc: Loc) -> tuple[dict[str, Any], Iterator[tuple[Loc, dict[str, Any]]]]:
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise loc.fail(None, f"not valid TOML ({exc})", "fix the TOML syntax") from None
    if unknown := sorted(set(doc) - {"defaults", "prompts"}):
        raise Loc(loc.kind, loc.path, loc.error, table="").fail(
            unknown[0], "unknown key", "use only [defaults] and [[prompts]] tables"
        )
    defaults = doc.get("defaults", {})
    dloc = Loc(loc.kind, loc.path, loc.error, table="defaults")
    if not isinstance(defaults, dict):
        raise dloc.fail(None, "must be a table", "write it as [defaults]")
    if unknown := sorted(set(defaults) - set(PARAM_FIELDS)):
        raise dloc.fail(unknown[0], "unknown key", f"use only {', '.join(PARAM_FIELDS)}")
    fixed = parse_params(defaults, dloc, text=False).model_dump(exclude_none=True)
    prompts = doc.get("prompts", [])
    if not isinstance(prompts, list):
        raise loc.fail("prompts", "must be an array of tables", "write each as [[prompts]]")

    def _rows() -> Iterator[tuple[Loc, dict[str, Any]]]:
        for i, row in enumerate(prompts):
            row_loc = Loc(loc.kind, loc.path, loc.error, table=f"prompts[{i}]")
            if not isinstance(row, dict):
                raise row_loc.fail(None, "must be a table", "write each prompt as [[prompts]]")
            yield row_loc, row

    return fixed, _rows()


def derive_seeds(prompt: str, count: int, base_seed: int) -> list[int]:
    """``count`` distinct seeds in [0, 2^32) from sha256 of ``base_seed`` and the prompt."""
    seeds: dict[int, None] = {}  # ordered and O(1) to test
    i = 0
    while len(seeds) < count:
        digest = hashlib.sha256(f"{base_seed}\x1f{i}\x1f{prompt}".encode()).digest()
        seeds.setdefault(int.from_bytes(digest[:4], "big"))
        i += 1
    return list(seeds)


def load_suite(path: str | Path, *, seeds: int = 1, base_seed: int = 0) -> list[GateItem]:
    """Read and validate a suite file (.tsv, .csv, .jsonl, .toml) into gate items."""
    p = Path(path)
    loc = Loc("suite", p, SuiteError)
    if not 1 <= seeds <= MAX_ITEMS:
        raise loc.fail(None, f"seeds must be from 1 to {MAX_ITEMS}, got {seeds}", "pass --seeds")
    if not 0 <= base_seed <= MAX_SEED:
        raise loc.fail(None, f"base seed {base_seed} out of range", f"use 0 to {MAX_SEED}")
    suffix = p.suffix.lower()
    if suffix not in SUFFIXES:
        raise loc.fail(None, f"unknown file type {suffix!r}", f"use {', '.join(SUFFIXES)}")
    text = read_text(p, "suite", SuiteError)
    if not text.strip():
        raise loc.fail(None, "the file is empty", "add at least one prompt")
    defaults: dict[str, Any] = {}
    if suffix == ".toml":
        defaults, rows = _toml(text, loc)
    elif suffix == ".jsonl":
        rows = ((Loc("suite", p, SuiteError, n), obj) for n, obj in json_lines(text, loc))
    else:
        rows = _tabular(text, loc, tsv=suffix == ".tsv")
    reading = _Reading(p.name, suffix in (".tsv", ".csv"), defaults, seeds, base_seed)
    items: list[GateItem] = []
    for row_no, (row_loc, raw) in enumerate(rows, start=1):
        items.extend(_items(raw, row_loc, str(row_no), reading))
        if len(items) > MAX_ITEMS:
            raise row_loc.fail(
                None, f"more than {MAX_ITEMS} items (prompts x seeds)", "split the suite"
            )
    if not items:
        raise loc.fail(None, "no prompts", "add at least one prompt")
    return items


@dataclass
class _Reading:
    """What rows of one suite file share while it is read."""

    source: str
    text: bool  # TSV/CSV: every value is a string, an empty cell is absent
    defaults: Mapping[str, Any]
    seeds: int
    base_seed: int
    seen: dict[Any, str] = field(default_factory=dict)  # id, key or request -> first place


def _items(raw: Mapping[str, Any], loc: Loc, key_base: str, r: _Reading) -> list[GateItem]:
    if unknown := sorted(set(raw) - set(SUITE_FIELDS)):
        raise loc.fail(unknown[0], "unknown field", f"use only {', '.join(SUITE_FIELDS)}")
    prompt = check_text(raw["prompt"], loc, "prompt") if "prompt" in raw else ""
    if not prompt.strip():
        raise loc.fail("prompt", "is missing or empty", "give every row a prompt")
    if not is_empty(raw.get("id"), r.text):
        key_base = check_id(raw["id"], loc)
        _once(
            r, ("id", key_base), loc, "id", f"{key_base!r} is already the id at", "make ids unique"
        )
    category = None
    if not is_empty(raw.get("category"), r.text):
        category = check_text(raw["category"], loc, "category", 200).strip()
    meta = {k: check_text(raw[k], loc, k) for k in META_FIELDS if not is_empty(raw.get(k), r.text)}
    params = parse_params(raw, loc, r.text, r.defaults)
    seed = parse_seed(raw.get("seed"), loc, r.text)
    out = []
    for s in [seed] if seed is not None else derive_seeds(prompt, r.seeds, r.base_seed):
        key = f"{key_base}-s{s}"
        # Keys name images and pair the two sides: one request, one key, one image.
        _once(r, ("key", key), loc, None, f"key {key!r} is already the key at", "")
        what = f"the same prompt, seed {s} and parameters as"
        _once(r, ("request", prompt, s, params), loc, None, what, "remove the repeated row")
        out.append(GateItem(key, prompt, s, category, r.source, params, MappingProxyType(meta)))
    return out


def _once(r: _Reading, mark: Any, loc: Loc, name: str | None, problem: str, fix: str) -> None:
    if (first := r.seen.setdefault(mark, loc.place())) != loc.place():
        # An id repeats, or an id that looks like a row number takes that row's key.
        raise loc.fail(name, f"{problem} {first}", fix or "give every row its own id")


def golden_items(golden_set: GoldenSet) -> list[GateItem]:
    """A golden set's items as gate items (source ``golden:<name@version>``)."""
    names = set(PARAM_FIELDS)
    return [
        GateItem(
            key=f"{it.id}-s{it.seed}",
            prompt=it.prompt,
            seed=it.seed,
            category="golden",
            source=f"golden:{golden_set.label}",
            params=GenerationParams.model_validate(it.model_dump(include=names)),
        )
        for it in golden_set.items
    ]

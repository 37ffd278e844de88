"""Gate manifests: JSON lines, one generated image a line, and their pairing across sides.

A manifest line holds ``prompt``, ``seed`` and ``image`` (an image URI: a local path,
``file://``, ``s3://`` or ``gs://``, kept as written; the existing image reader opens it),
plus optional ``id``, ``category`` and the generation parameters of a suite. Keys follow
suites: ``<id or line number>-s<seed>``.

A gate compares like with like: ``pair_manifests`` matches the candidate's and the
baseline's entries on (prompt, seed, parameters) and refuses any entry left without a
partner, so every comparison is paired.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from diffwatch.drift.golden_set import GenerationParams
from diffwatch.gate.suite_rows import (
    PARAM_FIELDS,
    Loc,
    check_id,
    check_text,
    json_lines,
    parse_params,
    parse_seed,
    read_text,
    show,
)

MAX_ENTRIES = 100_000  # lines in one manifest, as for a suite
MAX_URI_CHARS = 4096
MANIFEST_FIELDS = ("prompt", "seed", "image", "id", "category", *PARAM_FIELDS)
_SHOWN = 5  # unmatched entries a pairing error lists per side


class ManifestError(ValueError):
    """A manifest that cannot be used, or two that do not pair; names file, line and field."""


@dataclass(frozen=True)
class ManifestEntry:
    """One generated image of one side of a gate run."""

    key: str
    prompt: str
    seed: int
    params: GenerationParams
    image: str
    category: str | None
    id: str | None
    source: str  # the manifest's path, for messages
    line: int


def load_manifest(path: str | Path) -> list[ManifestEntry]:
    """Read and validate a JSON-lines manifest of generated images."""
    p = Path(path)
    loc = Loc("manifest", p, ManifestError)
    text = read_text(p, "manifest", ManifestError)
    entries: list[ManifestEntry] = []
    seen: dict[Any, int] = {}  # key or request -> line
    for n, raw in json_lines(text, loc):
        at = Loc("manifest", p, ManifestError, n)
        if len(entries) >= MAX_ENTRIES:
            raise at.fail(None, f"more than {MAX_ENTRIES} entries", "split the manifest")
        entry = _entry(raw, at, p, n)
        for mark, what in (
            (("key", entry.key), f"key {entry.key!r} is"),
            (("request", entry.prompt, entry.seed, entry.params), "the same request is"),
        ):
            if (first := seen.setdefault(mark, n)) != n:
                raise at.fail(
                    None, f"{what} already on line {first}", "list each generated image once"
                )
        entries.append(entry)
    if not entries:
        raise loc.fail(None, "no entries", "write one JSON object per generated image")
    return entries


def _entry(raw: dict[str, Any], at: Loc, path: Path, line: int) -> ManifestEntry:
    if unknown := sorted(set(raw) - set(MANIFEST_FIELDS)):
        raise at.fail(unknown[0], "unknown field", f"use only {', '.join(MANIFEST_FIELDS)}")
    for name in ("prompt", "seed", "image"):
        if raw.get(name) is None:
            raise at.fail(name, "is missing", f'give every line a "{name}"')
    prompt = check_text(raw["prompt"], at, "prompt")
    if not prompt.strip():
        raise at.fail("prompt", "is empty", "give every line the prompt it was generated from")
    image = check_text(raw["image"], at, "image", MAX_URI_CHARS)
    if not image.strip():
        raise at.fail("image", "is empty", "point it at the generated image file")
    seed = parse_seed(raw["seed"], at, text=False)
    assert seed is not None  # checked present above
    ident = raw.get("id")
    if ident is not None:
        ident = check_id(ident, at)
    category = raw.get("category")
    if category is not None:
        category = check_text(category, at, "category", 200).strip()
    return ManifestEntry(
        key=f"{ident or line}-s{seed}",
        prompt=prompt,
        seed=seed,
        params=parse_params(raw, at, text=False),
        image=image,
        category=category,
        id=ident,
        source=str(path),
        line=line,
    )


def _where(e: ManifestEntry) -> str:
    return f"{e.source} line {e.line} (prompt {show(e.prompt)}, seed {e.seed})"


def _differences(a: GenerationParams, b: GenerationParams) -> str:
    return ", ".join(
        f"{k} {getattr(a, k)!r} vs {getattr(b, k)!r}"
        for k in PARAM_FIELDS
        if getattr(a, k) != getattr(b, k)
    )


def pair_manifests(
    candidate: Sequence[ManifestEntry], baseline: Sequence[ManifestEntry]
) -> list[tuple[ManifestEntry, ManifestEntry]]:
    """(candidate, baseline) pairs matched on prompt, seed and parameters, in candidate order;
    raises ManifestError when any entry of either side has no partner."""
    base: dict[tuple[str, int, GenerationParams], ManifestEntry] = {}
    for b in baseline:
        base.setdefault((b.prompt, b.seed, b.params), b)
    pairs: list[tuple[ManifestEntry, ManifestEntry]] = []
    used: set[int] = set()
    lone_c: list[ManifestEntry] = []
    for c in candidate:
        b = base.get((c.prompt, c.seed, c.params))
        if b is None or id(b) in used:
            lone_c.append(c)
        else:
            pairs.append((c, b))
            used.add(id(b))
    lone_b = [b for b in baseline if id(b) not in used]
    if not lone_c and not lone_b:
        if not pairs:
            raise ManifestError("manifests: both sides are empty; generate the suite first")
        return pairs
    # The same prompt and seed on both sides with other parameters is one mistake, not two.
    by_request = {(b.prompt, b.seed): b for b in reversed(lone_b)}
    differ, explained = [], set()
    for c in lone_c:
        b = by_request.pop((c.prompt, c.seed), None)
        if b is not None:
            differ.append(
                f"{_where(c)} vs {b.source} line {b.line}: {_differences(c.params, b.params)}"
            )
            explained |= {id(c), id(b)}
    lone_c = [e for e in lone_c if id(e) not in explained]
    lone_b = [e for e in lone_b if id(e) not in explained]
    c_name = candidate[0].source if candidate else "candidate manifest"
    b_name = baseline[0].source if baseline else "baseline manifest"
    parts = []
    for label, items in (
        ("candidate {} without a baseline entry", [_where(e) for e in lone_c]),
        ("baseline {} without a candidate entry", [_where(e) for e in lone_b]),
        ("{} whose parameters differ between the sides", differ),
    ):
        if items:
            noun = label.format("entry" if len(items) == 1 else "entries")
            more = f"; and {len(items) - _SHOWN} more" if len(items) > _SHOWN else ""
            parts.append(f"{len(items)} {noun}: " + "; ".join(items[:_SHOWN]) + more)
    raise ManifestError(
        f"candidate manifest {c_name} and baseline manifest {b_name} do not pair (every "
        "comparison is paired on prompt, seed and parameters): "
        + " | ".join(parts)
        + "; generate both sides from the same suite with the same parameters"
    )

"""Golden sets: versioned files of prompts and seeds re-generated on every drift run.

A golden set is a TOML (or JSON) file::

    name = "smoke"
    version = "3"            # bump it when you change an item: baselines are per version

    [defaults]               # optional; each item may override any of these
    sampler = "DPM++ 2M Karras"
    steps = 25
    cfg_scale = 7.5
    width = 512
    height = 512

    [[items]]
    id = "red-fox"
    prompt = "a red fox in fresh snow, telephoto"
    seed = 1234
    negative_prompt = "blurry"  # optional

The first run of a version stores every item's image as its baseline; later runs compare
against it. Changing an item without bumping ``version`` is an error, not a silent
re-baseline (``item_hash``).
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

# Item ids and names end up in keys and file names: keep them to safe characters.
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"


class GenerationParams(BaseModel):
    """The generation parameters that decide an image besides prompt and seed (None: the
    pipeline's default); shared by golden sets and release-gate suites."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sampler: str | None = None
    steps: int | None = Field(default=None, ge=1, le=1000)
    cfg_scale: float | None = Field(default=None, ge=0, le=100)
    width: int | None = Field(default=None, ge=64, le=4096, multiple_of=8)
    height: int | None = Field(default=None, ge=64, le=4096, multiple_of=8)
    negative_prompt: str | None = None


class GoldenItem(GenerationParams):
    """One prompt and seed of a golden set, with the parameters it is generated with."""

    id: str = Field(pattern=ID_PATTERN)
    prompt: str = Field(min_length=1)
    seed: int = Field(ge=0, lt=2**63)

    def item_hash(self) -> str:
        """sha256 (16 hex digits) of everything that decides the image."""
        blob = json.dumps(self.model_dump(exclude={"id"}), sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def params(self) -> dict[str, Any]:
        """The columns a drift item or golden baseline stores."""
        return self.model_dump(exclude={"id"})


class GoldenSet(BaseModel):
    """A named, versioned list of golden items (ids unique)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=ID_PATTERN)
    version: str = Field(pattern=ID_PATTERN)
    defaults: GenerationParams = GenerationParams()
    items: tuple[GoldenItem, ...] = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _apply_defaults(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("items"), list):
            defaults = data.get("defaults") or {}
            if isinstance(defaults, dict):
                data = {
                    **data,
                    "items": [
                        {**defaults, **it} if isinstance(it, dict) else it for it in data["items"]
                    ],
                }
        return data

    @model_validator(mode="after")
    def _unique_ids(self) -> GoldenSet:
        seen: set[str] = set()
        for it in self.items:
            if it.id in seen:
                raise ValueError(f"item id {it.id!r} appears twice; ids must be unique")
            seen.add(it.id)
        return self

    @property
    def label(self) -> str:
        """``name@version``."""
        return f"{self.name}@{self.version}"


class GoldenSetError(ValueError):
    """A golden set file that cannot be used; the message names the file and the field."""


def _where(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def load_golden_set(path: str | Path) -> GoldenSet:
    """Read and validate a golden set file (``.toml`` or ``.json``)."""
    p = Path(path)
    if not p.is_file():
        raise GoldenSetError(f"golden set {p}: no such file")
    try:
        text = p.read_text(encoding="utf-8")
        data = json.loads(text) if p.suffix.lower() == ".json" else tomllib.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        kind = "JSON" if p.suffix.lower() == ".json" else "TOML"
        raise GoldenSetError(f"golden set {p}: not valid {kind}: {exc}") from None
    try:
        return GoldenSet.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise GoldenSetError(
            f"golden set {p}: {_where(tuple(first['loc']))}: {first['msg']}"
            + (f" ({exc.error_count() - 1} more problems)" if exc.error_count() > 1 else "")
        ) from None

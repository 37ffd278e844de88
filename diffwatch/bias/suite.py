"""Probe suites: neutral prompt templates x a vocabulary, seeds per prompt, attributes.

A suite is a TOML file (``diffwatch/bias/suites/occupations.toml`` is the default)::

    name = "occupations"
    templates = ["a photo of the face of {a} {term}", "a portrait photo of {a} {term}"]
    terms = ["doctor", "nurse", { term = "honest person", article = "an" }]
    seeds = 100                      # images per prompt: seeds seed_start .. seed_start+99
    attributes = ["gender", "skin_tone", "age"]
    headline = "gender"              # the attribute alerts and the gate read

    [params]                         # generation parameters (golden sets' names)
    steps = 25

    [reference.gender]               # optional: expected shares per term (labour statistics)
    doctor = { woman = 0.44, man = 0.56 }

``{term}`` is the vocabulary word and ``{a}`` its indefinite article ("a" or "an" by the
first letter; give ``article`` where the letter misleads, as in "an honest person").
Unknown keys are refused, so a misspelt ``seed`` cannot silently keep the default. A suite's
prompts, seeds and parameters decide its images, so two runs of one suite on two model
versions are paired image for image.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from diffwatch.bias.attributes import ATTRIBUTES as PERCEIVED
from diffwatch.bias.attributes import GATE
from diffwatch.drift.golden_set import GenerationParams

# what a suite may measure (docs/bias.md): every perceived attribute but the person gate,
# which every run applies
ATTRIBUTES = tuple(k for k in PERCEIVED if k != GATE)
MAX_ITEMS = 200_000  # prompts x seeds in one suite
MAX_FILE_BYTES = 4 << 20  # a suite is a list of words, not data
DEFAULT_SUITE = "occupations"
_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
# a term is a few words: letters of any script, digits, spaces and light punctuation; no
# braces (they would be read as placeholders), no controls, no markup
_TERM = re.compile(r"^[^\W_][\w .,'&/()-]{0,79}$")
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")

_CONFIG = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


class SuiteError(ValueError):
    """A suite file that cannot be used; the message names the file, the key and the fix."""


class Term(BaseModel):
    """A vocabulary entry: the word(s) and, where the first letter misleads, its article."""

    model_config = _CONFIG
    term: str
    article: str | None = Field(default=None, pattern=r"^(a|an|)$")

    @field_validator("term")
    @classmethod
    def _plain(cls, v: str) -> str:
        if not _TERM.match(v):
            raise ValueError(
                "a term is 1-80 letters, digits, spaces and . , ' & / ( ) -, starting with a "
                "letter or digit"
            )
        return v

    def a(self) -> str:
        """The indefinite article: given, else 'an' before a vowel letter, else 'a'."""
        if self.article is not None:
            return self.article
        return "an" if self.term[0].lower() in "aeiou" else "a"


class ProbeSuite(BaseModel):
    """A probe suite as loaded and checked; ``items()`` lists what a run generates."""

    model_config = _CONFIG
    name: str = Field(pattern=_NAME)
    description: str = Field(default="", max_length=2000)
    templates: list[str] = Field(min_length=1, max_length=20)
    terms: list[Term] = Field(min_length=1, max_length=2000)
    seeds: int = Field(default=100, ge=1, le=10_000)
    seed_start: int = Field(default=0, ge=0, lt=2**62)
    attributes: list[str] = Field(default_factory=lambda: list(ATTRIBUTES), min_length=1)
    headline: str = "gender"
    params: GenerationParams = GenerationParams()
    reference: dict[str, dict[str, dict[str, float]]] = Field(default_factory=dict)
    source: dict[str, str] = Field(default_factory=dict)

    @field_validator("terms", mode="before")
    @classmethod
    def _terms(cls, v: Any) -> Any:
        if isinstance(v, list | tuple):
            return [{"term": t} if isinstance(t, str) else t for t in v]
        return v

    @field_validator("templates")
    @classmethod
    def _templates(cls, v: list[str]) -> list[str]:
        for t in v:
            names = _PLACEHOLDER.findall(t)
            if "term" not in names or set(names) - {"term", "a"} or t.count("{") != len(names):
                raise ValueError(
                    f"template {t!r} must hold {{term}} (and may hold {{a}}) and no other braces"
                )
            if len(t) > 300:
                raise ValueError(f"template {t[:40]!r}... is longer than 300 characters")
        if len(set(v)) != len(v):
            raise ValueError("a template is listed twice")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> ProbeSuite:
        bad = [a for a in self.attributes if a not in ATTRIBUTES]
        if bad or len(set(self.attributes)) != len(self.attributes):
            raise ValueError(
                f"attributes {list(self.attributes)}: each once, from {', '.join(ATTRIBUTES)}"
            )
        if self.headline not in self.attributes:
            raise ValueError(f"headline {self.headline!r} must be one of the suite's attributes")
        words = [t.term for t in self.terms]
        if len(set(words)) != len(words):
            twice = sorted({w for w in words if words.count(w) > 1})
            raise ValueError(f"terms listed twice: {', '.join(twice[:5])}")
        n = len(self.templates) * len(self.terms) * self.seeds
        if n > MAX_ITEMS:
            raise ValueError(f"{n:,} images (templates x terms x seeds) is over {MAX_ITEMS:,}")
        for attr, per_term in self.reference.items():
            if attr not in self.attributes:
                raise ValueError(f"reference.{attr}: not one of the suite's attributes")
            for term, shares in per_term.items():
                if term not in words:
                    raise ValueError(f"reference.{attr}.{term}: not one of the suite's terms")
                total = sum(shares.values())
                if any(s < 0 or s > 1 for s in shares.values()) or abs(total - 1) > 1e-3:
                    raise ValueError(
                        f"reference.{attr}.{term}: shares must lie in 0..1 and sum to 1, "
                        f"they sum to {total:.4f}"
                    )
        return self

    def prompts(self) -> list[tuple[str, str]]:
        """Every (term, prompt), terms in file order, then templates."""
        return [
            (t.term, tpl.replace("{a}", t.a()).replace("{term}", t.term).replace("  ", " "))
            for t in self.terms
            for tpl in self.templates
        ]

    def items(self, seeds: int | None = None) -> list[ProbeItem]:
        """What a run generates: every prompt with ``seeds`` (default the suite's) seeds."""
        n = self.seeds if seeds is None else seeds
        if n < 1:
            raise ValueError(f"seeds must be a positive integer, got {n}")
        params = self.params.model_dump()
        out = []
        for i, (term, prompt) in enumerate(self.prompts()):
            for s in range(self.seed_start, self.seed_start + n):
                out.append(ProbeItem(f"p{i:04d}-s{s}", prompt, term, s, params))
        return out

    def to_dict(self) -> dict[str, Any]:
        """The suite as JSON-ready data, as a run stores it."""
        return self.model_dump(mode="json")


@dataclass(frozen=True)
class ProbeItem:
    """One image of a run: its key (stable across runs of the suite), prompt and seed."""

    key: str
    prompt: str
    term: str
    seed: int
    params: dict[str, Any]


def _where(loc: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in loc) or "(top level)"


def parse_suite(doc: dict[str, Any], origin: str) -> ProbeSuite:
    """A suite from parsed TOML; SuiteError naming ``origin``, the key and the fix."""
    try:
        return ProbeSuite.model_validate(doc)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = _where(tuple(err["loc"]))
        if err["type"] == "extra_forbidden":
            problem, fix = "unknown key", f"use one of {', '.join(ProbeSuite.model_fields)}"
        else:
            shown = repr(err.get("input"))
            shown = shown if len(shown) <= 60 else shown[:57] + "..."
            problem = f"{err['msg']}, got {shown}"
            fix = "correct the value (docs/bias.md describes a suite)"
        more = exc.error_count() - 1
        tail = f" ({more} more problem{'s' if more > 1 else ''})" if more else ""
        raise SuiteError(f"suite {origin}: {key}: {problem}; {fix}{tail}") from None


def load_suite(path: str | Path | None = None) -> ProbeSuite:
    """The suite in a TOML file, or the shipped default suite when ``path`` is None."""
    if path is None:
        text = resources.files("diffwatch.bias").joinpath(f"suites/{DEFAULT_SUITE}.toml")
        return parse_suite(tomllib.loads(text.read_text("utf-8")), f"(built-in {DEFAULT_SUITE})")
    p = Path(path)
    if not p.is_file():
        raise SuiteError(f"suite {p}: no such file; check the path, or leave --suite out")
    if p.stat().st_size > MAX_FILE_BYTES:
        raise SuiteError(f"suite {p}: larger than {MAX_FILE_BYTES >> 20} MiB; is it a suite?")
    try:
        doc = tomllib.loads(p.read_bytes().removeprefix(b"\xef\xbb\xbf").decode("utf-8"))
    except UnicodeDecodeError:
        raise SuiteError(f"suite {p}: not valid UTF-8; save the file as UTF-8") from None
    except tomllib.TOMLDecodeError as exc:
        raise SuiteError(f"suite {p}: not valid TOML ({exc}); fix the syntax") from None
    return parse_suite(doc, str(p))

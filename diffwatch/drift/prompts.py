"""Prompt-distribution drift: embed a reference and a current sample of prompts with the
CLIP text tower, test them against each other (by embedding and by words), say what moved,
and store one run.

The statistics are pure (``diffwatch.analytics.prompt_drift``, ``.lexical_drift``,
``.drift_combine``, ``.drift_moved``, ``.param_drift``); this module does the I/O around them:
it reads the windows (or a pinned baseline), embeds, and writes ``drift_runs``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import numpy as np
import psycopg

from diffwatch.db.queries import drift as q
from diffwatch.drift.windows import Window, ending_after, windows

log = logging.getLogger(__name__)

DEFAULT_REFERENCE = "7d"
MIN_PROMPTS = 20  # per side: below this the test has too little power to mean anything
COMBINE_CHOICES = ("auto", "min-p", "lexical-first")


class TextEmbedder(Protocol):
    """Turns prompts into L2-normalised vectors (float32, one row a prompt). ``general``:
    whether it knows real prompt language (a real CLIP); the demo's embedders do not."""

    label: str
    general: bool

    def embed(self, prompts: Sequence[str]) -> np.ndarray: ...


class ClipTextEmbedder:
    """A ClipScorer's text tower as a TextEmbedder, with the label runs store; ``general``
    False for the demo's CLIPs (random weights, or trained on the demo's scenes alone)."""

    def __init__(self, scorer: Any, label: str, *, general: bool = True) -> None:
        self.scorer, self.label, self.general = scorer, label, general

    def embed(self, prompts: Sequence[str]) -> np.ndarray:
        """L2-normalised float32 embeddings, one row a prompt."""
        return self.scorer.embed_texts(prompts)


class NotEnoughData(ValueError):
    """A window (or baseline) has too few prompts for a drift test."""


@dataclass(frozen=True)
class PromptDriftOptions:
    """What to compare: the ``current`` window against a ``reference`` window or a pinned
    ``baseline``; ``max_prompts`` is a random sample cap per side; ``alpha`` the test's
    level; ``until`` the anchor of duration windows (None: the newest generation).
    ``combine``: how the embedding and the lexical test make one verdict, "min-p",
    "lexical-first" or "auto" (lexical-first for an embedder that knows no real prompt
    language, min-p otherwise; see ``diffwatch.analytics.drift_combine``)."""

    current: str = "24h"
    reference: str | None = None  # None: DEFAULT_REFERENCE, unless a baseline is given
    baseline: str | None = None
    save_baseline: str | None = None
    replace_baseline: bool = False
    model: str | None = None
    until: datetime | None = None
    max_prompts: int = 2000
    permutations: int = 500
    alpha: float = 0.05
    clusters: int | None = None
    seed: int = 0
    combine: str = "auto"

    def __post_init__(self) -> None:
        if self.combine not in COMBINE_CHOICES:
            raise ValueError(
                f"--combine must be one of {', '.join(COMBINE_CHOICES)}, got {self.combine!r}"
            )
        if self.baseline and self.reference:
            raise ValueError("--reference and --baseline exclude each other; give one")
        if self.baseline and self.save_baseline:
            raise ValueError("--save-baseline pins a reference window; it cannot re-pin --baseline")
        if self.max_prompts < MIN_PROMPTS:
            raise ValueError(
                f"--max-prompts must be at least {MIN_PROMPTS}, got {self.max_prompts}"
            )
        if not 0 < self.alpha < 1:
            raise ValueError(f"--alpha must be between 0 and 1, got {self.alpha}")
        if self.permutations < 50:
            raise ValueError(f"--permutations must be at least 50, got {self.permutations}")


def combine_order(combine: str, embedder: TextEmbedder) -> str:
    """The combination a run uses: ``combine`` as given, or for "auto" the fixed sequence
    with the lexical test first when the embedder knows no real prompt language (its
    embedding test is close to noise there and min-p would spend α on it), else min-p."""
    if combine != "auto":
        return combine
    return "min-p" if getattr(embedder, "general", True) else "lexical-first"


def _embed_unique(embedder: TextEmbedder, prompts: Sequence[str]) -> np.ndarray:
    """Embed each distinct prompt once (logs repeat prompts a lot)."""
    unique = list(dict.fromkeys(prompts))
    vectors = embedder.embed(unique)
    row = {p: i for i, p in enumerate(unique)}
    return np.asarray(vectors, dtype=np.float32)[[row[p] for p in prompts]]


def _check_side(rows: Sequence[Any], what: str) -> None:
    if len(rows) < MIN_PROMPTS:
        raise NotEnoughData(
            f"{what} has {len(rows)} prompts; a drift test needs at least {MIN_PROMPTS} a "
            "side; fix: widen the window (--current/--reference) or check --model"
        )


def _load_sides(
    conn: psycopg.Connection, opts: PromptDriftOptions, run_fields: dict[str, Any]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], str, str]:
    """(reference rows, current rows, reference label, current label)."""
    anchor = opts.until or q.newest_generation_ts(conn, opts.model)
    if anchor is None:
        raise NotEnoughData(
            "no generations are logged"
            + (f" for model {opts.model!r}" if opts.model else "")
            + "; fix: collect logs first (`diffwatch collect logs`)"
        )
    anchor = ending_after(anchor)  # so the newest generation is in the current window
    cur, ref = windows(
        opts.current, None if opts.baseline else (opts.reference or DEFAULT_REFERENCE), anchor
    )
    seed = opts.seed
    pinned = q.load_prompt_baseline(conn, opts.baseline) if opts.baseline else None
    if opts.baseline and pinned is None:
        names = q.prompt_baseline_names(conn)
        raise NotEnoughData(
            f"--baseline {opts.baseline!r}: no such prompt baseline; known: "
            f"{', '.join(names) or 'none'}; fix: pin one with --save-baseline NAME"
        )
    current = q.window_prompts(conn, cur.start, cur.end, opts.model, opts.max_prompts, seed)
    run_fields.update(current_start=cur.start, current_end=cur.end)
    _check_side(current, f"the current window {cur.label()}")
    if pinned is not None:
        meta, reference = pinned
        _check_side(reference, f"baseline {opts.baseline!r}")
        label = f"baseline {opts.baseline!r} ({meta['n_prompts']} prompts"
        if meta["window_start"] and meta["window_end"]:
            label += f" of {Window(meta['window_start'], meta['window_end']).label()}"
        return reference, current, label + ")", cur.label()
    assert ref is not None
    _check_overlap(ref, cur)
    reference = q.window_prompts(conn, ref.start, ref.end, opts.model, opts.max_prompts, seed)
    run_fields.update(reference_start=ref.start, reference_end=ref.end)
    _check_side(reference, f"the reference window {ref.label()}")
    return reference, current, ref.label(), cur.label()


def _check_overlap(ref: Window, cur: Window) -> None:
    if ref.start < cur.end and cur.start < ref.end:
        raise ValueError(
            f"the reference window {ref.label()} overlaps the current window {cur.label()}; "
            "fix: give windows that do not overlap"
        )


def analyse(
    reference: Sequence[dict[str, Any]],
    current: Sequence[dict[str, Any]],
    embedder: TextEmbedder,
    opts: PromptDriftOptions,
) -> dict[str, Any]:
    """The full result of comparing two prompt samples (JSON-ready).

    ``test`` is the embedding test, ``lexical`` the TF-IDF test (each with its own p-value
    and effect size, as if it ran alone) and ``combined`` their combination on shared
    permutations (``combine_order``), whose ``drifted`` is the prompt verdict.
    """
    from diffwatch.analytics.drift_combine import prompt_drift_test
    from diffwatch.analytics.drift_moved import cluster_shifts, term_shifts
    from diffwatch.analytics.param_drift import parameter_drift

    ref_prompts = [r["prompt"] for r in reference]
    cur_prompts = [r["prompt"] for r in current]
    ref_emb = _embed_unique(embedder, ref_prompts)
    cur_emb = _embed_unique(embedder, cur_prompts)
    tests = prompt_drift_test(
        ref_emb, cur_emb, ref_prompts, cur_prompts, permutations=opts.permutations,
        alpha=opts.alpha, seed=opts.seed, max_samples=opts.max_prompts,
        order=combine_order(opts.combine, embedder),
    )  # fmt: skip
    clusters = cluster_shifts(
        ref_emb, cur_emb, ref_prompts, cur_prompts, k=opts.clusters, seed=opts.seed
    )
    grew, shrank = term_shifts(ref_prompts, cur_prompts)
    params = parameter_drift(reference, current, alpha=opts.alpha)
    return {
        "test": tests.embedding.to_dict(),
        "lexical": tests.lexical.to_dict(),
        "combined": tests.combined_dict(),
        "clusters": [c.to_dict() for c in clusters],
        "terms": {"grew": [t.to_dict() for t in grew], "shrank": [t.to_dict() for t in shrank]},
        "parameters": [p.to_dict() for p in params],
        "parameters_drifted": [p.parameter for p in params if p.drifted],
    }


def run_prompt_drift(
    conninfo: str,
    embedder: TextEmbedder,
    opts: PromptDriftOptions,
    *,
    demo: bool = False,
    worker: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run one prompt-drift check and store it; return the stored summary with ``run_id``.

    A check that cannot run (too few prompts, a bad window) is stored as a ``failed`` run
    with its reason, then raised.
    """
    say = progress or (lambda _m: None)
    with psycopg.connect(conninfo) as conn:
        run_id = q.start_run(
            conn, "prompts", model=opts.model, baseline=opts.baseline, embedder=embedder.label,
            demo=demo, worker=worker, threshold=opts.alpha,
        )  # fmt: skip
        fields: dict[str, Any] = {}
        try:
            pinned = q.prompt_baseline_names(conn)
            if opts.save_baseline in pinned and not opts.replace_baseline:
                raise ValueError(
                    f"--save-baseline {opts.save_baseline!r}: a baseline of that name "
                    "exists; fix: choose another name or add --replace-baseline"
                )
            say("reading prompts")
            reference, current, ref_label, cur_label = _load_sides(conn, opts, fields)
            say(f"embedding {len(reference) + len(current)} prompts with {embedder.label}")
            result = analyse(reference, current, embedder, opts)
        except Exception as exc:
            q.finish_run(conn, run_id, "failed", error=str(exc), **fields)
            raise
        result["windows"] = {"reference": ref_label, "current": cur_label}
        result["embedder"] = embedder.label
        test, combined = result["test"], result["combined"]
        drifted = bool(combined["drifted"]) or bool(result["parameters_drifted"])
        # The row's p-value is the one that decides (combined); its statistic and effect
        # size stay the embedding test's, which alert rules and older runs share.
        q.finish_run(
            conn, run_id, "ok", drifted=drifted, statistic=test["statistic"],
            p_value=combined["p_value"], effect_size=test["effect_size"],
            n_reference=len(reference), n_current=len(current), summary=result, **fields,
        )  # fmt: skip
        if opts.save_baseline:
            q.save_prompt_baseline(
                conn, opts.save_baseline, reference, model=opts.model,
                window=(fields.get("reference_start"), fields.get("reference_end")),
                run_id=run_id, replace=opts.replace_baseline,
            )  # fmt: skip
    return {"run_id": run_id, "drifted": drifted, "demo": demo, **result}

"""The two prompt tests of a prompt-drift run (embedding MMD and lexical TF-IDF) and their
combined verdict, read from the stored summary. Runs stored before the lexical test have
only the embedding test (``summary.test``): they read as before."""

from __future__ import annotations

from typing import Any

import pandas as pd

from diffwatch.app.summary import as_dict as _dict
from diffwatch.app.summary import as_number as _num
from diffwatch.app.text import md

EFFECT_NAMES = {
    "knn_auc": "kNN AUC (0.5 = no difference, 1 = fully separable)",
    "centroid_auc": "TF-IDF centroid AUC (0.5 = the same words, 1 = no words shared)",
}
TEST_NAMES = {
    "embedding": "embedding (MMD on the text encoder's vectors)",
    "lexical": "lexical (TF-IDF of the prompts' words)",
}
COMBINED_HELP = (
    "The p-value that decides: the embedding and the lexical test on the same permutations, "
    "combined so that unshifted runs are flagged at rate α ({how})."
)
METHOD_TEXTS = {
    "westfall-young-minp": "Westfall–Young min-p over the two",
    "fixed-sequence-lexical-first": "fixed sequence: the lexical test at α first, the "
    "embedding test only after it rejected; the embedder knows no real prompt language",
}


def _stored_method(summary: dict[str, Any]) -> str:
    """The stored combination method; runs stored before the choice existed used min-p."""
    return str(combined(summary).get("method") or "westfall-young-minp")


def method_text(summary: dict[str, Any]) -> str:
    """How the stored run combined its tests, in words (an unknown method as stored)."""
    method = _stored_method(summary)
    return METHOD_TEXTS.get(method, method)


def method_markdown(summary: dict[str, Any]) -> str:
    """``method_text`` for a Markdown caption: our own words as they are, a method we do not
    know made inert (a stored summary is data, never markup)."""
    method = _stored_method(summary)
    return METHOD_TEXTS.get(method) or md(method)


def parts(summary: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The stored tests by name: "embedding" (always, when stored) and "lexical" (newer runs)."""
    out = {"embedding": _dict(summary.get("test")), "lexical": _dict(summary.get("lexical"))}
    return {k: v for k, v in out.items() if v}


def combined(summary: dict[str, Any]) -> dict[str, Any]:
    """The stored combination (empty for runs stored before the lexical test)."""
    return _dict(summary.get("combined"))


def table(summary: dict[str, Any]) -> pd.DataFrame | None:
    """One row a test: its own p-value, its adjusted p-value and its effect size; None when
    the run has only the embedding test (the metrics above already show it)."""
    comb = combined(summary)
    tests = parts(summary)
    if not comb or "lexical" not in tests:
        return None
    adjusted = _dict(comb.get("adjusted_p_values"))
    alpha = _num(comb.get("alpha"))
    rows = []
    for name, t in tests.items():
        adj = _num(adjusted.get(name))
        rows.append(
            {
                "test": TEST_NAMES.get(name, name),
                "p-value (alone)": _num(t.get("p_value")),
                "adjusted p-value": adj,
                "flags drift": None if adj is None or alpha is None else adj <= alpha,
                "effect size": _num(t.get("effect_size")),
                "effect measure": EFFECT_NAMES.get(str(t.get("effect_size_name")), "?"),
                "statistic": _num(t.get("statistic")),
                "n reference / current": f"{t.get('n_reference')} / {t.get('n_current')}",
            }
        )
    return pd.DataFrame(rows)


def why(summary: dict[str, Any], p: float | None, alpha: float | None) -> str | None:
    """Why the prompts count as drifted (None when they do not)."""
    comb = combined(summary)
    if comb:
        if not comb.get("drifted"):
            return None
        adjusted = _dict(comb.get("adjusted_p_values"))
        by = [
            f"{'by their embeddings' if name == 'embedding' else 'by their words'} "
            f"(adjusted p {_num(adjusted.get(name)) or 0:.3g})"
            for name in ("embedding", "lexical")
            if name in (comb.get("decided_by") or [])
        ]
        return "the prompts differ from the reference beyond chance (combined p ≤ α)" + (
            ": " + " and ".join(by) if by else ""
        )
    test = _dict(summary.get("test"))
    if test.get("drifted") or (p is not None and alpha is not None and p <= alpha):
        return "the prompts' embeddings differ from the reference beyond chance (p ≤ α)"
    return None


def details(summary: dict[str, Any]) -> pd.DataFrame | None:
    """Every scalar field of each stored test (method, statistic, permutations, …)."""
    tests = parts(summary)
    if not tests:
        return None
    keys: list[str] = []
    for t in tests.values():
        keys += [k for k, v in t.items() if not isinstance(v, dict | list) and k not in keys]
    frame = {"field": keys}
    for name, t in tests.items():
        frame[name] = [str(t[k]) if k in t else "" for k in keys]
    return pd.DataFrame(frame)

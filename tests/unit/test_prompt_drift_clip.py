"""Prompt drift on real prompts through the CLIP text tower (the tiny test CLIP, loaded by the
real loader): a synthetic shift of the prompt mix is detected, random splits of one prompt
population are not, at the nominal rate. The figures are printed (pytest -s)."""

from __future__ import annotations

import functools

import numpy as np

from diffwatch.analytics.prompt_drift import mmd_test
from diffwatch.scoring.clip.scorer import ClipScorer, load_clip
from tests.tinymodels import save_tiny_clip, tiny_clip_settings

SUBJECTS = ("fox", "owl", "cat", "horse", "deer", "rabbit", "bear", "otter", "heron", "wolf")
PLACES = ("a forest", "a meadow", "a snowy field", "a river bank", "a barn", "a garden")
STYLES = ("watercolor", "oil painting", "photo, 85mm", "pencil sketch", "studio lighting")
SHIFT = ("cyberpunk city street, neon signs, rain", "neon lit alley, holograms, night")
SPLITS, N, ALPHA = 30, 150, 0.05
# Binomial(30, 0.05): P(X <= 5) = 0.998, so a calibrated test exceeds 5/30 false positives
# about 1 time in 500.
FPR_LIMIT = 5 / 30


def _prompt(rng: np.random.Generator) -> str:
    return f"a {rng.choice(SUBJECTS)} in {rng.choice(PLACES)}, {rng.choice(STYLES)}"


@functools.cache
def figures(tmp: str) -> dict[str, float]:
    """FPR over random halves of one prompt pool; detection over pools with 30% shifted."""
    from pathlib import Path

    clip = ClipScorer(load_clip(tiny_clip_settings(save_tiny_clip(Path(tmp)))))
    rng = np.random.default_rng(11)
    base = [_prompt(rng) for _ in range(2 * N)]
    shifted = [
        f"{rng.choice(SHIFT)}, {rng.choice(STYLES)}" if rng.random() < 0.3 else _prompt(rng)
        for _ in range(N * SPLITS)
    ]
    unique = sorted(set(base) | set(shifted))
    emb = dict(zip(unique, clip.embed_texts(unique), strict=True))
    pool = np.stack([emb[p] for p in base])
    false = 0
    for i in range(SPLITS):
        order = rng.permutation(2 * N)
        r = mmd_test(pool[order[:N]], pool[order[N:]], permutations=200, seed=i, alpha=ALPHA)
        false += r.drifted
    found = 0
    for i in range(SPLITS):
        ref = np.stack([emb[p] for p in base[:N]])
        cur = np.stack([emb[p] for p in shifted[i * N : (i + 1) * N]])
        found += mmd_test(ref, cur, permutations=200, seed=i, alpha=ALPHA).drifted
    return {"fpr": false / SPLITS, "detection": found / SPLITS}


def test_false_positives_at_alpha_and_shift_detected_on_clip_embedded_prompts(tmp_path_factory):
    f = figures(str(tmp_path_factory.mktemp("clip")))
    print(
        f"prompt drift through tiny CLIP: FPR {f['fpr']:.3f} over {SPLITS} random splits at "
        f"alpha {ALPHA}; detection {f['detection']:.3f} over {SPLITS} windows with 30% shifted"
    )
    assert f["fpr"] <= FPR_LIMIT
    assert f["detection"] >= 0.9

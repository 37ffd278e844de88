"""ClipScorer on the tiny model (CPU, fp32): range, batch invariance, order, truncation, repeats."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from diffwatch.scoring.clip.scorer import ClipModel, ClipScore, ClipScorer, load_clip
from tests.tinymodels import photo_like, save_tiny_clip, tiny_clip_settings

PROMPTS = [
    "a red fox in the snow",
    "an astronaut riding a horse",
    "a bowl of ramen, studio lighting",
    "",
    "ÜBER café — 東京 at night 🌃",
]
LONG_PROMPT = ", ".join(f"highly detailed ornament number {i}" for i in range(40))
ATOL = 1e-4  # CLIPScore points; fp32 on CPU differs by batch only in the last bits


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory: pytest.TempPathFactory) -> ClipModel:
    return load_clip(tiny_clip_settings(save_tiny_clip(tmp_path_factory.mktemp("tiny_clip"))))


def sample(n: int) -> tuple[list[np.ndarray], list[str]]:
    """n images of assorted sizes and n prompts, deterministic."""
    sizes = [(64, 64), (96, 128), (128, 96), (50, 70), (200, 200)]
    images = [photo_like(*sizes[i % len(sizes)], seed=i) for i in range(n)]
    prompts = [PROMPTS[i % len(PROMPTS)] + f" #{i}" for i in range(n)]
    return images, prompts


def cosines(scores: list[ClipScore]) -> np.ndarray:
    return np.array([s.cosine for s in scores])


def test_scores_are_clipscore_in_range(tiny_clip: ClipModel) -> None:
    images, prompts = sample(20)
    scores = ClipScorer(tiny_clip).score(images, prompts)
    assert len(scores) == 20
    for s in scores:
        assert 0.0 <= s.score <= 100.0
        assert -1.0 <= s.cosine <= 1.0
        assert s.score == pytest.approx(100.0 * max(s.cosine, 0.0))
    assert len({round(s.cosine, 6) for s in scores}) > 10  # not a constant


def test_batch_of_64_equals_one_by_one_and_keeps_order(tiny_clip: ClipModel) -> None:
    images, prompts = sample(64)
    together = ClipScorer(tiny_clip, batch_size=64).score(images, prompts)
    one_by_one = ClipScorer(tiny_clip, batch_size=1)
    singles = [one_by_one.score([im], [p])[0] for im, p in zip(images, prompts, strict=True)]
    np.testing.assert_allclose(cosines(together), cosines(singles), atol=ATOL / 100)
    np.testing.assert_allclose([s.score for s in together], [s.score for s in singles], atol=ATOL)
    chunked = ClipScorer(tiny_clip, batch_size=7).score(images, prompts)
    np.testing.assert_allclose(cosines(chunked), cosines(together), atol=ATOL / 100)


def test_permuting_inputs_permutes_scores(tiny_clip: ClipModel) -> None:
    images, prompts = sample(16)
    scorer = ClipScorer(tiny_clip)
    base = cosines(scorer.score(images, prompts))
    perm = np.random.default_rng(3).permutation(16)
    shuffled = cosines(scorer.score([images[i] for i in perm], [prompts[i] for i in perm]))
    np.testing.assert_allclose(shuffled, base[perm], atol=ATOL / 100)


def test_each_image_is_scored_against_its_own_prompt(tiny_clip: ClipModel) -> None:
    images, prompts = sample(6)
    scorer = ClipScorer(tiny_clip)
    img = scorer.embed_images(images)
    txt = scorer.embed_texts(prompts)
    expected = np.sum(img * txt, axis=1)
    np.testing.assert_allclose(cosines(scorer.score(images, prompts)), expected, atol=1e-5)


def test_repeated_prompts_score_like_distinct_calls(tiny_clip: ClipModel) -> None:
    images, _ = sample(6)
    scorer = ClipScorer(tiny_clip)
    shared = scorer.score(images, ["a cat"] * 6)
    each = [scorer.score([im], ["a cat"])[0] for im in images]
    np.testing.assert_allclose(cosines(shared), cosines(each), atol=ATOL / 100)


def test_long_prompt_is_truncated_and_recorded(tiny_clip: ClipModel) -> None:
    images, _ = sample(2)
    scorer = ClipScorer(tiny_clip)
    long_score, short_score = scorer.score(images, [LONG_PROMPT, "a fox"])
    assert long_score.truncated and long_score.n_tokens > 77
    n_words = len(tiny_clip.tokenizer.encode(LONG_PROMPT))
    assert long_score.n_tokens == n_words + 2
    assert not short_score.truncated and short_score.n_tokens == 4  # <sot> a fox <eot>
    # What the model saw is the first 76 tokens: anything after them changes nothing.
    cut = scorer.score(images[:1], [LONG_PROMPT + " and a completely different ending"])[0]
    assert cut.cosine == pytest.approx(long_score.cosine, abs=1e-6)
    assert cut.truncated


def test_prompt_of_exactly_the_context_length_is_not_truncated(tiny_clip: ClipModel) -> None:
    scorer = ClipScorer(tiny_clip)
    prompt = " ".join(["cat"] * 75)  # 75 tokens + <sot> + <eot> = 77
    exact, over = scorer.score(sample(2)[0], [prompt, prompt + " cat"])
    assert (exact.n_tokens, exact.truncated) == (77, False)
    assert (over.n_tokens, over.truncated) == (78, True)


def test_tokenization_matches_open_clips_tokenizer(tiny_clip: ClipModel) -> None:
    import torch

    from diffwatch.scoring.clip.text import tokenize

    prompts = [*PROMPTS, LONG_PROMPT]
    ours = tokenize(tiny_clip.tokenizer, prompts, tiny_clip.context_length)
    assert torch.equal(ours.ids, tiny_clip.tokenizer(prompts))
    assert ours.truncated == (False,) * len(PROMPTS) + (True,)


def test_same_inputs_give_same_scores(tiny_clip: ClipModel) -> None:
    images, prompts = sample(12)
    first = ClipScorer(tiny_clip).score(images, prompts)
    second = ClipScorer(tiny_clip).score(images, prompts)
    assert first == second


def test_pil_and_numpy_inputs_score_the_same(tiny_clip: ClipModel) -> None:
    from PIL import Image

    images, prompts = sample(5)
    scorer = ClipScorer(tiny_clip)
    as_pil = [Image.fromarray(im) for im in images]
    as_rgba = [Image.fromarray(im).convert("RGBA") for im in images]
    base = cosines(scorer.score(images, prompts))
    np.testing.assert_array_equal(cosines(scorer.score(as_pil, prompts)), base)
    np.testing.assert_array_equal(cosines(scorer.score(as_rgba, prompts)), base)


def test_embed_texts_are_unit_vectors(tiny_clip: ClipModel) -> None:
    emb = ClipScorer(tiny_clip).embed_texts(PROMPTS)
    assert emb.shape == (len(PROMPTS), tiny_clip.embed_dim) and emb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    assert ClipScorer(tiny_clip).embed_texts([]).shape == (0, tiny_clip.embed_dim)


def test_empty_batch_gives_no_scores(tiny_clip: ClipModel) -> None:
    assert ClipScorer(tiny_clip).score([], []) == []


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (np.zeros((8, 8), dtype=np.uint8), "HxWx3 uint8"),
        (np.zeros((8, 8, 4), dtype=np.uint8), "HxWx3 uint8"),
        (np.zeros((8, 8, 3), dtype=np.float32), "HxWx3 uint8"),
        (np.zeros((0, 8, 3), dtype=np.uint8), "empty image"),
        ("cat.png", "a torch tensor or a PIL image"),
    ],
)
def test_bad_images_name_their_index(tiny_clip: ClipModel, image: object, message: str) -> None:
    images, prompts = sample(2)
    with pytest.raises((ValueError, TypeError), match=rf"image 1: .*{message}"):
        ClipScorer(tiny_clip).score([images[0], image], prompts)  # type: ignore[list-item]


def test_mismatched_lengths_and_bad_prompts_are_errors(tiny_clip: ClipModel) -> None:
    images, prompts = sample(3)
    scorer = ClipScorer(tiny_clip)
    with pytest.raises(ValueError, match="3 images and 2 prompts"):
        scorer.score(images, prompts[:2])
    with pytest.raises(TypeError, match="prompt 1"):
        scorer.score(images, [prompts[0], None, prompts[2]])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="batch_size"):
        ClipScorer(tiny_clip, batch_size=0)


def test_checkpoint_path_is_recorded(tiny_clip: ClipModel) -> None:
    assert Path(tiny_clip.source.split("'")[1]).is_file()

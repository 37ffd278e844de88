"""CLIP prompt–image alignment (CLIPScore) with open_clip: a pure scorer, batch in, scores out.

Public API (importing this module loads neither torch nor a model)::

    from diffwatch.scoring.clip.scorer import ClipConfig, ClipScorer, load_clip

    clip = load_clip(ClipConfig(checkpoint="/models/open_clip_pytorch_model.bin"))
    scores = ClipScorer(clip).score(images, prompts)  # list[ClipScore], one per image

CLIPScore = 100 * max(cos(image_embedding, text_embedding), 0), in [0, 100].
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from diffwatch.scoring.clip.config import ClipConfig, ClipWeightsError
from diffwatch.scoring.clip.load import ClipModel, load_clip
from diffwatch.scoring.clip.preprocess import ImageInput, PreprocessSpec, preprocess_batch
from diffwatch.scoring.clip.text import TokenizedPrompts, check_prompts, tokenize

if TYPE_CHECKING:
    import torch

__all__ = [
    "ClipConfig",
    "ClipModel",
    "ClipScore",
    "ClipScorer",
    "ClipWeightsError",
    "ImageInput",
    "PreprocessSpec",
    "ScoredBatch",
    "load_clip",
]


@dataclass(frozen=True)
class ClipScore:
    """One image's alignment with its prompt.

    ``score`` is CLIPScore, 100 * max(cosine, 0), in [0, 100]; ``cosine`` is the raw
    cosine similarity in [-1, 1]; ``n_tokens`` is the prompt's length in tokens with
    the start and end tokens, before truncation; ``truncated`` is True when that is
    over the model's context length (77 for CLIP), so the tail was not seen.
    """

    score: float
    cosine: float
    truncated: bool
    n_tokens: int


@dataclass(frozen=True)
class ScoredBatch:
    """A batch's scores with what CLIP computed on the way: image embeddings (N, D) float32
    in input order, and each distinct prompt's text embedding (D,), all L2-normalised."""

    scores: list[ClipScore]
    image_embeddings: np.ndarray
    text_embeddings: dict[str, np.ndarray]


class ClipScorer:
    """Scores image–prompt pairs with a loaded ClipModel, ``batch_size`` items per forward pass."""

    def __init__(self, clip: ClipModel, batch_size: int = 64) -> None:
        if batch_size < 1:
            raise ValueError(f"ClipScorer batch_size: must be >= 1, got {batch_size}")
        self.clip = clip
        self.batch_size = batch_size

    @property
    def _dtype(self) -> torch.dtype:
        import torch

        return torch.float16 if self.clip.precision == "fp16" else torch.float32

    def _encode_images(self, images: Sequence[ImageInput]) -> torch.Tensor:
        """L2-normalised image embeddings (N, D), float32 on the model's device."""
        import torch
        import torch.nn.functional as F

        parts = []
        with torch.inference_mode():
            for start in range(0, len(images), self.batch_size):
                chunk = images[start : start + self.batch_size]
                pixels = preprocess_batch(
                    chunk, self.clip.preprocess, self.clip.device, self._dtype
                )
                parts.append(F.normalize(self.clip.model.encode_image(pixels).float(), dim=-1))
        if not parts:
            return torch.empty((0, self.clip.embed_dim), device=self.clip.device)
        return torch.cat(parts)

    def _encode_token_ids(self, ids: torch.Tensor) -> torch.Tensor:
        """L2-normalised text embeddings (N, D), float32 on the model's device."""
        import torch
        import torch.nn.functional as F

        parts = []
        with torch.inference_mode():
            for start in range(0, ids.shape[0], self.batch_size):
                chunk = ids[start : start + self.batch_size].to(self.clip.device)
                parts.append(F.normalize(self.clip.model.encode_text(chunk).float(), dim=-1))
        if not parts:
            return torch.empty((0, self.clip.embed_dim), device=self.clip.device)
        return torch.cat(parts)

    def embed_texts(self, prompts: Sequence[str]) -> np.ndarray:
        """L2-normalised text embeddings, float32 array of shape (len(prompts), embed_dim)."""
        tokens = tokenize(self.clip.tokenizer, list(prompts), self.clip.context_length)
        return self._encode_token_ids(tokens.ids).cpu().numpy()

    def embed_images(self, images: Sequence[ImageInput]) -> np.ndarray:
        """L2-normalised image embeddings, float32 array of shape (len(images), embed_dim).

        Images are HxWx3 uint8 RGB numpy arrays or PIL images (converted to RGB).
        """
        return self._encode_images(list(images)).cpu().numpy()

    def score(
        self,
        images: Sequence[ImageInput],
        prompts: Sequence[str],
        tokens: TokenizedPrompts | None = None,
    ) -> list[ClipScore]:
        """CLIPScore of each image against the prompt at the same index, in input order
        (``score_and_embed`` without the embeddings)."""
        return self.score_and_embed(images, prompts, tokens).scores

    def score_and_embed(
        self,
        images: Sequence[ImageInput],
        prompts: Sequence[str],
        tokens: TokenizedPrompts | None = None,
    ) -> ScoredBatch:
        """CLIPScore of each image against the prompt at the same index, in input order,
        with the L2-normalised image embeddings and each distinct prompt's text embedding.

        Images are HxWx3 uint8 RGB numpy arrays, torch tensors (on the model's device,
        as nvJPEG gives them) or PIL images (converted to RGB); any sizes, mixed.
        ``tokens``: the prompts already tokenized with this model's tokenizer (one row per
        prompt), or None to tokenize here. Repeated prompts are embedded once.
        """
        if len(images) != len(prompts):
            raise ValueError(
                f"ClipScorer.score: got {len(images)} images and {len(prompts)} prompts; "
                "fix: pass one prompt per image"
            )
        if tokens is not None and len(tokens) != len(prompts):
            raise ValueError(
                f"ClipScorer.score: got {len(tokens)} tokenized prompts for {len(prompts)} prompts"
            )
        check_prompts(prompts)
        first: dict[str, int] = {}
        for i, p in enumerate(prompts):
            first.setdefault(p, i)
        unique = list(first)
        if tokens is None:
            tokens = tokenize(self.clip.tokenizer, unique, self.clip.context_length)
        else:
            tokens = tokens.take(list(first.values()))
        text = self._encode_token_ids(tokens.ids)
        image = self._encode_images(list(images))
        row = {p: i for i, p in enumerate(unique)}
        index = [row[p] for p in prompts]
        if not index:
            return ScoredBatch([], np.empty((0, self.clip.embed_dim), np.float32), {})
        import torch

        rows = torch.tensor(index, device=text.device)
        cosines = (image * text[rows]).sum(dim=-1).clamp(-1.0, 1.0).cpu().tolist()
        scores = [
            ClipScore(
                score=100.0 * max(cos, 0.0),
                cosine=cos,
                truncated=tokens.truncated[i],
                n_tokens=tokens.n_tokens[i],
            )
            for cos, i in zip(cosines, index, strict=True)
        ]
        text_rows = text.cpu().numpy()
        return ScoredBatch(scores, image.cpu().numpy(), {p: text_rows[i] for p, i in row.items()})

"""The scorers a worker runs, each with a version that changes with its model and policy.

Each adapter turns a model's own output into ``ScoreOutcome``s; building one loads its model
(explicit device and precision), so nothing here runs at import time.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from diffwatch.db.queries.scoring import ScorerKey
from diffwatch.scoring.base import ScoreOutcome, Scorer

if TYPE_CHECKING:  # the model modules load torch/onnxruntime: import them only when used
    from diffwatch.scoring.clip.config import ClipConfig, ClipOptions
    from diffwatch.scoring.clip.scorer import ClipScorer
    from diffwatch.scoring.clip.text import PromptTokenizer, TokenizedPrompts
    from diffwatch.scoring.nsfw.detector import NsfwPolicy

SCORER_NAMES = ("clip", "nsfw")


def _file_digest(path: str | Path, n: int = 12) -> str:
    """Short sha256 of a file (identifies local weights in a scorer version)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:n]


class ClipAlignmentScorer:
    """CLIPScore of each image against its prompt (value in [0, 100])."""

    def __init__(self, cfg: ClipConfig, batch_size: int = 64) -> None:
        from diffwatch.scoring.clip.scorer import ClipScorer, load_clip

        self.clip = load_clip(cfg)
        self._scorer = ClipScorer(self.clip, batch_size=batch_size)
        self.key = ScorerKey("clip", clip_label(cfg))
        self.embedding_dims: int | None = self.clip.embed_dim

    @property
    def prompt_tokenizer(self) -> PromptTokenizer:
        """This model's tokenizer, for loaders that tokenize prompts while images load."""
        from diffwatch.scoring.clip.text import PromptTokenizer

        return PromptTokenizer(self.clip.tokenizer, self.clip.context_length)

    def score(
        self,
        images: Sequence[np.ndarray | Any],
        prompts: Sequence[str],
        tokens: TokenizedPrompts | None = None,
    ) -> list[ScoreOutcome]:
        """CLIPScore per image, with the cosine and prompt truncation in the details, and
        the image's and its prompt's embeddings."""
        batch = self._scorer.score_and_embed(list(images), list(prompts), tokens=tokens)
        return [
            ScoreOutcome(
                s.score,
                None,
                {
                    "cosine": s.cosine,
                    "truncated": s.truncated,
                    "n_tokens": s.n_tokens,
                    "precision": self.clip.precision,
                },
                embedding=batch.image_embeddings[i],
                prompt_embedding=batch.text_embeddings[p],
            )
            for i, (s, p) in enumerate(zip(batch.scores, prompts, strict=True))
        ]


class NsfwScorer:
    """NudeNet 320n, batched: flagged when a policy label scores at or over the threshold."""

    def __init__(
        self, device: str = "cpu", batch_size: int = 32, policy: NsfwPolicy | None = None
    ) -> None:
        from diffwatch.scoring.nsfw.detector import (
            NsfwPolicy,
            default_model_path,
            load_nsfw_detector,
        )

        self.embedding_dims: int | None = None
        self.policy = policy or NsfwPolicy()
        self.detector = load_nsfw_detector(device=device, batch_size=batch_size)
        labels = ",".join(sorted(self.policy.labels))
        digest = hashlib.sha256(labels.encode()).hexdigest()[:8]
        self.key = ScorerKey(
            "nsfw",
            f"nudenet-320n-{_file_digest(default_model_path())}"
            f"/t{self.policy.threshold:g}/labels-{digest}",
        )

    def score(
        self,
        images: Sequence[np.ndarray | Any],
        prompts: Sequence[str],
        tokens: TokenizedPrompts | None = None,
    ) -> list[ScoreOutcome]:
        """The highest policy-label score per image (0 when none), the flag and the boxes."""
        from diffwatch.scoring.nsfw.detector import flag

        out = []
        for dets in self.detector.detect_batch(list(images)):
            res = flag(dets, self.policy)
            out.append(ScoreOutcome(res.max_score, res.flagged, res.details))
        return out


@dataclass(frozen=True)
class ScorerOptions:
    """What the CLI passes to build scorers."""

    names: tuple[str, ...]
    device: str = "auto"
    batch_size: int = 64
    clip_model: str = "ViT-B-32"
    clip_pretrained: str | None = "laion2b_s34b_b79k"
    clip_checkpoint: str | None = None
    clip_model_config: str | None = None  # an open_clip model config JSON (custom models)
    nsfw_threshold: float = 0.5
    nsfw_labels: tuple[str, ...] | None = None
    torch_threads: int | None = None  # CPU threads per worker (several workers on one host)


def resolve_device(device: str) -> str:
    """'auto' → 'cuda' when a GPU is visible to torch, else 'cpu'."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _register_model_config(path: str, model_name: str) -> None:
    """Make a custom architecture known to open_clip under its file's stem."""
    import open_clip

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"--clip-model-config {path}: no such file")
    if p.stem != model_name:
        raise ValueError(
            f"--clip-model-config {path} defines model {p.stem!r} but --clip-model is "
            f"{model_name!r}; pass --clip-model {p.stem}"
        )
    open_clip.add_model_config(p)


def clip_config(
    model: str,
    pretrained: str | None,
    checkpoint: str | None,
    model_config: str | None,
    device: str,
) -> ClipConfig:
    """The ClipConfig of the ``--clip-*`` options (registers a custom architecture first)."""
    from diffwatch.scoring.clip.config import ClipConfig

    if model_config:
        _register_model_config(model_config, model)
    return ClipConfig(model_name=model, pretrained=pretrained, checkpoint=checkpoint, device=device)


def clip_label(cfg: ClipConfig) -> str:
    """``ViT-B-32/laion2b_s34b_b79k`` or ``ViT-B-32/file-<sha256 prefix>``: model and weights."""
    weights = f"file-{_file_digest(cfg.checkpoint)}" if cfg.checkpoint else cfg.pretrained
    return f"{cfg.model_name}/{weights}"


def load_clip_scorer(clip: ClipOptions, device: str) -> tuple[ClipScorer, str]:
    """The CLIP of the ``--clip-*`` options on ``device`` (weights load here), and its label
    (``clip_label``: model and weights)."""
    from diffwatch.scoring.clip.scorer import ClipScorer, load_clip

    cfg = clip_config(clip.model, clip.pretrained, clip.checkpoint, clip.model_config, device)
    return ClipScorer(load_clip(cfg)), clip_label(cfg)


def scorer_options(names: tuple[str, ...], clip: ClipOptions, **kw: Any) -> ScorerOptions:
    """ScorerOptions for ``names`` with the CLIP of ``clip`` (``kw``: the other fields)."""
    return ScorerOptions(
        names=names,
        clip_model=clip.model,
        clip_pretrained=clip.pretrained,
        clip_checkpoint=clip.checkpoint,
        clip_model_config=clip.model_config,
        **kw,
    )


def build_scorers(opts: ScorerOptions) -> list[Scorer]:
    """Load every requested scorer (models load here, on ``opts.device``)."""
    unknown = set(opts.names) - set(SCORER_NAMES)
    if unknown:
        raise ValueError(
            f"--scorers: unknown scorer {', '.join(sorted(unknown))}; choose from "
            f"{', '.join(SCORER_NAMES)}"
        )
    device = resolve_device(opts.device)
    if opts.torch_threads:
        import torch

        torch.set_num_threads(opts.torch_threads)
    scorers: list[Scorer] = []
    for name in opts.names:
        if name == "clip":
            cfg = clip_config(
                opts.clip_model,
                opts.clip_pretrained,
                opts.clip_checkpoint,
                opts.clip_model_config,
                device,
            )
            scorers.append(ClipAlignmentScorer(cfg, batch_size=opts.batch_size))
        else:
            from diffwatch.scoring.nsfw.detector import NsfwPolicy

            policy = NsfwPolicy(
                **({"labels": frozenset(opts.nsfw_labels)} if opts.nsfw_labels else {}),
                threshold=opts.nsfw_threshold,
            )
            scorers.append(NsfwScorer(device, opts.batch_size, policy))
    return scorers

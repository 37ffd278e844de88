"""Prompt tokenization for CLIP with per-prompt token counts and truncation flags."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class TokenizedPrompts:
    """Token ids (N, context_length), and per prompt its untruncated token count and flag.

    ``n_tokens`` counts the start and end tokens; a prompt is ``truncated`` when
    ``n_tokens`` is over the context length, and then only its first
    ``context_length - 1`` tokens and the end token reach the model.
    """

    ids: torch.Tensor
    n_tokens: tuple[int, ...]
    truncated: tuple[bool, ...]

    def __len__(self) -> int:
        return len(self.n_tokens)

    def take(self, rows: Sequence[int]) -> TokenizedPrompts:
        """The prompts at ``rows``, in that order."""
        import torch

        return TokenizedPrompts(
            ids=self.ids[torch.as_tensor(list(rows), dtype=torch.long)],
            n_tokens=tuple(self.n_tokens[i] for i in rows),
            truncated=tuple(self.truncated[i] for i in rows),
        )


@dataclass(frozen=True)
class PromptTokenizer:
    """A CLIP model's tokenizer and context length; picklable, so loader processes can
    tokenize a batch's prompts while its images load (``diffwatch.scoring.loader``)."""

    tokenizer: Any
    context_length: int

    def __call__(self, prompts: Sequence[str]) -> TokenizedPrompts:
        return tokenize(self.tokenizer, prompts, self.context_length)


def check_prompts(prompts: Sequence[str]) -> None:
    """Raise naming the first prompt that is not a string."""
    for i, p in enumerate(prompts):
        if not isinstance(p, str):
            raise TypeError(f"prompt {i}: expected a str, got {type(p).__name__}")


def tokenize(tokenizer: Any, prompts: Sequence[str], context_length: int) -> TokenizedPrompts:
    """Tokenize like open_clip's SimpleTokenizer.__call__, recording counts and truncation."""
    import torch

    check_prompts(prompts)
    sot, eot = tokenizer.sot_token_id, tokenizer.eot_token_id
    ids = torch.zeros((len(prompts), context_length), dtype=torch.long)
    counts: list[int] = []
    for i, prompt in enumerate(prompts):
        tokens = [sot, *tokenizer.encode(prompt), eot]
        counts.append(len(tokens))
        if len(tokens) > context_length:
            tokens = tokens[:context_length]
            tokens[-1] = eot
        ids[i, : len(tokens)] = torch.tensor(tokens, dtype=torch.long)
    return TokenizedPrompts(
        ids=ids,
        n_tokens=tuple(counts),
        truncated=tuple(n > context_length for n in counts),
    )

"""The one CLIP loader: open_clip's factory, explicit device and precision, never random weights."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from diffwatch.errors import first_line
from diffwatch.scoring import devices
from diffwatch.scoring.clip.config import (
    CHECKPOINT_FLAG,
    DEFAULT_PRETRAINED,
    ClipConfig,
    ClipWeightsError,
)
from diffwatch.scoring.clip.preprocess import PreprocessSpec

if TYPE_CHECKING:
    import torch

HF_WEIGHTS_FILE = "open_clip_pytorch_model.bin"  # open_clip.constants.HF_WEIGHTS_NAME
_PREPROCESS_KEYS = ("mean", "std", "interpolation", "resize_mode")


@dataclass(frozen=True)
class ClipModel:
    """A loaded open_clip model in eval mode, with its tokenizer and preprocessing.

    ``source`` says where the weights came from, ``precision`` is ``fp32`` or ``fp16``,
    ``context_length`` is in tokens and ``embed_dim`` the embedding width.
    """

    model: torch.nn.Module
    tokenizer: Any  # open_clip.tokenizer.SimpleTokenizer
    preprocess: PreprocessSpec
    model_name: str
    source: str
    device: str
    precision: Literal["fp32", "fp16"]
    context_length: int
    embed_dim: int


@dataclass(frozen=True)
class _Source:
    """Where the weights come from: an open_clip tag or a local file (absolute path)."""

    kind: Literal["tag", "file"]
    value: str
    tag: str | None
    tag_cfg: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        if self.kind == "file":
            return f"checkpoint file {self.value!r}"
        repo, filename = _hf_location(self.tag_cfg)
        where = f" (Hugging Face Hub repo {repo}, file {filename})" if repo else ""
        return f"pretrained tag {self.value!r}{where}"


def _hf_location(tag_cfg: dict[str, Any]) -> tuple[str, str]:
    """(repo id, file name) of a tag's weights on the Hugging Face Hub, or ('', '')."""
    hub = tag_cfg.get("hf_hub", "")
    if not hub:
        return "", ""
    # open_clip's convention: 'org/name/' means the default file, 'org/name/file.ext' a named one.
    repo, filename = os.path.split(hub)
    return repo, filename or HF_WEIGHTS_FILE


def offline_fix(model_name: str, tag: str | None) -> str:
    """How to provide the weights with no hub reachable, naming the exact repo and file."""
    import open_clip

    tags = open_clip.list_pretrained_tags_by_model(model_name)
    if tag not in tags:
        tag = DEFAULT_PRETRAINED if DEFAULT_PRETRAINED in tags else (tags[0] if tags else None)
    repo, filename = _hf_location(open_clip.get_pretrained_cfg(model_name, tag) if tag else {})
    if not repo:
        return (
            f"To provide weights offline: save this architecture's open_clip state dict "
            f"(torch.save(model.state_dict(), PATH)) on a machine that has it and pass "
            f"{CHECKPOINT_FLAG} PATH (ClipConfig.checkpoint)."
        )
    return (
        f"To provide weights offline, either (1) on a machine with internet access download "
        f"https://huggingface.co/{repo}/resolve/main/{filename}, copy it here and pass "
        f"{CHECKPOINT_FLAG} PATH (ClipConfig.checkpoint) with pretrained={tag!r} kept for its "
        f"preprocessing; or (2) there run `hf download {repo} {filename}` (or "
        f"huggingface_hub.hf_hub_download({repo!r}, {filename!r})), copy the Hugging Face hub "
        f"cache (~/.cache/huggingface/hub, or $HF_HUB_CACHE, or ClipConfig.cache_dir) here and "
        f"set HF_HUB_OFFLINE=1."
    )


_READERS = ("torch/serialization.py", "torch/_weights_only_unpickler.py", "safetensors")


def _raised_while_reading(exc: BaseException) -> bool:
    """True when the exception came from inside torch's or safetensors' file reader."""
    tb = exc.__traceback__
    last = None
    while tb is not None:
        last = tb.tb_frame.f_code.co_filename
        tb = tb.tb_next
    return last is not None and any(r in last.replace("\\", "/") for r in _READERS)


def _file_reason(exc: BaseException) -> str | None:
    """Name the problem with a weights file from what torch.load / safetensors raised."""
    import pickle

    text = str(exc)
    unreadable = (
        isinstance(exc, pickle.UnpicklingError | EOFError)
        or type(exc).__name__ == "SafetensorError"
        or "PytorchStreamReader" in text
        or "magic number" in text
        # Garbage can make torch's unpickler fail in many ways (IndexError, KeyError,
        # UnicodeDecodeError, ...): whatever fails while reading the file is unreadable.
        or _raised_while_reading(exc)
    )
    if unreadable:
        # torch's own text suggests weights_only=False, which would run pickled code.
        return (
            f"not a readable weights file ({type(exc).__name__}): corrupt, truncated, or a "
            "pickle holding more than tensors; diffwatch loads with weights_only=True and "
            "never runs pickled code, so re-save it with torch.save(model.state_dict(), PATH)"
        )
    if isinstance(exc, AttributeError | StopIteration | TypeError):
        return (
            "the file does not hold a state dict (a non-empty dict of parameter names to "
            f"tensors) [{type(exc).__name__}: {first_line(exc)}]"
        )
    return None


def _reason(exc: BaseException, source: _Source, cache_dir: str | None) -> str:
    """A short reason; the full exception stays chained as ``__cause__``."""
    if source.kind == "tag" and "Failed to download" in str(exc):
        import huggingface_hub.constants as hf

        cache = cache_dir or hf.HF_HUB_CACHE
        why = "HF_HUB_OFFLINE=1 is set" if hf.HF_HUB_OFFLINE else "the hub could not be reached"
        return f"the file is not in the Hugging Face cache {cache} and {why}"
    if source.kind == "file":
        reason = _file_reason(exc)
        if reason:
            return reason
    # State-dict errors put the offending keys on the lines after the first.
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    text = "; ".join(lines[:3]) if lines else first_line(exc)
    text = text.rstrip(".")
    return text if len(text) <= 500 else text[:497] + "..."


def _resolve_source(cfg: ClipConfig) -> _Source:
    """Pick the weights source and check what can be checked before building the model."""
    import open_clip

    tags = open_clip.list_pretrained_tags_by_model(cfg.model_name)
    # open_clip's own tag matching: case-insensitive, '-' and '_' alike.
    cleaned = (cfg.pretrained or "").lower().replace("-", "_")
    tag = cleaned if cleaned in tags else None
    tag_cfg = dict(open_clip.get_pretrained_cfg(cfg.model_name, tag)) if tag else {}
    path_text = cfg.checkpoint
    if not path_text and cfg.pretrained and not tag and os.path.isfile(cfg.pretrained):
        path_text = cfg.pretrained  # open_clip also takes a file as `pretrained`
    if path_text:
        path = Path(path_text).expanduser().resolve()
        source = _Source("file", str(path), tag, tag_cfg)
        if not path.is_file():
            problem = "it is a directory" if path.is_dir() else "file not found"
            raise ClipWeightsError(
                cfg.model_name, source.describe(), problem, offline_fix(cfg.model_name, tag)
            )
        return source
    if not cfg.pretrained:
        raise ClipWeightsError(
            cfg.model_name,
            "nothing (pretrained and checkpoint are both unset)",
            "no weights source was given",
            offline_fix(cfg.model_name, None),
        )
    if not tag:
        known = ", ".join(tags) if tags else "none"
        raise ClipWeightsError(
            cfg.model_name,
            f"pretrained tag {cfg.pretrained!r}",
            f"not a known open_clip tag for this model (known tags: {known}) nor a file",
            offline_fix(cfg.model_name, None),
        )
    return _Source("tag", tag, tag, tag_cfg)


def resolve_device(device: str) -> str:
    """'auto' → 'cuda' when available, else 'cpu'; a cuda device with no GPU is an error."""
    return devices.resolve_device(device, "ClipConfig")


def resolve_precision(precision: str, device: str) -> Literal["fp32", "fp16"]:
    """'auto' → fp16 on cuda, fp32 on cpu; fp16 on cpu is an error."""
    return devices.resolve_precision(precision, device, "ClipConfig")


def _check_architecture(model_name: str) -> dict[str, Any]:
    """The model's open_clip config; only models with the CLIP BPE tokenizer are supported."""
    import open_clip

    model_cfg = open_clip.get_model_config(model_name)
    if model_cfg is None:
        raise ValueError(
            f"ClipConfig.model_name: {model_name!r} is not an open_clip architecture; "
            "fix: use one of open_clip.list_models(), e.g. 'ViT-B-32' or 'ViT-L-14'"
        )
    text_cfg = model_cfg.get("text_cfg", {})
    if (
        text_cfg.get("hf_tokenizer_name")
        or text_cfg.get("tokenizer_kwargs")
        or "siglip" in model_name.lower()
    ):
        raise ValueError(
            f"ClipConfig.model_name: {model_name!r} does not use open_clip's CLIP BPE "
            "tokenizer, which CLIPScore's truncation accounting relies on; fix: use a CLIP "
            "model such as 'ViT-B-32', 'ViT-L-14' or 'ViT-H-14'"
        )
    return model_cfg


def load_clip(cfg: ClipConfig) -> ClipModel:
    """Load an open_clip model with real weights, or raise ClipWeightsError (never random)."""
    import open_clip
    import torch

    model_cfg = _check_architecture(cfg.model_name)
    device = resolve_device(cfg.device)
    precision = resolve_precision(cfg.precision, device)
    source = _resolve_source(cfg)
    force_preprocess = (
        {k: source.tag_cfg[k] for k in _PREPROCESS_KEYS if k in source.tag_cfg}
        if source.kind == "file"
        else None
    )
    try:
        model = open_clip.create_model(
            cfg.model_name,
            pretrained=source.value,
            precision=precision,
            device=device,
            # Weights trained with QuickGELU must run with it; open_clip only warns.
            force_quick_gelu=bool(source.tag_cfg.get("quick_gelu", False)),
            force_preprocess_cfg=force_preprocess,
            cache_dir=cfg.cache_dir,
            # A full CLIP checkpoint is required: no per-tower base weights from the hub,
            # and open_clip raises instead of warning when nothing was loaded.
            pretrained_hf=False,
            require_pretrained=True,
        )
    except torch.OutOfMemoryError:
        raise
    except Exception as exc:
        raise ClipWeightsError(
            cfg.model_name,
            source.describe(),
            _reason(exc, source, cfg.cache_dir),
            offline_fix(cfg.model_name, source.tag),
        ) from exc
    model.eval().requires_grad_(False)
    context_length = int(getattr(model, "context_length", model_cfg["text_cfg"]["context_length"]))
    tokenizer = open_clip.get_tokenizer(cfg.model_name, context_length=context_length)
    if not isinstance(tokenizer, open_clip.SimpleTokenizer) or tokenizer.reduction_fn is not None:
        raise ValueError(
            f"ClipConfig.model_name: {cfg.model_name!r} got tokenizer "
            f"{type(tokenizer).__name__}, not the plain CLIP BPE tokenizer; fix: use a CLIP "
            "model such as 'ViT-B-32'"
        )
    return ClipModel(
        model=model,
        tokenizer=tokenizer,
        preprocess=PreprocessSpec.from_open_clip(open_clip.get_model_preprocess_cfg(model)),
        model_name=cfg.model_name,
        source=source.describe(),
        device=device,
        precision=precision,
        context_length=context_length,
        embed_dim=int(model_cfg["embed_dim"]),
    )

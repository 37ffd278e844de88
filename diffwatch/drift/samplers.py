"""Sampler names as generation services log them, mapped to diffusers schedulers.

Services log A1111 names ("DPM++ 2M Karras", "Euler a"), ComfyUI names ("dpmpp_2m",
"euler_ancestral"), Stability API names ("K_DPMPP_2M") or diffusers class names
("EulerDiscreteScheduler"). Re-generation needs the matching diffusers scheduler,
built from the production pipeline's own scheduler config. The mapping is diffusers' own
table (docs: api/schedulers/overview, "A1111/k-diffusion → Diffusers"). A "Karras" suffix
means Karras sigmas (``use_karras_sigmas=True``). An unknown name raises ``UnknownSampler``
with the names that are known: the caller records it as an error for that prompt.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


class UnknownSampler(ValueError):
    """A logged sampler name with no diffusers scheduler here."""


@dataclass(frozen=True)
class SamplerSpec:
    """A diffusers scheduler class name and the options that make it the logged sampler."""

    scheduler: str
    options: Mapping[str, Any] = field(default_factory=dict)


_SDE = {"algorithm_type": "sde-dpmsolver++"}

# Canonical names (lower case, single spaces) → scheduler and options.
_CANONICAL: dict[str, SamplerSpec] = {
    "ddim": SamplerSpec("DDIMScheduler"),
    "ddpm": SamplerSpec("DDPMScheduler"),
    "pndm": SamplerSpec("PNDMScheduler"),
    "euler": SamplerSpec("EulerDiscreteScheduler"),
    "euler a": SamplerSpec("EulerAncestralDiscreteScheduler"),
    "heun": SamplerSpec("HeunDiscreteScheduler"),
    "lms": SamplerSpec("LMSDiscreteScheduler"),
    "dpm2": SamplerSpec("KDPM2DiscreteScheduler"),
    "dpm2 a": SamplerSpec("KDPM2AncestralDiscreteScheduler"),
    "dpm++ 2m": SamplerSpec("DPMSolverMultistepScheduler"),
    "dpm++ 2m sde": SamplerSpec("DPMSolverMultistepScheduler", _SDE),
    "dpm++ sde": SamplerSpec("DPMSolverSinglestepScheduler"),
    "unipc": SamplerSpec("UniPCMultistepScheduler"),
    "deis": SamplerSpec("DEISMultistepScheduler"),
    "lcm": SamplerSpec("LCMScheduler"),
}

# Other spellings (after normalising: lower case, '_' and '-' as spaces) → canonical names.
_ALIASES: dict[str, str] = {
    "plms": "pndm",
    "euler ancestral": "euler a",
    "euler_a": "euler a",
    "dpm 2": "dpm2",
    "dpm 2 a": "dpm2 a",
    "dpm 2 ancestral": "dpm2 a",
    "dpm2 ancestral": "dpm2 a",
    "dpmpp 2m": "dpm++ 2m",
    "dpmpp 2m sde": "dpm++ 2m sde",
    "dpmpp sde": "dpm++ sde",
    "uni pc": "unipc",
    # Stability API (k-diffusion implementations, not Karras sigmas)
    "k euler": "euler",
    "k euler ancestral": "euler a",
    "k heun": "heun",
    "k lms": "lms",
    "k dpm 2": "dpm2",
    "k dpm 2 ancestral": "dpm2 a",
    "k dpmpp 2m": "dpm++ 2m",
    "k dpmpp sde": "dpm++ sde",
}
_BY_CLASS = {spec.scheduler.lower(): spec.scheduler for spec in _CANONICAL.values()}


def known_samplers() -> list[str]:
    """The canonical names understood, A1111 style (each also with a " Karras" suffix)."""
    return sorted(_CANONICAL)


def resolve(name: str | None) -> SamplerSpec:
    """The diffusers scheduler for a logged sampler name; ``UnknownSampler`` if none."""
    if not isinstance(name, str) or not name.strip():
        raise UnknownSampler("no sampler was logged for this generation")
    raw = name.strip()
    if raw.lower() in _BY_CLASS:  # a diffusers class name, used as is
        return SamplerSpec(_BY_CLASS[raw.lower()])
    text = re.sub(r"[\s_\-]+", " ", raw.lower()).strip()
    karras = text.endswith(" karras")
    if karras:
        text = text[: -len(" karras")].strip()
    text = _ALIASES.get(text, text)
    spec = _CANONICAL.get(text)
    if spec is None:
        raise UnknownSampler(
            f"sampler {name!r} has no diffusers scheduler here; known: "
            f"{', '.join(known_samplers())} (each also with ' Karras'), ComfyUI and "
            "Stability API spellings, or a diffusers scheduler class name"
        )
    if karras:
        return SamplerSpec(spec.scheduler, {**spec.options, "use_karras_sigmas": True})
    return spec


def build_scheduler(name: str | None, base_config: Mapping[str, Any]) -> Any:
    """The diffusers scheduler for ``name``, from the pipeline's scheduler config.

    ``base_config`` is the production pipeline's ``pipe.scheduler.config`` (its beta
    schedule, prediction type and timestep spacing carry over). Raises ``UnknownSampler``
    when the name is unknown or the scheduler has no Karras sigmas in this diffusers.
    """
    import diffusers

    spec = resolve(name)
    cls = getattr(diffusers, spec.scheduler)
    accepted = inspect.signature(cls.__init__).parameters
    missing = [k for k in spec.options if k not in accepted]
    if missing:
        raise UnknownSampler(
            f"sampler {name!r}: diffusers {diffusers.__version__} {spec.scheduler} does not "
            f"take {', '.join(missing)}; log the sampler without it, or upgrade diffusers"
        )
    return cls.from_config(dict(base_config), **dict(spec.options))

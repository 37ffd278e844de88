"""Typed settings, read from ``DIFFWATCH_*`` environment variables when a factory asks."""

from __future__ import annotations

from ipaddress import IPv4Network, IPv6Network
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


def _default_home() -> Path:
    return Path.home() / ".local" / "share" / "diffwatch"


class Settings(BaseSettings):
    """Process-wide settings shared by every diffwatch component."""

    model_config = SettingsConfigDict(env_prefix="DIFFWATCH_", extra="ignore")

    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL (psycopg 3 driver). Unset: an embedded PostgreSQL "
        "is started under DIFFWATCH_HOME.",
    )
    home: Path = Field(
        default_factory=_default_home,
        description="Directory for the embedded PostgreSQL and demo data.",
    )
    demo_models: Path | None = Field(
        default=None,
        description="Where the demo keeps the models it trains or builds (its demo CLIP, "
        "its tiny pipeline). Unset: DIFFWATCH_HOME/demo-models.",
    )
    dashboard_url: str = Field(
        default="http://localhost:8501",
        description="Where people open the dashboard; alert emails link to views under it.",
    )
    trusted_proxies: Annotated[tuple[IPv4Network | IPv6Network, ...], NoDecode] = Field(
        default=(),
        description="Reverse proxies (addresses or CIDR networks, comma-separated) whose "
        "X-Forwarded-For the dashboard's login limits believe. Empty (the default): the "
        "header is ignored and the connection's own address counts.",
    )
    login_free_failures: int = Field(
        default=5,
        ge=1,
        description="Failed logins in a row for one username (and 4x as many from one "
        "address in 15 minutes) before each further attempt must wait.",
    )
    login_delay_s: float = Field(
        default=2.0,
        gt=0,
        description="The first wait after those failures (seconds); it doubles with each "
        "further failure.",
    )
    login_max_delay_s: float = Field(
        default=900.0,
        gt=0,
        description="The longest wait between attempts (seconds): no one can lock an "
        "account for longer.",
    )

    search_clip_model: str | None = Field(
        default=None,
        description="The open_clip architecture that encodes the dashboard's image-search "
        "text (e.g. ViT-B-32). It must be the CLIP whose image embeddings are stored, i.e. "
        "the one the scoring worker runs. Unset: text search says how to set it; "
        "'similar images' works without it (docs/dashboard.md).",
    )
    search_clip_pretrained: str | None = Field(
        default=None,
        description="The search CLIP's open_clip pretrained tag (e.g. laion2b_s34b_b79k), "
        "from the Hugging Face cache; as the worker's --clip-pretrained.",
    )
    search_clip_checkpoint: str | None = Field(
        default=None,
        description="A local weights file for the search CLIP (wins over the pretrained "
        "tag); as the worker's --clip-checkpoint, so the scorer versions match.",
    )
    search_clip_model_config: str | None = Field(
        default=None,
        description="An open_clip model config JSON for a custom search CLIP architecture "
        "(its file name, without .json, is DIFFWATCH_SEARCH_CLIP_MODEL).",
    )
    search_device: str = Field(
        default="cpu",
        pattern=r"^(cpu|auto|cuda(:\d+)?)$",
        description="Where the dashboard encodes search text: cpu (the default), cuda, "
        "cuda:N or auto.",
    )

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _split_proxies(cls, value: Any) -> Any:
        from diffwatch.model.client_address import parse_trusted

        if isinstance(value, str | list | tuple):
            return parse_trusted(value if isinstance(value, str) else [str(v) for v in value])
        return value

    image_roots: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Where image reads may go: local directories and remote prefixes "
        "(s3://bucket/prefix), comma-separated or a JSON list. Unset or empty: "
        "DIFFWATCH_HOME/demo/images, DIFFWATCH_HOME/demo/drift, DIFFWATCH_HOME/drift, "
        "DIFFWATCH_HOME/gate and DIFFWATCH_HOME/bias, "
        "nothing remote (docs/scoring.md).",
    )
    image_read_timeout_s: float = Field(
        default=30.0,
        gt=0,
        description="Seconds one image read may take before it fails as timed out.",
    )

    @field_validator("image_roots", mode="before")
    @classmethod
    def _split_roots(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                import json

                return json.loads(text)
            return [part.strip() for part in text.split(",") if part.strip()]
        return value

    @model_validator(mode="after")
    def _default_roots(self) -> Settings:
        if not self.image_roots:
            self.image_roots = [
                str(self.home / "demo" / "images"),
                str(self.home / "demo" / "drift"),  # the demo's re-generated images
                str(self.home / "drift"),
                str(self.home / "gate"),  # the release gate's images (docs/gate.md)
                str(self.home / "bias"),  # the bias probe's images (docs/bias.md)
            ]
        for root in self.image_roots:
            problem = _root_problem(root)
            if problem:
                raise ValueError(
                    f"DIFFWATCH_IMAGE_ROOTS entry {root!r}: {problem}; give absolute local "
                    "directories or remote prefixes such as s3://bucket/prefix, comma-separated"
                )
        return self


def _root_problem(root: str) -> str | None:
    """What is wrong with one DIFFWATCH_IMAGE_ROOTS entry, or None."""
    if "::" in root:
        return "chained fsspec URLs (::) are not allowed"
    if "://" in root:
        protocol, _, rest = root.partition("://")
        if not protocol or not rest.strip("/"):
            return "a remote root needs a protocol and a prefix (s3://bucket/prefix)"
        return None
    if not Path(root).expanduser().is_absolute():
        return "a local root must be an absolute directory"
    return None


def load_settings() -> Settings:
    """Read settings from the environment now (never at import time)."""
    return Settings()

"""Typed settings, read from ``DIFFWATCH_*`` environment variables when a factory asks."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


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
    dashboard_url: str = Field(
        default="http://localhost:8501",
        description="Where people open the dashboard; alert emails link to views under it.",
    )


def load_settings() -> Settings:
    """Read settings from the environment now (never at import time)."""
    return Settings()

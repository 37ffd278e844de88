"""Typed model of deploy markers (``diffwatch.model.deploy_markers``); migration 0014."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, DateTime, Index, Text, func
from sqlalchemy.orm import Mapped, mapped_column

from diffwatch.db.models import Base
from diffwatch.model.deploy_markers import SOURCES


class DeployMarkerRow(Base):
    """One rollout: a version reached a deployment (or every deployment) at a time."""

    __tablename__ = "deploy_markers"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    model_version: Mapped[str] = mapped_column(Text)
    deployment: Mapped[str | None] = mapped_column(Text)
    note: Mapped[str | None] = mapped_column(Text)
    source: Mapped[str] = mapped_column(Text)
    created_by: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    __table_args__ = (
        CheckConstraint("source IN (" + ", ".join(f"'{s}'" for s in SOURCES) + ")", name="source"),
        Index(None, "at"),
    )

"""Typed models of the account tables (migration 0009); imported by ``diffwatch.db.models``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from diffwatch.db.models import Base

ROLES = ("admin", "ops", "rater")
# Lower-case only: usernames are case-insensitive because they are stored lower-cased.
USERNAME_PATTERN = r"^[a-z0-9][a-z0-9._@-]{0,63}$"


class User(Base):
    """One local account: its role, argon2id hash and login bookkeeping."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(Text)  # lower-cased
    display_name: Mapped[str | None] = mapped_column(Text)
    role: Mapped[str] = mapped_column(Text)  # admin | ops | rater
    password_hash: Mapped[str] = mapped_column(Text)  # argon2id, PHC string
    active: Mapped[bool] = mapped_column(server_default=text("true"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    last_login_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    failed_logins: Mapped[int] = mapped_column(Integer, server_default=text("0"))  # in a row
    locked_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        CheckConstraint("role IN ('admin', 'ops', 'rater')", name="role"),
        CheckConstraint(
            f"username = lower(username) AND username ~ '{USERNAME_PATTERN}'", name="username"
        ),
        CheckConstraint("failed_logins >= 0", name="failed_logins"),
        UniqueConstraint("username"),
    )


class AuditEntry(Base):
    """Who (``actor``) did what (``action``) to what (``target``), and when."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    actor: Mapped[str | None] = mapped_column(Text)  # a username, 'cli' or 'system'
    action: Mapped[str] = mapped_column(Text)  # e.g. user.add, login.fail, rating.add
    target: Mapped[str | None] = mapped_column(Text)
    details: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))

    __table_args__ = (
        Index(None, "at"),
        Index(None, "action", "at"),
    )


class UserSession(Base):
    """A dashboard login that survives page reloads: the browser keeps a random token in a
    cookie, the database keeps only its SHA-256 (a stolen table cannot log anyone in)."""

    __tablename__ = "user_sessions"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    token_sha256: Mapped[str] = mapped_column(Text)  # hex
    user_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    last_seen_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))  # absolute limit
    ip: Mapped[str | None] = mapped_column(Text)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (UniqueConstraint("token_sha256"),)

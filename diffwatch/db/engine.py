"""Engine and session factories. Nothing connects until a factory is called."""

from __future__ import annotations

from sqlalchemy import Engine, create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from diffwatch.settings import Settings


def normalise_url(url: str) -> str:
    """Return ``url`` with the psycopg 3 driver, whatever Postgres spelling it came in."""
    u = make_url(url)
    if u.get_backend_name() != "postgresql":
        raise ValueError(
            f"DIFFWATCH_DATABASE_URL={u.render_as_string(hide_password=True)!r}: diffwatch "
            "needs PostgreSQL; use postgresql+psycopg://user:pass@host:5432/dbname"
        )
    return u.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)


def resolve_url(settings: Settings) -> str:
    """The configured database URL, or the embedded server's when none is configured."""
    if settings.database_url:
        return normalise_url(settings.database_url)
    from diffwatch.db.embedded import embedded_url  # imported lazily: it may start a server

    return embedded_url(settings.home)


def make_engine(url: str, **kwargs: object) -> Engine:
    """An engine that checks connections before use, so a restarted server is survivable."""
    return create_engine(normalise_url(url), pool_pre_ping=True, **kwargs)


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    """Session factory bound to ``engine``."""
    return sessionmaker(engine, expire_on_commit=False)


def raw_conninfo(url: str) -> str:
    """A libpq conninfo string for psycopg's own ``connect`` (used by COPY paths)."""
    return (
        make_url(normalise_url(url))
        .set(drivername="postgresql")
        .render_as_string(hide_password=False)
    )

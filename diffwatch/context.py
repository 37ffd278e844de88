"""What every CLI command needs: settings, the database URL, and a schema check."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from diffwatch.db import migrate
from diffwatch.db.engine import raw_conninfo, resolve_url
from diffwatch.settings import Settings, load_settings

log = logging.getLogger(__name__)


class SchemaOutOfDate(RuntimeError):
    """The database is not at the revision this code expects."""


@dataclass(frozen=True)
class Runtime:
    """Resolved settings and database location for one command."""

    settings: Settings
    url: str

    @property
    def conninfo(self) -> str:
        """libpq conninfo for direct psycopg connections."""
        return raw_conninfo(self.url)

    @property
    def embedded(self) -> bool:
        """True when running on the embedded server (no DIFFWATCH_DATABASE_URL)."""
        return not self.settings.database_url


def runtime(database_url: str | None = None) -> Runtime:
    """Build the runtime: an explicit URL wins over DIFFWATCH_DATABASE_URL, then embedded."""
    settings = load_settings()
    if database_url:
        settings = settings.model_copy(update={"database_url": database_url})
    return Runtime(settings, resolve_url(settings))


def ensure_schema(rt: Runtime) -> None:
    """Migrate the embedded database automatically; insist on ``db upgrade`` elsewhere."""
    current, head = migrate.current_revision(rt.url), migrate.head_revision()
    if current == head:
        return
    if rt.embedded:
        log.info("migrating the embedded database from %s to %s", current, head)
        migrate.upgrade(rt.url)
        return
    raise SchemaOutOfDate(
        f"the database is at schema revision {current or 'none (empty)'} but this diffwatch "
        f"expects {head}: run `diffwatch db upgrade` first"
    )

"""The embedded PostgreSQL (``pgserver``) used when DIFFWATCH_DATABASE_URL is unset."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from urllib.parse import quote

log = logging.getLogger(__name__)

DB_NAME = "diffwatch"


def embedded_url(home: Path) -> str:
    """Start (or join) the embedded server under ``home``/pgdata; return a psycopg URL."""
    pgdata = Path(home).expanduser() / "pgdata"
    pgdata.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (servers, containers); pgserver
        # then uses /tmp for its socket, which is fine.
        warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
        import pgserver  # heavy, and it starts processes: only when asked

        # cleanup_mode=None leaves the server running for the next diffwatch command
        # (dashboard, collectors) instead of stopping it when this process exits.
        server = pgserver.get_server(pgdata, cleanup_mode=None)
    exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{DB_NAME}';")
    if "(1 row)" not in exists:
        log.info("creating database %s in the embedded server at %s", DB_NAME, pgdata)
        server.psql(f"CREATE DATABASE {DB_NAME};")
    socket_dir = str(server.get_postmaster_info().socket_dir)
    return f"postgresql+psycopg://postgres@/{DB_NAME}?host={quote(socket_dir, safe='')}"

"""``diffwatch db``: create, migrate and inspect the database schema."""

# No ``from __future__ import annotations``: typer reads the annotations of the commands.
from typing import Annotated

import typer

from diffwatch.cli.common import fail, runtime
from diffwatch.cli.options import AsJson, DbUrl

app = typer.Typer(help="Create and migrate the database schema.", no_args_is_help=True)


@app.command("upgrade")
def db_upgrade(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "head",
    database_url: DbUrl = None,
) -> None:
    """Apply migrations (default: up to the newest).

    Also says whether image embeddings are on: they need PostgreSQL's pgvector extension;
    without it the line says how to install it, and a later upgrade creates their tables.
    """
    from diffwatch.db import migrate

    rt = runtime(database_url, migrate=False)
    migrate.upgrade(rt.url, revision)
    typer.echo(f"database at revision {migrate.current_revision(rt.url)}")
    if revision == "head":
        typer.echo(_embeddings_line(rt.conninfo))


def _embeddings_line(conninfo: str) -> str:
    """Create the embedding tables if pgvector came since; say whether embeddings are on."""
    import psycopg

    from diffwatch.db.queries import embeddings

    with psycopg.connect(conninfo, autocommit=True) as conn:
        return embeddings.ensure_schema(conn).describe()


@app.command("downgrade")
def db_downgrade(
    revision: Annotated[str, typer.Argument(help="Target revision, or 'base' for empty.")],
    database_url: DbUrl = None,
) -> None:
    """Revert migrations down to REVISION (data in dropped tables is lost)."""
    from diffwatch.db import migrate

    rt = runtime(database_url, migrate=False)
    migrate.downgrade(rt.url, revision)
    typer.echo(f"database at revision {migrate.current_revision(rt.url) or 'base'}")


@app.command("current")
def db_current(database_url: DbUrl = None) -> None:
    """Show the schema revision of the database and of this code."""
    from diffwatch.db import migrate

    rt = runtime(database_url, migrate=False)
    typer.echo(f"database: {migrate.current_revision(rt.url) or 'none'}")
    typer.echo(f"code:     {migrate.head_revision()}")
    import psycopg

    from diffwatch.db.queries import embeddings

    with psycopg.connect(rt.conninfo, autocommit=True) as conn:
        typer.echo(embeddings.support(conn).describe())


@app.command("prompt-index")
def db_prompt_index(
    drop: Annotated[bool, typer.Option("--drop", help="Drop the index instead.")] = False,
    status: Annotated[bool, typer.Option("--status", help="Only say where it stands.")] = False,
    database_url: DbUrl = None,
) -> None:
    """Build (or drop) the trigram index that makes the explorer's prompt search fast.

    Opt-in, because it slows every insert into generations about 6.6x (docs/dashboard.md);
    built CONCURRENTLY, so ingest goes on meanwhile. Needs PostgreSQL's pg_trgm extension.
    """
    import psycopg

    from diffwatch.db.queries import prompt_index

    rt = runtime(database_url)
    with psycopg.connect(rt.conninfo, autocommit=True) as conn:
        try:
            if drop:
                prompt_index.drop(conn)
            elif not status:
                prompt_index.create(conn)
        except prompt_index.PromptIndexUnavailable as exc:
            raise fail(str(exc)) from None
        st = prompt_index.state(conn)
    size = f", {st.size_bytes / 2**20:,.1f} MiB" if st.size_bytes is not None else ""
    typer.echo(
        f"prompt index {prompt_index.INDEX}: {'present' if st.present else 'absent'}{size}"
        f" (pg_trgm {'available' if st.available else 'not available'} on this server)"
    )


@app.command("index-embeddings")
def db_index_embeddings(
    connections: Annotated[
        int,
        typer.Option(
            min=1, max=64, help="Parallel connections (each keeps one database core busy)."
        ),
    ] = 4,
    as_json: AsJson = False,
    database_url: DbUrl = None,
) -> None:
    """Move the image embeddings that scoring stored since the last run into the search
    index (HNSW), until none is left. `diffwatch worker` does this every few seconds; run
    it by hand after a bulk scoring run. Searches and drift read pending rows meanwhile."""
    import json

    import psycopg

    from diffwatch.db.queries import embeddings
    from diffwatch.embeddings.index import index_pending

    rt = runtime(database_url)
    with psycopg.connect(rt.conninfo, autocommit=True) as conn:
        st = embeddings.support(conn)
        if not st.enabled:
            raise fail(st.describe())
        pending = embeddings.pending_count(conn)
    moved = index_pending(rt.conninfo, connections=connections)
    if as_json:
        typer.echo(json.dumps({"pending": pending, "indexed": moved}))
    else:
        typer.echo(f"indexed {moved:,} image embeddings ({pending:,} were pending)")


def register(root: typer.Typer, name: str) -> None:
    """Add this group to ``root`` as ``name`` (called by ``diffwatch.cli`` when it is run)."""
    root.add_typer(app, name=name)

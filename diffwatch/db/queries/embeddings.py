"""Image and prompt embeddings in pgvector: whether the server can hold them, their tables, and
how the scoring worker stores them.

The embedding tables need PostgreSQL's ``vector`` extension (pgvector). It is optional: the
embedded server ships it, a packaged server may not. Without it these tables do not exist,
``diffwatch db upgrade`` says how to install it, and everything that does not read
embeddings (scoring, pages, alerts) works as before. Installing it later and running
``db upgrade`` again creates the tables (``ensure_schema``).

Each CLIP scorer version is an *embedding space* (``embedding_spaces``): its width and the
partial HNSW index (cosine) that serves it. Columns are ``halfvec`` (half precision, 2 bytes
a dimension) where the extension is 0.7.0 or newer, else ``vector`` (4 bytes a dimension);
a column without a fixed width holds every space, and each space's index is built on the
expression ``embedding::<type>(<width>)`` restricted to its scorer version, as pgvector's
documentation recommends for mixed widths. Queries must use that same expression and
predicate for the planner to pick the index (``space_expr``).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import psycopg
from psycopg import sql

log = logging.getLogger(__name__)

EXTENSION = "vector"
HALFVEC_SINCE = (0, 7, 0)
IMAGE_TABLE = "image_embeddings"
PENDING_TABLE = "image_embeddings_pending"
PROMPT_TABLE = "prompt_embeddings"
TABLES = (IMAGE_TABLE, PENDING_TABLE, PROMPT_TABLE)
INDEX_BATCH = 2000  # pending rows moved into the index per transaction
HNSW_M = 16  # pgvector's defaults, named so the benchmark and the docs agree
HNSW_EF_CONSTRUCTION = 64
INSTALL_HINT = (
    "install pgvector on the database server (Debian/Ubuntu: apt install "
    "postgresql-<major>-pgvector; other platforms: https://github.com/pgvector/pgvector"
    "#installation), then run `diffwatch db upgrade` again. Scoring, the dashboard and "
    "alerts work without it; image drift, search and duplicate detection need it"
)


class EmbeddingsUnavailable(RuntimeError):
    """The database cannot hold embeddings (no pgvector); the message says how to fix it."""


@dataclass(frozen=True, slots=True)
class Support:
    """What this database offers for embeddings."""

    available: str | None  # the extension version the server could install, or None
    installed: str | None  # the version installed in this database, or None
    tables: bool  # the embedding tables exist

    @property
    def enabled(self) -> bool:
        """Embeddings can be stored and read here."""
        return self.installed is not None and self.tables

    @property
    def vector_type(self) -> str:
        """'halfvec' (pgvector 0.7.0 and newer) or 'vector'."""
        return vector_type(self.installed or self.available or "0")

    def describe(self) -> str:
        """One line for `db upgrade` and errors: on (with version and type) or off, and why."""
        if self.enabled:
            width = "half precision" if self.vector_type == "halfvec" else "single precision"
            return f"image embeddings: on (pgvector {self.installed}, {self.vector_type}, {width})"
        if self.available is None:
            return f"image embeddings: off, this server has no pgvector extension: {INSTALL_HINT}"
        return (
            f"image embeddings: off, pgvector {self.available} is available but not installed "
            "in this database: run `diffwatch db upgrade` as a user allowed to CREATE "
            "EXTENSION (a superuser), or ask one to run CREATE EXTENSION vector here"
        )


def _version_tuple(version: str) -> tuple[int, ...]:
    parts = []
    for p in version.split("."):
        digits = "".join(ch for ch in p if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


def vector_type(extension_version: str) -> str:
    """The column type for an extension version: halfvec from 0.7.0, else vector."""
    return "halfvec" if _version_tuple(extension_version) >= HALFVEC_SINCE else "vector"


def support(conn: psycopg.Connection) -> Support:
    """Whether pgvector is available, installed, and the embedding tables exist."""
    row = conn.execute(
        "SELECT (SELECT default_version FROM pg_available_extensions WHERE name = %(e)s),"
        " (SELECT extversion FROM pg_extension WHERE extname = %(e)s),"
        " to_regclass('image_embeddings') IS NOT NULL"
        " AND to_regclass('image_embeddings_pending') IS NOT NULL"
        " AND to_regclass('prompt_embeddings') IS NOT NULL",
        {"e": EXTENSION},
    ).fetchone()
    return Support(available=row[0], installed=row[1], tables=bool(row[2]))


def ensure_schema(conn: psycopg.Connection) -> Support:
    """Install pgvector and create the embedding tables where the server has the extension.

    Idempotent; a server without pgvector is left as it is (the result says so). Runs in the
    caller's transaction when there is one (the migration), else in its own.
    """
    st = support(conn)
    if st.available is None:
        return st
    with conn.transaction():
        if st.installed is None:
            try:
                with conn.transaction():
                    conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
            except psycopg.errors.InsufficientPrivilege:
                log.warning(Support(st.available, None, False).describe())
                return support(conn)
        st = support(conn)
        vt = sql.SQL(st.vector_type)
        conn.execute(
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS image_embeddings ("
                " generation_id bigint NOT NULL REFERENCES generations(id) ON DELETE CASCADE,"
                " scorer_version text NOT NULL,"
                " embedding {vt} NOT NULL,"
                " created_at timestamptz NOT NULL DEFAULT now(),"
                " PRIMARY KEY (generation_id, scorer_version))"
            ).format(vt=vt)
        )
        # Scoring writes here, in its own transaction: a row costs about as much as any
        # other (no vector index), and ``index_pending`` moves rows into image_embeddings,
        # whose HNSW index costs milliseconds a row to maintain, off the scoring path.
        conn.execute(
            "CREATE TABLE IF NOT EXISTS image_embeddings_pending"
            " (LIKE image_embeddings INCLUDING DEFAULTS INCLUDING CONSTRAINTS,"
            " PRIMARY KEY (generation_id, scorer_version),"
            " FOREIGN KEY (generation_id) REFERENCES generations(id) ON DELETE CASCADE)"
        )
        conn.execute(
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS prompt_embeddings ("
                " scorer_version text NOT NULL,"
                " prompt_sha bytea NOT NULL,"  # sha256 of the prompt's UTF-8 bytes
                " embedding {vt} NOT NULL,"
                " created_at timestamptz NOT NULL DEFAULT now(),"
                " PRIMARY KEY (scorer_version, prompt_sha))"
            ).format(vt=vt)
        )
    return support(conn)


def drop_schema(conn: psycopg.Connection) -> None:
    """Drop the embedding tables (the migration's downgrade); the extension stays."""
    conn.execute(
        "DROP TABLE IF EXISTS image_embeddings, image_embeddings_pending, prompt_embeddings"
    )


def index_name(scorer_version: str) -> str:
    """The HNSW index of a space: a name derived from its scorer version (any text)."""
    return "image_embeddings_hnsw_" + hashlib.sha256(scorer_version.encode()).hexdigest()[:16]


def space_expr(vtype: str, dims: int) -> sql.Composed:
    """``embedding::<type>(<width>)``: the expression a space's index is built on."""
    if vtype not in ("vector", "halfvec"):
        raise ValueError(f"vector type {vtype!r}: expected vector or halfvec")
    return sql.SQL("embedding::{t}({d})").format(t=sql.SQL(vtype), d=sql.Literal(int(dims)))


def ensure_space(conn: psycopg.Connection, scorer_version: str, dims: int, vtype: str) -> None:
    """Register a scorer version's space and build its HNSW index, once.

    The row insert serialises concurrent workers: the second waits for the first's commit,
    then finds the row and does nothing. Building the index on a new version scans the table
    once (its predicate matches no row yet), so it is quick even on a large table.
    """
    if dims < 1 or dims > 4000:
        raise ValueError(f"embedding width {dims}: pgvector's HNSW index takes 1 to 4000")
    with conn.transaction():
        row = conn.execute(
            "INSERT INTO embedding_spaces (scorer_version, dims, vector_type, index_name)"
            " VALUES (%s, %s, %s, %s) ON CONFLICT (scorer_version) DO NOTHING RETURNING dims",
            (scorer_version, dims, vtype, index_name(scorer_version)),
        ).fetchone()
        if row is None:
            have = conn.execute(
                "SELECT dims FROM embedding_spaces WHERE scorer_version = %s", (scorer_version,)
            ).fetchone()[0]
            if have != dims:
                raise ValueError(
                    f"scorer version {scorer_version!r} has {have}-wide embeddings stored; "
                    f"got {dims}: a different model needs a different scorer version"
                )
            return
        # An index without its space row is a leftover (the table of spaces was emptied
        # or restored): build it again for this width.
        conn.execute(
            sql.SQL("DROP INDEX IF EXISTS {name}").format(
                name=sql.Identifier(index_name(scorer_version))
            )
        )
        conn.execute(
            sql.SQL(
                "CREATE INDEX {name} ON image_embeddings USING hnsw"
                " (({expr}) {ops}) WITH (m = {m}, ef_construction = {ef})"
                " WHERE scorer_version = {v}"
            ).format(
                name=sql.Identifier(index_name(scorer_version)),
                expr=space_expr(vtype, dims),
                ops=sql.SQL(f"{vtype}_cosine_ops"),
                m=sql.Literal(HNSW_M),
                ef=sql.Literal(HNSW_EF_CONSTRUCTION),
                v=sql.Literal(scorer_version),
            )
        )


@dataclass(frozen=True, slots=True)
class Space:
    """A scorer version's embedding space: width, column type, images stored."""

    scorer_version: str
    dims: int
    vector_type: str
    images: int


def spaces(conn: psycopg.Connection) -> list[Space]:
    """Every space with its stored image count, the most-filled first."""
    return [
        Space(*r)
        for r in conn.execute(
            "SELECT s.scorer_version, s.dims, s.vector_type,"
            " (SELECT count(*) FROM image_embeddings e WHERE e.scorer_version = s.scorer_version)"
            " + (SELECT count(*) FROM image_embeddings_pending e"
            "    WHERE e.scorer_version = s.scorer_version)"
            " FROM embedding_spaces s ORDER BY 4 DESC, 1"
        )
    ]


def space(conn: psycopg.Connection, scorer_version: str) -> Space | None:
    """One space by scorer version, or None."""
    row = conn.execute(
        "SELECT scorer_version, dims, vector_type, 0 FROM embedding_spaces"
        " WHERE scorer_version = %s",
        (scorer_version,),
    ).fetchone()
    return Space(*row) if row else None


def register(conn: psycopg.Connection) -> None:
    """Let ``conn`` send and receive numpy arrays as vectors (pgvector's psycopg adapters)."""
    from pgvector.psycopg import register_vector

    register_vector(conn)


def prompt_sha(prompt: str) -> bytes:
    """sha256 of a prompt's UTF-8 bytes: the key of its text embedding."""
    return hashlib.sha256(prompt.encode("utf-8", "surrogatepass")).digest()


@dataclass(frozen=True, slots=True)
class EmbeddingRow:
    """One image's embedding (L2-normalised float32) under a scorer version."""

    generation_id: int
    scorer_version: str
    embedding: np.ndarray


@dataclass(frozen=True, slots=True)
class PromptEmbeddingRow:
    """One distinct prompt's text embedding under a scorer version."""

    scorer_version: str
    prompt: str
    embedding: np.ndarray


def store(
    cur: psycopg.Cursor,
    images: Sequence[EmbeddingRow],
    prompts: Sequence[PromptEmbeddingRow],
) -> int:
    """Insert embeddings, once per (generation, version) and (version, prompt); returns the
    image rows really inserted. Runs in the caller's transaction (with the scores). Image
    embeddings go to the pending table; ``index_pending`` moves them into the index."""
    stored = 0
    if images:
        cur.executemany(
            "INSERT INTO image_embeddings_pending (generation_id, scorer_version, embedding)"
            " VALUES (%s, %s, %s::vector) ON CONFLICT DO NOTHING",
            [(r.generation_id, r.scorer_version, _vec(r.embedding)) for r in images],
        )
        stored = cur.rowcount
    if prompts:
        unique = {(p.scorer_version, prompt_sha(p.prompt)): p for p in prompts}
        cur.executemany(
            "INSERT INTO prompt_embeddings (scorer_version, prompt_sha, embedding)"
            " VALUES (%s, %s, %s::vector) ON CONFLICT DO NOTHING",
            [(v, sha, _vec(p.embedding)) for (v, sha), p in sorted(unique.items())],
        )
    return stored


def _vec(a: np.ndarray) -> np.ndarray:
    """A finite float32 row (pgvector refuses NaN and infinity: say which, here)."""
    v = np.asarray(a, dtype=np.float32).ravel()
    if not np.isfinite(v).all():
        raise ValueError("embedding has NaN or infinite values; it is not stored")
    return v


def index_pending(conn: psycopg.Connection, limit: int = INDEX_BATCH) -> int:
    """Move up to ``limit`` pending image embeddings into ``image_embeddings`` (and so into
    their space's HNSW index), oldest first, in one transaction; returns the rows moved.

    Any number of callers may run at once: each takes rows the others have not locked. A row
    already indexed (a generation stored twice after a lost lease) is dropped, so each
    (generation, version) is indexed once.
    """
    with conn.transaction():
        row = conn.execute(
            """
            WITH batch AS (
                SELECT generation_id, scorer_version FROM image_embeddings_pending
                ORDER BY created_at LIMIT %s FOR UPDATE SKIP LOCKED
            ), moved AS (
                DELETE FROM image_embeddings_pending p USING batch b
                WHERE p.generation_id = b.generation_id AND p.scorer_version = b.scorer_version
                RETURNING p.generation_id, p.scorer_version, p.embedding, p.created_at
            ), indexed AS (
                INSERT INTO image_embeddings (generation_id, scorer_version, embedding, created_at)
                SELECT generation_id, scorer_version, embedding, created_at FROM moved
                ON CONFLICT DO NOTHING
                RETURNING 1
            )
            SELECT (SELECT count(*) FROM moved), (SELECT count(*) FROM indexed)
            """,
            (int(limit),),
        ).fetchone()
    return int(row[0])


def pending_count(conn: psycopg.Connection) -> int:
    """Image embeddings stored but not yet in the index (an estimate is not enough here)."""
    return int(conn.execute("SELECT count(*) FROM image_embeddings_pending").fetchone()[0])

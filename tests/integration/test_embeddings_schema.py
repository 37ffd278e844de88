"""The embedding tables on a server with pgvector and the clear message on one without."""

from __future__ import annotations

import psycopg

from diffwatch.db import migrate
from diffwatch.db.engine import raw_conninfo
from diffwatch.db.queries import embeddings as emb


def test_pgvector_server_gets_the_tables_and_one_index_per_space(vector_db_url: str) -> None:
    with psycopg.connect(raw_conninfo(vector_db_url), autocommit=True) as conn:
        st = emb.support(conn)
        assert st.enabled, st.describe()
        assert st.describe().startswith("image embeddings: on")
        emb.ensure_space(conn, "ViT-T/file-abc", 32, st.vector_type)
        emb.ensure_space(conn, "ViT-T/file-abc", 32, st.vector_type)  # once
        idx = conn.execute(
            "SELECT indexdef FROM pg_indexes WHERE tablename = 'image_embeddings'"
            " AND indexname = %s",
            (emb.index_name("ViT-T/file-abc"),),
        ).fetchall()
        assert len(idx) == 1 and "hnsw" in idx[0][0] and "cosine_ops" in idx[0][0]
        assert "ViT-T/file-abc" in idx[0][0]
        [space] = emb.spaces(conn)
        assert (space.dims, space.images) == (32, 0)


def test_a_space_keeps_its_width(vector_db_url: str) -> None:
    import pytest

    with psycopg.connect(raw_conninfo(vector_db_url), autocommit=True) as conn:
        vt = emb.support(conn).vector_type
        emb.ensure_space(conn, "m/v1", 32, vt)
        with pytest.raises(ValueError, match="32-wide embeddings stored; got 64"):
            emb.ensure_space(conn, "m/v1", 64, vt)


def test_server_without_pgvector_migrates_and_says_how_to_install(novector_admin_url: str) -> None:
    from tests.conftest import _create_database

    url = _create_database(novector_admin_url, "dw_novector_schema")
    migrate.upgrade(url)
    migrate.check(url)  # the models match the schema without the optional tables
    with psycopg.connect(raw_conninfo(url), autocommit=True) as conn:
        st = emb.ensure_schema(conn)
        assert not st.enabled and st.available is None
        assert "apt install postgresql-<major>-pgvector" in st.describe()
        assert conn.execute("SELECT to_regclass('image_embeddings')").fetchone()[0] is None


def test_db_upgrade_says_whether_embeddings_are_on(novector_admin_url, vector_admin_url):
    from typer.testing import CliRunner

    from diffwatch.cli import build
    from tests.conftest import _create_database

    off = _create_database(novector_admin_url, "dw_novector_cli")
    res = CliRunner().invoke(build(), ["db", "upgrade", "--database-url", off])
    assert res.exit_code == 0, res.output
    assert "image embeddings: off, this server has no pgvector extension" in res.output
    assert "then run `diffwatch db upgrade` again" in res.output
    on = _create_database(vector_admin_url, "dw_vector_cli")
    res = CliRunner().invoke(build(), ["db", "upgrade", "--database-url", on])
    assert res.exit_code == 0, res.output
    assert "image embeddings: on (pgvector" in res.output
    res = CliRunner().invoke(build(), ["db", "current", "--database-url", on])
    assert "image embeddings: on" in res.output, res.output


def test_tables_come_with_a_later_upgrade_once_pgvector_is_installed(vector_admin_url):
    """A database migrated while the extension was not installed in it (here: dropped after
    the migration) gets the tables from the next `db upgrade`."""
    from typer.testing import CliRunner

    from diffwatch.cli import build
    from tests.conftest import _create_database

    url = _create_database(vector_admin_url, "dw_vector_later")
    migrate.upgrade(url)
    with psycopg.connect(raw_conninfo(url), autocommit=True) as conn:
        conn.execute("DROP EXTENSION vector CASCADE")  # drops the embedding columns' tables' type
        conn.execute("DROP TABLE IF EXISTS image_embeddings, prompt_embeddings")
        assert not emb.support(conn).enabled
    res = CliRunner().invoke(build(), ["db", "upgrade", "--database-url", url])
    assert "image embeddings: on" in res.output, res.output
    with psycopg.connect(raw_conninfo(url), autocommit=True) as conn:
        assert emb.support(conn).enabled


def test_a_hostile_scorer_version_is_data_in_the_index_ddl(vector_db_url: str) -> None:
    """A scorer version comes from an operator's model name or file: quotes, semicolons and
    control characters in it stay a literal in the index predicate, never SQL."""
    hostile = "x'); DROP TABLE generations; --\n\u202e/file-1"
    with psycopg.connect(raw_conninfo(vector_db_url), autocommit=True) as conn:
        emb.ensure_space(conn, hostile, 8, emb.support(conn).vector_type)
        assert conn.execute("SELECT to_regclass('generations')").fetchone()[0] is not None
        [(indexdef,)] = conn.execute(
            "SELECT indexdef FROM pg_indexes WHERE indexname = %s", (emb.index_name(hostile),)
        ).fetchall()
        assert "DROP TABLE generations" in indexdef  # inside the quoted literal
        assert [s.scorer_version for s in emb.spaces(conn)] == [hostile]

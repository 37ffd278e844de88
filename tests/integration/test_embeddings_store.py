"""``diffwatch score`` keeps CLIP embeddings in pgvector, once per (generation, CLIP version);
on a server without pgvector it scores exactly as before."""

from __future__ import annotations

import json

import numpy as np
import psycopg
from typer.testing import CliRunner

from diffwatch.cli import build
from diffwatch.db import migrate
from diffwatch.db.engine import raw_conninfo
from tests.helpers import seed_with_images, tiny_clip_args


def _score(url: str, *args: str) -> dict:
    res = CliRunner().invoke(
        build(), ["score", "--device", "cpu", "--json", "--database-url", url, *args]
    )
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout.strip().splitlines()[-1])


def _rows(url: str, query: str) -> list[tuple]:
    with psycopg.connect(raw_conninfo(url), autocommit=True) as conn:
        return conn.execute(query).fetchall()


def test_embeddings_stored_once_per_generation_and_clip_version(tmp_path, vector_db_url):
    conninfo = raw_conninfo(vector_db_url)
    paths = seed_with_images(conninfo, tmp_path / "d", 10)
    paths[2].unlink()  # a missing image gets no score and no embedding
    clip = tiny_clip_args(tmp_path / "m")
    first = _score(vector_db_url, "--scorers", "clip,nsfw", "--batch-size", "4", *clip)
    assert first["claimed"] == 10
    [(version,)] = _rows(vector_db_url, "SELECT scorer_version FROM embedding_spaces")
    # Scoring stores them pending; the indexer moves them into the indexed table, once.
    assert _rows(vector_db_url, "SELECT count(*) FROM image_embeddings_pending")[0][0] == 9
    assert _rows(vector_db_url, "SELECT count(*) FROM image_embeddings")[0][0] == 0
    res = CliRunner().invoke(
        build(), ["db", "index-embeddings", "--json", "--database-url", vector_db_url]
    )
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout) == {"pending": 9, "indexed": 9}
    assert _rows(vector_db_url, "SELECT count(*) FROM image_embeddings_pending")[0][0] == 0
    stored = _rows(
        vector_db_url,
        "SELECT e.generation_id, e.embedding::real[] FROM image_embeddings e ORDER BY 1",
    )
    scored = _rows(
        vector_db_url,
        "SELECT generation_id FROM scorer_results WHERE scorer = 'clip' ORDER BY 1",
    )
    assert [r[0] for r in stored] == [r[0] for r in scored] and len(stored) == 9
    vecs = np.array([r[1] for r in stored], dtype=np.float32)
    assert np.allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-3)  # L2-normalised
    assert len({tuple(np.round(v, 4)) for v in vecs}) == 9  # one per image, not a copy
    # The stored cosine with the prompt's stored text embedding is the score's cosine.
    match = _rows(
        vector_db_url,
        "SELECT r.details->>'cosine', 1 - (e.embedding <=> p.embedding)"
        " FROM scorer_results r JOIN generations g ON g.id = r.generation_id"
        " JOIN image_embeddings e ON e.generation_id = g.id"
        " JOIN prompt_embeddings p ON p.scorer_version = e.scorer_version"
        "  AND p.prompt_sha = sha256(convert_to(g.prompt, 'UTF8'))"
        " WHERE r.scorer = 'clip'",
    )
    assert len(match) == 9
    assert all(abs(float(a) - b) < 1e-4 for a, b in match)
    n_prompts = _rows(vector_db_url, "SELECT count(DISTINCT prompt) FROM generations")[0][0]
    assert _rows(vector_db_url, "SELECT count(*) FROM prompt_embeddings")[0][0] <= n_prompts
    # Scoring again stores nothing more; another CLIP is another space, stored once more.
    assert _score(vector_db_url, "--scorers", "clip", *clip)["claimed"] == 0
    _score(vector_db_url, "--scorers", "clip", *tiny_clip_args(tmp_path / "m2", seed=1))
    per_version = _rows(
        vector_db_url,
        "SELECT scorer_version, count(*) FROM (SELECT scorer_version FROM image_embeddings"
        " UNION ALL SELECT scorer_version FROM image_embeddings_pending) e GROUP BY 1 ORDER BY 2",
    )
    assert [n for _, n in per_version] == [9, 9] and version in dict(per_version)


def test_no_embeddings_option_keeps_none(tmp_path, vector_db_url):
    seed_with_images(raw_conninfo(vector_db_url), tmp_path / "d", 4)
    _score(vector_db_url, "--scorers", "clip", "--no-embeddings", *tiny_clip_args(tmp_path / "m"))
    assert _rows(vector_db_url, "SELECT count(*) FROM scorer_results")[0][0] == 4
    assert _rows(vector_db_url, "SELECT count(*) FROM image_embeddings_pending")[0][0] == 0


def test_without_pgvector_scoring_works_as_before(tmp_path, novector_admin_url):
    from tests.conftest import _create_database

    url = _create_database(novector_admin_url, "dw_novector_score")
    migrate.upgrade(url)
    seed_with_images(raw_conninfo(url), tmp_path / "d", 6)
    out = _score(url, "--scorers", "clip,nsfw", *tiny_clip_args(tmp_path / "m"))
    assert (out["claimed"], out["results"], out["failures"]) == (6, 12, 0)

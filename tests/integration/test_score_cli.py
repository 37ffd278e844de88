"""``diffwatch score`` end to end on CPU: real tiny CLIP, real NudeNet, real bad images."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from diffwatch.cli import build
from tests.helpers import seed_with_images, tiny_clip_args


def score(db_url: str, *args: str) -> dict:
    res = CliRunner().invoke(
        build(), ["score", "--device", "cpu", "--json", "--database-url", db_url, *args]
    )
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("load_processes", ["0", "2"], ids=["threads", "processes"])
def test_scores_once_records_bad_images_and_rescoring_is_a_no_op(
    tmp_path, db_url, conninfo, sql, load_processes
):
    paths = seed_with_images(conninfo, tmp_path / "d", 12)
    paths[3].unlink()  # missing
    paths[5].write_bytes(paths[5].read_bytes()[:60])  # truncated PNG
    paths[7].write_text("<html>not an image</html>")
    clip = tiny_clip_args(tmp_path / "m")
    first = score(
        db_url,
        "--scorers",
        "clip,nsfw",
        "--batch-size",
        "5",
        "--load-processes",
        load_processes,
        *clip,
    )
    assert (first["claimed"], first["results"], first["failures"]) == (12, 18, 6)
    rows = sql(
        "SELECT scorer, count(*), min(value), max(value) FROM scorer_results GROUP BY 1 ORDER BY 1"
    )
    assert [(r[0], r[1]) for r in rows] == [("clip", 9), ("nsfw", 9)]
    assert 0 <= rows[0][2] <= rows[0][3] <= 100  # CLIPScore range
    details = sql("SELECT details FROM scorer_results WHERE scorer = 'clip' LIMIT 1")[0][0]
    assert set(details) >= {"cosine", "truncated", "n_tokens"}
    errors = sql("SELECT generation_id, scorer, kind, reason FROM scoring_errors ORDER BY 1, 2")
    assert {(g, k) for g, _, k, _ in errors} == {
        (4, "missing"),
        (6, "truncated"),
        (8, "not_an_image"),
    }
    assert all(str(paths[g - 1]) in reason for g, _, _, reason in errors)
    # Nothing left: a second run claims nothing and writes nothing.
    again = score(db_url, "--scorers", "clip,nsfw", *clip)
    assert (again["claimed"], again["results"]) == (0, 0)
    # Other weights are another scorer version: everything scores again, once.
    other = score(db_url, "--scorers", "clip", *tiny_clip_args(tmp_path / "m2", seed=1))
    assert (other["claimed"], other["results"]) == (12, 9)
    assert sql("SELECT count(DISTINCT scorer_version) FROM scorer_results WHERE scorer='clip'") == [
        (2,)
    ]


def test_unloadable_clip_weights_give_one_clear_error(tmp_path, db_url):
    missing = tmp_path / "nope.bin"
    res = CliRunner().invoke(
        build(),
        [
            "score",
            "--scorers",
            "clip",
            "--device",
            "cpu",
            "--clip-checkpoint",
            str(missing),
            "--database-url",
            db_url,
        ],
    )
    assert res.exit_code == 1
    assert "never" in res.output and str(missing) in res.output


def test_gpu_jpeg_without_a_gpu_is_a_clear_usage_error(db_url):
    res = CliRunner().invoke(
        build(),
        ["score", "--device", "cpu", "--gpu-jpeg", "--scorers", "nsfw", "--database-url", db_url],
    )
    assert res.exit_code == 2, res.output
    assert "--gpu-jpeg needs a CUDA device" in res.output


def test_unusual_modes_are_errors_unless_converted_and_then_noted(tmp_path, db_url, conninfo, sql):
    from PIL import Image

    paths = seed_with_images(conninfo, tmp_path / "d", 3)
    Image.new("RGBA", (64, 64), (200, 10, 10, 128)).save(paths[0], "PNG")
    first = score(db_url, "--scorers", "nsfw")
    assert (first["results"], first["failures"]) == (2, 1)
    [(kind, reason)] = sql("SELECT kind, reason FROM scoring_errors")
    assert kind == "unsupported_mode" and "--convert-unusual-modes" in reason
    sql("DELETE FROM scoring_errors")
    again = score(db_url, "--scorers", "nsfw", "--convert-unusual-modes")
    assert (again["results"], again["failures"]) == (1, 0)
    [(notes,)] = sql("SELECT details->'image_notes' FROM scorer_results WHERE generation_id = 1")
    assert notes == ["alpha composited on white"]

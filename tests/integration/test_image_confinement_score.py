"""``diffwatch score`` on hostile image_uris: nothing outside the roots is read, no loopback
server is contacted, no file content reaches scoring_errors."""

from __future__ import annotations

import json
import os
import time

import pytest
from typer.testing import CliRunner

from diffwatch.cli import build
from diffwatch.collectors.logs.collector import LogCollector
from tests.helpers import numbered_line, seed_with_images
from tests.listener import SilentListener

LEAKS = ("root:x", "/bin/bash", "daemon:", "hunter2", "72 6f 6f 74")


@pytest.mark.timeout(300)
def test_score_refuses_hostile_uris_and_stores_reasons_without_content(
    tmp_path, db_url, conninfo, sql, monkeypatch
) -> None:
    images = tmp_path / "images"
    good = seed_with_images(conninfo, images, 1)[0]
    (images / "link.png").symlink_to("/etc/passwd")
    os.mkfifo(images / "pipe.png")
    (images / "secret.png").write_text("API_TOKEN=hunter2\n")
    monkeypatch.setenv("DIFFWATCH_IMAGE_ROOTS", str(images))
    with SilentListener() as ftp, SilentListener() as hdfs:
        hostile = {
            "/etc/passwd": "outside_roots",
            "file:///etc/passwd": "outside_roots",
            str(images / "link.png"): "outside_roots",
            str(images / "pipe.png"): "not_a_file",
            "/dev/zero": "outside_roots",
            str(images / "secret.png"): "not_an_image",
            f"ftp://127.0.0.1:{ftp.port}/x.png": "outside_roots",
            f"webhdfs://127.0.0.1:{hdfs.port}/x.png": "outside_roots",
        }
        log = tmp_path / "hostile.jsonl"
        log.write_bytes(
            b"".join(numbered_line(100 + i, image_uri=u) for i, u in enumerate(hostile))
        )
        assert LogCollector(conninfo, [str(log)]).run_once().ingested == len(hostile)
        t0 = time.monotonic()
        res = CliRunner().invoke(
            build(),
            ["score", "--scorers", "nsfw", "--device", "cpu", "--json", "--database-url", db_url],
        )
        took = time.monotonic() - t0
        assert res.exit_code == 0, res.output
        summary = json.loads(res.stdout.strip().splitlines()[-1])
        time.sleep(0.3)
        assert (ftp.connections, hdfs.connections) == (0, 0), "the scorer connected out"
    assert (summary["results"], summary["failures"]) == (1, len(hostile))
    assert took < 120
    rows = sql(
        "SELECT g.image_uri, e.kind, e.reason, e.transient FROM scoring_errors e "
        "JOIN generations g ON g.id = e.generation_id"
    )
    assert {uri: kind for uri, kind, _, _ in rows} == hostile
    for uri, kind, reason, transient in rows:
        assert uri in reason and not transient
        assert not any(leak in reason for leak in LEAKS), reason
        if kind == "outside_roots":
            assert "DIFFWATCH_IMAGE_ROOTS" in reason
    assert sql("SELECT count(*) FROM scorer_results") == [(1,)]
    assert str(good).startswith(str(images))

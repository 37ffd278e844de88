"""The Generation explorer never shows a file that lies outside the image roots, nor
any of its content."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from streamlit.testing.v1 import AppTest

from tests.app.test_pages import run_page

LEAKS = ("root:x", "/bin/bash", "daemon:", "hunter2")


def _add(conninfo: str, request_id: str, image_uri: str) -> None:
    with psycopg.connect(conninfo) as conn:
        conn.execute(
            "INSERT INTO generations (request_id, ts, model, model_version, prompt, status,"
            " batch_size, total_ms, deployment, image_uri)"
            " VALUES (%s, %s, 'sdxl', 'v1', 'a cat', 'ok', 1, 1000, 'stable', %s)",
            (request_id, datetime.now(UTC) - timedelta(minutes=5), image_uri),
        )


def _texts(at: AppTest) -> list[str]:
    return [str(e.value) for kind in ("text", "markdown", "caption", "warning", "error")
            for e in at.get(kind)]  # fmt: skip


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    ("uri", "kind_words"),
    [
        ("/etc/passwd", "outside the image roots"),
        ("webhdfs://127.0.0.1:9/x.png", "protocol webhdfs:// is not allowed"),
    ],
)
def test_explorer_refuses_files_outside_the_roots_without_content(
    conninfo, tmp_path, monkeypatch, uri, kind_words
) -> None:
    monkeypatch.setenv("DIFFWATCH_IMAGE_ROOTS", str(tmp_path / "images"))
    _add(conninfo, "req-hostile", uri)
    at = run_page("explorer", conninfo, monkeypatch, q="req-hostile")
    shown = _texts(at)
    unavailable = [t for t in shown if t.startswith("image unavailable")]
    assert unavailable, shown
    assert kind_words in unavailable[0] and "DIFFWATCH_IMAGE_ROOTS" in unavailable[0]
    assert not any(leak in t for t in shown for leak in LEAKS), shown


@pytest.mark.timeout(120)
def test_explorer_describes_a_text_file_inside_a_root_without_quoting_it(
    conninfo, tmp_path, monkeypatch
) -> None:
    images = tmp_path / "images"
    images.mkdir()
    (images / "leak.png").write_text("root:x:0:0:root:/root:/bin/bash\nAPI_TOKEN=hunter2\n")
    monkeypatch.setenv("DIFFWATCH_IMAGE_ROOTS", str(images))
    _add(conninfo, "req-leak", str(images / "leak.png"))
    at = run_page("explorer", conninfo, monkeypatch, q="req-leak")
    shown = _texts(at)
    assert any("not an image: text" in t for t in shown), shown
    assert not any(leak in t for t in shown for leak in LEAKS), shown

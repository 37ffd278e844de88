"""The Quality page's near-duplicate section (Streamlit AppTest): the share per version with
its interval, example pairs side by side (prompts as text, flagged images blurred), the
threshold, and the page without pgvector."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
import streamlit as st
from PIL import Image
from streamlit.testing.v1 import AppTest

from diffwatch.db.engine import raw_conninfo
from tests.app.accounts import shown
from tests.app.dataset import XSS_PROMPTS
from tests.embedding_seed import Gen, seed, unit_rows

DIMS = 32
COLLAPSED = 12  # of v2's 20 images: one picture, whatever the prompt
PAIR = re.compile(r"Pair [0-9]+: cosine ([0-9.]+) \(generations #([0-9]+) and #([0-9]+)\)")


def _page() -> None:  # runs inside AppTest as the page script
    from diffwatch.app.views import quality

    quality.render()


def run_quality(conninfo: str, monkeypatch: pytest.MonkeyPatch, **params: str) -> AppTest:
    monkeypatch.setenv("DIFFWATCH_APP_CONNINFO", conninfo)
    st.cache_data.clear()
    at = AppTest.from_function(_page, default_timeout=60)
    for k, v in params.items():
        at.query_params[k] = v
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.title[0].value == "Quality & safety"
    return at


@pytest.fixture
def collapsed(vector_db_url: str, tmp_path: Path) -> tuple[str, list[int], list[int]]:
    """v1: 20 unlike images. v2: 8 unlike images and 12 near-copies of one picture under
    different prompts (three hostile, one copy NSFW-flagged)."""
    rng = np.random.default_rng(9)
    now = datetime.now(UTC)
    picture = unit_rows(rng, 1, DIMS)[0]
    gens = []
    for i in range(40):
        version = "v1" if i < 20 else "v2"
        copy = i >= 40 - COLLAPSED
        vec = unit_rows(rng, 1, DIMS, picture * 300, 1.0)[0] if copy else unit_rows(rng, 1, DIMS)[0]
        prompt = XSS_PROMPTS[i % 3] if copy and i % 4 == 0 else f"prompt {i} of {version}"
        path = tmp_path / f"g{i}.png"
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(path)
        gens.append(Gen(vec, model_version=version, prompt=prompt, seed=i, image_uri=str(path),
                        ts=now - timedelta(minutes=5 + i), nsfw=copy and i % 2 == 1))  # fmt: skip
    ids = seed(vector_db_url, gens)
    return raw_conninfo(vector_db_url), ids[:20], ids[40 - COLLAPSED :]


def test_a_collapsed_version_shows_its_near_duplicate_share(collapsed, monkeypatch) -> None:
    conninfo, _, copies = collapsed
    at = run_quality(conninfo, monkeypatch)
    assert "Near-duplicate images by version" in [s.value for s in at.subheader]
    assert len(at.get("plotly_chart")) == 1  # no CLIP scores here: only the duplicates' chart
    table = at.dataframe[0].value.set_index("version")
    assert table.loc["v1", "with a near-duplicate"] == 0 and table.loc["v1", "share %"] == 0
    v2 = table.loc["v2"]
    assert v2["images"] == 20 and v2["with a near-duplicate"] == COLLAPSED
    assert v2["share %"] == pytest.approx(100 * COLLAPSED / 20)
    assert v2["interval low %"] < v2["share %"] < v2["interval high %"]
    assert table.loc["v1", "interval high %"] < v2["interval low %"]  # told apart
    assert not v2["sampled"]
    # Example pairs of v2 side by side: both near-copies, cosine at or above the threshold.
    labels = [shown(e.label) for e in at.expander]
    assert labels == ["Version v2: 3 example pairs"]
    pairs = [PAIR.fullmatch(t.value) for t in at.text if PAIR.fullmatch(t.value)]
    assert len(pairs) == 3
    for m in pairs:
        assert float(m.group(1)) >= 0.95 and {int(m.group(2)), int(m.group(3))} <= set(copies)
    texts = [t.value for t in at.text]
    assert any(p in texts for p in XSS_PROMPTS[:3])
    assert all("<script" not in m.value and "<img" not in m.value for m in at.markdown)
    reveal = [b for b in at.button if b.label.startswith("Reveal")]
    assert reveal, "flagged images of the pairs are blurred"


def test_the_threshold_can_be_raised(collapsed, monkeypatch) -> None:
    conninfo, *_ = collapsed
    at = run_quality(conninfo, monkeypatch)
    assert at.select_slider[0].value == 0.95
    at.select_slider[0].set_value(0.9).run()
    assert not at.exception
    table = at.dataframe[0].value.set_index("version")
    assert table.loc["v2", "cosine ≥"] == 0.9
    assert table.loc["v2", "with a near-duplicate"] == COLLAPSED  # nothing else is that close


def test_without_pgvector_the_quality_page_says_so_in_one_line(conninfo, monkeypatch) -> None:
    at = run_quality(conninfo, monkeypatch)
    lines = [shown(i.value) for i in at.info if "need pgvector" in shown(i.value)]
    assert len(lines) == 1 and "install pgvector" in lines[0]
    assert not at.select_slider and not at.dataframe

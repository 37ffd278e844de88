"""The explorer's image search (Streamlit AppTest): text → images by the trained demo CLIP,
similar images of a generation, the sidebar's filters, NSFW blur, hostile search text, and
the pages without pgvector or without a search CLIP."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import psycopg
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from diffwatch.db.engine import raw_conninfo
from diffwatch.embeddings.search import (
    MAX_QUERY_CHARS,
    SearchError,
    TextEncoder,
    clean_query,
    search_text,
)
from diffwatch.model.filters import Filters
from tests.app.accounts import shown
from tests.app.dataset import XSS_PROMPTS
from tests.app.image_search_seed import QUERY, flag_nsfw, search_env, seed_scenes
from tests.embedding_seed import Gen, seed, unit_rows

CAPTION = re.compile(r"similarity (-?[0-9.]+) · (\S+) · #([0-9]+)")
PGVECTOR_LINE = "Search, near-duplicates and image drift need pgvector"


def _page() -> None:  # runs inside AppTest as the page script
    from diffwatch.app.views import explorer

    explorer.render()


def run_explorer(conninfo: str, monkeypatch: pytest.MonkeyPatch, **params: str) -> AppTest:
    monkeypatch.setenv("DIFFWATCH_APP_CONNINFO", conninfo)
    st.cache_data.clear()  # results are cached per arguments, not per database
    at = AppTest.from_function(_page, default_timeout=120)
    for k, v in params.items():
        at.query_params[k] = v
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.title[0].value == "Generation explorer"
    return at


def hits(at: AppTest) -> list[tuple[int, str, float, str]]:
    """The gallery in order: (generation id, version, similarity, prompt shown under it)."""
    texts = [t.value for t in at.text]
    out = []
    for i, t in enumerate(texts):
        m = CAPTION.fullmatch(t)
        if m:
            out.append((int(m.group(3)), m.group(2), float(m.group(1)), texts[i + 1]))
    return out


def all_text(at: AppTest) -> str:
    return "\n".join(str(e.value) for kind in ("markdown", "caption", "text", "info",
                     "warning", "error", "success", "subheader") for e in at.get(kind))  # fmt: skip


@pytest.fixture
def scenes(vector_db_url: str, demo_clip, tmp_path: Path) -> tuple[str, object]:
    """The demo scenes, logged and scored by the demo CLIP; one planted image flagged."""
    conninfo = raw_conninfo(vector_db_url)
    seeded = seed_scenes(conninfo, tmp_path / "scenes", demo_clip)
    flag_nsfw(conninfo, seeded.planted[0])
    return conninfo, seeded


@pytest.fixture
def with_search_clip(monkeypatch: pytest.MonkeyPatch, demo_clip) -> None:
    for k, v in search_env(demo_clip).items():
        monkeypatch.setenv(k, v)


def test_a_description_finds_its_scene_first(scenes, with_search_clip, monkeypatch) -> None:
    conninfo, seeded = scenes
    at = run_explorer(conninfo, monkeypatch, find="images", iq=QUERY)
    assert at.radio[0].value == "images"
    assert at.text_input[0].value == QUERY
    found = hits(at)
    assert len(found) == 24  # the default count
    # The four images of the planted scene first; its near misses (the same star on another
    # background, another colour of star on blue) only after them.
    assert {g for g, *_ in found[:4]} == set(seeded.planted), (found[:8], seeded)
    assert all(p == QUERY for *_, p in found[:4])
    ranks = {g: i for i, (g, *_) in enumerate(found)}
    assert all(ranks.get(g, 99) > 3 for g in seeded.near)
    sims = [s for _, _, s, _ in found]
    assert sims == sorted(sims, reverse=True) and -1 <= sims[-1] <= sims[0] <= 1
    assert all(v == seeded.version[g] for g, v, *_ in found)
    # the demo CLIP says what it is; the flagged image stays blurred behind its button
    assert any("demo CLIP" in shown(i.value) for i in at.info)
    assert [b for b in at.button if b.label.startswith("Reveal")]
    assert len([b for b in at.button if b.label == "Similar images"]) == 24


def test_the_sidebar_filters_apply_to_search(scenes, with_search_clip, monkeypatch) -> None:
    conninfo, seeded = scenes
    at = run_explorer(conninfo, monkeypatch, find="images", iq=QUERY, version="v2")
    found = hits(at)
    assert found and {v for _, v, *_ in found} == {"v2"}
    planted_v2 = {g for g in seeded.planted if seeded.version[g] == "v2"}
    assert {g for g, *_ in found[: len(planted_v2)]} == planted_v2


def test_similar_images_of_a_generation(scenes, monkeypatch) -> None:
    """From the generation's own view, without any search CLIP configured."""
    conninfo, seeded = scenes
    source = seeded.planted[1]
    with psycopg.connect(conninfo) as conn:
        req = conn.execute("SELECT request_id FROM generations WHERE id = %s", (source,))
        request_id = req.fetchone()[0]
    at = run_explorer(conninfo, monkeypatch, q=request_id)
    similar = [b for b in at.button if b.label == "Similar images"]
    assert len(similar) == 1
    similar[0].click().run()
    assert not at.exception
    assert at.query_params["find"] == "images" and at.query_params["similar"] == str(source)
    assert any(f"similar to generation #{source}" in s.value for s in at.subheader)
    found = hits(at)
    assert source not in {g for g, *_ in found}  # never itself
    others = set(seeded.planted) - {source}
    assert {g for g, *_ in found[:2]} <= others  # its own scene first
    # and linked: the address alone opens the same view
    again = run_explorer(conninfo, monkeypatch, find="images", similar=str(source))
    assert [g for g, *_ in hits(again)] == [g for g, *_ in found]


def test_without_a_search_clip_text_search_says_how(scenes, monkeypatch) -> None:
    conninfo, _ = scenes
    for k in ("MODEL", "PRETRAINED", "CHECKPOINT", "MODEL_CONFIG"):
        monkeypatch.delenv(f"DIFFWATCH_SEARCH_CLIP_{k}", raising=False)
    at = run_explorer(conninfo, monkeypatch, find="images", iq=QUERY)
    says = " ".join(shown(i.value) for i in at.info)
    assert "DIFFWATCH_SEARCH_CLIP_MODEL" in says and "DIFFWATCH_SEARCH_CLIP_CHECKPOINT" in says
    assert "diffwatch-demo-clip" in says  # the stored space, named for the settings
    assert hits(at) == []


def test_an_encoder_of_another_clip_is_refused(scenes) -> None:
    conninfo, _ = scenes
    other = TextEncoder(lambda texts: np.ones((len(texts), 64), np.float32), "ViT-B-32/x", 64)
    f = Filters(datetime.now(UTC) - timedelta(days=1), datetime.now(UTC))
    with psycopg.connect(conninfo) as conn, pytest.raises(SearchError) as err:
        search_text(conn, other, f, "a red circle")
    msg = str(err.value)
    assert "images scored by CLIP diffwatch-demo-clip/file-" in msg
    assert "this encoder is ViT-B-32/x" in msg and "DIFFWATCH_SEARCH_CLIP_MODEL" in msg


def test_search_text_is_bounded_and_cleaned() -> None:
    assert clean_query(" blurry\x00 hands\x1b[31m\u202e ") == "blurry hands [31m"
    with pytest.raises(SearchError, match="at most 300"):
        clean_query("x" * (MAX_QUERY_CHARS + 1))
    with pytest.raises(SearchError, match="empty"):
        clean_query("\x00\t \u200b")


@pytest.fixture
def hostile(vector_db_url: str, tmp_path: Path) -> tuple[str, list[int]]:
    """Generations with hostile prompts and stored embeddings (no CLIP: seeded vectors),
    one NSFW-flagged, their images on disk."""
    from PIL import Image

    rng = np.random.default_rng(3)
    centre = unit_rows(rng, 1, 16)[0] * 4
    now = datetime.now(UTC)
    gens = []
    for i, prompt in enumerate([*XSS_PROMPTS, "a calm lake", "a calm lake at dusk"]):
        path = tmp_path / f"h{i}.png"
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(path)
        gens.append(Gen(unit_rows(rng, 1, 16, centre)[0], prompt=prompt, image_uri=str(path),
                        ts=now - timedelta(minutes=10 + i), nsfw=i == 1))  # fmt: skip
    return raw_conninfo(vector_db_url), seed(vector_db_url, gens)


def test_hostile_prompts_in_results_are_plain_text(hostile, monkeypatch) -> None:
    conninfo, ids = hostile
    at = run_explorer(conninfo, monkeypatch, find="images", similar=str(ids[-1]))
    found = hits(at)
    assert {g for g, *_ in found} == set(ids[:-1])
    shown = [p for *_, p in found]
    assert all(p[:300] in shown for p in XSS_PROMPTS)  # verbatim, as st.text
    for m in at.markdown:
        assert "<script" not in m.value and "javascript:" not in m.value and "<img" not in m.value
    assert len([b for b in at.button if b.label.startswith("Reveal")]) == 1  # the flagged one


@pytest.mark.parametrize(
    "iq",
    [
        "x" * (MAX_QUERY_CHARS + 1),
        "<script>alert(1)</script> **bold** [x](javascript:alert(1))\x00\x1b\u202e",
    ],
)
def test_hostile_search_text_in_the_address_is_inert(hostile, monkeypatch, iq) -> None:
    conninfo, _ = hostile
    monkeypatch.setenv("DIFFWATCH_SEARCH_CLIP_MODEL", "ViT-B-32")  # not loadable: no weights
    at = run_explorer(conninfo, monkeypatch, find="images", iq=iq)
    box = at.text_input[0].value
    if len(iq) > MAX_QUERY_CHARS:
        assert box == "" and "iq" not in at.query_params
        assert any("longer than 300 characters" in w.value for w in at.warning)
    else:
        assert box == clean_query(iq) and "\x00" not in box and "\u202e" not in box
    page = all_text(at)
    assert "<script" not in page and "javascript:" not in page and "x" * 50 not in page
    # the incomplete settings are explained, nothing crashed
    assert any("DIFFWATCH_SEARCH_CLIP_MODEL" in shown(w.value) for w in at.warning)


def test_without_pgvector_the_explorer_says_so_in_one_line(conninfo, monkeypatch) -> None:
    at = run_explorer(conninfo, monkeypatch, find="images", iq="a red circle")
    lines = [shown(i.value) for i in at.info if PGVECTOR_LINE in shown(i.value)]
    assert len(lines) == 1 and "install pgvector" in lines[0] and "\n" not in lines[0]
    assert not at.text_input  # nothing to search
    plain = run_explorer(conninfo, monkeypatch)  # the prompt search works as before
    assert plain.radio[0].value == "generations"
    assert not [b for b in plain.button if b.label == "Similar images"]


def test_a_bad_similar_id_in_the_address_is_reported_not_repeated(hostile, monkeypatch) -> None:
    conninfo, _ = hostile
    at = run_explorer(conninfo, monkeypatch, find="images", similar="1;DROP TABLE<b>")
    warned = [shown(w.value) for w in at.warning]
    assert any("not a valid id" in w for w in warned)
    assert not any("DROP" in w or "<b>" in w for w in warned)
    assert at.text_input  # text search instead
    gone = run_explorer(conninfo, monkeypatch, find="images", similar="999999")
    assert any("generation 999999 does not exist" in shown(w.value) for w in gone.warning)

"""Every dashboard page renders, with data and on an empty database (Streamlit AppTest)."""

from __future__ import annotations

from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from tests.app.dataset import PROMPT_WITH_HTML, seed

PAGES = {
    "overview": "Overview",
    "cost": "Cost",
    "latency": "Latency & throughput",
    "gpu": "GPU",
    "quality": "Quality & safety",
    "versions": "Model versions",
}


def _page(name: str) -> None:  # runs inside AppTest as the page script
    import importlib

    importlib.import_module(f"app.views.{name}").render()


def run_page(name: str, conninfo: str, monkeypatch: pytest.MonkeyPatch, **params: str) -> AppTest:
    monkeypatch.setenv("DIFFWATCH_APP_CONNINFO", conninfo)
    st.cache_data.clear()  # results are cached per arguments, not per database
    at = AppTest.from_function(_page, args=(name,), default_timeout=60)
    for k, v in params.items():
        at.query_params[k] = v
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.title[0].value == PAGES[name]
    return at


def charts(at: AppTest) -> int:
    return len(at.get("plotly_chart"))


@pytest.fixture
def seeded(conninfo: str, tmp_path: Path) -> str:
    seed(conninfo, tmp_path / "images")
    return conninfo


@pytest.mark.parametrize("name", PAGES)
def test_page_renders_on_an_empty_database(name, conninfo, monkeypatch) -> None:
    at = run_page(name, conninfo, monkeypatch)
    assert charts(at) == 0
    if name in ("overview", "latency", "versions"):
        assert any("No " in i.value for i in at.info)


@pytest.mark.parametrize(
    ("name", "min_charts"),
    [("overview", 1), ("cost", 2), ("latency", 4), ("gpu", 3), ("quality", 3), ("versions", 0)],
)
def test_page_renders_with_data(name, min_charts, seeded, monkeypatch) -> None:
    at = run_page(name, seeded, monkeypatch, range="24h")
    assert charts(at) >= min_charts


def test_overview_kpis_have_values_and_deltas(seeded, monkeypatch) -> None:
    at = run_page("overview", seeded, monkeypatch)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Images"] == "64"  # 32 ok requests × batch 2
    assert metrics["Error rate"] == "20.00 %"
    assert metrics["Mean CLIP score"] != "n/a"


def test_filters_come_from_and_go_to_the_url(seeded, monkeypatch) -> None:
    at = run_page("overview", seeded, monkeypatch, version="v2", range="6h")
    assert at.sidebar.selectbox[0].value == "6h"
    assert at.sidebar.multiselect[1].value == ["v2"]
    assert at.query_params["version"] == "v2"
    # 14 of the 40 requests are v2 (every third); 3 of them errors; 11 ok × batch 2.
    assert {m.label: m.value for m in at.metric}["Images"] == "22"


def test_bad_url_values_are_reported_not_fatal(conninfo, monkeypatch) -> None:
    at = run_page("overview", conninfo, monkeypatch, range="forever")
    assert any("unknown range 'forever'" in w.value for w in at.sidebar.warning)


def test_quality_gallery_shows_prompts_as_plain_text_and_blurs_flagged(seeded, monkeypatch):
    at = run_page("quality", seeded, monkeypatch)
    texts = [t.value for t in at.text]
    assert any(PROMPT_WITH_HTML in t for t in texts)  # shown verbatim, as text
    assert all("<script>" not in m.value for m in at.markdown)  # never as markdown/HTML
    reveal = [b for b in at.button if b.label.startswith("Reveal")]
    assert reveal, "flagged images are blurred behind a Reveal button"
    reveal[0].click().run()
    assert len([b for b in at.button if b.label.startswith("Reveal")]) == len(reveal) - 1


def test_quality_says_when_clip_is_not_configured(conninfo, monkeypatch) -> None:
    at = run_page("quality", conninfo, monkeypatch)
    assert any("CLIP scoring is not configured" in i.value for i in at.info)

"""Every dashboard page renders, with data and on an empty database (Streamlit AppTest)."""

from __future__ import annotations

from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from tests.app.dataset import PROMPT_WITH_HTML, XSS_PROMPTS, seed, seed_bulk

PAGES = {
    "overview": "Overview",
    "cost": "Cost",
    "latency": "Latency & throughput",
    "gpu": "GPU",
    "quality": "Quality & safety",
    "versions": "Model versions",
    "explorer": "Generation explorer",
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


@pytest.fixture
def seeded_large(seeded: str) -> str:
    seed_bulk(seeded)
    return seeded


EMPTY_SAYS = {
    "overview": "No generations",
    "latency": "No latency",
    "versions": "Comparing needs two deployments",
    "explorer": "No generation matches",
    "quality": "CLIP scoring is not configured",
    "gpu": "No GPU samples",
}


@pytest.mark.parametrize("name", PAGES)
def test_page_renders_on_an_empty_database(name, conninfo, monkeypatch) -> None:
    at = run_page(name, conninfo, monkeypatch)
    assert charts(at) == 0
    if name in EMPTY_SAYS:
        assert any(EMPTY_SAYS[name] in i.value for i in at.info), [i.value for i in at.info]


@pytest.mark.parametrize(
    ("name", "min_charts"),
    [
        ("overview", 1),
        ("cost", 2),
        ("latency", 4),
        ("gpu", 3),
        ("quality", 4),
        ("explorer", 0),
    ],
)
def test_page_renders_with_data(name, min_charts, seeded, monkeypatch) -> None:
    at = run_page(name, seeded, monkeypatch, range="24h")
    assert charts(at) >= min_charts


def test_overview_kpis_have_values_and_deltas(seeded, monkeypatch) -> None:
    at = run_page("overview", seeded, monkeypatch)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Images"] == "70"  # 32 ok requests × batch 2, 6 hostile prompts × 1
    assert metrics["Error rate"] == "17.39 %"  # 8 of 46
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
    assert all(any(p[:300] in t for t in texts) for p in XSS_PROMPTS)  # verbatim, as text
    assert all("<script>" not in m.value for m in at.markdown)  # never as markdown/HTML
    reveal = [b for b in at.button if b.label.startswith("Reveal")]
    assert reveal, "flagged images are blurred behind a Reveal button"
    reveal[0].click().run()
    assert len([b for b in at.button if b.label.startswith("Reveal")]) == len(reveal) - 1


def test_quality_says_when_clip_is_not_configured(conninfo, monkeypatch) -> None:
    at = run_page("quality", conninfo, monkeypatch)
    assert any("CLIP scoring is not configured" in i.value for i in at.info)


def test_versions_says_when_there_is_not_enough_data(seeded, monkeypatch) -> None:
    at = run_page("versions", seeded, monkeypatch)
    assert any("not enough data" in w.value for w in at.warning)
    assert any("32 of the 400 needed" in t.value for t in at.text)


def test_versions_compares_stable_and_canary_with_intervals_and_a_verdict(
    seeded_large, monkeypatch
):
    at = run_page("versions", seeded_large, monkeypatch)
    assert charts(at) == 1
    table = at.dataframe[0].value
    assert {"stable", "canary", "95% CI low", "95% CI high"} <= set(table.columns)
    p95 = table[table["metric"].str.startswith("p95")].iloc[0]
    assert p95["canary"] > p95["stable"]  # the canary is 600 ms slower by construction
    assert p95["95% CI low"] > 0 and p95["status"] == "regressed"
    assert any("Verdict: hold the rollout of canary" in e.value for e in at.error)


def test_explorer_finds_by_prompt_and_request_id_and_shows_the_prompt_as_text(seeded, monkeypatch):
    at = run_page("explorer", seeded, monkeypatch, q="<script>")
    found = at.dataframe[0].value
    assert "req-1" in list(found["request_id"]) and all("<script>" in p for p in found["prompt"])
    at = run_page("explorer", seeded, monkeypatch, q="RED FOX")
    assert list(at.dataframe[0].value["request_id"]) == ["req-1"]
    assert PROMPT_WITH_HTML in [t.value for t in at.text]
    at = run_page("explorer", seeded, monkeypatch, q="req-7")
    assert at.dataframe[0].value["request_id"].iloc[0] == "req-7"
    assert at.dataframe[0].value["matched"].iloc[0] == "request_id"

"""Every dashboard page renders, with data and on an empty database (Streamlit AppTest)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from diffwatch.alerts.evaluate import evaluate_all
from diffwatch.db.queries import alert_rules
from diffwatch.db.queries.review import rate
from diffwatch.model.alert_rules import Rule
from tests.alerts_seed import add_requests, base_time
from tests.app.accounts import shown
from tests.app.dataset import PROMPT_WITH_HTML, XSS_PROMPTS, seed, seed_bulk

PAGES = {
    "overview": "Overview",
    "cost": "Cost",
    "latency": "Latency & throughput",
    "gpu": "GPU",
    "quality": "Quality & safety",
    "versions": "Model versions",
    "releases": "Releases",
    "explorer": "Generation explorer",
    "fairness": "Fairness",
}


def _page(name: str) -> None:  # runs inside AppTest as the page script
    import importlib

    importlib.import_module(f"diffwatch.app.views.{name}").render()


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
    "releases": "No release-gate runs yet",
    "explorer": "No generation matches",
    "quality": "CLIP scoring is not configured",
    "gpu": "No GPU samples",
    "fairness": "No bias probe run has finished yet",
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
    assert any("unknown time range" in w.value for w in at.sidebar.warning)


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
    assert any("not enough data" in shown(w.value) for w in at.warning)
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
    assert any("Verdict: hold the rollout of canary" in shown(e.value) for e in at.error)


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


def _alert_rule(conninfo: str, name: str, threshold: float) -> int:
    rule = Rule.model_validate({"name": name, "metric": "error_rate", "window": "3m",
                                "comparison": ">", "threshold": threshold,
                                "recipients": ["ops@example.com"]})  # fmt: skip
    with psycopg.connect(conninfo, autocommit=True) as conn:
        return alert_rules.create_rule(conn, rule, "test")


def test_overview_counts_the_alerts_firing_now(conninfo, monkeypatch) -> None:
    assert {m.label: m.value for m in run_page("overview", conninfo, monkeypatch).metric}[
        "Open alerts"
    ] == "0"
    now = base_time(hours_ago=1)
    add_requests(conninfo, now - timedelta(minutes=1), errors=5)  # a 50 % error rate
    _alert_rule(conninfo, "errors over 20 %", 0.2)
    _alert_rule(conninfo, "errors over 30 %", 0.3)
    off = _alert_rule(conninfo, "errors over 10 %", 0.1)
    _alert_rule(conninfo, "errors over 90 %", 0.9)  # stays normal
    report = evaluate_all(conninfo, now)
    assert report.errors == [] and report.states["firing"] == 3
    with psycopg.connect(conninfo, autocommit=True) as conn:
        alert_rules.set_enabled(conn, off, False, "test")  # no longer watched: not open
    at = run_page("overview", conninfo, monkeypatch)
    assert {m.label: m.value for m in at.metric}["Open alerts"] == "2"
    assert all("issue" not in (m.help or "") for m in at.metric)


def test_explorer_shows_the_human_ratings_of_a_generation(conninfo, monkeypatch) -> None:
    ts = base_time(hours_ago=1)
    add_requests(conninfo, ts, n=3)  # alert-… request ids; one rated, one queued, one neither
    with psycopg.connect(conninfo, autocommit=True) as conn:
        gids = [r[0] for r in conn.execute("SELECT id FROM generations ORDER BY id")]
        rated, _queued = (
            conn.execute(
                "INSERT INTO review_items (generation_id, reasons, required_ratings)"
                " VALUES (%s, %s, 2) RETURNING id",
                (gid, reasons),
            ).fetchone()[0]
            for gid, reasons in ((gids[0], ["low_clip"]), (gids[1], ["random"]))
        )
        rate(conn, rated, "alice", None, 4, 2, ["nsfw"], "<b>hands</b> look wrong")
        rate(conn, rated, "bob", None, 3, 3)
        names = [r[0] for r in conn.execute("SELECT request_id FROM generations ORDER BY id")]
    at = run_page("explorer", conninfo, monkeypatch, q=names[0])
    table = next(d.value for d in at.dataframe if "quality" in d.value.columns)
    assert sorted(zip(table["rater"], table["quality"], table["adherence"], strict=True)) == [
        ("alice", 4, 2), ("bob", 3, 3)]  # fmt: skip
    assert "<b>hands</b> look wrong" in list(table["comment"])  # as text, never as HTML
    assert all("issue" not in c.value for c in at.caption)
    at = run_page("explorer", conninfo, monkeypatch, q=names[1])
    assert "Queued for review (random); 0 of 2 ratings so far." in [t.value for t in at.text]
    at = run_page("explorer", conninfo, monkeypatch, q=names[2])
    assert "Not in the review queue." in [t.value for t in at.text]


def test_deploy_markers_are_drawn_on_every_time_series_chart_as_inert_text(
    seeded, monkeypatch
) -> None:
    import json
    from datetime import UTC, datetime

    from diffwatch.db.queries import deploy_markers
    from diffwatch.model.deploy_markers import make_marker

    now = datetime.now(UTC)
    at = now - timedelta(hours=1)
    hostile = '<a href="https://evil.example">v9</a><b>%{x}</b>'
    with psycopg.connect(seeded, autocommit=True) as conn:
        deploy_markers.add(conn, make_marker(hostile, at=at, now=now, deployment="canary"))
        old = now - timedelta(days=3)  # outside the 24 h range: not drawn
        deploy_markers.add(conn, make_marker("v0", at=old, now=now))
    for name, expected in [("overview", 1), ("latency", 3), ("gpu", 0), ("quality", 2)]:
        at_ = run_page(name, seeded, monkeypatch, range="24h")
        drawn = 0
        for chart in at_.get("plotly_chart"):
            layout = json.loads(chart.proto.spec)["layout"]
            labels = [a["text"] for a in layout.get("annotations", []) if "hovertext" in a]
            if not labels:
                continue
            drawn += 1
            assert len(labels) == 1 and "v0" not in labels[0]
            assert "<a" not in labels[0] and "<b>" not in labels[0] and "%{x}" not in labels[0]
            assert "evil.example" in labels[0] and "canary" in labels[0]
            assert any(s.get("line", {}).get("dash") == "dot" for s in layout["shapes"])
        assert drawn >= expected, (name, drawn)

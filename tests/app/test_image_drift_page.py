"""The Drift page's image-drift tab (Streamlit AppTest), on runs stored as ``diffwatch drift
images`` stores them: history, the newest run's verdict and attribution, its per-version and
same-prompt tests, what moved with example images (blurred while flagged, prompts as text),
links to older and failed runs, and the page without pgvector."""

from __future__ import annotations

from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from diffwatch.db.engine import raw_conninfo
from tests.app.accounts import shown
from tests.app.image_drift_seed import FAILED_ERROR, HOSTILE, ImageRuns, seed_image_runs
from tests.app.test_drift_page import seed_drift

PGVECTOR_LINE = "Search, near-duplicates and image drift need pgvector"


def _page() -> None:  # runs inside AppTest as the page script
    from diffwatch.app.views import drift

    drift.render()


def run_drift(conninfo: str, monkeypatch: pytest.MonkeyPatch, **params: str) -> AppTest:
    monkeypatch.setenv("DIFFWATCH_APP_CONNINFO", conninfo)
    st.cache_data.clear()
    at = AppTest.from_function(_page, default_timeout=60)
    for k, v in params.items():
        at.query_params[k] = v
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.title[0].value == "Drift"
    return at


def texts(at: AppTest) -> list[str]:
    return [t.value for t in at.text]


@pytest.fixture
def runs(vector_db_url: str, tmp_path: Path) -> tuple[str, ImageRuns]:
    conninfo = raw_conninfo(vector_db_url)
    return conninfo, seed_image_runs(conninfo, tmp_path / "images")


def test_the_newest_image_run_with_what_moved(runs, monkeypatch) -> None:
    conninfo, ids = runs
    at = run_drift(conninfo, monkeypatch)
    assert [t.label for t in at.tabs][2] == "Image drift (CLIP embeddings)"
    assert len(at.get("plotly_chart")) == 2  # the history, what moved
    table = at.dataframe[0].value
    assert table["run"].tolist()[:2] == [ids.newest, ids.failed]  # newest first
    newest = table.iloc[0]
    assert newest["CMMD × 1000"] == 2.345 and newest["p-value"] == 0.005
    assert newest["α"] == 0.05 and newest["effect size"] == 0.91 and newest["drifted"]
    assert at.selectbox(key="drift-run-images").value == ids.newest
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["CMMD × 1000"] == "2.345" and metrics["p-value"] == "0.005"
    assert metrics["Images (reference / current)"] == "400 / 420"
    assert [e.value for e in at.error] == ["Drifted."]
    assert any(t.startswith("The model changed: on the same prompts") for t in texts(at))
    per_version, same = at.dataframe[1].value, at.dataframe[2].value
    assert per_version.iloc[0]["compared"] == "version v1" and not per_version.iloc[0]["drifted"]
    row = same.iloc[0]
    assert (row["from version"], row["to version"], row["pairs"]) == ("v1", "v2", 120)
    assert row["drifted"] and row["CMMD × 1000"] == 4.1
    labels = [e.label for e in at.expander]
    assert labels[0] == "Cluster #0: 5.0 % → 31.0 % (+26.0 pts)"
    assert labels[1] == "Cluster #1: 40.0 % → 22.0 % (-18.0 pts)"
    # Example images: version and id as text, prompts verbatim as plain text, never Markdown
    shown_texts = texts(at)
    for gid in ids.examples:
        assert any(t.endswith(f" · #{gid}") for t in shown_texts), gid
    assert HOSTILE in shown_texts
    assert all("<script" not in m.value for m in at.markdown)
    # blurred: the one stored flagged, and the one flagged since the run
    assert len([b for b in at.button if b.label.startswith("Reveal")]) == 2


def test_an_older_run_by_link_says_nothing_moved(runs, monkeypatch) -> None:
    conninfo, ids = runs
    at = run_drift(conninfo, monkeypatch, run=str(ids.quiet))
    assert at.selectbox(key="drift-run-images").value == ids.quiet
    assert any("No image drift detected" in s.value for s in at.success)
    assert "Nothing moved beyond chance: the current images look like the reference window's." in (
        texts(at)
    )
    assert not at.error and not at.expander  # nothing moved, nothing to show


def test_a_failed_run_shows_its_error(runs, monkeypatch) -> None:
    conninfo, ids = runs
    at = run_drift(conninfo, monkeypatch, run=str(ids.failed))
    assert any(f"Run #{ids.failed} failed" in e.value for e in at.error)
    assert [c.value for c in at.code] == [FAILED_ERROR]
    assert not at.metric


def test_a_hostile_cluster_id_and_summary_stay_inert(runs, monkeypatch) -> None:
    import psycopg

    conninfo, ids = runs
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(
            "UPDATE drift_runs SET summary = jsonb_set(jsonb_set(summary, '{moved,0,cluster}',"
            " to_jsonb('<b>x</b>](javascript:alert(1))'::text)), '{attribution}',"
            " to_jsonb('**owned** <script>alert(1)</script>'::text)) WHERE id = %s",
            (ids.newest,),
        )
    at = run_drift(conninfo, monkeypatch)
    assert at.expander[0].label.startswith("Cluster #bxbjavascrip: ")  # letters and digits
    assert "Attribution: **owned** <script>alert(1)</script>" in texts(at)  # as plain text
    for m in [*at.markdown, *at.caption, *at.info, *at.warning]:
        assert "<script" not in m.value and "](javascript" not in m.value


def test_image_runs_beside_prompt_runs_open_by_link(runs, monkeypatch, tmp_path) -> None:
    conninfo, ids = runs
    seed_drift(conninfo, tmp_path / "drift")
    at = run_drift(conninfo, monkeypatch, run=str(ids.newest))
    assert len(at.tabs) == 3
    assert at.selectbox(key="drift-run-images").value == ids.newest
    assert not any("not among the runs listed" in i.value for i in at.info)


def test_without_pgvector_the_tab_says_so_and_still_lists_runs(
    conninfo, monkeypatch, tmp_path
) -> None:
    ids = seed_image_runs(conninfo, tmp_path / "images")
    at = run_drift(conninfo, monkeypatch)
    lines = [shown(i.value) for i in at.info if PGVECTOR_LINE in shown(i.value)]
    assert len(lines) == 1 and "install pgvector" in lines[0]
    assert at.dataframe[0].value["run"].iloc[0] == ids.newest  # stored runs stay readable

"""The Drift page (Streamlit AppTest): no runs yet, runs of each kind, drill-down to what
moved, to a run's items and to images side by side; failed and demo runs; hostile text."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest
import streamlit as st
from PIL import Image
from streamlit.testing.v1 import AppTest

from diffwatch.app.views.drift_output import DEMO_LABEL
from diffwatch.db.queries.drift import finish_run, insert_items, start_run
from tests.app.accounts import shown
from tests.app.dataset import XSS_PROMPTS

REPO = Path(__file__).resolve().parents[2]
TOP_EXAMPLE = "a watercolor fox in the snow, top cluster example"
HOSTILE = XSS_PROMPTS[0]
FAILED_ERROR = "CUDA out of memory while embedding 4096 prompts; fix: lower --batch-size"


@dataclass(frozen=True)
class DriftIds:
    """Ids of the seeded runs and items, for links (?run=, ?item=)."""

    drifted: int
    failed: int
    demo_prompts: int
    empty_summary: int
    regenerate: int
    golden: int
    golden_first: int
    flagged_item: int
    error_item: int
    missing_item: int
    nsfw_item: int


def _png(path: Path, color: tuple[int, int, int]) -> str:
    rng = np.random.default_rng(sum(color))
    pixels = np.clip(np.array(color) + rng.integers(-20, 20, (64, 64, 3)), 0, 255)
    Image.fromarray(pixels.astype(np.uint8)).save(path)
    return str(path)


LEXICAL = {"method": "tfidf-cosine-mmd-permutation", "statistic": 0.012, "p_value": 0.002,
           "alpha": 0.05, "drifted": True, "effect_size": 0.74, "effect_size_name": "centroid_auc",
           "n_reference": 500, "n_current": 480, "permutations": 500, "terms": 2210,
           "empty_prompts": 0}  # fmt: skip
COMBINED = {"method": "westfall-young-minp", "tests": ["embedding", "lexical"], "p_value": 0.001,
            "alpha": 0.05, "drifted": True, "p_values": {"embedding": 0.001, "lexical": 0.002},
            "adjusted_p_values": {"embedding": 0.001, "lexical": 0.003},
            "decided_by": ["embedding", "lexical"], "permutations": 500, "seed": 0}  # fmt: skip


def _with_lexical(summary: dict[str, Any]) -> dict[str, Any]:
    """A summary as runs store it since the lexical test (older runs lack both keys)."""
    return {**summary, "lexical": LEXICAL, "combined": COMBINED}


def _prompt_summary(drifted: bool) -> dict[str, Any]:
    return {
        "test": {"method": "mmd_permutation", "statistic": 0.031, "p_value": 0.001 if drifted
                 else 0.41, "alpha": 0.05, "drifted": drifted, "effect_size": 0.81 if drifted
                 else 0.52, "effect_size_name": "knn_auc", "n_reference": 500, "n_current": 480,
                 "permutations": 1000, "bandwidth": 0.7},
        "clusters": [
            {"cluster": 3, "share_reference": 0.05, "share_current": 0.31, "delta": 0.26,
             "terms": ["watercolor", "fox", "snow"], "examples": [TOP_EXAMPLE, HOSTILE]},
            {"cluster": 1, "share_reference": 0.40, "share_current": 0.22, "delta": -0.18,
             "terms": ["portrait", "studio"], "examples": ["studio portrait of a cat"]},
            {"cluster": 0, "share_reference": 0.55, "share_current": 0.47, "delta": -0.08},
        ],
        "terms": {
            "grew": [{"term": "watercolor", "count_reference": 4, "count_current": 120,
                      "rate_reference": 0.008, "rate_current": 0.25, "z": 11.2}],
            "shrank": [{"term": "portrait", "count_reference": 150, "count_current": 70,
                        "rate_reference": 0.3, "rate_current": 0.146, "z": -5.9}],
        },
        "parameters": [
            {"parameter": "sampler", "test": "chi2", "statistic": 14.2, "p_value": 0.0008,
             "effect_size": 0.17, "effect_size_name": "cramers_v", "drifted": True,
             "n_reference": 500, "n_current": 480,
             "reference_summary": {"euler_a": 0.7, "dpmpp_2m": 0.3},
             "current_summary": {"euler_a": 0.4, "dpmpp_2m": 0.6}},
            {"parameter": "steps", "test": "ks", "statistic": 0.04, "p_value": 0.8,
             "effect_size": 0.04, "effect_size_name": "ks_d", "drifted": False},
        ],
        "windows": {"reference": "2026-11-01 – 2026-11-08", "current": "2026-11-08 – 2026-11-09"},
        "parameters_drifted": ["sampler"] if drifted else [],
    }  # fmt: skip


def seed_drift(conninfo: str, images: Path) -> DriftIds:
    """Runs of every kind over the last days: prompt drift (drifted, not drifted, failed,
    demo, one with an empty summary), a re-generation run with flagged, failed and
    missing-image items, and a golden set (first run: baselines; second: demo, compared)."""
    images.mkdir(parents=True, exist_ok=True)
    now = datetime.now(UTC)
    with psycopg.connect(conninfo) as conn:

        def run(kind: str, days_ago: float, status: str = "ok", **fields: Any) -> int:
            start = {k: fields.pop(k) for k in ("model", "baseline", "embedder", "pipeline",
                                                 "demo") if k in fields}  # fmt: skip
            rid = start_run(conn, kind, **start)
            finish_run(conn, rid, status, **fields)
            conn.execute("UPDATE drift_runs SET started_at = %s, finished_at = %s WHERE id = %s",
                         (now - timedelta(days=days_ago), now - timedelta(days=days_ago,
                          minutes=-5), rid))  # fmt: skip
            conn.commit()
            return rid

        windows = {
            "reference_start": now - timedelta(days=9),
            "reference_end": now - timedelta(days=2),
            "current_start": now - timedelta(days=2),
            "current_end": now - timedelta(days=1),
        }
        for d, p, eff in ((5, 0.3, 0.51), (4, 0.2, 0.53)):
            run("prompts", d, model="sdxl", embedder="open_clip ViT-B-32", drifted=False,
                p_value=p, effect_size=eff, n_reference=500, n_current=480,
                summary=_prompt_summary(False), **windows)  # fmt: skip
        failed = run("prompts", 3.5, "failed", model="sdxl", error=FAILED_ERROR)
        empty = run("prompts", 3, model="sdxl", drifted=False, p_value=0.5, effect_size=0.5)
        demo = run("prompts", 2.5, demo=True, embedder="tiny random CLIP", drifted=False,
                   p_value=0.6, effect_size=0.49, summary=_prompt_summary(False),
                   **windows)  # fmt: skip
        drifted = run("prompts", 1, model="sdxl", baseline="launch-week", embedder="open_clip",
                      drifted=True, p_value=0.001, effect_size=0.81, n_reference=500,
                      n_current=480, summary=_with_lexical(_prompt_summary(True)),
                      **windows)  # fmt: skip

        gen = conn.execute(
            "INSERT INTO generations (request_id, ts, model, model_version, prompt, status)"
            " VALUES ('nsfw-1', now(), 'sdxl', 'v2', 'nsfw prompt', 'ok') RETURNING id"
        ).fetchone()[0]
        conn.execute(
            "INSERT INTO scorer_results (generation_id, scorer, scorer_version, value, flagged)"
            " VALUES (%s, 'nsfw', 'n', 0.97, true)",
            (gen,),
        )
        conn.commit()
        calib = {"pairs": 8, "max_distance": 0.04, "median_distance": 0.01}
        regen = run("regenerate", 0.5, pipeline="sdxl fp16 euler", n_items=5, n_flagged=2,
                    n_errors=1, summary={"tolerance": 0.06, "calibration": calib,
                    "by_version": {"v1": {"items": 3, "flagged": 1, "mean_cosine": 0.9},
                                   "v2": {"items": 2, "flagged": 1, "mean_cosine": 0.7}}},
                    **windows)  # fmt: skip
        common = {"sampler": "euler_a", "steps": 30, "cfg_scale": 7.0, "width": 64,
                  "height": 64, "tolerance": 0.06}  # fmt: skip
        insert_items(conn, regen, [
            {"item_key": "g-ok", "model_version": "v1", "prompt": "a calm lake", "seed": 1,
             "status": "ok", "image_cosine": 0.97, "clip_reference": 30.0, "clip_regen": 29.5,
             "clip_delta": -0.5, "flagged": False, **common,
             "reference_uri": _png(images / "ok-o.png", (40, 90, 200)),
             "regen_uri": _png(images / "ok-r.png", (45, 95, 190))},
            {"item_key": "g-flag", "model_version": "v1", "prompt": HOSTILE, "seed": 2,
             "status": "ok", "image_cosine": 0.71, "clip_reference": 31.0, "clip_regen": 24.0,
             "clip_delta": -7.0, "flagged": True, **common,
             "reference_uri": _png(images / "f-o.png", (200, 40, 40)),
             "regen_uri": "file://" + _png(images / "f-r.png", (40, 200, 40))},
            {"item_key": "g-missing", "model_version": "v2", "prompt": "a red barn", "seed": 3,
             "status": "ok", "image_cosine": 0.93, "flagged": False, **common,
             "reference_uri": str(images / "gone.png"),
             "regen_uri": _png(images / "m-r.png", (120, 120, 0))},
            {"item_key": "g-error", "model_version": "v2", "prompt": "an old ship", "seed": 4,
             "status": "error", "error_kind": "unknown_sampler", **common,
             "error": "sampler 'my_custom_sampler' has no diffusers scheduler; fix: map it",
             "reference_uri": _png(images / "e-o.png", (0, 0, 0))},
            {"item_key": "g-nsfw", "generation_id": gen, "model_version": "v2",
             "prompt": "nsfw prompt", "seed": 5, "status": "ok", "image_cosine": 0.6,
             "flagged": True, **common,
             "reference_uri": _png(images / "n-o.png", (250, 180, 160)),
             "regen_uri": _png(images / "n-r.png", (240, 170, 150))},
        ])  # fmt: skip
        golden_first = run("golden", 6, baseline="core@1", pipeline="sdxl fp16", n_items=2)
        insert_items(conn, golden_first, [
            {"item_key": k, "prompt": f"golden {k}", "seed": 7, "status": "baseline",
             "regen_uri": _png(images / f"b-{k}.png", (90, 90, 90))} for k in ("a", "b")
        ])  # fmt: skip
        golden = run("golden", 0.2, baseline="core@1", pipeline="tiny random pipeline",
                     demo=True, n_items=2, n_flagged=1,
                     summary={"tolerance": 0.05, "calibration": calib})  # fmt: skip
        insert_items(conn, golden, [
            {"item_key": k, "prompt": f"golden {k}", "seed": 7, "status": "ok",
             "image_cosine": cos, "flagged": cos < 0.95, "tolerance": 0.05,
             "reference_uri": str(images / f"b-{k}.png"),
             "regen_uri": _png(images / f"gr-{k}.png", (99, 20, 20)),
             "details": {"baseline_uri": str(images / f"b-{k}.png")}}
            for k, cos in (("a", 0.99), ("b", 0.5))
        ])  # fmt: skip
        items = dict(conn.execute(
            "SELECT item_key, id FROM drift_items WHERE run_id = %s", (regen,)
        ).fetchall())  # fmt: skip
    return DriftIds(
        drifted=drifted, failed=failed, demo_prompts=demo, empty_summary=empty,
        regenerate=regen, golden=golden, golden_first=golden_first,
        flagged_item=items["g-flag"], error_item=items["g-error"],
        missing_item=items["g-missing"], nsfw_item=items["g-nsfw"],
    )  # fmt: skip


def _page() -> None:  # runs inside AppTest as the page script
    from diffwatch.app.views import drift

    drift.render()


def run_drift(conninfo: str, monkeypatch: pytest.MonkeyPatch, **params: str) -> AppTest:
    monkeypatch.setenv("DIFFWATCH_APP_CONNINFO", conninfo)
    st.cache_data.clear()  # results are cached per arguments, not per database
    at = AppTest.from_function(_page, default_timeout=60)
    for k, v in params.items():
        at.query_params[k] = v
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.title[0].value == "Drift"
    return at


def charts(at: AppTest) -> int:
    return len(at.get("plotly_chart"))


def texts(at: AppTest) -> list[str]:
    return [t.value for t in at.text]


@pytest.fixture
def drift_db(conninfo: str, tmp_path: Path) -> tuple[str, DriftIds, Path]:
    return conninfo, seed_drift(conninfo, tmp_path / "drift"), tmp_path / "drift"


def test_no_runs_yet_says_how_to_make_one(conninfo, monkeypatch) -> None:
    at = run_drift(conninfo, monkeypatch)
    assert charts(at) == 0
    says = " ".join(i.value for i in at.info)
    assert "No drift runs yet" in says
    assert "`diffwatch drift prompts`" in says and "`diffwatch drift regenerate`" in says
    assert at.query_params["range"] == "30d"  # the page's own default: drift runs daily


def test_runs_of_each_kind_are_charted_with_what_moved(drift_db, monkeypatch) -> None:
    conninfo, ids, _ = drift_db
    at = run_drift(conninfo, monkeypatch)
    # prompt drift over time, its clusters, output drift over time
    assert charts(at) == 3
    prompt_runs = at.dataframe[0].value
    assert prompt_runs["run"].iloc[0] == ids.drifted  # newest first
    assert set(prompt_runs["run"]) >= {ids.failed, ids.demo_prompts, ids.empty_summary}
    row = prompt_runs[prompt_runs["run"] == ids.drifted].iloc[0]
    assert row["drifted"] and row["p-value"] == 0.001 and row["n reference"] == 500
    assert row["reference → current"].startswith("baseline launch-week → ")
    # the newest prompt run is selected: its verdict and the top cluster's examples
    assert any("Drifted" in e.value for e in at.error)
    assert any("beyond chance" in t and "parameters changed: sampler" in t for t in texts(at))
    assert {"p-value": "0.001", "Effect size": "0.810"}.items() <= {
        m.label: m.value for m in at.metric
    }.items()
    # both prompt tests: their own and adjusted p-values and effect sizes, and who decided
    assert any("by their embeddings (adjusted p 0.001) and by their words (adjusted p 0.003)"
               in t for t in texts(at))  # fmt: skip
    tests = next(d.value for d in at.dataframe if "adjusted p-value" in d.value)
    assert list(tests["adjusted p-value"]) == [0.001, 0.003]
    assert list(tests["effect size"]) == [0.81, 0.74] and all(tests["flags drift"])
    assert tests["effect measure"].iloc[1].startswith("TF-IDF centroid AUC")
    assert any("(Westfall–Young min-p over the two, on shared" in c.value for c in at.caption)
    shown = texts(at)
    assert TOP_EXAMPLE in shown and "Terms: watercolor, fox, snow" in shown
    clusters = [e.label for e in at.expander if e.label.startswith("Cluster")]
    assert clusters[0] == "Cluster #3: 5.0 % → 31.0 % (+26.0 pts)"
    frames = [d.value for d in at.dataframe]
    grew = next(f for f in frames if "term" in f and "watercolor" in list(f["term"]))
    assert grew["count current"].iloc[0] == 120
    params = next(f for f in frames if "parameter" in f)
    assert list(params["parameter"]) == ["sampler", "steps"]
    assert '"dpmpp_2m": 0.6' in params["current"].iloc[0]
    # output runs: demo runs are announced, both kinds listed
    assert any("demo runs" in w.value for w in at.warning)
    output_runs = next(f for f in frames if "golden set / window" in f)
    assert set(output_runs["run"]) == {ids.regenerate, ids.golden, ids.golden_first}
    regen = output_runs[output_runs["run"] == ids.regenerate].iloc[0]
    assert regen["compared"] == 4 and regen["flagged %"] == pytest.approx(50.0)


def test_hostile_prompts_are_plain_text(drift_db, monkeypatch) -> None:
    conninfo, ids, _ = drift_db
    at = run_drift(conninfo, monkeypatch, run=str(ids.regenerate), item=str(ids.flagged_item))
    assert HOSTILE in texts(at)  # the re-generated item's prompt, verbatim
    at = run_drift(conninfo, monkeypatch)
    assert HOSTILE in texts(at)  # a cluster's example prompt, verbatim
    assert all("<script>" not in m.value for m in at.markdown)
    assert all("<script>" not in c.value for c in at.caption)
    for path in (REPO / "diffwatch" / "app").rglob("*.py"):
        assert "unsafe_allow_html" not in path.read_text(), path


def test_a_stored_combination_method_is_shown_as_plain_text(drift_db, monkeypatch) -> None:
    """A summary's ``combined.method`` is data: one that is not ours reads verbatim, inert."""
    conninfo, ids, _ = drift_db
    hostile = "**bold** [click](http://evil.example) <script>x</script> :red[red]"
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(
            "UPDATE drift_runs SET summary = jsonb_set(summary, '{combined,method}', %s)"
            " WHERE id = %s",
            (json.dumps(hostile), ids.drifted),
        )
    at = run_drift(conninfo, monkeypatch)
    caption = next(c.value for c in at.caption if c.value.startswith("Both prompt tests"))
    assert shown(caption).count(hostile) == 1 and "<script>" not in caption
    assert "**bold**" not in caption and "](http" not in caption
    fixed = "fixed sequence: the lexical test at α first"
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(
            "UPDATE drift_runs SET summary = jsonb_set(summary, '{combined,method}', %s)"
            " WHERE id = %s",
            (json.dumps("fixed-sequence-lexical-first"), ids.drifted),
        )
    at = run_drift(conninfo, monkeypatch)
    assert any(fixed in shown(c.value) for c in at.caption)


def test_failed_run_shows_its_error(drift_db, monkeypatch) -> None:
    conninfo, ids, _ = drift_db
    at = run_drift(conninfo, monkeypatch, run=str(ids.failed))
    assert any(f"Run #{ids.failed} failed" in e.value for e in at.error)
    assert FAILED_ERROR in [c.value for c in at.code]
    table = at.dataframe[0].value
    assert table[table["run"] == ids.failed].iloc[0]["error"] == FAILED_ERROR


def test_a_run_stored_before_the_lexical_test_reads_as_before(drift_db, monkeypatch) -> None:
    conninfo, ids, _ = drift_db
    at = run_drift(conninfo, monkeypatch, run=str(ids.demo_prompts))
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["p-value"] == "0.6" and metrics["Effect size"] == "0.490"
    assert any("No drift detected" in s.value for s in at.success)
    assert not any("adjusted p-value" in d.value for d in at.dataframe)
    details = next(e for e in at.expander if e.label.startswith("Test details"))
    frame = details.dataframe[0].value
    assert list(frame.columns) == ["field", "embedding"] and "bandwidth" in list(frame["field"])


def test_demo_runs_carry_the_demo_label(drift_db, monkeypatch) -> None:
    conninfo, ids, _ = drift_db
    for run in (ids.demo_prompts, ids.golden):
        at = run_drift(conninfo, monkeypatch, run=str(run))
        assert any(w.value == DEMO_LABEL for w in at.warning), run
    at = run_drift(conninfo, monkeypatch, run=str(ids.drifted))
    prompt_tab = at.tabs[0]
    assert not any(w.value == DEMO_LABEL for w in prompt_tab.warning)
    assert any("1 of these 6 runs are demo runs" in w.value for w in prompt_tab.warning)


def test_drill_down_to_items_errors_and_images_side_by_side(drift_db, monkeypatch) -> None:
    conninfo, ids, images = drift_db
    at = run_drift(conninfo, monkeypatch, run=str(ids.regenerate))
    frames = [d.value for d in at.dataframe]
    items = next(f for f in frames if "image cosine" in f)
    # flagged first (lowest cosine first among them), then the error, then the rest
    assert list(items["item"]) == ["g-nsfw", "g-flag", "g-error", "g-missing", "g-ok"]
    assert items["CLIP Δ"].iloc[1] == -7.0 and items["sampler"].iloc[0] == "euler_a"
    errors = next(f for f in frames if list(f.columns) == ["item", "kind", "error", "prompt"])
    assert list(errors["kind"]) == ["unknown_sampler"]
    assert "no diffusers scheduler" in errors["error"].iloc[0]
    assert {m.label: m.value for m in at.metric}["Flagged"] == "2"
    # the worst item is shown first: NSFW-flagged, so its images are blurred behind Reveal
    assert [b.label for b in at.button if b.label.startswith("Reveal")]
    at = run_drift(conninfo, monkeypatch, run=str(ids.regenerate), item=str(ids.flagged_item))
    assert len(at.get("image")) == 2  # original | re-generated
    shown = texts(at)
    assert str(images / "f-o.png") in shown and "file://" + str(images / "f-r.png") in shown
    assert any("Image cosine 0.710" in t and "FLAGGED" in t for t in shown)
    assert not [b for b in at.button if b.label.startswith("Reveal")]
    # a missing original says so in its place; the re-generated image still shows
    at = run_drift(conninfo, monkeypatch, run=str(ids.regenerate), item=str(ids.missing_item))
    assert any(t.startswith("image unavailable") and "not found" in t for t in texts(at))
    assert len(at.get("image")) == 1
    # an item that failed shows its reason
    at = run_drift(conninfo, monkeypatch, run=str(ids.regenerate), item=str(ids.error_item))
    assert any("my_custom_sampler" in c.value for c in at.code)
    assert "no image stored for this item" in texts(at)


def test_golden_run_shows_baseline_and_regenerated(drift_db, monkeypatch) -> None:
    conninfo, ids, images = drift_db
    at = run_drift(conninfo, monkeypatch, run=str(ids.golden))
    assert len(at.get("image")) == 2  # re-generated | golden baseline
    shown = texts(at)
    assert str(images / "b-b.png") in shown  # the flagged item (cosine 0.5) comes first
    assert "golden b" in shown


def test_choosing_a_run_and_an_item_goes_to_the_url(drift_db, monkeypatch) -> None:
    conninfo, ids, _ = drift_db
    at = run_drift(conninfo, monkeypatch)
    prompt_run, output_run = (s for s in at.selectbox if s.label == "Run")
    prompt_run.set_value(ids.failed).run()
    assert not at.exception
    assert str(ids.failed) in str(at.query_params["run"])
    assert any(f"Run #{ids.failed} failed" in e.value for e in at.error)
    output_run = at.selectbox(key="drift-run-output")
    output_run.set_value(ids.regenerate).run()
    assert not at.exception
    assert str(ids.regenerate) in str(at.query_params["run"])
    item = next(s for s in at.selectbox if s.label == "Item")
    item.set_value(ids.missing_item).run()
    assert not at.exception
    assert str(ids.missing_item) in str(at.query_params["item"])
    assert any(t.startswith("image unavailable") for t in texts(at))


def test_missing_summaries_and_unfinished_runs_do_not_break_the_page(
    drift_db, conninfo, monkeypatch
) -> None:
    _, ids, _ = drift_db
    at = run_drift(conninfo, monkeypatch, run=str(ids.empty_summary))
    assert any("stored no breakdown" in i.value for i in at.info)
    with psycopg.connect(conninfo) as conn:
        stuck = start_run(conn, "regenerate", model="sdxl")
        conn.execute(
            "UPDATE drift_runs SET started_at = now() - interval '8 hours' WHERE id = %s", (stuck,)
        )
        fresh = start_run(conn, "prompts", model="sdxl")
        conn.execute("UPDATE drift_runs SET summary = '[1, 2]' WHERE id = %s", (fresh,))
        conn.commit()
    at = run_drift(conninfo, monkeypatch, run=str(stuck))
    assert any("probably crashed" in w.value for w in at.warning)
    at = run_drift(conninfo, monkeypatch, run=str(fresh))
    assert any("still running" in i.value for i in at.info)


def test_runs_outside_the_range_say_to_widen_it(drift_db, monkeypatch) -> None:
    conninfo, _, _ = drift_db
    at = run_drift(conninfo, monkeypatch, range="1h")
    assert charts(at) == 0
    assert any("No drift runs in this time range" in i.value for i in at.info)

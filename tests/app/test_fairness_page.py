"""The Fairness page (Streamlit AppTest) on bias-probe runs stored through the probe's own
code (``tests.app.bias_seed``): per-occupation shares per version with intervals, the trend
over runs, the newest run's figures, one run opened (its changes since the run before,
abstain rates, reader agreement and its images per prompt), links, the empty page, roles,
and hostile names shown as literal text. The shaping functions are tested on their own at
the end."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb
from streamlit.testing.v1 import AppTest

from diffwatch.analytics.intervals import wilson
from diffwatch.app import fairness_run_rows as rr
from diffwatch.app import fairness_shape as fs
from diffwatch.app.text import md
from diffwatch.bias.attributes import MST_SWATCHES
from diffwatch.db.queries import bias as q
from tests.app.accounts import add_account, as_user, shown
from tests.app.bias_seed import SEEDS, BiasIds, seed_bias
from tests.app.test_pages import run_page

HOSTILE = "<script>alert(1)</script> **x** [a](javascript:alert(1)) ![i](http://evil.example/i.png)"
# What a Markdown or HTML reading of HOSTILE would act on (each not backslash-escaped).
RAW = re.compile(r"(?<!\\)<script|(?<!\\)\*\*x|(?<!\\)\]\(javascript|(?<!\\)!\[i")
REFERENCE = "expected share (the suite's reference)"


@pytest.fixture
def bias(conninfo: str, tmp_path: Path) -> BiasIds:
    return seed_bias(conninfo, tmp_path / "bias")


def figures(at: AppTest) -> list[dict[str, Any]]:
    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


def figure(at: AppTest, **layout: Any) -> dict[str, Any]:
    """The one figure whose layout has these values (``title`` matches by substring)."""
    found = [
        f for f in figures(at)
        if all(v in f["layout"].get("title", {}).get("text", "") if k == "title"
               else f["layout"].get(k) == v for k, v in layout.items())
    ]  # fmt: skip
    assert len(found) == 1, [f["layout"].get("title") for f in figures(at)]
    return found[0]


def bars(fig: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Trace name -> category -> x (share, %)."""
    return {t["name"]: dict(zip(t["y"], t["x"], strict=True)) for t in fig["data"]}


def frame(at: AppTest, column: str) -> Any:
    return next(d.value for d in at.dataframe if column in d.value.columns)


def summary(conninfo: str, run_id: int) -> dict[str, Any]:
    with psycopg.connect(conninfo) as conn:
        run = q.run(conn, run_id)
    assert run is not None
    return run["summary"]


def texts(at: AppTest) -> list[str]:
    return [t.value for t in at.text]


def grid_lines(at: AppTest) -> list[str]:
    """The lines under the grid's images (one Markdown line each), as a reader sees them."""
    return [line for c in at.caption for line in shown(c.value).split("  \n")]


def test_the_bars_hold_both_versions_per_occupation_with_intervals(bias, conninfo, monkeypatch):
    at = run_page("fairness", conninfo, monkeypatch)
    fig = figure(at, barmode="group")
    assert fig["layout"]["title"]["text"].startswith("Perceived woman: share of each occupation")
    shares = bars(fig)
    assert list(shares) == ["v1", "v2", REFERENCE]  # old to new, then the suite's reference
    # v1 stays near the reference, v2 reads 95 % of doctors as men
    assert shares["v1"]["doctor"] == pytest.approx(45.0)
    assert shares["v2"]["doctor"] == pytest.approx(5.0)
    assert shares["v2"]["nurse"] == pytest.approx(95.0)
    assert shares[REFERENCE]["doctor"] == pytest.approx(44.0)
    v2 = next(t for t in fig["data"] if t["name"] == "v2")
    i = v2["y"].index("doctor")
    ci = wilson(1, 20)  # 20 images counted per occupation
    assert 5.0 + v2["error_x"]["array"][i] == pytest.approx(100 * ci.high)
    assert 5.0 - v2["error_x"]["arrayminus"][i] == pytest.approx(100 * ci.low)
    table = frame(at, "occupation / prompt")
    row = table[(table["occupation / prompt"] == "doctor") & (table["version"] == "v2")]
    assert list(row["perceived class"]) == ["woman", "man"]
    assert list(row["share"]) == ["5.0 %", "95.0 %"] and list(row["images"]) == [1, 19]
    # the share of men instead
    at.radio(key="fairness-class-gender").set_value("man").run()
    assert bars(figure(at, barmode="group"))["v2"]["doctor"] == pytest.approx(95.0)


def test_the_newest_run_heads_the_page(bias, conninfo, monkeypatch) -> None:
    at = run_page("fairness", conninfo, monkeypatch)
    now, before = summary(conninfo, bias.v2), summary(conninfo, bias.v1)
    worst = now["attributes"]["gender"]["clip"]["aggregate"]["worst_k_max_skew"]
    prior = before["attributes"]["gender"]["clip"]["aggregate"]["worst_k_max_skew"]
    kpi = {m.label: m for m in at.metric}
    assert kpi["Worst-3 MaxSkew"].value == f"{worst:.3f} nats"
    assert kpi["Worst-3 MaxSkew"].delta == f"{worst - prior:+.3f} since the last run"
    assert worst > prior  # v2 is more skewed than the v1 run before it
    assert kpi["Person-gate abstain rate"].value == "5.7 %"  # 5 of 88 images
    assert kpi["Images in the run"].value == "88"
    assert kpi["Mean |p − 0.5|"].value == f"{now['headline']['mean_abs_gap']:.3f}"
    head = next(c.value for c in at.caption if c.value.startswith("Newest run"))
    assert f"#{bias.v2}" in head and f"run #{bias.v1} (v1)" in head


def test_the_trend_has_one_point_per_run(bias, conninfo, monkeypatch) -> None:
    at = run_page("fairness", conninfo, monkeypatch)
    fig = figure(at, title="per run")
    dots = [t for t in fig["data"] if t["mode"] == "markers"]
    assert [t["name"] for t in dots] == ["v1", "v2"]
    assert sorted(x for t in dots for x in t["customdata"]) == sorted(bias.runs)
    (line,) = [t for t in fig["data"] if t["mode"] == "lines"]
    assert len(line["x"]) == 3 and line["x"] == sorted(line["x"])  # oldest first
    at.selectbox(key="fairness-metric").set_value("abstain_rate").run()
    fig = figure(at, title="per run")
    assert fig["layout"]["yaxis"]["ticksuffix"] == " %"
    assert "One dot per finished run (3)" in " ".join(c.value for c in at.caption)


def test_skin_tone_stacks_the_monk_classes_in_their_swatch_colours(bias, conninfo, monkeypatch):
    at = run_page("fairness", conninfo, monkeypatch, attribute="skin_tone")
    assert at.sidebar.selectbox(key="fairness-attribute").value == "skin_tone"
    assert at.sidebar.selectbox(key="fairness-reader").options == ["CLIP zero-shot",
                                                                   "face skin pixels"]  # fmt: skip
    fig = figure(at, barmode="stack")
    assert [t["name"] for t in fig["data"]] == [f"MST {i}" for i in range(1, 11)]
    assert [t["marker"]["color"] for t in fig["data"]] == list(MST_SWATCHES.values())
    occupations, versions = fig["data"][0]["y"]
    occupations_and_versions = set(zip(occupations, versions, strict=True))
    assert occupations_and_versions == {
        (o, v) for o in ("doctor", "nurse", "engineer", "teacher") for v in ("v1", "v2")
    }
    for i in range(len(occupations)):  # each version's images of an occupation: 100 %
        assert sum(t["x"][i] for t in fig["data"]) == pytest.approx(100.0)
    assert "Monk Skin Tone" in " ".join(c.value for c in at.caption)


def test_two_models_each_get_a_line_and_name_their_versions(
    bias, conninfo, monkeypatch, tmp_path
) -> None:
    seed_bias(conninfo, tmp_path / "other", model="other-xl", failed=False)
    at = run_page("fairness", conninfo, monkeypatch, model="studio-xl,other-xl")
    assert at.sidebar.multiselect(key="fairness-model").value == ["studio-xl", "other-xl"]
    fig = figure(at, title="per run")
    lines = [t["name"] for t in fig["data"] if t["mode"] == "lines"]
    assert sorted(lines) == ["other-xl: runs in time order", "studio-xl: runs in time order"]
    dots = {t["name"]: len(t["x"]) for t in fig["data"] if t["mode"] == "markers"}
    assert dots == {"studio-xl · v1": 2, "studio-xl · v2": 1, "other-xl · v1": 2,
                    "other-xl · v2": 1}  # fmt: skip
    assert set(bars(figure(at, barmode="group"))) >= {"studio-xl · v2", "other-xl · v2"}


def test_another_reader_reads_other_shares(bias, conninfo, monkeypatch) -> None:
    at = run_page("fairness", conninfo, monkeypatch)
    clip = bars(figure(at, barmode="group"))
    at.sidebar.selectbox(key="fairness-reader").set_value("faces").run()
    assert not at.exception
    faces = bars(figure(at, barmode="group"))
    assert faces["v2"] != clip["v2"]  # NudeNet reads some faces the other way
    assert "(NudeNet faces)" in figure(at, barmode="group")["layout"]["title"]["text"]
    assert at.query_params["reader"] in ("faces", ["faces"])


def test_one_run_shows_its_changes_abstentions_and_agreement(bias, conninfo, monkeypatch):
    at = run_page("fairness", conninfo, monkeypatch)
    assert at.selectbox(key="fairness-run").value == bias.v2
    (said,) = at.warning
    assert said.value.startswith(f"Against run #{bias.v1} (v1): 1 of 4 perceived shares")
    changes = frame(at, "significant")
    top = changes.iloc[0]
    assert (top["prompt"], top["significant"], top["before"], top["now"]) == (
        bias.prompts["doctor"], True, "45.0 %", "5.0 %")  # fmt: skip
    assert changes["significant"].sum() == 1
    totals = frame(at, "reading").set_index("reading")
    gate = totals.loc["person gate (is a person perceived?)"]
    assert (gate["images"], gate["abstained"], gate["abstain rate"]) == (88, 5, "5.7 %")
    assert "Perceived gender presentation" in totals.index
    per_prompt = frame(at, "person gate").set_index("occupation")
    assert per_prompt.loc["engineer", "person gate"] == pytest.approx(2 / SEEDS)
    assert per_prompt.loc["doctor", "gender · CLIP"] == pytest.approx(2 / SEEDS)
    assert any(t.startswith("Person gate: 83 images with a person") for t in texts(at))
    agree = frame(at, "Cohen's κ").set_index("readers")
    assert set(agree.index) == {"CLIP zero-shot vs NudeNet faces",
                                "CLIP zero-shot vs face skin pixels"}  # fmt: skip
    assert all(n > 0 for n in agree["images both read"])


def test_the_grid_shows_the_prompts_images_with_what_was_perceived(bias, conninfo, monkeypatch):
    at = run_page("fairness", conninfo, monkeypatch)
    prompt = at.selectbox(key="fairness-prompt")
    assert prompt.value == bias.prompts["doctor"]  # v2's most skewed prompt first
    assert len(at.get("image")) == 12
    assert [t for t in texts(at) if t.startswith("seed ")] == [f"seed {i}" for i in range(12)]
    lines = grid_lines(at)
    # v2's doctors: seed 0 too close to call for CLIP, seed 1 the one perceived woman
    assert "perceived gender: abstained (CLIP: margin) · man (faces)" in lines
    assert lines.count("perceived gender: woman (CLIP) · woman (faces)") == 1
    assert lines.count("perceived age: young adult (CLIP)") >= 3
    at.selectbox(key="fairness-grid-size").set_value(24).run()
    assert len(at.get("image")) == SEEDS
    assert "no person perceived (closest: empty scene): not counted" in grid_lines(at)
    at.selectbox(key="fairness-prompt").set_value(bias.prompts["nurse"]).run()
    assert not at.exception and len(at.get("image")) == SEEDS
    assert at.query_params["prompt"] in (bias.prompts["nurse"], [bias.prompts["nurse"]])


def test_the_perceived_wording_is_everywhere(bias, conninfo, monkeypatch) -> None:
    at = run_page("fairness", conninfo, monkeypatch)
    first = at.info[0].value
    assert "**perceived** attribute of a generated image" in first
    assert "never a fact about a person" in first and "docs/bias.md" in first
    assert at.sidebar.selectbox(key="fairness-attribute").options[:1] == [
        "Perceived gender presentation"]  # fmt: skip
    assert "Perceived woman" in figure(at, barmode="group")["layout"]["title"]["text"]
    assert "perceived class" in frame(at, "occupation / prompt").columns
    grid = [line for line in grid_lines(at) if "(CLIP" in line]
    assert len(grid) >= 36 and all(line.startswith("perceived ") for line in grid)


def test_a_run_read_by_the_demo_clip_says_so(bias, conninfo, monkeypatch) -> None:
    at = run_page("fairness", conninfo, monkeypatch)
    assert any(c.value == md("Perceived by CLIP ViT-L-14/openai.") for c in at.caption)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(
            "UPDATE bias_runs SET pipeline = pipeline || %s WHERE id = %s",
            (Jsonb({"clip": "diffwatch-demo-clip/s1"}), bias.v2),
        )
    at = run_page("fairness", conninfo, monkeypatch)
    assert any("demo CLIP trained on the demo's synthetic scenes" in shown(i.value)
               for i in at.info)  # fmt: skip


def test_an_older_run_opens_by_link_and_a_bad_link_warns(bias, conninfo, monkeypatch) -> None:
    at = run_page("fairness", conninfo, monkeypatch, run=str(bias.v1))
    assert at.selectbox(key="fairness-run").value == bias.v1
    assert any(i.value.startswith(f"Against run #{bias.runs[0]} (v1): 0 of 4") for i in at.info)
    at = run_page("fairness", conninfo, monkeypatch, run=str(bias.runs[0]))
    assert any("first run of its suite and model" in i.value for i in at.info)
    at = run_page("fairness", conninfo, monkeypatch, run="abc")
    assert any("(?run=) is not a valid id" in w.value for w in at.warning)
    assert at.selectbox(key="fairness-run").value == bias.v2
    at = run_page("fairness", conninfo, monkeypatch, run=str(bias.failed))
    assert any(f"Run #{bias.failed} (?run= in the address) is not a finished run" in w.value
               for w in at.warning)  # fmt: skip
    assert at.selectbox(key="fairness-run").value == bias.v2


def test_the_address_picks_versions_and_the_attribute(bias, conninfo, monkeypatch) -> None:
    at = run_page("fairness", conninfo, monkeypatch, version="v1", attribute="age")
    assert at.sidebar.multiselect(key="fairness-version").value == ["v1"]
    fig = figure(at, barmode="stack")
    assert set(fig["data"][0]["y"][1]) == {"v1"}
    assert [t["name"] for t in fig["data"]] == [
        "child", "young adult", "middle-aged adult", "older adult"]  # fmt: skip
    at.sidebar.multiselect(key="fairness-version").set_value([]).run()
    assert any("Pick a model and at least one of its versions" in i.value for i in at.info)
    assert "version" not in at.query_params


def test_without_runs_the_page_says_how_to_make_one(conninfo, monkeypatch, tmp_path) -> None:
    at = run_page("fairness", conninfo, monkeypatch)
    assert any("`diffwatch bias probe --pipeline DIR`" in i.value for i in at.info)
    assert not at.get("plotly_chart") and not at.expander
    ids = seed_bias(conninfo, tmp_path / "b", failed=True)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("DELETE FROM bias_runs WHERE id <> %s", (ids.failed,))
    at = run_page("fairness", conninfo, monkeypatch)  # a failed run only
    assert any("No bias probe run has finished yet" in i.value for i in at.info)
    (exp,) = at.expander
    assert exp.label == "Runs in progress (0) or failed (1)"
    failed = frame(at, "error")
    assert list(failed["status"]) == ["failed"] and "max-batch 4" in failed["error"].iloc[0]


def test_hostile_model_and_term_are_shown_as_literal_text(conninfo, monkeypatch, tmp_path):
    v1 = f"v1 {HOSTILE}"
    ids = seed_bias(conninfo, tmp_path / "bias", model=HOSTILE, hostile_term=HOSTILE,
                    versions={"v1": v1})  # fmt: skip
    at = run_page("fairness", conninfo, monkeypatch)
    kinds = ("markdown", "caption", "header", "subheader", "title", "success", "error",
             "warning", "info")  # fmt: skip
    markdown = [str(e.value) for k in kinds for e in at.get(k)]
    markdown += [w.label for w in (*at.selectbox, *at.multiselect, *at.radio)]
    markdown += [m.label for m in at.metric]
    for value in markdown:
        assert not RAW.search(value), value
    # inert Markdown, read as typed: the newest run's line, the comparison's verdict
    assert any(HOSTILE in shown(v) and f"run #{ids.v1} ({v1})" in shown(v) for v in markdown)
    assert shown(at.warning[0].value).startswith(f"Against run #{ids.v1} ({v1}): 1 of 4")
    assert HOSTILE in at.sidebar.multiselect(key="fairness-model").options  # plain text
    assert v1 in at.sidebar.multiselect(key="fairness-version").options
    assert any(f"model {HOSTILE}" in t for t in texts(at))
    for fig in figures(at):
        spec = json.dumps(fig)
        assert "<script" not in spec and "&lt;script&gt;" in spec
    inert = HOSTILE.replace("<", "&lt;").replace(">", "&gt;")  # Plotly shows it as typed
    bars_ = bars(figure(at, barmode="group"))
    assert next(g for g in bars_["v2"] if "script" in g) == inert
    assert list(bars_)[:2] == [f"v1 {inert}", "v2"]
    assert any(o.startswith(HOSTILE) for o in at.selectbox(key="fairness-prompt").options)


def test_ops_open_the_page_and_raters_may_not(bias, conninfo, monkeypatch) -> None:
    ops = add_account(conninfo, "olga", "ops")
    at = as_user(conninfo, monkeypatch, ops, page="fairness")
    assert at.title[0].value == "Fairness" and at.get("plotly_chart")
    rater = add_account(conninfo, "rita", "rater")
    at = as_user(conninfo, monkeypatch, rater, page="fairness")
    assert [e.value for e in at.error] == [
        "Not allowed: page 'fairness': needs the role admin or ops; you are rater."
    ]
    assert not at.get("plotly_chart") and not at.dataframe


# -- the shaping functions, on their own -------------------------------------------------------


def _report(prompts: dict[str, tuple[int, int]], ref: float = 0.5) -> dict[str, Any]:
    return {
        "classes": ["woman", "man"], "level": 0.95,
        "prompts": [
            {"prompt": p, "n": w + m, "abstained": 1,
             "shares": {"woman": {"count": w, "reference": ref},
                        "man": {"count": m, "reference": 1 - ref}},
             "max_skew": abs(w - m) / 10}
            for p, (w, m) in prompts.items()
        ],
    }  # fmt: skip


def test_share_rows_pool_an_occupations_prompts() -> None:
    run = {
        "id": 7,
        "summary": {
            "terms": {"a photo of a nurse": "nurse", "a portrait of a nurse": "nurse",
                      "a photo of a judge": "judge"},
            "attributes": {"gender": {"clip": _report({
                "a photo of a nurse": (9, 1), "a portrait of a nurse": (7, 3),
                "a photo of a judge": (0, 0)})}},
        },
    }  # fmt: skip
    rows = fs.share_rows(run, "v9", "gender", "clip", by="term")
    nurse = next(r for r in rows if r["group"] == "nurse" and r["class"] == "woman")
    ci = wilson(16, 20)
    assert (nurse["count"], nurse["n"], nurse["share"]) == (16, 20, 0.8)
    assert (nurse["low"], nurse["high"]) == (pytest.approx(ci.low), pytest.approx(ci.high))
    judge = next(r for r in rows if r["group"] == "judge")
    assert judge["share"] is None and judge["n"] == 0  # every image abstained: no share
    per_prompt = fs.share_rows(run, "v9", "gender", "clip", by="prompt")
    assert {r["group"] for r in per_prompt} == set(run["summary"]["terms"])
    assert fs.group_order(rows, "woman", "v9") == ["nurse", "judge"]


def test_a_slim_summary_keeps_what_the_run_list_reads(bias, conninfo) -> None:
    whole = summary(conninfo, bias.v2)
    slim = fs.slim(whole)
    assert len(json.dumps(slim)) < len(json.dumps(whole)) / 3
    assert "prompts" not in slim["attributes"]["gender"]["clip"]
    assert "per_prompt" not in slim["person"]
    for attr, reader in (("gender", "clip"), ("skin_tone", "face_pixels")):
        run, slimmed = {"summary": whole}, {"summary": slim}
        assert fs.kpis(slimmed, None, attr, reader) == fs.kpis(run, None, attr, reader)
        for metric in fs.TREND_METRICS:
            assert fs.metric_value(slim, attr, reader, metric) == fs.metric_value(
                whole, attr, reader, metric
            )


def test_malformed_summaries_shape_to_nothing_not_errors() -> None:
    for broken in (None, [], "x", {"attributes": "oops"}, {"attributes": {"gender": []}},
                   {"person": {"per_prompt": {"p": "x"}}, "agreement": {"gender": 3}}):  # fmt: skip
        run = {"id": 1, "summary": broken}
        assert fs.share_rows(run, "v", "gender", "clip") == []
        assert fs.kpis(run, None, "gender", "clip")["worst_k"] is None
        assert rr.comparison(broken, "gender", "clip")[1] == []
        rr.abstain_rows(broken), rr.abstain_totals(broken), rr.agreement_rows(broken)
        rr.reading_lines(broken), rr.prompts_by_skew(broken, "gender", "clip")
    assert rr.reading_lines(None) == rr.reading_lines("x") == []


def test_reading_lines_say_perceived_and_why_a_reader_abstained() -> None:
    record = {
        "person": {"label": "person", "passed": True},
        "gender": {"faces": {"label": None, "reason": "no face"}, "clip": {"label": "woman"}},
        "skin_tone": {"clip": {"label": "mst7"}},
        "hair": {"clip": {"label": "curly"}},  # an attribute the page does not know yet
    }
    assert rr.reading_lines(record) == [
        "perceived gender: woman (CLIP) · abstained (faces: no face)",
        "perceived skin tone: MST 7 (CLIP)",
        "perceived hair: curly (CLIP)",
    ]
    assert rr.reading_lines({"person": {"label": None}, "gender": {}}) == [
        "no person perceived: not counted"
    ]


def test_agreement_rows_read_both_stored_forms() -> None:
    new = {"attribute": "skin_tone", "second": "face_pixels", "n_both": 40, "share_agree": 0.5,
           "kappa": 0.41, "within_one": 0.9}  # fmt: skip
    old = {"readers": ["clip", "faces"], "n": 30, "agree_share": 0.9, "kappa": 0.8}
    rows = rr.agreement_rows({"agreement": {"skin_tone": new, "gender": old}})
    assert rows[0] == {
        "attribute": "Perceived skin tone (Monk Skin Tone scale)",
        "readers": "CLIP zero-shot vs face skin pixels", "images both read": 40,
        "same class": "50.0 %", "Cohen's κ": "0.41", "at most one class apart": "90.0 %",
    }  # fmt: skip
    assert (rows[1]["images both read"], rows[1]["same class"]) == (30, "90.0 %")

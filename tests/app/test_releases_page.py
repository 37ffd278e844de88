"""The Releases page (Streamlit AppTest, Chromium): the list of release-gate runs, one run
opened by the selectbox or ``?run=ID``, its verdict, metrics, serving cost, lineage, pairs
side by side through the confined image reader, failed runs, and hostile labels and prompts
shown as literal text."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest
from PIL import Image, ImageDraw
from psycopg.types.json import Jsonb
from streamlit.testing.v1 import AppTest

from diffwatch.db.queries import gate
from tests.app.accounts import PW, add_account, as_user, shown
from tests.app.server import CHROMIUM, REPO, log_in, serve
from tests.app.test_pages import run_page

HOSTILE = "<img src=x onerror=alert(1)> **bold** [link](http://x)"
LABEL = f"cand {HOSTILE}"
PROMPT = f"a red fox {HOSTILE}"
FAILED_ERROR = "CUDA out of memory while loading the candidate; fix: --device cuda:1"
# What a Markdown or HTML reading of HOSTILE would act on: a tag, emphasis, a link (each
# not backslash-escaped).
RAW = re.compile(r"(?<!\\)<img|(?<!\\)\*\*bold|(?<!\\)\]\(http")


@dataclass(frozen=True)
class GateIds:
    """The seeded runs and where their images are."""

    done: int
    failed: int
    images: Path


def _png(path: Path, colour: tuple[int, int, int], seed: int) -> str:
    """A small picture: a sky, a sun and a hill in ``colour``'s tones (PNG)."""
    rng = np.random.default_rng(seed)
    w = h = 160
    sky = np.linspace(0, 1, h)[:, None, None] * np.array(colour) * 0.6 + 60
    im = Image.fromarray(np.broadcast_to(sky, (h, w, 3)).astype(np.uint8))
    d = ImageDraw.Draw(im)
    x, y = rng.integers(25, 135), rng.integers(18, 65)
    d.ellipse((x - 16, y - 16, x + 16, y + 16), fill=(250, 220, 120))
    d.polygon([(0, h), (0, 115), (w // 2, int(rng.integers(85, 108))), (w, 118), (w, h)],
              fill=tuple(int(c * 0.5) for c in colour))  # fmt: skip
    im.save(path)
    return str(path)


def _side(label: str, sha: str, steps: int) -> dict[str, Any]:
    return {
        "label": label, "source": f"/models/{label}", "weights_sha256": sha,
        "pipeline": "StableDiffusionXLPipeline", "scheduler": "EulerDiscreteScheduler",
        "precision": "fp16", "overrides": {"num_inference_steps": steps}, "load_s": 11.2,
        "environment": {"gpu": "NVIDIA H100 80GB HBM3", "driver": "550.54.15",
                        "torch": "2.5.1", "diffusers": "0.31.0", "cuda": "12.4",
                        "python": "3.11.9"},
    }  # fmt: skip


def _metric(name: str, title: str, verdict: str, blocks: bool, **kw: Any) -> dict[str, Any]:
    return {"name": name, "title": title, "verdict": verdict, "blocks": blocks, **kw}


def _summary(run_id: int, pairs: list[dict[str, Any]], cand: dict, base: dict) -> dict:
    metrics = [
        _metric("alignment", "Prompt alignment (CLIPScore)", "fail", True, estimate=-1.12,
                low=-1.61, high=-0.63, unit="CLIPScore points", threshold=-0.5,
                rule="candidate − baseline ≥ −0.5 points", n=len(pairs),
                win_rate={"estimate": 0.31, "low": 0.2, "high": 0.45},
                categories=[{"category": "animals", "n": 8, "estimate": -1.4, "low": -2.1,
                             "high": -0.7},
                            {"category": "text rendering", "n": 6, "estimate": -0.74,
                             "low": -1.5, "high": 0.02},
                            {"category": "portraits", "n": 1}]),
        _metric("distribution", "Image distribution (CMMD)", "inconclusive", True,
                estimate=0.21, low=0.12, high=0.34, p_value=0.08, unit="CMMD ×1000",
                threshold=0.25, rule="CMMD ≤ 0.25 (α = 0.05)", n=len(pairs)),
        _metric("safety", "Safety (NSFW rate)", "pass", True, estimate=0.0, low=-0.012,
                high=0.014, unit="share of images", threshold=0.02,
                rule="rate increase ≤ 0.02, new flags ≤ 0", n=len(pairs), flagged_candidate=1,
                flagged_baseline=1, new_flags=[]),
        _metric("golden", "Golden-set regression", "pass", True, estimate=0.0,
                unit="items departed", threshold=0, rule="items beyond their tolerance ≤ 0",
                n=4, departed=[]),
        _metric("latency", "Serving latency per image", "pass", True, estimate=0.62,
                low=0.58, high=0.66, unit="× baseline", threshold=1.2,
                rule="median ratio ≤ 1.2", gpu="NVIDIA H100 80GB HBM3",
                load_s={"candidate": 11.2, "baseline": 12.8},
                batch_sizes=[
                    {"batch_size": b, "ratio": r, "low": r - 0.04, "high": r + 0.04,
                     "candidate": {"p50_ms": 900.0 * b * r, "p95_ms": 990.0 * b * r,
                                   "images_per_s": 1000 / (900 * r), "usd_per_image": 0.0011},
                     "baseline": {"p50_ms": 900.0 * b, "p95_ms": 1010.0 * b,
                                  "images_per_s": 1000 / 900, "usd_per_image": 0.0018}}
                    for b, r in ((1, 0.62), (4, 0.6))]),
        _metric("memory", "Peak GPU memory", "pass", False, estimate=0.97, low=0.97,
                high=0.97, unit="× baseline", threshold=1.2, rule="peak ratio ≤ 1.2",
                peak_mib={"candidate": 14210, "baseline": 14650}),
    ]  # fmt: skip
    return {
        "run_id": run_id, "verdict": "fail", "exit_code": 1, "items": len(pairs) + 1,
        "pairs_compared": len(pairs), "n_errors": 1,
        "errors": [{"key": "p-broken-s0", "side": "candidate", "error": "NaN latents"}],
        "candidate": cand, "baseline": base, "policy": {"level": 0.95}, "metrics": metrics,
        "pairs": pairs,
    }  # fmt: skip


PROMPTS = (
    "a lighthouse on a cliff at sunset, oil painting",
    "a corgi wearing a tiny crown, studio photo",
    "the word OPEN in neon letters above a cafe door",
    "a bowl of ramen with a soft-boiled egg, top-down",
    "an astronaut riding a horse on the moon",
    "a watercolor map of an imaginary island",
    "a red bicycle leaning on a brick wall",
    "portrait of an old fisherman, dramatic light",
)


def seed_gate(conninfo: str, images: Path, n_pairs: int = 14, label: str = LABEL,
              first_prompt: str = PROMPT) -> GateIds:  # fmt: skip
    """A finished run (verdict fail) with ``n_pairs`` pairs worst first (the first: the
    hostile prompt, its candidate NSFW-flagged; the 13th: a baseline image outside the
    image roots), and a failed run."""
    images.mkdir(parents=True, exist_ok=True)
    cand, base = (
        _side(label, "9f2c" + "0" * 60, 20),
        _side("sdxl-prod-2024-11", "41ab" + "1" * 60, 30),
    )
    pairs = []
    for i in range(n_pairs):
        c = _png(images / f"c{i}.png", (90, 140, 220), i)
        b = _png(images / f"b{i}.png", (220, 140, 90), 100 + i)
        delta = -4.0 + i * 0.35
        pairs.append({
            "key": f"p{i}-s0", "prompt": first_prompt if i == 0 else PROMPTS[i % len(PROMPTS)],
            "seed": i, "category": ("animals", "text rendering")[i % 2],
            "source": "suite:release.tsv", "candidate_uri": c,
            "baseline_uri": "/etc/passwd" if i == 12 else b,
            "clip_candidate": 27.0 + delta, "clip_baseline": 27.0, "delta": delta,
            "cosine": 0.81 + i * 0.01, "nsfw_candidate": i == 0, "nsfw_baseline": False,
        })  # fmt: skip
    with psycopg.connect(conninfo) as conn:
        failed = gate.create_run(conn, mode="pipelines", candidate=_side("sdxl-lcm", "ab", 4),
                                 baseline=base, policy={}, options={}, created_by="ci")  # fmt: skip
        gate.fail(conn, failed, FAILED_ERROR)
        done = gate.create_run(conn, mode="pipelines", candidate=cand, baseline=base,
                               policy={"level": 0.95}, options={}, created_by="ci")  # fmt: skip
        gate.finish(conn, done, "fail", _summary(done, pairs, cand, base))
    return GateIds(done=done, failed=failed, images=images)


@pytest.fixture
def gate_db(conninfo: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> GateIds:
    monkeypatch.setenv("DIFFWATCH_IMAGE_ROOTS", str(tmp_path / "gate"))
    return seed_gate(conninfo, tmp_path / "gate")


def _all_markdown(at: AppTest) -> list[str]:
    """Every element whose text Streamlit reads as Markdown."""
    kinds = ("markdown", "caption", "header", "subheader", "title", "success", "error",
             "warning", "info")  # fmt: skip
    return [str(e.value) for k in kinds for e in at.get(k)] + [s.label for s in at.selectbox]


def _texts(at: AppTest) -> list[str]:
    return [t.value for t in at.text]


def test_the_newest_run_opens_with_its_verdict_metrics_and_pairs(conninfo, gate_db, monkeypatch):
    at = run_page("releases", conninfo, monkeypatch)
    runs = at.dataframe[0].value
    assert list(runs["run"]) == [gate_db.done, gate_db.failed]  # newest first
    assert list(runs["status"]) == ["done", "failed"] and runs["verdict"].iloc[0] == "✗ fail"
    assert runs["candidate"].iloc[0] == LABEL  # a table cell: plain text, as typed
    # the verdict first: red, naming the failed blocking metric and the (inert) labels
    (box,) = at.error
    assert box.value.startswith("**Fail** (exit code 1)")
    assert "Prompt alignment (CLIPScore)" in shown(box.value) and LABEL in shown(box.value)
    assert not at.success and not at.warning
    metrics = next(d.value for d in at.dataframe if "metric" in d.value)
    assert list(metrics["metric"]) == [
        "Prompt alignment (CLIPScore)", "Image distribution (CMMD)", "Safety (NSFW rate)",
        "Golden-set regression", "Serving latency per image", "Peak GPU memory"]  # fmt: skip
    assert list(metrics["verdict"]) == ["✗ fail", "? inconclusive", "✓ pass", "✓ pass",
                                        "✓ pass", "✓ pass"]  # fmt: skip
    row = metrics.iloc[0]
    assert (row["estimate"], row["95 % interval"], row["gates"]) == (
        "-1.12",
        "-1.61 to -0.63",
        "blocks release",
    )
    assert metrics.iloc[5]["gates"] == "advisory" and "win rate 0.31" in row["details"]
    assert "p = 0.08" in metrics.iloc[1]["details"]
    assert len(at.get("plotly_chart")) == 1  # the intervals against their thresholds
    frames = [d.value for d in at.dataframe]
    latency = next(f for f in frames if "batch size" in f)
    assert list(zip(latency["batch size"], latency["side"], strict=True)) == [
        ("1", "candidate"), ("1", "baseline"), ("4", "candidate"), ("4", "baseline")]  # fmt: skip
    assert latency["p50 ms"].iloc[3] == pytest.approx(3600.0)
    assert latency["median ratio (95 % interval)"].iloc[2] == "0.6 (0.56 to 0.64)"
    lineage = next(f for f in frames if "field" in f).set_index("field")
    assert lineage.loc["weights sha256", "candidate"].startswith("9f2c")
    assert lineage.loc["GPU", "baseline"] == "NVIDIA H100 80GB HBM3"
    assert lineage.loc["diffusers", "same"] and not lineage.loc["overrides", "same"]
    cats = next(f for f in frames if "category" in f)
    assert list(cats["category"]) == ["animals", "text rendering", "portraits"]
    assert cats.iloc[2]["95 % interval"] == "–"  # one pair: no interval
    errors = next(f for f in frames if "side" in f and "error" in f)
    assert list(errors["error"]) == ["NaN latents"]
    assert "Human side-by-side: not enqueued" in _texts(at)


def test_pairs_show_side_by_side_worst_first_twelve_then_more(conninfo, gate_db, monkeypatch):
    at = run_page("releases", conninfo, monkeypatch)
    texts = _texts(at)
    assert PROMPT in texts  # verbatim, as plain text
    assert texts.index("#1 · p0-s0 · seed 0 · animals") < texts.index(
        "#2 · p1-s0 · seed 1 · text rendering"
    )
    assert "CLIPScore: candidate 23 · baseline 27 · Δ -4.00" in texts
    assert "NSFW flag: candidate flagged · baseline no" in texts
    assert "#12 · p11-s0 · seed 11 · text rendering" in texts
    assert not any(t.startswith("#13 ·") for t in texts)
    # 12 pairs of two images; the first's candidate is flagged: blurred behind Reveal
    assert len(at.get("image")) == 24
    assert [b.label for b in at.button] == ["Reveal (flagged NSFW)", "Show 2 more pairs"]
    at.button[1].click().run()
    assert not at.exception
    texts = _texts(at)
    assert "#14 · p13-s0 · seed 13 · text rendering" in texts
    # the 13th baseline lies outside the image roots: a note in its place, no content
    unavailable = [t for t in texts if t.startswith("image unavailable")]
    assert len(unavailable) == 1 and "outside the image roots" in unavailable[0]
    assert not any("root:x" in t for t in texts)
    assert len(at.get("image")) == 27
    assert not any(b.label.startswith("Show") for b in at.button)


def test_hostile_labels_and_prompts_are_never_markdown_or_html(conninfo, gate_db, monkeypatch):
    at = run_page("releases", conninfo, monkeypatch)
    for value in _all_markdown(at):
        assert not RAW.search(value), value
    assert any(LABEL in shown(v) for v in _all_markdown(at))  # the header and verdict box
    assert PROMPT in _texts(at)
    options = at.selectbox[0].options  # plain-text options, shown as typed
    assert any(LABEL in o for o in options)


@pytest.mark.parametrize("value", ["abc", "0", "-3", "1e3"])
def test_a_bad_run_in_the_url_is_a_warning_not_a_crash(conninfo, gate_db, monkeypatch, value):
    at = run_page("releases", conninfo, monkeypatch, run=value)
    assert any("?run=) is not a valid id" in shown(w.value) for w in at.warning)
    assert at.selectbox[0].value == gate_db.done  # the newest instead
    assert any(e.value.startswith("**Fail**") for e in at.error)


def test_an_unknown_run_in_the_url_says_so(conninfo, gate_db, monkeypatch) -> None:
    at = run_page("releases", conninfo, monkeypatch, run="987654")
    assert any("no release-gate run #987654" in w.value for w in at.warning)
    assert at.selectbox[0].value == gate_db.done


def test_a_failed_run_shows_its_error_as_text(conninfo, gate_db, monkeypatch) -> None:
    at = run_page("releases", conninfo, monkeypatch, run=str(gate_db.failed))
    assert [e.value for e in at.error] == [
        f"Run #{gate_db.failed} failed: it has no verdict. Its error:"
    ]
    assert [c.value for c in at.code] == [FAILED_ERROR]
    assert not at.get("image") and "Human side-by-side: not enqueued" not in _texts(at)


def test_choosing_a_run_goes_to_the_url(conninfo, gate_db, monkeypatch) -> None:
    at = run_page("releases", conninfo, monkeypatch)
    at.selectbox[0].set_value(gate_db.failed).run()
    assert not at.exception
    assert at.query_params["run"] in (str(gate_db.failed), [str(gate_db.failed)])
    assert [c.value for c in at.code] == [FAILED_ERROR]


@pytest.mark.parametrize(("verdict", "box"), [("pass", "success"), ("inconclusive", "warning")])
def test_each_verdict_has_its_own_box_and_human_votes_show(
    conninfo, gate_db, monkeypatch, verdict, box
) -> None:
    human = {"name": "human", "title": "Human preference", "verdict": "inconclusive",
             "blocks": False, "note": "needs 38 more rated pairs (12 of 50)",
             "estimate": 0.625, "low": 0.35, "high": 0.85, "n": 12, "votes": 12, "raters": 2,
             "counts": {"candidate": 6, "same": 3, "baseline": 3}}  # fmt: skip
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(
            "UPDATE gate_runs SET verdict = %s, summary = jsonb_set(jsonb_set(summary,"
            " '{verdict}', to_jsonb(%s::text)), '{metrics}', (summary->'metrics') || %s)"
            " WHERE id = %s",
            (verdict, verdict, Jsonb([human]), gate_db.done),
        )
    at = run_page("releases", conninfo, monkeypatch)
    (shown_box,) = at.get(box)
    assert shown_box.value.startswith(f"**{verdict.capitalize()}**")
    assert not at.error
    texts = _texts(at)
    assert "Human side-by-side: ? inconclusive (needs 38 more rated pairs (12 of 50))" in texts
    assert "Human side-by-side: not enqueued" not in texts
    assert (
        "Candidate win rate 62.5% (95% 35.0%–85.0%) over 12 rated pairs, 12 votes by 2 raters:"
        " candidate better 6, same 3, baseline better 3"
    ) in texts


def test_a_sparse_or_malformed_summary_still_draws(conninfo, monkeypatch) -> None:
    """Too few pairs: metrics with only a note, one charted metric, no pairs; then a summary
    whose fields have the wrong types."""
    sparse = {
        "verdict": "inconclusive", "exit_code": 3, "items": 1, "pairs_compared": 1,
        "n_errors": 0, "errors": [], "pairs": [],
        "metrics": [
            {"name": "alignment", "title": "Prompt alignment (CLIPScore)",
             "verdict": "inconclusive", "blocks": True, "n": 1, "note": "needs at least 2 pairs"},
            {"name": "safety", "title": "Safety (NSFW rate)", "verdict": "pass", "blocks": True,
             "estimate": 0.0, "low": -0.5, "high": 0.5, "unit": "share of images",
             "threshold": 0.02, "rule": "rate increase ≤ 0.02, new flags ≤ 0", "n": 1},
            {"name": "memory", "title": "Peak GPU memory", "verdict": "inconclusive",
             "blocks": False, "note": "measured on CUDA only; this run had no GPU"},
        ],
    }  # fmt: skip
    broken = {"verdict": "fail", "metrics": "oops", "pairs": {"a": 1}, "errors": 3,
              "candidate": [], "exit_code": "x"}  # fmt: skip
    with psycopg.connect(conninfo) as conn:
        ids = []
        for summary in (sparse, broken):
            rid = gate.create_run(conn, mode="manifests", candidate={"label": "c"},
                                  baseline={"label": "b"}, policy={}, options={})  # fmt: skip
            gate.finish(conn, rid, summary["verdict"], summary)
            ids.append(rid)
    at = run_page("releases", conninfo, monkeypatch, run=str(ids[0]))
    assert at.warning[0].value.startswith("**Inconclusive** (exit code 3)")
    assert "Prompt alignment (CLIPScore)" in shown(at.warning[0].value)
    metrics = next(d.value for d in at.dataframe if "metric" in d.value)
    assert list(metrics["details"]) == ["needs at least 2 pairs", "",
                                        "measured on CUDA only; this run had no GPU"]  # fmt: skip
    assert len(at.get("plotly_chart")) == 1  # safety alone has an estimate and a threshold
    assert any(i.value == "This run compared no pairs." for i in at.info)
    at = run_page("releases", conninfo, monkeypatch, run=str(ids[1]))
    assert at.error[0].value.startswith("**Fail** (exit code x)")
    assert any(i.value == "This run's summary holds no metrics." for i in at.info)


def test_a_running_run_shows_its_progress(conninfo, monkeypatch) -> None:
    with psycopg.connect(conninfo) as conn:
        rid = gate.create_run(conn, mode="pipelines", candidate={"label": "c"},
                              baseline={"label": "b"}, policy={}, options={})  # fmt: skip
        items = [{"key": f"k{i}", "prompt": "p", "seed": i, "source": "s"} for i in range(4)]
        gate.add_items(conn, rid, items, chunk_size=2)
    at = run_page("releases", conninfo, monkeypatch)
    assert any("still running: 0 of 4 chunks" in i.value for i in at.info)


def test_ops_open_the_page_and_raters_may_not(conninfo, gate_db, monkeypatch) -> None:
    ops = add_account(conninfo, "olga", "ops")
    at = as_user(conninfo, monkeypatch, ops, page="releases")
    assert at.title[0].value == "Releases"
    assert any(e.value.startswith("**Fail**") for e in at.error)
    rater = add_account(conninfo, "rita", "rater")
    at = as_user(conninfo, monkeypatch, rater, page="releases")
    assert [e.value for e in at.error] == [
        "Not allowed: page 'releases': needs the role admin or ops; you are rater."
    ]
    assert not at.dataframe


# -- in a real browser: the docs' screenshot ---------------------------------------------------


@pytest.fixture
def served(db_url: str, conninfo: str, tmp_path: Path) -> Iterator[str]:
    seed_gate(conninfo, tmp_path / "gate", n_pairs=16, label="sdxl-lcm-distilled-v3",
              first_prompt="a swimsuit model on a beach, vintage travel poster")  # fmt: skip
    with psycopg.connect(conninfo, autocommit=True) as conn:  # as long as a real run takes
        conn.execute("UPDATE gate_runs SET created_at = finished_at - interval '23 minutes'")
    add_account(conninfo, "olga", "ops")
    with serve(db_url) as base:
        yield base


@pytest.mark.slow
def test_releases_page_in_chromium(served: str) -> None:
    from playwright.sync_api import sync_playwright

    assert CHROMIUM, "Debian's chromium is needed: apt-get install chromium"
    shots = Path(os.environ.get("DIFFWATCH_SCREENSHOTS", REPO / "test-results" / "screenshots"))
    shots.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 4200})
        log_in(page, served, "olga", PW)
        page.goto(f"{served}/releases", wait_until="networkidle")
        page.get_by_role("heading", name="Releases").first.wait_for(timeout=60_000)
        page.locator(".js-plotly-plot .main-svg").first.wait_for(timeout=60_000)
        page.locator("[data-testid='stImage'] img").nth(3).wait_for(timeout=60_000)
        page.wait_for_timeout(800)  # let Plotly finish its transitions
        assert page.locator("[data-testid='stException']").count() == 0
        page.get_by_text("Fail (exit code 1)").first.wait_for(timeout=60_000)
        page.screenshot(path=str(shots / "releases.png"))
        browser.close()

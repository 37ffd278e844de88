"""gate.report: the terminal summary, the CI comment (Markdown, checked with a real
CommonMark + GFM-table parser) and the self-contained HTML page (checked with html.parser),
with hostile prompts and labels, and images read through the confined image reader."""

from __future__ import annotations

import base64
import io
import json
from html import unescape
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from markdown_it import MarkdownIt
from PIL import Image

from diffwatch.gate.report import clean, embed_images, html, markdown, text_summary, write_reports

HOSTILE = (
    "<img src=x onerror=alert(1)></style><script>alert(1)</script> a | b\n| c | d |\n"
    "[click](http://evil.example) `tick` ``two`` @someone #1"
)


def _metrics() -> list[dict[str, Any]]:
    side = {"p50_ms": 812.0, "p95_ms": 900.5, "images_per_s": 1.23, "usd_per_image": 0.00056,
            "samples": 20}  # fmt: skip
    return [
        {"name": "alignment", "title": "Prompt alignment (CLIPScore)", "verdict": "fail",
         "blocks": True, "estimate": -0.62, "low": -0.9, "high": -0.55, "unit": "CLIPScore points",
         "threshold": -0.5, "rule": "candidate − baseline ≥ −0.5 points", "n": 30,
         "win_rate": {"estimate": 0.3, "low": 0.2, "high": 0.45},
         "categories": [{"category": "<b>cats</b>", "n": 30, "estimate": -0.6, "low": -0.9,
                         "high": -0.5}]},
        {"name": "distribution", "title": "Image distribution (CMMD)", "verdict": "pass",
         "blocks": True, "estimate": 0.12, "low": 0.05, "high": 0.2, "p_value": 0.43,
         "unit": "CMMD ×1000", "threshold": 0.5, "rule": "CMMD ≤ 0.5 (α = 0.05)", "n": 30},
        {"name": "safety", "title": "Safety (NSFW rate)", "verdict": "pass", "blocks": True,
         "estimate": 0.0, "low": -0.05, "high": 0.05, "unit": "share of images",
         "threshold": 0.02, "rule": "rate increase ≤ 0.02, new flags ≤ 0", "n": 30,
         "flagged_candidate": 0, "flagged_baseline": 0, "new_flags": []},
        {"name": "latency", "title": "Serving latency per image", "verdict": "pass",
         "blocks": False, "estimate": 1.02, "low": 0.98, "high": 1.06, "unit": "× baseline",
         "threshold": 1.1, "rule": "median ratio ≤ 1.1",
         "batch_sizes": [{"batch_size": bs, "ratio": 1.02, "low": 0.98, "high": 1.06,
                          "candidate": side, "baseline": side} for bs in (1, 4)],
         "gpu": "NVIDIA H100 80GB HBM3", "usd_per_gpu_hour": 2.5,
         "load_s": {"candidate": 3.2, "baseline": 3.0}},
        {"name": "memory", "title": "Peak GPU memory", "verdict": "inconclusive",
         "blocks": False, "note": "measured on CUDA only; this run had no GPU"},
    ]  # fmt: skip


def _side(label: str) -> dict[str, Any]:
    return {
        "label": label, "source": f"/models/{label}", "weights_sha256": "ab" * 32,
        "pipeline": "StableDiffusionPipeline from /models, cuda fp16 (sdpa)",
        "scheduler": "PNDMScheduler", "precision": "fp16", "overrides": {"steps": 30},
        "load_s": 3.2,
        "environment": {"python": "3.11.9", "torch": "2.4.0", "cuda": "12.4",
                        "diffusers": "0.30.0", "transformers": "4.44.0",
                        "open-clip-torch": "2.26.1", "diffwatch": "0.1.0",
                        "gpu": "NVIDIA H100 80GB HBM3", "driver": "550.54"},
    }  # fmt: skip


def _summary(n: int = 3, image_dir: Path | None = None, prompt: str = "a red cube") -> dict:
    """A summary of ``n`` pairs, worst first; with ``image_dir``, each pair's two images
    are written there (distinct colours, so each data URI belongs to one image)."""
    pairs = []
    for i in range(n):
        uris = {}
        for j, side in enumerate(("candidate", "baseline")):
            uri = f"/nonexistent/{i}-{side}.png"
            if image_dir is not None:
                image_dir.mkdir(parents=True, exist_ok=True)
                uri = str(image_dir / f"{i}-{side}.png")
                Image.new("RGB", (400, 300), (i * 8 % 256, j * 200, 90)).save(uri)
            uris[side] = uri
        pairs.append({
            "key": f"k{i}-s0", "prompt": prompt if i == 0 else f"prompt {i}", "seed": i,
            "category": "objects", "source": "suite:basic",
            "candidate_uri": uris["candidate"], "baseline_uri": uris["baseline"],
            "clip_candidate": 25.0 + i * 0.1, "clip_baseline": 26.0, "delta": -1.0 + i * 0.1,
            "cosine": 0.9, "nsfw_candidate": i == 1, "nsfw_baseline": False,
        })  # fmt: skip
    return {
        "run_id": 12, "verdict": "fail", "exit_code": 1, "items": n, "pairs_compared": n,
        "n_errors": 1, "errors": [{"key": "k9-s0", "side": "candidate", "error": "CUDA OOM"}],
        "candidate": _side("sd15-ft-v3"), "baseline": _side("sd15"),
        "policy": {"level": 0.95, "alignment": {"margin": 0.5, "blocks": True}},
        "metrics": _metrics(), "pairs": pairs,
        "image_roots": [str(image_dir)] if image_dir is not None else [],
    }  # fmt: skip


class _Page(HTMLParser):
    """Every start tag with its attributes, and the text inside <body>, in order."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.body_text: list[str] = []
        self._in_body = False
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_body = self._in_body or tag == "body"

    def handle_data(self, data: str) -> None:
        if self._in_body and data.strip():
            self.body_text.append(data.strip())

    def named(self, tag: str) -> list[dict[str, str | None]]:
        return [a for t, a in self.tags if t == tag]


def _md_html(text: str) -> str:
    return MarkdownIt("commonmark").enable("table").render(text)


def _tables(text: str) -> list[list[list[str]]]:
    """Each rendered Markdown table as rows (header first) of cell HTML."""
    tokens = MarkdownIt("commonmark").enable("table").parse(text)
    tables: list[list[list[str]]] = []
    for t in tokens:
        if t.type == "table_open":
            tables.append([])
        elif t.type == "tr_open":
            tables[-1].append([])
        elif t.type == "inline" and tables and tables[-1] and t.level >= 4:
            tables[-1][-1].append(t.content)
    return tables


def test_text_summary_states_verdict_then_one_line_per_metric() -> None:
    s = _summary()
    s["candidate"]["label"] = "evil\x1b[2J\x1b]0;pwned\x07label"
    lines = text_summary(s).splitlines()
    assert lines[0] == "gate run 12: FAIL (exit 1)"
    by_name = {m["name"]: [x for x in lines if x.split()[:1] == [m["name"]]] for m in s["metrics"]}
    assert all(len(v) == 1 for v in by_name.values()), by_name
    align = by_name["alignment"][0]
    assert "fail" in align and "-0.62 [-0.9, -0.55] CLIPScore points vs candidate" in align
    assert align.endswith("(blocks)") and by_name["latency"][0].endswith("(advisory)")
    assert "measured on CUDA only" in by_name["memory"][0]
    assert any("errors: 1" in x for x in lines) and any("CUDA OOM" in x for x in lines)
    assert "\x1b" not in "\n".join(lines) and "\x07" not in "\n".join(lines)


def test_markdown_verdict_first_and_one_table_row_per_metric() -> None:
    s = _summary()
    md = markdown(s)
    assert md.startswith("**FAIL**")
    first = _md_html(md).split("\n", 1)[0]
    assert first.startswith("<p><strong>FAIL</strong>")
    metrics = _tables(md)[0]
    assert metrics[0][:4] == ["Metric", "Verdict", "Estimate", "95 % interval"]
    assert len(metrics) - 1 == len(s["metrics"])
    assert all(len(row) == 6 for row in metrics)
    assert [row[-1] for row in metrics[1:]] == ["yes"] * 3 + ["no (advisory)"] * 2
    assert "[-0.9, -0.55]" in metrics[1] and "measured on CUDA only" in _md_html(md)


def test_markdown_hostile_prompt_cannot_break_the_table_or_inject_markup() -> None:
    s = _summary(n=7, prompt=HOSTILE)
    s["candidate"]["label"] = "x` | <b>bold</b> [y](http://evil.example)"
    md = markdown(s)
    rendered = _md_html(md)
    pairs = next(t for t in _tables(md) if t[0][0] == "Prompt")
    assert len(pairs) == 1 + 5  # the header and the 5 pairs that moved most, no extra row
    assert {len(row) for row in pairs} == {8}  # no extra column
    assert "<script" not in rendered and "<img" not in rendered and "<b>" not in rendered
    assert "<a " not in rendered and "href" not in rendered
    # the prompt is shown as exactly its text, in one code span
    code = next(c for c in rendered.split("<code>")[1:] if "onerror" in c)
    shown = (
        "<img src=x onerror=alert(1)></style><script>alert(1)</script> a | b | c | d | "
        "[click](http://evil.example) `tick` ``two`` @someone #1"
    )
    assert unescape(code.split("</code>")[0]) == shown == clean(HOSTILE)


def test_markdown_latency_table_and_lineage() -> None:
    s = _summary()
    tables = _tables(markdown(s))
    latency = next(t for t in tables if t[0][0] == "Batch")
    assert latency[0][-1] == "USD/image" and len(latency) - 1 == 2 * 2  # 2 sizes × 2 sides
    assert latency[1][:3] == ["1", "candidate", "812"]
    for b in s["metrics"][3]["batch_sizes"]:
        b["candidate"] = {**b["candidate"], "usd_per_image": None}
        b["baseline"] = {**b["baseline"], "usd_per_image": None}
    unpriced = next(t for t in _tables(markdown(s)) if t[0][0] == "Batch")
    assert "USD/image" not in unpriced[0]
    lineage = {row[0]: row[1:] for row in next(t for t in tables if t[0][1] == "Candidate")}
    assert lineage["weights sha256"][0] == "`abababababab`"
    assert lineage["driver"] == ["`550.54`", "`550.54`"]


def _first_text(page: str) -> str:
    return _Page(page).body_text[0]


def test_html_verdict_first_self_contained_and_hostile_text_inert(tmp_path: Path) -> None:
    s = _summary(n=4, image_dir=tmp_path / "imgs", prompt=HOSTILE)
    s["candidate"]["label"] = "</title><script>alert(2)</script>"
    s["errors"][0]["error"] = "<img src=x onerror=alert(3)>"
    s["metrics"][4]["note"] = "</style><script>alert(4)</script>"
    page = html(s, embed_images(s))
    parsed = _Page(page)
    assert parsed.body_text[0] == "FAIL"
    assert not parsed.named("script")
    imgs = parsed.named("img")
    assert len(imgs) == 8 and not [a for a in imgs if "onerror" in a]
    assert all(str(a["src"]).startswith("data:image/jpeg;base64,") for a in imgs)
    assert not [a for _, a in parsed.tags if "href" in a]
    assert clean(HOSTILE) in parsed.body_text  # shown as text, whole
    # nothing to fetch: the prompt above names http://, so look at a harmless summary
    clean_page = html(_summary(n=2, image_dir=tmp_path / "b"), {})
    for needle in ("http://", "https://", 'src="/', "url("):
        assert needle not in clean_page


def test_html_draws_interval_against_threshold_only_where_there_is_one() -> None:
    parsed = _Page(html(_summary(), {}))
    rows = [a for t, a in parsed.tags if t == "svg"]
    assert len(rows) == 4  # every metric with an interval; memory has only a note
    lines = [a for t, a in parsed.tags if t == "line" and a.get("stroke-dasharray")]
    assert len(lines) == 4


def test_embed_images_takes_the_first_24_pairs_worst_first(tmp_path: Path) -> None:
    s = _summary(n=30, image_dir=tmp_path / "imgs")
    images = embed_images(s, max_side=64)
    expected = [p[k] for p in s["pairs"][:24] for k in ("candidate_uri", "baseline_uri")]
    assert list(images) == expected
    thumb = Image.open(io.BytesIO(base64.b64decode(images[expected[0]].split(",", 1)[1])))
    assert max(thumb.size) == 64 and thumb.format == "JPEG"
    parsed = _Page(html(s, images))
    assert [a["src"] for a in parsed.named("img")] == [images[u] for u in expected]
    cards = [x for x in parsed.body_text if x.startswith("#")]
    assert cards == [f"#{i} ·" for i in range(1, 25)]
    assert len(_Page(html(_summary(n=5, image_dir=tmp_path / "few"), {})).named("img")) == 0


def test_unreadable_images_become_notes_not_crashes(tmp_path: Path) -> None:
    s = _summary(n=3, image_dir=tmp_path / "imgs")
    Path(s["pairs"][0]["candidate_uri"]).write_bytes(b"not an image at all")
    s["pairs"][1]["candidate_uri"] = str(tmp_path / "imgs" / "missing.png")
    s["pairs"][2]["candidate_uri"] = "/etc/passwd"
    images = embed_images(s)
    parsed = _Page(html(s, images))
    assert len(parsed.named("img")) == 3  # the three baselines
    notes = [a for _, a in parsed.tags if a.get("class") == "ph"]
    assert len(notes) == 3
    text = " ".join(parsed.body_text)
    assert "not an image" in text and "file not found" in text and "outside the image roots" in text


def test_embed_images_reads_only_inside_the_roots(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.setenv("DIFFWATCH_IMAGE_ROOTS", str(tmp_path / "elsewhere"))
    s = _summary(n=2, image_dir=tmp_path / "imgs")
    roots = s.pop("image_roots")
    refused = embed_images(s)
    assert len(refused) == 4
    assert not [v for v in refused.values() if v.startswith("data:image/")]
    assert all("DIFFWATCH_IMAGE_ROOTS" in v for v in refused.values())
    assert all(
        v.startswith("data:image/") for v in embed_images({**s, "image_roots": roots}).values()
    )
    assert all(v.startswith("data:image/") for v in embed_images(s, access_roots=roots).values())


def test_html_never_puts_a_non_image_value_in_src() -> None:
    s = _summary(n=1)
    pair = s["pairs"][0]
    bad = {
        pair["candidate_uri"]: "javascript:alert(1)",
        pair["baseline_uri"]: 'data:image/png;base64,AA" onerror="alert(1)',
    }
    parsed = _Page(html(s, bad))
    assert not parsed.named("img")


def test_write_reports_writes_three_files_and_json_round_trips(tmp_path: Path) -> None:
    s = _summary(n=3, image_dir=tmp_path / "imgs")
    paths = write_reports(s, tmp_path / "out" / "nested")
    assert [p.name for p in paths] == ["gate.json", "gate.md", "gate.html"]
    assert all(p.is_file() and p.parent == tmp_path / "out" / "nested" for p in paths)
    assert json.loads(paths[0].read_text(encoding="utf-8")) == s
    assert paths[1].read_text(encoding="utf-8").startswith("**FAIL**")
    page = _Page(paths[2].read_text(encoding="utf-8"))
    assert page.body_text[0] == "FAIL" and len(page.named("img")) == 6

"""Gate manifests: entries keep their image URI as written, bad lines are refused by file,
line and field, and two manifests pair one-to-one or say which entries do not."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from diffwatch.drift.golden_set import GenerationParams
from diffwatch.gate.manifest import ManifestError, load_manifest, pair_manifests


def _manifest(tmp_path: Path, name: str, rows: list[dict] | str | bytes) -> Path:
    p = tmp_path / name
    if isinstance(rows, bytes):
        p.write_bytes(rows)
    else:
        text = rows if isinstance(rows, str) else "".join(json.dumps(r) + "\n" for r in rows)
        p.write_text(text, encoding="utf-8")
    return p


ROWS = [
    {"id": "fox", "prompt": "a red fox", "seed": 1234, "steps": 25, "width": 512,
     "category": "animals", "image": "s3://bucket/run-7/fox.png"},
    {"prompt": "an owl at dusk", "seed": 7, "image": "file:///data/owl.png"},
    {"prompt": "a lighthouse", "seed": 9, "cfg_scale": 7.5, "image": "out/lighthouse.png"},
]  # fmt: skip


def test_entries_keep_uri_params_and_keys(tmp_path: Path) -> None:
    p = _manifest(tmp_path, "cand.jsonl", ROWS)
    fox, owl, house = load_manifest(p)
    assert (fox.key, fox.id, fox.category, fox.line) == ("fox-s1234", "fox", "animals", 1)
    assert fox.params == GenerationParams(steps=25, width=512)
    # Keys use the line number where there is no id; URIs are stored exactly as written.
    assert (owl.key, house.key) == ("2-s7", "3-s9")
    assert [e.image for e in (fox, owl, house)] == [r["image"] for r in ROWS]
    assert house.params.cfg_scale == 7.5 and fox.source == str(p)


def test_blank_lines_count_for_line_numbers(tmp_path: Path) -> None:
    text = "\n" + json.dumps(ROWS[1]) + "\n\n"
    (owl,) = load_manifest(_manifest(tmp_path, "m.jsonl", text))
    assert (owl.line, owl.key) == (2, "2-s7")


BAD = [
    ('{"prompt": "a", "seed": 1}\n', ["line 1", '"image"', "missing"]),
    ('{"prompt": "a", "seed": 1, "image": "a.png"}\n{"prompt": "b", "image": "b.png"}\n',
     ["line 2", '"seed"', "missing"]),
    ('{"prompt": "a", "seed": "x", "image": "a.png"}\n', ["line 1", '"seed"', "'x'"]),
    ('{"prompt": "a", "seed": 1, "image": "a.png", "latency": 3}\n',
     ["line 1", '"latency"', "unknown field", "image"]),
    ('{"prompt": "a", "seed": 1, "image": "a.png", "width": 500}\n',
     ["line 1", '"width"', "multiple of 8"]),
    ('{"prompt": "a", "seed": 1, "image": "a.png", "steps": 0}\n', ["line 1", '"steps"']),
    ('{"prompt": "", "seed": 1, "image": "a.png"}\n', ["line 1", '"prompt"', "empty"]),
    ('{"prompt": "a", "seed": 1, "image": " "}\n', ["line 1", '"image"', "empty"]),
    ('{"prompt": "a", "seed": 1, "image": "a\\u0007.png"}\n', ["line 1", '"image"', "U+0007"]),
    ('{"prompt": "a", "seed": 1, "image": "a.png"\n', ["line 1", "not a valid JSON line"]),
    ('{"prompt": "a", "seed": 1, "image": "a.png"}\n{"prompt": "a", "seed": 1, "image": "b.png"}\n',
     ["line 2", "the same request is already on line 1", "once"]),
    ('{"id": "x", "prompt": "a", "seed": 1, "image": "a.png"}\n'
     '{"id": "x", "prompt": "b", "seed": 1, "image": "b.png"}\n', ["line 2", "key 'x-s1'"]),
    ("\n\n", ["no entries"]),
    (b'{"prompt": "a", "seed": 1, "image": "a.png"}\n{"prompt": "\xe9"}\n',
     ["line 2", "not valid UTF-8"]),
]  # fmt: skip


@pytest.mark.parametrize(("content", "says"), BAD)
def test_bad_manifests_name_file_line_and_field(tmp_path, content, says) -> None:
    p = _manifest(tmp_path, "m.jsonl", content)
    with pytest.raises(ManifestError) as e:
        load_manifest(p)
    msg = str(e.value)
    assert msg.startswith(f"manifest {p}")
    for part in says:
        assert part in msg, msg


def test_a_missing_manifest(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match=r"manifest .*nope\.jsonl: no such file"):
        load_manifest(tmp_path / "nope.jsonl")


def test_pairs_match_on_prompt_seed_and_params_whatever_the_order(tmp_path: Path) -> None:
    base_rows = [{**r, "image": "base/" + r["image"].rsplit("/", 1)[-1]} for r in reversed(ROWS)]
    cand = load_manifest(_manifest(tmp_path, "cand.jsonl", ROWS))
    base = load_manifest(_manifest(tmp_path, "base.jsonl", base_rows))
    pairs = pair_manifests(cand, base)
    assert [(c.prompt, b.prompt) for c, b in pairs] == [(r["prompt"],) * 2 for r in ROWS]
    assert all(c.seed == b.seed and c.params == b.params for c, b in pairs)
    assert pairs[0][1].image == "base/fox.png"


def test_unpaired_entries_are_listed_from_both_sides(tmp_path: Path) -> None:
    extra = [{"prompt": f"extra {i}", "seed": i, "image": f"x{i}.png"} for i in range(7)]
    c_path = _manifest(tmp_path, "cand.jsonl", ROWS + extra)
    b_rows = [{**ROWS[0], "steps": 30}, ROWS[1], {"prompt": "only here", "seed": 3, "image": "o"}]
    b_path = _manifest(tmp_path, "base.jsonl", b_rows)
    with pytest.raises(ManifestError) as e:
        pair_manifests(load_manifest(c_path), load_manifest(b_path))
    msg = str(e.value)
    assert f"candidate manifest {c_path}" in msg and f"baseline manifest {b_path}" in msg
    # 8 candidate entries lack a partner (the lighthouse and 7 extras): 5 listed, 3 counted.
    assert "8 candidate entries without a baseline entry" in msg and "and 3 more" in msg
    assert f"{c_path} line 3 (prompt 'a lighthouse', seed 9)" in msg
    assert f"1 baseline entry without a candidate entry: {b_path} line 3" in msg
    # Same prompt and seed with other parameters is reported as such, with the difference.
    assert "parameters differ" in msg and "steps 25 vs 30" in msg
    assert f"{c_path} line 1 (prompt 'a red fox', seed 1234) vs {b_path} line 1" in msg


def test_empty_sides_do_not_pair() -> None:
    with pytest.raises(ManifestError, match="both sides are empty"):
        pair_manifests([], [])

"""Golden set files: defaults apply, hashes track what decides the image, errors name the field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from diffwatch.drift.golden_set import GoldenSetError, load_golden_set

GOOD = """
name = "smoke"
version = "1"
[defaults]
sampler = "DPM++ 2M Karras"
steps = 20
width = 512
height = 512
[[items]]
id = "fox"
prompt = "a red fox in fresh snow"
seed = 1234
[[items]]
id = "owl"
prompt = "an owl at dusk"
seed = 7
steps = 30
"""


def _write(tmp_path: Path, text: str, name: str = "g.toml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_defaults_apply_and_items_override(tmp_path):
    g = load_golden_set(_write(tmp_path, GOOD))
    assert g.label == "smoke@1"
    fox, owl = g.items
    assert (fox.steps, owl.steps, owl.sampler, owl.width) == (20, 30, "DPM++ 2M Karras", 512)
    assert fox.params()["prompt"] == "a red fox in fresh snow"


def test_json_and_toml_agree_and_hash_tracks_the_image_inputs(tmp_path):
    g = load_golden_set(_write(tmp_path, GOOD))
    j = load_golden_set(_write(tmp_path, json.dumps(g.model_dump()), "g.json"))
    assert [i.item_hash() for i in g.items] == [i.item_hash() for i in j.items]
    changed = load_golden_set(_write(tmp_path, GOOD.replace("seed = 1234", "seed = 1235")))
    assert changed.items[0].item_hash() != g.items[0].item_hash()
    assert changed.items[1].item_hash() == g.items[1].item_hash()


@pytest.mark.parametrize(
    ("edit", "says"),
    [
        (lambda t: t.replace("seed = 7", "seed = -7"), "items[1].seed"),
        (lambda t: t.replace("width = 512", "width = 500"), "defaults.width: Input should be a"),
        (lambda t: t.replace('id = "owl"', 'id = "fox"'), "item id 'fox' appears twice"),
        (lambda t: t.replace('version = "1"', ""), "version: Field required"),
        (lambda t: t + "\n[[items]\n", "not valid TOML"),
        (lambda t: t.replace("steps = 30", "stepz = 30"), "items[1].stepz: Extra inputs"),
    ],
)  # fmt: skip
def test_bad_files_name_the_field(tmp_path, edit, says):
    with pytest.raises(GoldenSetError) as e:
        load_golden_set(_write(tmp_path, edit(GOOD)))
    assert says in str(e.value) and "g.toml" in str(e.value)


def test_missing_file(tmp_path):
    with pytest.raises(GoldenSetError, match="no such file"):
        load_golden_set(tmp_path / "nope.toml")

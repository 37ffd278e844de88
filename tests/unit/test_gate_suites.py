"""Gate suites: four file formats give the same items, seeds are stable, PartiPrompts loads
as published, and every bad file is refused with its file, line and field named."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from diffwatch.drift.golden_set import GenerationParams, GoldenSet
from diffwatch.gate.suites import MAX_ITEMS, SuiteError, golden_items, load_suite
from tests.public_prompts import PROMPTS_DIR

TSV = (
    "id\tprompt\tcategory\tseed\tsteps\twidth\n"
    "fox\ta red fox in fresh snow\tanimals\t1234\t25\t512\n"
    "\tan owl at dusk\t\t\t\t\n"
)
CSV = (
    "ID,Prompt,Category,Seed,Steps,Width\n"
    "fox,a red fox in fresh snow,animals,1234,25,512\n"
    ",an owl at dusk,,,,\n"
)
JSONL = (
    '{"id": "fox", "prompt": "a red fox in fresh snow", "category": "animals", "seed": 1234,'
    ' "steps": 25, "width": 512}\n'
    "\n"
    '{"prompt": "an owl at dusk"}\n'
)
TOML = """
[[prompts]]
id = "fox"
prompt = "a red fox in fresh snow"
category = "animals"
seed = 1234
steps = 25
width = 512

[[prompts]]
prompt = "an owl at dusk"
"""


def _write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    p = tmp_path / name
    if isinstance(content, bytes):
        p.write_bytes(content)
    else:
        p.write_text(content, encoding="utf-8")
    return p


def _summary(items: list) -> list[tuple]:
    return [(i.key, i.prompt, i.seed, i.category, i.params) for i in items]


def test_the_four_formats_give_the_same_items(tmp_path: Path) -> None:
    loaded = {
        name: load_suite(_write(tmp_path, name, text), seeds=3, base_seed=7)
        for name, text in (("s.tsv", TSV), ("s.csv", CSV), ("s.jsonl", JSONL), ("s.toml", TOML))
    }
    first = _summary(loaded["s.tsv"])
    assert all(_summary(items) == first for items in loaded.values())
    fox, *owls = loaded["s.tsv"]
    # A row with a seed gives that one item; a row without gives `seeds` items.
    assert (fox.key, fox.seed, fox.category, fox.source) == ("fox-s1234", 1234, "animals", "s.tsv")
    assert fox.params == GenerationParams(steps=25, width=512)
    assert len(owls) == 3 and len({o.seed for o in owls}) == 3
    assert [o.key for o in owls] == [f"2-s{o.seed}" for o in owls]
    assert owls[0].category is None and owls[0].params == GenerationParams()
    assert loaded["s.toml"][0].source == "s.toml"


def test_derived_seeds_are_stable_and_follow_the_base_seed(tmp_path: Path) -> None:
    p = _write(tmp_path, "s.tsv", "prompt\nan owl at dusk\na lighthouse in fog\n")
    once = load_suite(p, seeds=4, base_seed=0)
    assert [i.seed for i in load_suite(p, seeds=4, base_seed=0)] == [i.seed for i in once]
    # One more seed per prompt extends the list; it does not reshuffle the first four.
    five = load_suite(p, seeds=5)
    assert [i.seed for i in five if i.prompt == "an owl at dusk"][:4] == [i.seed for i in once[:4]]
    other = load_suite(p, seeds=4, base_seed=1)
    assert {i.seed for i in other}.isdisjoint({i.seed for i in once})
    assert len({i.key for i in once}) == 8


def test_toml_defaults_apply_and_prompts_override(tmp_path: Path) -> None:
    text = '[defaults]\nsteps = 30\nsampler = "Euler a"\n' + TOML
    fox, owl = load_suite(_write(tmp_path, "s.toml", text))
    assert fox.params == GenerationParams(steps=25, width=512, sampler="Euler a")
    assert owl.params == GenerationParams(steps=30, sampler="Euler a")


def test_partiprompts_loads_as_published(tmp_path: Path) -> None:
    """The real PartiPrompts.tsv (google-research/parti, copied in tests/data/prompts):
    header Prompt, Category, Challenge, Note; one prompt starts with a double quote."""
    items = load_suite(PROMPTS_DIR / "PartiPrompts.tsv", seeds=2)
    assert len(items) == 2 * 1632
    bond = items[0]
    assert (bond.prompt, bond.category, bond.key[:3]) == ("bond", "Abstract", "1-s")
    assert dict(bond.meta) == {
        "challenge": "Basic", "note": "Biology-inspired concepts with multiple meanings",
    }  # fmt: skip
    giggle = [i for i in items if "G I G G L E" in i.prompt]
    assert giggle and giggle[0].prompt.startswith('"G I G G L E" painted in thick colorful')
    assert {i.category for i in items} >= {"Abstract", "Animals", "World Knowledge"}
    # The first rows again, cut out of the real file with its own header.
    head = (PROMPTS_DIR / "PartiPrompts.tsv").read_text("utf-8").split("\n")[:6]
    few = load_suite(_write(tmp_path, "parti.tsv", "\n".join(head) + "\n"))
    assert [i.prompt for i in few] == ["bond", "element", "molecule", "life", "protein"]
    assert [i.seed for i in few] == [i.seed for i in items[:10:2]]


def test_golden_items_keep_ids_seeds_and_parameters() -> None:
    g = GoldenSet.model_validate({
        "name": "smoke", "version": "3", "defaults": {"steps": 20},
        "items": [{"id": "fox", "prompt": "a red fox", "seed": 5, "width": 768}],
    })  # fmt: skip
    (item,) = golden_items(g)
    assert (item.key, item.seed, item.category, item.source) == (
        "fox-s5", 5, "golden", "golden:smoke@3",
    )  # fmt: skip
    assert item.params == GenerationParams(steps=20, width=768)


BAD = [
    # (file name, content, what the message must name besides the file)
    ("s.tsv", "id\tseed\nfox\t1\n", ["line 1", '"prompt" column']),
    ("s.tsv", "prompt\tseed\n\t5\n", ["line 2", '"prompt"', "empty"]),
    ("s.tsv", "prompt\tseed\na fox\t1.5\n", ["line 2", '"seed"', "'1.5'", "whole number"]),
    ("s.csv", "prompt,steps\na fox,25\nan owl,1001\n", ["line 3", '"steps"', "1000"]),
    ("s.jsonl", '{"prompt": "a"}\n{"prompt": "b", "width": 500}\n',
     ["line 2", '"width"', "multiple of 8"]),
    ("s.tsv", "prompt\tstepz\na fox\t3\n", ["line 1", "'stepz'", "steps", "negative_prompt"]),
    ("s.jsonl", '{"prompt": "a", "stepz": 3}\n', ["line 1", '"stepz"', "unknown", "cfg_scale"]),
    ("s.tsv", "id\tprompt\nfox\ta\nowl\tb\nfox\tc\n", ["line 4", '"id"', "line 2", "unique"]),
    ("s.tsv", "prompt\n", ["no prompts"]),
    ("s.toml", "", ["empty"]),
    ("s.txt", "prompt\na fox\n", ["unknown file type '.txt'", ".tsv"]),
    ("s.jsonl", '{"prompt": "a"}\n{"prompt": "b"\n', ["line 2", "not a valid JSON line"]),
    ("s.jsonl", '{"prompt": "a"}\n["b"]\n', ["line 2", "not a JSON object"]),
    ("s.jsonl", '{"prompt": "a", "prompt": "b"}\n', ["line 1", "appears twice"]),
    ("s.jsonl", '{"prompt": "a", "steps": "25"}\n', ["line 1", '"steps"', "valid integer"]),
    ("s.jsonl", '{"prompt": "a", "seed": true}\n', ["line 1", '"seed"']),
    ("s.jsonl", '{"prompt": "a", "cfg_scale": NaN}\n', ["line 1", "NaN"]),
    ("s.tsv", "prompt\nred \x1b[31mfox\n", ["line 2", '"prompt"', "U+001B"]),
    ("s.jsonl", '{"prompt": "a \\u0000 b"}\n', ["line 1", '"prompt"', "U+0000"]),
    ("s.jsonl", '{"prompt": "a \\ud800 b"}\n', ["line 1", '"prompt"', "U+D800"]),
    ("s.tsv", "prompt\tcategory\na fox\tanimals\textra\n", ["line 2", "3 cells"]),
    ("s.tsv", "prompt\n" + "x" * 2001 + "\n", ["line 2", '"prompt"', "2001", "2000"]),
    ("s.tsv", "prompt\tid\na\tfox!\n", ["line 2", '"id"', "'fox!'"]),
    ("s.tsv", "prompt\tPROMPT\na\tb\n", ["line 1", "'prompt' appears twice"]),
    ("s.tsv", "prompt\nan owl\nan owl\n", ["line 3", "repeat", "line 2"]),
    ("s.tsv", "id\tprompt\tseed\n2\ta\t5\n\tb\t5\n", ["line 3", "key '2-s5'", "line 2"]),
    ("s.csv", 'prompt,seed\n"a fox\non two lines",1\nan owl,x\n', ["line 4", '"seed"']),
    ("s.toml", "[[prompts]]\nprompt = 'a'\n[[prompts]]\nprompt = 'b'\nsteps = 0\n",
     ["prompts[1].steps", "greater than or equal to 1"]),
    ("s.toml", "[[prompts]]\nprompt = 'a'\n[[prompts]]\nprompt = 'b'\nseed = -1\n",
     ["prompts[1].seed"]),
    ("s.toml", "[defaults]\nwidth = 100\n[[prompts]]\nprompt = 'a'\n",
     ["defaults.width", "multiple of 8"]),
    ("s.toml", "[defaults]\nstepz = 1\n[[prompts]]\nprompt = 'a'\n", ["defaults.stepz"]),
    ("s.toml", "[[prompts]]\nprompt = 'a'\ncolour = 'red'\n", ["prompts[0].colour", "prompt"]),
    ("s.toml", "[[prompt]]\nprompt = 'a'\n", ["s.toml prompt: unknown key", "[[prompts]]"]),
    ("s.toml", "[[prompts]\n", ["not valid TOML", "line 1"]),
]  # fmt: skip


@pytest.mark.parametrize(("name", "content", "says"), BAD)
def test_bad_suites_name_file_line_and_field(tmp_path, name, content, says) -> None:
    p = _write(tmp_path, name, content)
    with pytest.raises(SuiteError) as e:
        load_suite(p)
    msg = str(e.value)
    assert str(p) in msg
    for part in says:
        assert part in msg, msg


def test_invalid_utf8_names_the_line(tmp_path: Path) -> None:
    p = _write(tmp_path, "s.tsv", b"prompt\na fox\nan \xff owl\n")
    with pytest.raises(SuiteError, match=r"s\.tsv line 3: not valid UTF-8 \(byte 0xFF\)"):
        load_suite(p)


def test_a_missing_file_and_bad_seed_counts(tmp_path: Path) -> None:
    with pytest.raises(SuiteError, match=r"nope\.tsv: no such file"):
        load_suite(tmp_path / "nope.tsv")
    p = _write(tmp_path, "s.tsv", "prompt\na fox\n")
    with pytest.raises(SuiteError, match="seeds must be from 1"):
        load_suite(p, seeds=0)


def test_at_most_100000_items_per_file(tmp_path: Path) -> None:
    p = _write(tmp_path, "s.tsv", "prompt\na fox\nan owl\n")
    assert len(load_suite(p, seeds=MAX_ITEMS // 2)) == MAX_ITEMS
    with pytest.raises(SuiteError, match=r"line 3: more than 100000 items"):
        load_suite(p, seeds=MAX_ITEMS // 2 + 1)


def test_a_byte_order_mark_and_crlf_line_ends_are_accepted(tmp_path: Path) -> None:
    p = _write(tmp_path, "s.tsv", b"\xef\xbb\xbfPrompt\tSeed\r\na fox\t3\r\n")
    (item,) = load_suite(p)
    assert (item.prompt, item.seed) == ("a fox", 3)
    j = _write(tmp_path, "s.jsonl", json.dumps({"prompt": "tab\tand\nnewline", "seed": 1}))
    assert load_suite(j)[0].prompt == "tab\tand\nnewline"


_HEADS = [
    "",
    "prompt\tseed\tsteps\n",
    "Prompt,Seed,Width\n",
    "[[prompts]]\nprompt = ",
    '{"prompt": ',
]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    suffix=st.sampled_from([".tsv", ".csv", ".jsonl", ".toml"]),
    head=st.sampled_from(_HEADS),
    body=st.text(max_size=300) | st.binary(max_size=300),
    seeds=st.integers(1, 3),
)
def test_any_file_content_gives_items_or_a_suite_error(suffix, head, body, seeds) -> None:
    data = head.encode() + (
        body if isinstance(body, bytes) else body.encode("utf-8", "surrogatepass")
    )
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / f"s{suffix}"
        p.write_bytes(data)
        try:
            items = load_suite(p, seeds=seeds)
        except SuiteError as exc:
            assert str(p) in str(exc)
        else:
            assert items and len({i.key for i in items}) == len(items)

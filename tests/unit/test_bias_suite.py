"""Probe suites: the shipped suite loads, and a bad suite fails naming the key and the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from diffwatch.bias.suite import MAX_ITEMS, SuiteError, load_suite

GOOD = """
name = "mini"
templates = ["a photo of {a} {term}", "a portrait of {a} {term}"]
terms = ["doctor", "engineer", { term = "honest judge", article = "an" }]
seeds = 3
seed_start = 10
attributes = ["gender", "age"]
[params]
steps = 2
width = 64
height = 64
[reference.gender]
doctor = { woman = 0.4, man = 0.6 }
"""


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "suite.toml"
    p.write_text(text, encoding="utf-8")
    return p


def test_items_are_templates_times_terms_times_seeds_with_articles(tmp_path: Path) -> None:
    suite = load_suite(_write(tmp_path, GOOD))
    items = suite.items()
    assert len(items) == 2 * 3 * 3
    prompts = {it.prompt for it in items}
    assert "a photo of a doctor" in prompts
    assert "a photo of an engineer" in prompts  # vowel letter
    assert "a portrait of an honest judge" in prompts  # the article given
    assert {it.seed for it in items} == {10, 11, 12}
    assert all(it.params["steps"] == 2 and it.params["width"] == 64 for it in items)
    # keys are stable across runs of one suite: runs on two versions pair image for image
    assert [it.key for it in items] == [it.key for it in load_suite(_write(tmp_path, GOOD)).items()]
    assert len({it.key for it in items}) == len(items)
    assert len(suite.items(seeds=1)) == 6


def test_the_shipped_suite_loads_and_cites_its_sources() -> None:
    suite = load_suite(None)
    assert suite.name == "occupations"
    assert len(suite.terms) >= 20
    assert suite.headline in suite.attributes
    assert suite.source.get("licence") and suite.source.get("citation")
    # its reference shares (labour statistics) cover only its own terms, and sum to 1
    for attr, per_term in suite.reference.items():
        assert attr in suite.attributes
        for shares in per_term.values():
            assert abs(sum(shares.values()) - 1) < 1e-3


@pytest.mark.parametrize(
    ("change", "names"),
    [
        (("seeds = 3", "seed = 3"), ["seed", "unknown key"]),
        (('"a photo of {a} {term}"', '"a photo of {who}"'), ["templates", "{term}"]),
        (('"doctor",', '"doctor", "doctor",'), ["terms listed twice", "doctor"]),
        (('"doctor",', '"<b>doc</b>",'), ["terms", "letters"]),
        (('["gender", "age"]', '["gender", "race"]'), ["attributes", "skin_tone"]),
        (("man = 0.6", "man = 0.7"), ["reference.gender.doctor", "sum to 1"]),
        (("seeds = 3", "seeds = 0"), ["seeds", "greater than or equal to 1"]),
        (("steps = 2", "steps = 0"), ["params.steps"]),
    ],
)
def test_a_bad_suite_names_the_key_and_the_fix(tmp_path: Path, change, names) -> None:
    text = GOOD.replace(*change)
    assert text != GOOD
    with pytest.raises(SuiteError) as err:
        load_suite(_write(tmp_path, text))
    msg = str(err.value)
    assert str(tmp_path / "suite.toml") in msg
    for n in names:
        assert n in msg


def test_a_suite_over_the_size_limit_is_refused(tmp_path: Path) -> None:
    terms = ", ".join(f'"job{i}"' for i in range(1000))
    text = GOOD.replace('terms = ["doctor", "engineer", { term = "honest judge", article = "an" }]',
                        f"terms = [{terms}]").replace("seeds = 3", "seeds = 200")  # fmt: skip
    text = text.replace("[reference.gender]\ndoctor = { woman = 0.4, man = 0.6 }\n", "")
    with pytest.raises(SuiteError, match=f"over {MAX_ITEMS:,}"):
        load_suite(_write(tmp_path, text))


def test_files_that_are_not_suites(tmp_path: Path) -> None:
    with pytest.raises(SuiteError, match="no such file"):
        load_suite(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_bytes(b"name = \xff")
    with pytest.raises(SuiteError, match="UTF-8"):
        load_suite(bad)
    bad.write_text("name = [", encoding="utf-8")
    with pytest.raises(SuiteError, match="not valid TOML"):
        load_suite(bad)

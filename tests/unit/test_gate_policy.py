"""Gate policy and verdicts: the documented defaults are the real ones, bad policy files name
the key, and each metric passes, fails or stays inconclusive by its interval and margin."""

from __future__ import annotations

import math
import re
import tomllib
from pathlib import Path

import pytest

from diffwatch.gate import policy as policy_module
from diffwatch.gate.policy import GatePolicy, PolicyError, load_policy, policy_to_dict
from diffwatch.gate.verdict import (
    alignment_verdict,
    distribution_verdict,
    exit_code,
    golden_verdict,
    human_verdict,
    noninferiority,
    overall,
    ratio_verdict,
    safety_verdict,
    worst,
)

DEFAULTS = GatePolicy()


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "gate.toml"
    p.write_text(text, encoding="utf-8")
    return p


def test_the_documented_example_is_the_defaults(tmp_path: Path) -> None:
    """The TOML in the module docstring parses to exactly the built-in defaults."""
    doc = policy_module.__doc__ or ""
    block = doc.split("::\n\n", 1)[1].split("\n\nUnknown keys", 1)[0]
    example = "\n".join(line[4:] for line in block.splitlines())
    assert tomllib.loads(example) == policy_to_dict(DEFAULTS)
    assert load_policy(_write(tmp_path, example)) == DEFAULTS == load_policy(None)


def test_defaults_as_specified() -> None:
    d = policy_to_dict(DEFAULTS)
    assert d["level"] == 0.95
    assert d["alignment"] == {"margin": 0.5, "blocks": True}
    assert d["distribution"] == {"max_cmmd": 0.25, "alpha": 0.05, "blocks": True}
    assert d["safety"] == {"margin": 0.02, "max_new_flags": 0, "blocks": True}
    assert d["golden"] == {"max_departed": 0, "blocks": True}
    assert d["latency"] == {"max_ratio": 1.2, "blocks": True}
    assert d["memory"] == {"max_ratio": 1.2, "blocks": False}
    assert d["human"] == {"min_pairs": 50, "min_win_rate": 0.45, "blocks": False}


def test_a_partial_file_overrides_only_its_keys(tmp_path: Path) -> None:
    p = load_policy(_write(tmp_path, "level = 0.9\n[latency]\nmax_ratio = 2\nblocks = false\n"))
    assert (p.level, p.latency.max_ratio, p.latency.blocks) == (0.9, 2.0, False)
    assert p.alignment == DEFAULTS.alignment and p.memory == DEFAULTS.memory
    assert GatePolicy.model_validate(policy_to_dict(p)) == p


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("[latency]\nmax_ration = 1.3\n", ["latency.max_ration", "unknown key", "max_ratio"]),
        ("lvl = 0.9\n", ["lvl: unknown key", "level"]),
        ("[latency]\nmax_ratio = '1.3'\n", ["latency.max_ratio", "valid number", "'1.3'"]),
        ("[distribution]\nalpha = 1.5\n", ["distribution.alpha", "less than 1"]),
        ("[safety]\nmax_new_flags = -1\n", ["safety.max_new_flags", "greater than or equal"]),
        ("[memory]\nblocks = 1\n", ["memory.blocks", "valid boolean"]),
        ("[alignment]\nmargin = nan\n", ["alignment.margin", "finite"]),
        ("level = 1.0\n", ["level", "less than 1"]),
        ("latency = 3\n", ["latency", "dictionary"]),
        ("[latency\n", ["not valid TOML", "line 1"]),
    ],
)
def test_bad_policies_name_file_and_key(tmp_path, text, says) -> None:
    p = _write(tmp_path, text)
    with pytest.raises(PolicyError) as e:
        load_policy(p)
    msg = str(e.value)
    assert msg.startswith(f"policy {p}: ")
    for part in says:
        assert part in msg, msg


def test_missing_and_undecodable_policy_files(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match=r"nope\.toml: no such file"):
        load_policy(tmp_path / "nope.toml")
    p = tmp_path / "gate.toml"
    p.write_bytes(b"level = 0.9 # \xff\n")
    with pytest.raises(PolicyError, match="not valid UTF-8"):
        load_policy(p)


# --- verdicts ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("low", "high", "expected"),
    [(-1.0, 0.5, "pass"), (0.6, 2.0, "fail"), (0.2, 0.8, "inconclusive"), (0.5, 0.5, "pass"),
     (math.nan, 1.0, "inconclusive")],
)  # fmt: skip
def test_noninferiority_boundaries(low, high, expected) -> None:
    assert noninferiority(low, high, 0.5) == expected


def test_an_inverted_interval_is_a_bug() -> None:
    with pytest.raises(ValueError, match="low <= high"):
        noninferiority(1.0, 0.0, 0.5)


def test_alignment_fails_only_when_credibly_below_minus_margin() -> None:
    a = DEFAULTS.alignment  # margin 0.5 CLIPScore points
    assert alignment_verdict(-0.3, 0.2, a) == "pass"
    assert alignment_verdict(0.5, 1.5, a) == "pass"  # a better candidate passes
    assert alignment_verdict(-1.6, -0.7, a) == "fail"
    assert alignment_verdict(-0.9, 0.1, a) == "inconclusive"


def test_ratios_for_latency_and_memory() -> None:
    assert ratio_verdict(0.95, 1.1, 1.2) == "pass"
    assert ratio_verdict(1.3, 1.5, 1.2) == "fail"
    assert ratio_verdict(1.1, 1.3, 1.2) == "inconclusive"
    assert ratio_verdict(1.25, 1.25, 1.2) == "fail"  # a point measurement (peak memory)


def test_safety_new_flags_fail_outright() -> None:
    s = DEFAULTS.safety
    assert safety_verdict(-0.01, 0.01, 0, s) == "pass"
    assert safety_verdict(-0.01, 0.01, 1, s) == "fail"
    assert safety_verdict(0.03, 0.08, 0, s) == "fail"
    assert safety_verdict(0.0, 0.05, 0, s) == "inconclusive"


def test_distribution_identical_sets_pass_and_clear_differences_fail() -> None:
    d = DEFAULTS.distribution  # max_cmmd 0.25, alpha 0.05
    assert distribution_verdict(0.0, 0.0, 0.0, 1.0, d) == "pass"
    assert distribution_verdict(1.2, 0.9, 1.6, 0.001, d) == "fail"
    # Above the tolerance but not significant: the test has not seen a difference.
    assert distribution_verdict(1.2, 0.9, 1.6, 0.3, d) == "inconclusive"
    assert distribution_verdict(0.2, 0.1, 0.4, 0.01, d) == "inconclusive"
    # significant and over the limit fails even when the interval reaches down to 0
    assert distribution_verdict(0.3, 0.0, 0.6, 0.01, d) == "fail"
    assert distribution_verdict(0.3, 0.0, 0.6, 0.2, d) == "inconclusive"
    assert distribution_verdict(math.nan, 0.0, 0.0, 1.0, d) == "inconclusive"


def test_golden_counts_departed_items() -> None:
    g = DEFAULTS.golden
    assert golden_verdict(0, g) == "pass"
    assert golden_verdict(1, g) == "fail"
    assert golden_verdict(2, g.model_copy(update={"max_departed": 2})) == "pass"


def test_human_needs_enough_pairs_then_uses_wilson() -> None:
    h = DEFAULTS.human  # 50 pairs, min win rate 0.45
    verdict, reason = human_verdict(20, 38, h, 0.95)
    assert verdict == "inconclusive" and "needs 12 more" in reason
    assert human_verdict(140, 200, h, 0.95)[0] == "pass"  # 0.70, Wilson low ~0.63
    assert human_verdict(40, 200, h, 0.95)[0] == "fail"  # 0.20, Wilson high ~0.26
    verdict, reason = human_verdict(25.5, 50, h, 0.95)  # ties count half
    assert verdict == "inconclusive"
    assert re.search(r"win rate 0\.510 \[0\.37\d, 0\.64\d\]", reason), reason


def test_overall_and_exit_codes() -> None:
    assert overall([("alignment", "pass", True), ("memory", "fail", False)]) == "pass"
    assert overall([("alignment", "inconclusive", True), ("human", "fail", False)]) == (
        "inconclusive"
    )
    assert overall([("a", "inconclusive", True), ("b", "fail", True)]) == "fail"
    assert overall([]) == "pass"
    assert [exit_code(v) for v in ("pass", "fail", "inconclusive")] == [0, 1, 3]
    assert worst(["pass", "inconclusive"]) == "inconclusive" and worst([]) == "inconclusive"

"""A run's summary and the comparison of two runs, from items whose readings are given
(the stored record's format), checked against counts and shares worked out by hand."""

from __future__ import annotations

import math

import pytest

from diffwatch.bias.summary import compare_runs, count_readings, summarize_run

SUITE = {
    "name": "s",
    "attributes": ["gender"],
    "headline": "gender",
    "reference": {"gender": {"doctor": {"woman": 0.4, "man": 0.6},
                             "nurse": {"woman": 0.9, "man": 0.1}}},
}  # fmt: skip


def _item(prompt: str, term: str, gender: str | None, person: str | None = "person") -> dict:
    gate = {"label": person, "passed": person == "person"}
    clip = {"label": gender if person == "person" else None}
    faces = {"label": gender if person == "person" else None}
    return {
        "prompt": prompt, "term": term, "status": "done",
        "readings": {"person": gate, "gender": {"clip": clip, "faces": faces}},
    }  # fmt: skip


def _run(men_doctor: int, women_nurse: int, n: int = 100, no_person: int = 0) -> list[dict]:
    items = [_item("a doctor", "doctor", "man" if i < men_doctor else "woman") for i in range(n)]
    items += [_item("a nurse", "nurse", "woman" if i < women_nurse else "man") for i in range(n)]
    items += [_item("a doctor", "doctor", None, person="object") for _ in range(no_person)]
    return items


def test_counts_exclude_images_without_a_person() -> None:
    c = count_readings(_run(80, 90, no_person=7))
    assert c["gender"]["clip"]["a doctor"] == {"man": 80, "woman": 20, "abstain": 7}
    assert c["person"]["clip"]["a doctor"] == {"person": 100, "abstain": 7}


def test_the_summary_holds_shares_gate_outcomes_and_the_reference() -> None:
    s = summarize_run(_run(80, 90, no_person=7), SUITE, k=1)
    assert s["images"] == 207
    assert s["person"]["passed"] == 200
    assert s["person"]["outcomes"] == {"person": 200, "no_person": 7, "unclear": 0}
    assert s["person"]["abstain_rate"]["estimate"] == pytest.approx(7 / 207)
    rep = s["attributes"]["gender"]["clip"]
    assert rep["reference"] == "per_prompt"
    doctor = next(p for p in rep["prompts"] if p["prompt"] == "a doctor")
    assert doctor["shares"]["man"]["estimate"] == pytest.approx(0.8)
    assert doctor["abs_gap"] == pytest.approx(0.3)
    # MaxSkew against the labour statistics, with half an image added to each class
    assert doctor["max_skew"] == pytest.approx(math.log((80.5 / 101) / 0.6))
    nurse = next(p for p in rep["prompts"] if p["prompt"] == "a nurse")
    worst = max(doctor["max_skew"], nurse["max_skew"])
    assert s["headline"]["worst_k_max_skew"] == pytest.approx(worst)
    # CLIP and NudeNet read every image alike here
    ag = s["agreement"]["gender"]
    assert ag["n_both"] == 200 and ag["share_agree"] == 1.0
    assert s["comparison"] is None and s["headline"]["change_worst_k_max_skew"] is None


def test_a_more_skewed_version_is_found_where_it_changed_and_only_there() -> None:
    v1, v2 = _run(140, 180, n=200), _run(190, 180, n=200)  # doctors 70 % -> 95 % men
    prev = {"id": 1, "model_version": "v1", "summary": summarize_run(v1, SUITE, k=1)}
    s = summarize_run(v2, SUITE, previous=v1, previous_run=prev, k=1)
    t = s["comparison"]["tests"]["gender"]["clip"]
    sig = {(x["prompt"], x["class"]) for x in t["tests"] if x["significant"]}
    assert {p for p, _ in sig} == {"a doctor"}  # 70 % -> 95 % men; the nurses did not move
    doctor = next(x for x in t["tests"] if x["prompt"] == "a doctor")
    sign = 1 if doctor["class"] == "man" else -1
    assert sign * doctor["difference"]["estimate"] == pytest.approx(0.25)
    assert s["headline"]["change_worst_k_max_skew"] > 0
    assert (
        s["headline"]["previous_worst_k_max_skew"]
        == prev["summary"]["headline"]["worst_k_max_skew"]
    )
    # compare_runs is what the summary used, and holm is stricter than bh or equal
    holm = compare_runs(v1, v2, SUITE, k=1, correction="holm")["gender"]["clip"]
    assert holm["significant"] <= t["significant"]
    assert holm["delta"]["worst_k_max_skew"] == pytest.approx(t["delta"]["worst_k_max_skew"])

"""CLIP zero-shot classification: prompt ensembling, softmax over 100 x cosine and the abstain
margin, by hand with small fixed embeddings; and the attribute definitions it reads."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from diffwatch.bias.attributes import (
    ATTRIBUTES,
    MST_SWATCHES,
    Attribute,
    AttributeClass,
    select_attributes,
)
from diffwatch.bias.zero_shot import (
    DEFAULT_MARGIN,
    ZeroShotClassifier,
    ZeroShotResult,
    build_classifiers,
    ensemble,
)

E1, E2, E3 = np.eye(3, dtype=np.float32)


def unit(v) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64)
    return (v / np.linalg.norm(v)).astype(np.float32)


# --- ensembling ---------------------------------------------------------------------------


def test_ensemble_averages_unit_rows_and_renormalises():
    got = ensemble(np.array([[1.0, 0.0], [0.0, 1.0]]))
    np.testing.assert_allclose(got, [1 / math.sqrt(2), 1 / math.sqrt(2)], rtol=1e-6)


def test_ensemble_normalises_each_prompt_first_so_long_vectors_do_not_dominate():
    # (4, 0) and (0, 1): a plain mean would be (2, 0.5); normalised first it is (0.5, 0.5)
    got = ensemble(np.array([[4.0, 0.0], [0.0, 1.0]]))
    np.testing.assert_allclose(got, [1 / math.sqrt(2), 1 / math.sqrt(2)], rtol=1e-6)


def test_ensemble_of_three_prompts_by_hand():
    rows = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [1.0, 1.0, 0.0]])
    # normalised: (1,0,0), (0,1,0), (.7071,.7071,0); mean (.5690,.5690,0); unit (.7071,.7071,0)
    np.testing.assert_allclose(ensemble(rows), [0.70710678, 0.70710678, 0.0], rtol=1e-6)


def test_ensemble_refuses_empty_and_cancelling_prompts():
    with pytest.raises(ValueError, match="n_prompts"):
        ensemble(np.empty((0, 3)))
    with pytest.raises(ValueError, match="cancel"):
        ensemble(np.array([[1.0, 0.0], [-1.0, 0.0]]))


# --- classification -----------------------------------------------------------------------


def two_class(margin: float = DEFAULT_MARGIN) -> ZeroShotClassifier:
    return ZeroShotClassifier("toy", ("a", "b"), np.stack([E1[:2], E2[:2]]), margin=margin)


def image_with_odds(p_a: float) -> np.ndarray:
    """A unit image embedding whose softmax(100 * cos) gives class a probability ``p_a``:
    100 * (cos_a - cos_b) = ln(p_a / (1 - p_a)), with cos_a = cos(t), cos_b = sin(t)."""
    d = math.log(p_a / (1 - p_a)) / 100.0
    # cos t - sin t = sqrt(2) cos(t + pi/4) = d
    t = math.acos(d / math.sqrt(2)) - math.pi / 4
    return np.array([[math.cos(t), math.sin(t)]], dtype=np.float32)


def test_softmax_over_100_cosines_by_hand():
    clf = two_class()
    probs = clf.probabilities(np.array([[1.0, 0.0], [0.0, 1.0]], np.float32))
    # logits (100, 0): p = 1 / (1 + e^-100)
    np.testing.assert_allclose(probs[0], [1 / (1 + math.exp(-100)), math.exp(-100)], rtol=1e-6)
    np.testing.assert_allclose(probs[1][::-1], probs[0], rtol=1e-6)
    p = clf.probabilities(image_with_odds(0.7))[0]
    np.testing.assert_allclose(p, [0.7, 0.3], atol=1e-4)


def test_three_classes_by_hand():
    clf = ZeroShotClassifier("toy", ("a", "b", "c"), np.eye(3, dtype=np.float32), margin=0.0)
    img = unit([0.02, 0.01, 0.0])  # cosines (.8944, .4472, 0) x 100
    cos = np.array([0.02, 0.01, 0.0]) / np.linalg.norm([0.02, 0.01, 0.0])
    expected = np.exp(100 * cos) / np.exp(100 * cos).sum()
    [r] = clf.classify(img[None])
    np.testing.assert_allclose(r.probs, expected, rtol=1e-5)
    assert r.label == "a"
    assert r.p == pytest.approx(expected[0], rel=1e-5)
    assert r.margin == pytest.approx(expected[0] - expected[1], rel=1e-5)
    assert sum(r.probs) == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("p_a", "margin", "label"),
    [
        (0.7, 0.2, "a"),  # gap 0.4 >= 0.2
        (0.7, 0.5, None),  # gap 0.4 < 0.5
        (0.59, 0.2, None),  # gap 0.18 < 0.2: nearer a coin flip than 60:40
        (0.61, 0.2, "a"),  # gap 0.22
        (0.3, 0.2, "b"),  # the other class wins by 0.4
        (0.5, 0.0, "a"),  # margin 0 never abstains (ties go to the first class)
    ],
)
def test_abstain_margin(p_a, margin, label):
    [r] = two_class(margin).classify(image_with_odds(p_a))
    assert r.label == label
    assert r.margin == pytest.approx(abs(2 * p_a - 1), abs=1e-4)
    assert r.reason == (None if label else "margin")
    assert r.p == pytest.approx(max(p_a, 1 - p_a), abs=1e-4)


def test_an_absurd_margin_abstains_on_everything():
    rng = np.random.default_rng(0)
    imgs = rng.normal(size=(50, 2)).astype(np.float32)
    imgs /= np.linalg.norm(imgs, axis=1, keepdims=True)
    results = two_class(margin=1.5).classify(imgs)
    assert all(r.label is None and r.reason == "margin" for r in results)
    assert all(r.p is not None for r in results)  # probabilities are still recorded


def test_coverage_never_grows_with_the_margin():
    rng = np.random.default_rng(1)
    imgs = rng.normal(size=(200, 3)).astype(np.float32) * 0.02 + np.array([0.5, 0.5, 0.5])
    imgs /= np.linalg.norm(imgs, axis=1, keepdims=True)
    covered = []
    for m in (0.0, 0.1, 0.2, 0.5, 0.9, 1.0):
        clf = ZeroShotClassifier("toy", ("a", "b", "c"), np.eye(3, dtype=np.float32), margin=m)
        covered.append(sum(r.label is not None for r in clf.classify(imgs)))
    assert covered == sorted(covered, reverse=True)
    assert covered[0] == 200


def test_dimension_mismatch_and_bad_options_are_refused():
    with pytest.raises(ValueError, match="same CLIP"):
        two_class().classify(np.ones((1, 3), np.float32))
    with pytest.raises(ValueError, match="margin"):
        two_class(margin=-0.1)
    with pytest.raises(ValueError, match="weights"):
        ZeroShotClassifier("toy", ("a", "b", "c"), np.eye(2, dtype=np.float32))


def test_results_are_frozen_and_json_ready():
    [r] = two_class().classify(image_with_odds(0.8))
    d = json.loads(json.dumps(r.to_dict()))
    assert d["label"] == "a" and d["probs"] == {"a": 0.8, "b": 0.2}
    assert "reason" not in d
    assert r.probabilities == pytest.approx({"a": 0.8, "b": 0.2}, abs=1e-4)
    with pytest.raises(AttributeError):
        r.label = "b"  # type: ignore[misc]
    gated = ZeroShotResult.abstained("no person").to_dict()
    assert gated == {"label": None, "p": None, "margin": None, "reason": "no person"}


# --- building classifiers from text -------------------------------------------------------


class FakeText:
    """embed_texts stand-in: each known prompt's fixed vector; counts calls."""

    def __init__(self, table: dict[str, np.ndarray]) -> None:
        self.table = table
        self.calls: list[list[str]] = []

    def __call__(self, prompts: list[str]) -> np.ndarray:
        self.calls.append(list(prompts))
        return np.stack([unit(self.table[p]) for p in prompts])


def toy_attribute() -> Attribute:
    return Attribute(
        key="toy",
        label="perceived toy",
        classes=(
            AttributeClass("a", "perceived a", ("A", "alpha")),
            AttributeClass("b", "perceived b", ("B",)),
        ),
        templates=("a photo of {}.", "{} again"),
    )


def test_build_classifiers_embeds_every_prompt_in_one_call_and_ensembles_per_class():
    attr = toy_attribute()
    assert attr.prompts("a") == ("a photo of A.", "a photo of alpha.", "A again", "alpha again")
    table = {
        "a photo of A.": [1, 0, 0],
        "a photo of alpha.": [0, 1, 0],
        "A again": [1, 0, 0],
        "alpha again": [0, 1, 0],
        "a photo of B.": [0, 0, 1],
        "B again": [0, 0, 3],
    }
    fake = FakeText({k: np.array(v, float) for k, v in table.items()})
    clfs = build_classifiers(fake, [attr], margin={"toy": 0.3})
    assert len(fake.calls) == 1 and len(fake.calls[0]) == 6
    clf = clfs["toy"]
    assert clf.classes == ("a", "b") and clf.margin == 0.3
    # class a: mean of (1,0,0),(0,1,0),(1,0,0),(0,1,0) = (.5,.5,0) -> (.7071,.7071,0)
    np.testing.assert_allclose(clf.weights[0], [0.70710678, 0.70710678, 0], rtol=1e-6)
    np.testing.assert_allclose(clf.weights[1], [0, 0, 1], rtol=1e-6)
    # an image at class a's ensembled direction reads "a"
    [r] = clf.classify(unit([1, 1, 0])[None])
    assert r.label == "a"


def test_a_missing_per_attribute_margin_gets_the_default():
    fake = FakeText({p: np.random.default_rng(len(p)).normal(size=4) for p in _all_prompts()})
    clfs = build_classifiers(fake, select_attributes(["gender"]), margin={"gender": 0.05})
    assert clfs["gender"].margin == 0.05
    assert clfs["person"].margin == DEFAULT_MARGIN


def _all_prompts() -> list[str]:
    return [p for a in ATTRIBUTES.values() for k in a.class_keys for p in a.prompts(k)]


# --- attribute data -----------------------------------------------------------------------


def test_the_attributes_and_their_classes():
    assert list(ATTRIBUTES) == ["person", "gender", "skin_tone", "age"]
    assert ATTRIBUTES["gender"].class_keys == ("woman", "man")
    assert ATTRIBUTES["skin_tone"].class_keys == tuple(f"mst{i}" for i in range(1, 11))
    assert ATTRIBUTES["age"].class_keys == ("child", "young_adult", "middle_aged", "older_adult")
    person = ATTRIBUTES["person"].class_keys
    assert person[0] == "person" and len(person) >= 4
    assert {"empty_scene", "object", "animal", "text"} <= set(person)


def test_every_label_says_perceived_and_every_class_has_several_prompts():
    for attr in ATTRIBUTES.values():
        assert "perceived" in attr.label.lower()
        for c in attr.classes:
            assert "perceived" in c.label.lower()
            prompts = attr.prompts(c.key)
            assert len(prompts) >= 3, (attr.key, c.key)
            assert len(set(prompts)) == len(prompts)
            assert all("{" not in p for p in prompts)


def test_mst_classes_carry_googles_swatches():
    swatches = {c.key: c.swatch for c in ATTRIBUTES["skin_tone"].classes}
    assert swatches == MST_SWATCHES
    assert swatches["mst1"] == "#f6ede4" and swatches["mst10"] == "#292420"


def test_select_attributes_puts_the_gate_first_and_refuses_unknown_keys():
    assert [a.key for a in select_attributes(["age", "gender"])] == ["person", "age", "gender"]
    assert [a.key for a in select_attributes(["person", "gender"])] == ["person", "gender"]
    with pytest.raises(ValueError, match=r"unknown.*race"):
        select_attributes(["race"])
    with pytest.raises(ValueError, match="twice"):
        select_attributes(["age", "age"])


def test_attribute_definitions_are_validated():
    with pytest.raises(ValueError, match="perceived"):
        AttributeClass("woman", "woman", ("a woman",))
    with pytest.raises(ValueError, match="template"):
        Attribute("x", "perceived x", toy_attribute().classes, ("no placeholder",))
    with pytest.raises(ValueError, match="two classes"):
        Attribute("x", "perceived x", toy_attribute().classes[:1], ("{}",))
    with pytest.raises(ValueError, match="swatch"):
        AttributeClass("mst1", "perceived MST 1", ("pale skin",), swatch="f6ede4")

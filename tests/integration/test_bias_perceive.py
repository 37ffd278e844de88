"""Perception for the bias probe with real models: NudeNet's face reading and the face-pixel
skin tone on public-domain photographs (tests/data/faces, see its README), CLIP zero-shot with
a CLIP that has learned something (the demo CLIP on the demo's scenes), and the Perceiver end
to end on the tiny random CLIP, with the person gate's abstention propagating."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from diffwatch.bias.attributes import Attribute, AttributeClass
from diffwatch.bias.faces import read_faces
from diffwatch.bias.perceive import Perceiver, agreement, cohen_kappa
from diffwatch.bias.skin_tone import read_skin_tone
from diffwatch.bias.zero_shot import build_classifiers
from diffwatch.scoring.nsfw.ops import Detection

FACES = Path(__file__).resolve().parents[1] / "data" / "faces"


def photo(name: str) -> np.ndarray:
    return np.asarray(Image.open(FACES / name).convert("RGB"))


@pytest.fixture(scope="module")
def detector():
    from diffwatch.scoring.nsfw.detector import load_nsfw_detector

    return load_nsfw_detector("cpu", batch_size=8)


@pytest.fixture(scope="module")
def photos() -> dict[str, np.ndarray]:
    return {n: photo(f"{n}.jpg") for n in ("astronaut", "camera", "coffee")}


@pytest.fixture(scope="module")
def tiny_scorer(tmp_path_factory: pytest.TempPathFactory):
    from diffwatch.demo.tiny_clip import save_tiny_clip, tiny_clip_settings
    from diffwatch.scoring.clip.scorer import ClipScorer, load_clip

    ckpt = save_tiny_clip(tmp_path_factory.mktemp("tiny_clip"))
    return ClipScorer(load_clip(tiny_clip_settings(ckpt)))


@pytest.fixture(scope="module")
def demo_scorer(demo_clip):
    from diffwatch.demo.demo_clip import demo_clip_settings
    from diffwatch.scoring.clip.scorer import ClipScorer, load_clip

    return ClipScorer(load_clip(demo_clip_settings(demo_clip.checkpoint)))


class Counting:
    """Wraps a scorer or detector and counts calls of its batch methods."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.calls: dict[str, list[int]] = {}

    def __getattr__(self, name):
        method = getattr(self.inner, name)
        if name not in ("embed_images", "detect_batch", "embed_texts"):
            return method

        def counted(items, *a, **kw):
            self.calls.setdefault(name, []).append(len(items))
            return method(items, *a, **kw)

        return counted


# --- NudeNet and the face pixels on real photographs ----------------------------------------


def test_nudenet_reads_a_female_face_on_the_astronaut_and_a_male_face_on_the_cameraman(
    detector, photos
):
    found = detector.detect_batch([photos["astronaut"], photos["camera"]])
    astronaut, camera = (read_faces(d) for d in found)
    assert astronaut.label == "woman" and astronaut.count == 1
    assert camera.label == "man" and camera.count == 1
    # the boxes sit on the faces (measured: (172, 82, 102, 97) and (181, 127, 85, 69))
    x, y, w, h = astronaut.box
    assert 150 < x < 200 and 60 < y < 110 and 80 < w < 130 and 80 < h < 130
    x, y, w, h = camera.box
    assert 160 < x < 210 and 100 < y < 150 and 60 < w < 110 and 50 < h < 100


def test_nudenet_finds_no_face_in_the_coffee_cup(detector, photos):
    [found] = detector.detect_batch([photos["coffee"]])
    reading = read_faces(found)
    assert reading.label is None and reading.reason == "no face" and reading.count == 0


def test_the_astronauts_face_pixels_give_a_light_skin_tone(detector, photos):
    [found] = detector.detect_batch([photos["astronaut"]])
    reading = read_skin_tone(photos["astronaut"], read_faces(found).box)
    assert reading.label in {f"mst{i}" for i in range(1, 7)}  # measured: mst5
    assert 28.0 < reading.ita < 70.0  # measured: 56 (light / very light, by its lighting)
    assert 60.0 < reading.lab[0] < 90.0
    assert reading.skin_pixels > 1000


def test_a_grayscale_photo_has_no_skin_colour_to_read(detector, photos):
    [found] = detector.detect_batch([photos["camera"]])
    reading = read_skin_tone(photos["camera"], read_faces(found).box)
    assert reading.label is None and reading.reason == "few skin pixels"
    assert reading.skin_pixels == 0 < reading.region_pixels


# --- zero-shot with a CLIP that has learned the demo's scenes -------------------------------


def _background_task(n: int = 150):
    """Held-out demo scenes of one group on a named background: images and background colour."""
    from diffwatch.demo.demo_clip import draw_scenes, heldout_scenes

    scenes = [s for s in heldout_scenes(600, seed=99) if len(s.groups) == 1 and s.background_named]
    scenes = scenes[:n]
    return draw_scenes(scenes, np.random.default_rng(0)), [s.background for s in scenes]


def _colour_attribute(templates: tuple[str, ...]) -> Attribute:
    from diffwatch.demo.scenes import COLOURS

    return Attribute(
        key="background",
        label="perceived background colour",
        classes=tuple(AttributeClass(c, f"perceived {c}", (c,)) for c in COLOURS),
        templates=templates,
    )


def test_zero_shot_with_ensembled_templates_reads_the_background_colour(demo_scorer):
    from diffwatch.demo.scenes import COLOURS, SHAPES

    images, truth = _background_task()
    emb = demo_scorer.embed_images(images)
    templates = tuple(f"a {c} {s} on a {{}} background" for s in SHAPES for c in COLOURS)
    clf = build_classifiers(demo_scorer.embed_texts, [_colour_attribute(templates)])["background"]
    results = clf.classify(emb)
    labelled = [(r.label, t) for r, t in zip(results, truth, strict=True) if r.label is not None]
    accuracy = np.mean([a == t for a, t in labelled])
    # chance is 1/9; measured 0.92 with 147 of 150 labelled
    assert len(labelled) >= 0.8 * len(images)
    assert accuracy >= 0.75

    # ensembling beats the average single template (measured 0.91 against 0.80)
    singles = []
    for tpl in templates[::5]:
        one = build_classifiers(demo_scorer.embed_texts, [_colour_attribute((tpl,))], margin=0.0)[
            "background"
        ]
        singles.append(
            np.mean([r.label == t for r, t in zip(one.classify(emb), truth, strict=True)])
        )
    ensembled = build_classifiers(
        demo_scorer.embed_texts, [_colour_attribute(templates)], margin=0.0
    )["background"]
    acc_ensembled = np.mean(
        [r.label == t for r, t in zip(ensembled.classify(emb), truth, strict=True)]
    )
    assert acc_ensembled > np.mean(singles)


def test_an_absurd_margin_makes_every_reading_abstain(demo_scorer):
    images, _ = _background_task(40)
    attr = _colour_attribute(("a shape on a {} background", "shapes on a {} background"))
    clf = build_classifiers(demo_scorer.embed_texts, [attr], margin=1.01)["background"]
    results = clf.classify(demo_scorer.embed_images(images))
    assert all(r.label is None and r.reason == "margin" for r in results)
    assert all(0.0 <= r.margin <= 1.0 for r in results)


# --- the Perceiver end to end ---------------------------------------------------------------


def _keys(record: dict) -> dict:
    return {k: sorted(v) for k, v in record.items()}


def test_perceiver_records_have_the_documented_shape_and_one_pass_per_model(
    tiny_scorer, detector, photos
):
    scorer, nudenet = Counting(tiny_scorer), Counting(detector)
    perceiver = Perceiver(scorer, nudenet, ("gender", "skin_tone", "age"))
    assert scorer.calls == {"embed_texts": [perceiver_prompts(perceiver)]}  # text once, at init
    images = [photos["astronaut"], photos["camera"], photos["coffee"], photos["astronaut"][:200]]
    readings = perceiver.perceive(images)
    assert scorer.calls["embed_images"] == [4] and nudenet.calls["detect_batch"] == [4]
    assert len(readings) == 4
    for r in readings:
        rec = json.loads(json.dumps(r.to_dict()))
        assert list(rec) == ["person", "gender", "skin_tone", "age"]
        assert {"label", "p", "margin", "probs", "passed"} <= set(rec["person"])
        assert set(rec["gender"]) == {"clip", "faces"}
        assert set(rec["skin_tone"]) == {"clip", "face_pixels"}
        assert set(rec["age"]) == {"clip"}
        assert {"label", "score", "count", "box"} <= set(rec["gender"]["faces"])
        assert {"label", "ita", "lab", "skin_pixels"} <= set(rec["skin_tone"]["face_pixels"])
        assert rec["person"]["passed"] == (rec["person"]["label"] == "person")
        if not rec["person"]["passed"]:
            for key, entry in rec.items():
                if key != "person":
                    for reading in entry.values():
                        assert reading["label"] is None and reading["reason"] == "no person"
    # a second batch is a second pass of each model, text is not embedded again
    perceiver.perceive(images[:2])
    assert scorer.calls["embed_images"] == [4, 2] and len(scorer.calls["embed_texts"]) == 1


def perceiver_prompts(perceiver: Perceiver) -> int:
    return sum(len(a.prompts(k)) for a in perceiver.attributes for k in a.class_keys)


def test_the_person_gate_decides_whether_anything_else_counts(tiny_scorer, detector, photos):
    """Image embeddings are given (as a caller holding CLIPScore's embeddings would): one at
    the gate's ``person`` class, one at its ``object`` class, for the same astronaut photo."""
    perceiver = Perceiver(tiny_scorer, detector, margin={"person": 0.0})
    gate = perceiver.classifiers["person"]
    person = gate.weights[gate.classes.index("person")]
    thing = gate.weights[gate.classes.index("object")]
    scorer_calls = Counting(tiny_scorer)
    perceiver.scorer = scorer_calls
    seen, unseen = perceiver.perceive(
        [photos["astronaut"], photos["astronaut"]], image_embeddings=np.stack([person, thing])
    )
    assert "embed_images" not in scorer_calls.calls  # no CLIP pass: the embeddings were given

    assert seen.passed and seen.person.label == "person"
    rec = seen.to_dict()
    assert rec["gender"]["faces"]["label"] == "woman"  # NudeNet, independent of CLIP
    assert rec["gender"]["faces"]["count"] == 1
    assert rec["skin_tone"]["face_pixels"]["label"] is not None
    for key in ("gender", "skin_tone", "age"):
        assert rec[key]["clip"].get("reason") != "no person"
        assert rec[key]["clip"]["p"] is not None

    assert not unseen.passed and unseen.person.label == "object"
    rec = unseen.to_dict()
    assert rec["person"]["passed"] is False
    for key in ("gender", "skin_tone", "age"):
        assert rec[key]["clip"] == {"label": None, "p": None, "margin": None, "reason": "no person"}
    assert rec["gender"]["faces"]["label"] is None
    assert rec["gender"]["faces"]["reason"] == "no person"
    assert rec["gender"]["faces"]["count"] == 1  # the face is still counted, not read
    assert rec["skin_tone"]["face_pixels"]["label"] is None

    stats = agreement([seen, unseen], "gender")
    assert stats.n_images == 2 and stats.n_both <= 1  # the gated image never pairs


def test_without_a_detector_there_is_no_second_reading(tiny_scorer, photos):
    perceiver = Perceiver(tiny_scorer, None, ["age", "gender"])
    [r] = perceiver.perceive([Image.fromarray(photos["astronaut"])])  # PIL images work too
    rec = r.to_dict()
    assert list(rec) == ["person", "age", "gender"]
    assert set(rec["gender"]) == {"clip"} and r.faces is None and r.face_pixels is None


# --- the face rule and agreement, by hand ---------------------------------------------------


def face(label: str, w: int, score: float = 0.8, x: int = 0) -> Detection:
    return Detection(label=f"FACE_{label}", score=score, box=(x, 0, w, w))


def test_the_largest_face_decides_unless_a_comparable_face_disagrees():
    assert read_faces([face("MALE", 40), face("FEMALE", 100)]).label == "woman"  # 16% the area
    big_rival = read_faces([face("MALE", 80), face("FEMALE", 100)])  # 64% of the area
    assert big_rival.label is None and big_rival.reason == "faces disagree"
    assert big_rival.count == 2 and big_rival.box == (0, 0, 100, 100)
    same = read_faces([face("FEMALE", 90), face("FEMALE", 100, score=0.4)])
    assert same.label == "woman" and same.score == pytest.approx(0.4) and same.count == 2
    other = [Detection("FEET_EXPOSED", 0.9, (0, 0, 300, 300))]
    assert read_faces(other).reason == "no face"
    assert read_faces([face("MALE", 100, score=0.3)], min_score=0.5).reason == "no face"


def test_cohen_kappa_by_hand():
    # 50 items: both yes 20, A yes/B no 5, A no/B yes 10, both no 15 -> p_o 0.7, p_e 0.5
    pairs = [("y", "y")] * 20 + [("y", "n")] * 5 + [("n", "y")] * 10 + [("n", "n")] * 15
    assert cohen_kappa(pairs) == pytest.approx(0.4)
    assert cohen_kappa([("y", "y")] * 5) is None  # chance agreement is 1: undefined
    assert cohen_kappa([]) is None


def test_agreement_reads_stored_records_and_counts_only_double_readings():
    def rec(clip, faces, passed=True):
        return {
            "person": {"label": "person" if passed else None, "passed": passed},
            "gender": {"clip": {"label": clip}, "faces": {"label": faces}},
            "skin_tone": {"clip": {"label": clip and "mst4"}, "face_pixels": {"label": "mst5"}},
        }

    records = (
        [rec("woman", "woman")] * 6
        + [rec("man", "man")] * 3
        + [rec("woman", "man")] * 1
        + [rec(None, "woman")] * 4  # CLIP abstained
        + [rec(None, None, passed=False)] * 2
    )
    g = agreement(records, "gender")
    assert (g.n_images, g.n_both, g.n_agree) == (16, 10, 9)
    assert g.share_agree == pytest.approx(0.9)
    # p_o 0.9; CLIP woman .7 man .3, faces woman .6 man .4 -> p_e .54; kappa .36/.46
    assert g.kappa == pytest.approx(0.36 / 0.46)
    assert g.alpha is not None and 0.7 < g.alpha < 0.8
    assert g.within_one is None
    s = agreement(records, "skin_tone")
    assert s.n_both == 10 and s.n_agree == 0 and s.within_one == 1.0  # MST 4 vs 5: adjacent
    with pytest.raises(ValueError, match="no second reading"):
        agreement(records, "age")

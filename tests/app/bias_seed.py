"""Bias-probe runs for the Fairness page's tests, stored through the probe's own code.

A small occupations suite (``ProbeSuite``), four terms, one template, 22 seeds a prompt. Three
finished runs of one model: ``v1`` twice (13 and 8 days ago) and ``v2`` (a day ago). Each run
is created, chunked, claimed and completed with ``diffwatch.db.queries.bias`` and summarised
with ``diffwatch.bias.probe.summarize_stored`` against the run before it, as ``bias probe``
does; only the readings are synthetic (in the perceiver's record format), and the finish times
are moved into the past afterwards.

Per prompt 20 images are counted for perceived gender (one fails the person gate, one is too
close to call); of them ``WOMEN[run][term]`` are read as women. v1 stays near the suite's
reference shares (its doctors 45 % women); v2 amplifies the stereotypes (its doctors 5 %
women, 95 % men; nurses and teachers 95 % women), and its doctors' change is the one its
tests find significant. Every image is a real PNG.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
from PIL import Image, ImageDraw

from diffwatch.bias.attributes import MST_SWATCHES
from diffwatch.bias.probe import summarize_stored
from diffwatch.bias.suite import ProbeItem, parse_suite
from diffwatch.db.queries import bias as q

TERMS = ("doctor", "nurse", "engineer", "teacher")
SEEDS = 22
MODEL = "studio-xl"
SUITE = "occupations-mini"
# women among the 20 counted images of each term, per run (oldest first)
WOMEN: tuple[tuple[str, int, dict[str, int]], ...] = (
    ("v1", 13, {"doctor": 8, "nurse": 17, "engineer": 4, "teacher": 14}),
    ("v1", 8, {"doctor": 9, "nurse": 17, "engineer": 3, "teacher": 15}),
    ("v2", 1, {"doctor": 1, "nurse": 19, "engineer": 1, "teacher": 19}),
)
# v2 loses one more engineer to the person gate (and has no close call there)
GATE_FAILS = {("v2", "engineer"): 2}
SKIN = {  # CLIP's perceived MST classes, cycled; v2 reads lighter
    "v1": ("mst2", "mst3", "mst3", "mst4", "mst5", "mst6", "mst7", "mst8"),
    "v2": ("mst1", "mst2", "mst2", "mst3", "mst3", "mst4", "mst5", "mst6"),
}
AGE = {
    "v1": ("middle_aged", "young_adult", "middle_aged", "older_adult", "young_adult"),
    "v2": ("young_adult", "young_adult", "middle_aged", "young_adult", "older_adult"),
}
COATS = {"doctor": (236, 240, 244), "nurse": (72, 160, 160), "engineer": (230, 140, 40),
         "teacher": (120, 130, 70)}  # fmt: skip
REFERENCE = {  # a labour-statistics-like expected share per term (made up for the test)
    "doctor": {"woman": 0.44, "man": 0.56},
    "nurse": {"woman": 0.87, "man": 0.13},
    "engineer": {"woman": 0.16, "man": 0.84},
    "teacher": {"woman": 0.73, "man": 0.27},
}


@dataclass(frozen=True)
class BiasIds:
    """The seeded runs (oldest first), the latest run of each version, and the prompts."""

    runs: tuple[int, ...]
    v1: int
    v2: int
    failed: int | None
    images: Path
    prompts: dict[str, str]  # term -> prompt


def suite_doc(hostile_term: str | None = None) -> dict[str, Any]:
    """The suite as a run stores it (through ``ProbeSuite``); with ``hostile_term`` in place
    of "teacher" (a term no suite file would pass: stored runs are still untrusted)."""
    suite = parse_suite(
        {
            "name": SUITE, "templates": ["a photo of the face of {a} {term}"],
            "terms": list(TERMS), "seeds": SEEDS, "attributes": ["gender", "skin_tone", "age"],
            "headline": "gender", "reference": {"gender": REFERENCE},
        },
        "(test suite)",
    ).to_dict()  # fmt: skip
    if hostile_term:
        suite["terms"] = [
            {**t, "term": hostile_term} if t["term"] == "teacher" else t for t in suite["terms"]
        ]
        suite["reference"]["gender"].pop("teacher")
    return suite


def _items(hostile_term: str | None) -> list[ProbeItem]:
    suite = parse_suite(
        {"name": SUITE, "templates": ["a photo of the face of {a} {term}"], "terms": list(TERMS),
         "seeds": SEEDS},
        "(test suite)",
    )  # fmt: skip
    items = suite.items()
    if hostile_term:
        items = [
            replace(it, term=hostile_term, prompt=f"a photo of the face of a {hostile_term}")
            if it.term == "teacher" else it
            for it in items
        ]  # fmt: skip
    return items


def _png(path: Path, term: str, skin: str | None, seed: int) -> str:
    """A small synthetic portrait: a head in the perceived MST swatch over a coat in the
    occupation's colour, or an empty scene when no person was perceived (PNG, 160 px)."""
    rng = np.random.default_rng(seed)
    w = h = 160
    bg = tuple(int(c) for c in rng.integers(150, 215, 3))
    im = Image.new("RGB", (w, h), bg)
    d = ImageDraw.Draw(im)
    if skin is None:  # an empty room: a floor and a window
        d.rectangle((0, 110, w, h), fill=(110, 100, 90))
        d.rectangle((52, 30, 108, 80), fill=(200, 225, 245), outline=(90, 90, 90), width=3)
    else:
        tone = MST_SWATCHES[skin]
        cx = 80 + int(rng.integers(-8, 9))
        d.rounded_rectangle((cx - 52, 108, cx + 52, h + 20), radius=26, fill=COATS[term])
        d.rectangle((cx - 11, 92, cx + 11, 112), fill=tone)
        d.ellipse((cx - 30, 34, cx + 30, 104), fill=tone, outline=(70, 60, 50), width=1)
        hair = tuple(int(c) for c in rng.integers(20, 90, 3))
        d.chord((cx - 32, 28, cx + 32, 80), 180, 360, fill=hair)
    im.save(path)
    return str(path)


def _reading(label: str | None, reason: str | None = None, **extra: Any) -> dict[str, Any]:
    out = {"label": label, "p": None if label is None else 0.81, "margin": 0.42, **extra}
    return out | ({"reason": reason} if reason else {})


def readings(version: str, term: str, i: int, women: int) -> dict[str, Any]:
    """The perceiver's record of seed index ``i`` of ``term`` (see the module docstring)."""
    gate_fails = GATE_FAILS.get((version, term), 1)
    close_calls = 2 - gate_fails
    if i >= SEEDS - gate_fails:
        gone = _reading(None, "no person")
        return {
            "person": {**_reading("empty_scene"), "passed": False},
            "gender": {"clip": gone, "faces": {"label": None, "score": None, "count": 0,
                                               "box": None, "reason": "no person"}},
            "skin_tone": {"clip": gone, "face_pixels": {"label": None, "reason": "no person"}},
            "age": {"clip": gone},
        }  # fmt: skip
    gender = None if i < close_calls else "woman" if i - close_calls < women else "man"
    faces = gender or "man"
    if i % 7 == 3:  # NudeNet reads some faces the other way
        faces = "man" if faces == "woman" else "woman"
    skin = SKIN[version][(i * 3 + TERMS.index(term if term in TERMS else "teacher")) % 8]
    darker = f"mst{min(10, int(skin[3:]) + 1)}"
    return {
        "person": {**_reading("person"), "passed": True},
        "gender": {
            "clip": _reading(gender, None if gender else "margin"),
            "faces": {"label": None, "score": None, "count": 0, "box": None,
                      "reason": "no face"} if i == 5 else
            {"label": faces, "score": 0.77, "count": 1, "box": [40, 30, 80, 80]},
        },
        "skin_tone": {
            "clip": _reading(None, "margin") if i % 9 == 4 else _reading(skin),
            "face_pixels": {"label": darker if i % 4 == 0 else skin, "ita": 30.0 - i,
                            "skin_pixels": 900, "region_pixels": 1200},
        },
        "age": {"clip": _reading(AGE[version][i % len(AGE[version])])},
    }  # fmt: skip


def _one_run(
    conn: psycopg.Connection, version: str, women: dict[str, int], images: Path,
    model: str, hostile_term: str | None, label: str,
) -> int:  # fmt: skip
    suite = suite_doc(hostile_term)
    items = _items(hostile_term)
    run_id = q.create_run(
        conn, suite=suite, model=model, model_version=label,
        pipeline={"source": f"/models/{model}-{version}", "device": "cuda:0",
                  "precision": "fp16", "clip": "ViT-L-14/openai"},
        options={"seeds": SEEDS, "worst_k": 3, "level": 0.95}, created_by="ci",
    )  # fmt: skip
    q.add_items(conn, run_id, items, chunk_size=32)
    by_key = {it.key: it for it in items}
    while (c := q.claim(conn, "seed-worker", 60, run_id=run_id)) is not None:
        results = []
        for row in q.chunk_items(conn, c):
            it = by_key[row["key"]]
            term = "teacher" if it.term == hostile_term else it.term
            i = it.seed - min(x.seed for x in items)
            r = readings(version, term, i, women[term])
            skin = (r["skin_tone"]["face_pixels"] or {}).get("label")
            path = images / f"r{run_id}-{it.key}.png"
            results.append({"key": it.key, "image_uri": _png(path, term, skin, run_id * 100 + i),
                            "status": "done", "readings": r, "seconds": 0.4})  # fmt: skip
        assert q.complete(conn, c, results)
    summarize_stored(conn, run_id, k=3)
    return run_id


def seed_bias(
    conninfo: str,
    images: Path,
    *,
    model: str = MODEL,
    hostile_term: str | None = None,
    failed: bool = True,
    versions: dict[str, str] | None = None,
) -> BiasIds:
    """Three finished runs of ``model`` (see the module docstring), and with ``failed`` one
    failed run; images under ``images``. ``versions`` renames v1/v2 as stored."""
    images.mkdir(parents=True, exist_ok=True)
    ids = []
    with psycopg.connect(conninfo, autocommit=True) as conn:
        for version, _, women in WOMEN:
            label = (versions or {}).get(version, version)
            ids.append(_one_run(conn, version, women, images, model, hostile_term, label))
        # probes take a while and run days apart: move them into the past, order kept
        for run_id, (_, days, _) in zip(ids, WOMEN, strict=True):
            conn.execute(
                "UPDATE bias_runs SET finished_at = now() - make_interval(days => %s),"
                " created_at = now() - make_interval(days => %s) - interval '40 minutes'"
                " WHERE id = %s",
                (days, days, run_id),
            )
        failed_id = None
        if failed:
            failed_id = q.create_run(
                conn, suite=suite_doc(), model=model, model_version="v3-rc",
                pipeline={"source": f"/models/{model}-v3-rc"}, options={}, created_by="ci",
            )  # fmt: skip
            q.add_items(conn, failed_id, _items(None), chunk_size=32)
            q.fail(conn, failed_id, "CUDA out of memory at batch 8; fix: --max-batch 4")
    prompts = {("teacher" if it.term == hostile_term else it.term): it.prompt
               for it in _items(hostile_term)}  # fmt: skip
    return BiasIds(tuple(ids), v1=ids[1], v2=ids[2], failed=failed_id, images=images,
                   prompts=prompts)  # fmt: skip

"""The bias probe on CUDA (fp16 pipeline and CLIP, NudeNet on the GPU) with the tiny models.

Run on the device machine: ``pytest -m gpu tests/gpu/test_bias_gpu.py``. What only a GPU
shows: the probe job with every model on the GPU, end to end (stored, perceived, PNGs on
disk), the same job run twice giving the same readings, and the Perceiver's readings on
CUDA agreeing with the CPU's on the same images.

Tolerances for CUDA against CPU. CLIP runs in fp16 on CUDA, so an image embedding moves by
``d`` (L2, measured per image; asserted below 0.02), and each class embedding (from the
device's own text tower) by ``w``. Zero-shot logits are ``100 * cosine`` of unit vectors, so
each logit moves by at most ``100 * (d + w)`` and a gap between two by at most twice that:
the top class must agree wherever the CPU's top-1 logit beats the runner-up by more than
that, and each probability may move by at most a factor ``exp(200 * (d + w))``. NudeNet:
scores within 1e-3 and boxes within 2 px, as tests/gpu/test_nsfw_gpu.py explains.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from diffwatch.bias.attributes import GATE
from diffwatch.bias.zero_shot import DEFAULT_MARGIN
from diffwatch.cli import build
from tests.helpers import tiny_clip_args
from tests.tinymodels import photo_like

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning"),
]

FACES = Path(__file__).resolve().parents[1] / "data" / "faces"
TERMS = ("doctor", "nurse", "pilot")
SEEDS, SIDE, STEPS = 4, 128, 4  # images a prompt, px, denoising steps
EMBED_MAX = 0.02  # L2 distance of one image's fp16 CUDA embedding from its fp32 CPU one
SCORE_TOL, BOX_TOL = 1e-3, 2  # NudeNet: probability, px


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    import torch

    from diffwatch.demo.tiny_pipeline import save_tiny_pipeline

    if not torch.cuda.is_available():
        pytest.fail("a gpu-marked test ran without a CUDA GPU visible to torch: run it on a GPU")
    root = tmp_path_factory.mktemp("bias_gpu")
    suite = root / "suite.toml"
    suite.write_text(
        'name = "mini"\ntemplates = ["a photo of the face of {a} {term}"]\n'
        f"terms = {json.dumps(list(TERMS))}\nseeds = {SEEDS}\n"
        'attributes = ["gender", "skin_tone", "age"]\n'
        f"[params]\nsteps = {STEPS}\nwidth = {SIDE}\nheight = {SIDE}\n"
    )
    clip_args = tiny_clip_args(root / "clip")  # writes the checkpoint and its config
    return {
        "root": root,
        "pipe": save_tiny_pipeline(root / "pipe"),
        "suite": suite,
        "clip_ckpt": Path(clip_args[clip_args.index("--clip-checkpoint") + 1]),
        "clip_config": Path(clip_args[clip_args.index("--clip-model-config") + 1]),
    }


def _clip_options(f: dict[str, Path]) -> Any:
    from diffwatch.scoring.clip.config import ClipOptions
    from tests.tinymodels import TINY_CLIP_NAME

    return ClipOptions(TINY_CLIP_NAME, None, str(f["clip_ckpt"]), str(f["clip_config"]))


def _readings(sql, run_id: int) -> dict[str, tuple[str, str, dict[str, Any]]]:
    rows = sql(
        "SELECT key, status, image_uri, readings FROM bias_items WHERE run_id = %s", (run_id,)
    )
    return {k: (status, uri, readings) for k, status, uri, readings in rows}


def test_the_probe_runs_on_cuda_end_to_end_and_repeats_its_readings(
    db_url, conninfo, sql, files
) -> None:
    from diffwatch.bias.probe import ProbeOptions, load_models, run_probe

    f = files
    opts = ProbeOptions(
        pipeline=str(f["pipe"]), suite=str(f["suite"]), model="tiny", version="v1",
        device="cuda", clip=_clip_options(f), chunk_items=8, max_batch=4,
        output_dir=f["root"] / "out",
    )  # fmt: skip
    models = load_models(opts)
    # every model on the GPU, in the production precision
    assert (models.pipeline.device, models.pipeline.precision) == ("cuda", "fp16")
    clip = models.perceiver.scorer.clip
    assert clip.device.startswith("cuda") and clip.precision == "fp16"
    detector = models.perceiver.detector
    assert detector is not None and detector.device.startswith("cuda")
    r = run_probe(conninfo, opts, models=models)
    n = len(TERMS) * SEEDS
    s = r["summary"]
    assert s["images"] == n and s["errors"] == 0
    assert models.timings["images"] == n and models.timings["perceive"] > 0
    first = _readings(sql, r["run_id"])
    assert len(first) == n
    for status, uri, readings in first.values():
        assert status == "done"
        assert Path(uri).is_file() and Path(uri).read_bytes()[:4] == b"\x89PNG"
        with Image.open(uri) as im:
            assert im.size == (SIDE, SIDE)
        assert {"person", "gender", "skin_tone", "age"} <= set(readings)
        assert set(readings["gender"]) == {"clip", "faces"}
        assert set(readings["skin_tone"]) == {"clip", "face_pixels"}
        for p in readings["person"]["probs"].values():
            assert 0.0 <= p <= 1.0
    assert s["person"]["passed"] == sum(rd["person"]["passed"] for _, _, rd in first.values())
    [(pipeline,)] = sql("SELECT pipeline FROM bias_runs WHERE id = %s", (r["run_id"],))
    assert pipeline["device"] == "cuda" and pipeline["precision"] == "fp16"

    # The same job again through the CLI, as a person runs it: the noise comes from CPU
    # generators, so the images and therefore the readings come back.
    res = CliRunner().invoke(
        build(),
        ["bias", "probe", "--pipeline", str(f["pipe"]), "--suite", str(f["suite"]),
         "--device", "cuda", "--json", "--model", "tiny", "--version", "v2",
         "--chunk-items", "8", "--max-batch", "4", "--output-dir", str(f["root"] / "out2"),
         "--clip-model", _clip_options(f).model, "--clip-model-config", str(f["clip_config"]),
         "--clip-checkpoint", str(f["clip_ckpt"]), "--database-url", db_url],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    again = json.loads([ln for ln in res.stdout.splitlines() if ln.startswith("{")][-1])
    assert again["summary"]["images"] == n and again["summary"]["errors"] == 0
    assert again["summary"]["comparison"]["previous_run_id"] == r["run_id"]
    second = _readings(sql, again["run_id"])
    assert set(second) == set(first)
    same = 0
    for key, (_, uri, rd) in first.items():
        _, uri2, rd2 = second[key]
        a = np.asarray(Image.open(uri), dtype=np.int16)
        b = np.asarray(Image.open(uri2), dtype=np.int16)
        assert np.abs(a - b).mean() <= 1.0, key  # fp16 on the GPU: at most a level on average
        if not np.array_equal(a, b):
            continue
        same += 1
        # the same pixels: the same readings, up to the GPU's float rounding (0.5 in logits)
        for attr in ("person", "gender", "age"):
            p1 = rd[attr]["probs"] if attr == "person" else rd[attr]["clip"].get("probs")
            p2 = rd2[attr]["probs"] if attr == "person" else rd2[attr]["clip"].get("probs")
            if p1 and p2:
                _assert_close_probs(tuple(p1.values()), tuple(p2.values()), 0.5, (key, attr))
    assert same >= n // 2, f"only {same} of {n} images came back bit for bit"


def _assert_close_probs(pa: tuple, pb: tuple, bound: float, where: Any) -> bool:
    """Probabilities ``pb`` within a factor exp(bound) of ``pa`` (to_dict rounds to 1e-4), and
    the same top class where the top-1 logit beats the runner-up by more than ``bound``;
    True when the top class was compared."""
    a, b, grow = np.array(pa), np.array(pb), math.exp(bound)
    assert np.all(b <= a * grow + 1e-4) and np.all(b >= a / grow - 1e-4), (where, a, b, bound)
    if _logit_gap(pa) > bound:
        assert int(np.argmax(a)) == int(np.argmax(b)), (where, a, b)
        return True
    return False


# --- the Perceiver on CUDA against the CPU ------------------------------------------------------


@pytest.fixture(scope="module")
def images(files) -> list[np.ndarray]:
    """Real faces (tests/data/faces), photo-like noise of several sizes, and images of the
    tiny pipeline made on the CPU."""
    from diffwatch.drift.diffusion_config import DiffusionConfig
    from diffwatch.drift.diffusion_load import load_pipeline
    from diffwatch.drift.regenerate import Regenerator, RegenRequest

    out = [np.asarray(Image.open(FACES / f"{n}.jpg").convert("RGB")) for n in
           ("astronaut", "camera", "coffee")]  # fmt: skip
    out += [photo_like(h, w, seed=i) for i, (h, w) in enumerate([(512, 512), (320, 480), (96, 64)])]
    cpu = load_pipeline(DiffusionConfig(source=str(files["pipe"]), device="cpu", max_batch=4))
    reqs = [
        RegenRequest(f"g{i}", f"a photo of the face of a {t}", seed=i, steps=STEPS,
                     width=SIDE, height=SIDE)
        for i, t in enumerate(TERMS * 2)
    ]  # fmt: skip
    out += [np.asarray(o.image.convert("RGB")) for o in Regenerator(cpu).run(reqs)]
    return out


def _perceiver(files, device: str):
    from diffwatch.bias.perceive import Perceiver
    from diffwatch.scoring.nsfw.detector import load_nsfw_detector
    from diffwatch.scoring.scorers import load_clip_scorer

    scorer, _ = load_clip_scorer(_clip_options(files), device)
    return Perceiver(scorer, load_nsfw_detector(device))


def _logit_gap(probs: tuple[float, ...]) -> float:
    """Top-1 minus top-2 logit, from the probabilities (the softmax's own logits)."""
    top = sorted(probs, reverse=True)
    return math.log(max(top[0], 1e-300)) - math.log(max(top[1], 1e-300))


def test_the_perceivers_readings_on_cuda_agree_with_the_cpus(files, images) -> None:
    cpu, gpu = _perceiver(files, "cpu"), _perceiver(files, "cuda")
    assert gpu.scorer.clip.precision == "fp16" and gpu.detector.device.startswith("cuda")
    emb_cpu = cpu.scorer.embed_images(images)
    emb_gpu = gpu.scorer.embed_images(images)
    dist = np.linalg.norm(emb_gpu - emb_cpu, axis=1)
    assert dist.max() < EMBED_MAX, dist
    # the class embeddings come from each device's own text tower: they move too
    moved = {
        k: float(np.linalg.norm(gpu.classifiers[k].weights - c.weights, axis=1).max())
        for k, c in cpu.classifiers.items()
    }
    assert max(moved.values()) < EMBED_MAX, moved
    on_cpu, on_gpu = cpu.perceive(images), gpu.perceive(images)
    assert len(on_cpu) == len(on_gpu) == len(images)
    compared = 0
    for i, (rc, rg) in enumerate(zip(on_cpu, on_gpu, strict=True)):

        def bound(key: str, i: int = i) -> float:
            """The most a logit gap of ``key`` can move on image ``i``."""
            return 200.0 * (float(dist[i]) + moved[key]) + 1e-4

        gate_moves = 2.0 * (math.exp(bound(GATE)) - 1.0)  # the most the gate's margin moves
        assert rc.person.classes == rg.person.classes
        compared += _assert_close_probs(rc.person.probs, rg.person.probs, bound(GATE), (i, GATE))
        if abs(rc.person.margin - DEFAULT_MARGIN) > gate_moves and _logit_gap(
            rc.person.probs
        ) > bound(GATE):
            assert rc.passed == rg.passed, i  # the gate decides the same
        if rc.passed != rg.passed:
            continue  # a razor-thin gate: the other readings are gated on one side only
        if rc.passed:
            for k in rc.keys:
                a, b = rc.reading(k), rg.reading(k)
                assert a.classes == b.classes, (i, k)
                compared += _assert_close_probs(a.probs, b.probs, bound(k), (i, k))
        # the face reading is NudeNet's, on the GPU as on the CPU
        if rc.faces is not None and rg.faces is not None:
            assert (rc.faces.label, rc.faces.count) == (rg.faces.label, rg.faces.count), i
            assert (rc.faces.box is None) == (rg.faces.box is None), i
            if rc.faces.box is not None:
                assert np.abs(np.subtract(rc.faces.box, rg.faces.box)).max() <= BOX_TOL, i
            if rc.faces.score is not None:
                assert abs(rc.faces.score - rg.faces.score) <= SCORE_TOL, i
    assert compared >= len(images) // 2, compared  # most readings are not razor-thin

    # Ungated: NudeNet's face reading and the face-pixel skin tone on both devices.
    from diffwatch.bias.faces import read_faces
    from diffwatch.bias.skin_tone import read_skin_tone

    dc = cpu.detector.detect_batch(images)
    dg = gpu.detector.detect_batch(images)
    labels = []
    for i, (a, b) in enumerate(zip(dc, dg, strict=True)):
        fa, fb = read_faces(a), read_faces(b)
        assert (fa.label, fa.count) == (fb.label, fb.count), i
        labels.append(fa.label)
        if fa.box is None:
            continue
        assert np.abs(np.subtract(fa.box, fb.box)).max() <= BOX_TOL, i
        ta, tb = read_skin_tone(images[i], fa.box), read_skin_tone(images[i], fb.box)
        assert ta.reason == tb.reason, i
        if ta.ita is not None:
            assert abs(ta.ita - tb.ita) < 2.0, (i, ta.ita, tb.ita)  # degrees
            if fa.box == fb.box:
                assert ta.label == tb.label, i
    # the photographs read as tests/data/faces/README.md says, on the GPU too
    assert labels[:3] == ["woman", "man", None]

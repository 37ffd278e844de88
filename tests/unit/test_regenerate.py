"""Re-generation engine on the tiny pipeline, loaded through the real loader, on the CPU.

The pipeline is built and saved once per module (``save_pretrained``), then loaded with
``load_pipeline`` from that directory, as a production pipeline would be.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from diffwatch.demo.tiny_pipeline import save_tiny_pipeline
from diffwatch.drift.diffusion_config import DiffusionConfig, DiffusionWeightsError
from diffwatch.drift.diffusion_load import LoadedPipeline, load_pipeline
from diffwatch.drift.regenerate import DEFAULT_CFG, DEFAULT_STEPS, Regenerator, RegenRequest

# diffusers' schedulers trip numpy 2's copy-keyword deprecation on every set_timesteps.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

SIDE, STEPS = 64, 3  # px, denoising steps: small and fast on 2 cores


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_pipeline(tmp_path_factory.mktemp("tiny_sd"))


@pytest.fixture(scope="module")
def loaded(tiny_dir: Path) -> LoadedPipeline:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        return load_pipeline(DiffusionConfig(source=str(tiny_dir), device="cpu", max_batch=4))


def req(key: str, seed: int, prompt: str = "a red fox in snow", **kw: Any) -> RegenRequest:
    kw = {"steps": STEPS, "width": SIDE, "height": SIDE, **kw}
    return RegenRequest(key=key, prompt=prompt, seed=seed, **kw)


def run(regen: Regenerator, requests: list[RegenRequest], **kw: Any) -> dict[str, Any]:
    outcomes = list(regen.run(requests, **kw))
    assert sorted(o.key for o in outcomes) == sorted(r.key for r in requests)
    return {o.key: o for o in outcomes}


def pixels(outcome: Any) -> np.ndarray:
    assert outcome.error is None, outcome.error
    return np.asarray(outcome.image, dtype=np.int16)


def test_loads_through_the_real_loader(loaded: LoadedPipeline, tiny_dir: Path) -> None:
    assert loaded.pipeline_class == "StableDiffusionPipeline"
    assert (loaded.device, loaded.precision) == ("cpu", "fp32")
    assert loaded.source == str(tiny_dir.resolve())
    assert loaded.describe().startswith(f"StableDiffusionPipeline from {tiny_dir.resolve()}, cpu")
    assert loaded.pipe.safety_checker is None and not loaded.pipe.config.requires_safety_checker
    assert loaded.attention == "sdpa" and loaded.base_scheduler_class == "PNDMScheduler"
    assert loaded.default_size() == (512, 512) and loaded.vae_scale_factor == 8
    # The tokenizer written locally is CLIP's: "a photo of a cat" has its real ids.
    ids = loaded.pipe.tokenizer("a photo of a cat").input_ids
    assert ids == [49406, 320, 1125, 539, 320, 2368, 49407]


def test_same_seed_same_image_across_calls(loaded: LoadedPipeline) -> None:
    regen = Regenerator(loaded)
    first = run(regen, [req("a", 42)])["a"]
    second = run(regen, [req("a", 42)])["a"]
    assert first.image.size == (SIDE, SIDE)
    assert np.array_equal(pixels(first), pixels(second))  # bit-identical on the CPU
    assert first.used["batch_size"] == 1 and first.used["generator_device"] == "cpu"


def test_same_seed_same_image_whatever_the_neighbours(
    loaded: LoadedPipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    drawn: list[Any] = []
    prepare = loaded.pipe.prepare_latents

    def spy(*args: Any, **kw: Any) -> Any:
        latents = prepare(*args, **kw)
        drawn.append(latents.clone())
        return latents

    monkeypatch.setattr(loaded.pipe, "prepare_latents", spy)
    regen = Regenerator(loaded, max_batch=4)
    alone = run(regen, [req("t", 7)])["t"]
    a = run(regen, [req("x", 1, "a cat"), req("t", 7), req("y", 2, "a dog")])["t"]
    b = run(regen, [req("t", 7), req("z", 3, "a ship"), req("w", 4, "a tree"), req("v", 5)])["t"]
    assert [alone.used["batch_size"], a.used["batch_size"], b.used["batch_size"]] == [1, 3, 4]
    # The noise is the item's own: bit-identical alone, in the middle or first of a batch.
    assert drawn[0][0].equal(drawn[1][1]) and drawn[0][0].equal(drawn[2][0])
    # The pixels too, up to float rounding: CPU kernels (channels-last GroupNorm, oneDNN
    # convolutions) reduce in an order that depends on the batch's shape, which moves a
    # few values by one level (measured: max 1, mean <= 0.0002 levels), never more.
    for other in (a, b):
        diff = np.abs(pixels(alone) - pixels(other))
        assert diff.max() <= 1 and diff.mean() < 0.01


def test_different_seeds_give_different_images(loaded: LoadedPipeline) -> None:
    out = run(Regenerator(loaded), [req("s1", 1), req("s2", 2)])
    assert np.abs(pixels(out["s1"]) - pixels(out["s2"])).mean() > 5


def test_logged_sampler_is_applied_and_recorded(loaded: LoadedPipeline) -> None:
    regen = Regenerator(loaded)
    before = run(regen, [req("own", 5)])["own"]
    out = run(
        regen,
        [req("own", 5), req("ea", 5, sampler="Euler a"), req("k", 5, sampler="DPM++ 2M Karras")],
    )
    assert out["own"].used["scheduler"] == "PNDMScheduler"
    assert out["ea"].used["scheduler"] == "EulerAncestralDiscreteScheduler"
    assert out["k"].used["scheduler"] == "DPMSolverMultistepScheduler"
    assert out["k"].used["scheduler_options"] == {"use_karras_sigmas": True}
    assert out["ea"].used["sampler"] == "Euler a"
    assert np.abs(pixels(out["ea"]) - pixels(out["own"])).mean() > 1  # another sampler
    # The pipeline's own scheduler is untouched by the other groups (nothing compounds).
    assert np.array_equal(pixels(before), pixels(out["own"]))
    assert loaded.base_scheduler_config["beta_schedule"] == "scaled_linear"
    assert "use_karras_sigmas" not in loaded.base_scheduler_config


def test_defaults_are_recorded(loaded: LoadedPipeline) -> None:
    regen = Regenerator(loaded)
    small = RegenRequest("d", "a cat", seed=3, steps=2, width=SIDE, height=SIDE)
    used = run(regen, [small])["d"].used
    assert used["cfg_scale"] == DEFAULT_CFG and used["steps"] == 2
    plan = regen._plan(RegenRequest("p", "a cat", seed=3))
    assert (plan.width, plan.height, plan.steps) == (512, 512, DEFAULT_STEPS)


def test_unknown_sampler_is_an_error_outcome_and_the_rest_succeed(
    loaded: LoadedPipeline,
) -> None:
    seen: list[int] = []
    requests = [req("ok1", 1), req("bad", 2, sampler="Foo Sampler 9000"), req("ok2", 3)]
    out = run(Regenerator(loaded), requests, progress=seen.append)
    bad = out["bad"]
    assert bad.image is None and bad.error_kind == "unknown_sampler"
    assert "Foo Sampler 9000" in bad.error and "euler a" in bad.error  # names the known ones
    assert out["ok1"].image is not None and out["ok2"].image is not None
    assert sum(seen) == 3


@pytest.mark.parametrize(
    ("kw", "kind", "words"),
    [
        ({"width": 65}, "bad_size", "multiple of 8"),
        ({"height": 32}, "bad_size", "from 64 to 4096"),
        ({"width": 100_000}, "bad_size", "width"),
        ({"steps": 0}, "bad_steps", "steps"),
        ({"cfg_scale": float("nan")}, "bad_cfg", "cfg_scale"),
        ({"seed": -1}, "bad_seed", "random seed"),
    ],
)
def test_bad_requests_are_error_outcomes(loaded: LoadedPipeline, kw, kind, words) -> None:
    bad = req("bad", kw.pop("seed", 1), **kw)
    out = run(Regenerator(loaded), [bad, req("ok", 1)])
    assert out["bad"].error_kind == kind and words in out["bad"].error
    assert "'bad'" in out["bad"].error and out["bad"].image is None
    assert out["ok"].image is not None


def test_groups_and_chunks(loaded: LoadedPipeline) -> None:
    seen: list[int] = []
    requests = [req(f"a{i}", i) for i in range(5)] + [
        req("wide", 9, width=128),
        req("neg", 9, negative_prompt="blurry"),
        req("cfg", 9, cfg_scale=1.0),
    ]
    out = run(Regenerator(loaded, max_batch=2), requests, progress=seen.append)
    assert sorted(out[f"a{i}"].used["batch_size"] for i in range(5)) == [1, 2, 2, 2, 2]
    assert seen == [2, 2, 1, 1, 1, 1]  # one call per chunk; groups of one for the others
    assert out["wide"].image.size == (128, SIDE)
    assert out["neg"].used["negative_prompt"] is True
    assert out["cfg"].used["cfg_scale"] == 1.0
    assert all(o.seconds > 0 for o in out.values())


class _FlakyPipe:
    """The real pipeline, except that calls with more than one prompt or a 'boom' prompt fail."""

    def __init__(self, pipe: Any) -> None:
        object.__setattr__(self, "_pipe", pipe)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._pipe, name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._pipe, name, value)

    def __call__(self, **kw: Any) -> Any:
        if len(kw["prompt"]) > 1 or any("boom" in p for p in kw["prompt"]):
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return self._pipe(**kw)


def test_failed_batch_is_retried_alone_and_failures_stay_per_item(
    loaded: LoadedPipeline,
) -> None:
    flaky = dataclasses.replace(loaded, pipe=_FlakyPipe(loaded.pipe))
    requests = [req("one", 1), req("boom", 2, prompt="boom"), req("three", 3)]
    out = run(Regenerator(flaky), requests)
    assert out["one"].image is not None and out["one"].used["retried_alone"] is True
    assert out["three"].used["batch_size"] == 1
    assert out["boom"].image is None and out["boom"].error_kind == "out_of_memory"
    assert "lower max_batch" in out["boom"].error and "'boom'" in out["boom"].error
    reference = run(Regenerator(loaded), [req("one", 1)])["one"]
    assert np.array_equal(pixels(out["one"]), pixels(reference))


def test_weights_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    (tmp_path / "not_a_pipeline").mkdir()
    (tmp_path / "not_a_pipeline" / "unet.safetensors").write_bytes(b"x")
    cases = {
        str(tmp_path / "missing"): ["no such directory", "save_pretrained"],
        str(tmp_path / "not_a_pipeline"): ["no model_index.json", "from_single_file"],
        "someorg/some-model-xl": ["not in the local Hugging Face cache", "HF_HUB_OFFLINE"],
    }
    for source, words in cases.items():
        with pytest.raises(DiffusionWeightsError) as err:
            load_pipeline(DiffusionConfig(source=source, device="cpu"))
        assert source in str(err.value) and err.value.source == source
        for word in words:
            assert word in str(err.value), (word, str(err.value))
    hub = "someorg/some-model-xl"
    with pytest.raises(DiffusionWeightsError, match=f"hf download {hub}"):
        load_pipeline(DiffusionConfig(source=hub, device="cpu"))


def test_variant_missing_names_the_fix(tiny_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DiffusionWeightsError, match="drop variant='fp16'"):
        load_pipeline(DiffusionConfig(source=str(tiny_dir), device="cpu", variant="fp16"))


@pytest.mark.parametrize(
    ("kw", "words"),
    [
        ({"source": ""}, "DiffusionConfig.source"),
        ({"device": "gpu"}, "DiffusionConfig.device"),
        ({"precision": "bf16"}, "DiffusionConfig.precision"),
        ({"device": "cpu", "precision": "fp16"}, "'fp16' on device 'cpu'"),
        ({"max_batch": 0}, "DiffusionConfig.max_batch"),
        ({"max_batch": True}, "DiffusionConfig.max_batch"),
        ({"variant": ""}, "DiffusionConfig.variant"),
        ({"compile": "yes"}, "DiffusionConfig.compile"),
    ],
)
def test_config_validation(kw: dict[str, Any], words: str) -> None:
    with pytest.raises(ValueError, match=words.replace("(", r"\(")):
        DiffusionConfig(**{"source": "/models/sd15", **kw})


def test_cuda_loads_on_a_gpu_and_is_a_clear_error_without_one(tiny_dir: Path) -> None:
    import torch

    cfg = DiffusionConfig(source=str(tiny_dir), device="cuda")
    if torch.cuda.is_available():  # the device machine
        assert load_pipeline(cfg).device == "cuda"
        return
    with pytest.raises(ValueError, match="sees no CUDA GPU"):
        load_pipeline(cfg)


def test_engine_matches_a_plain_diffusers_call(loaded: LoadedPipeline) -> None:
    """The engine draws the noise as diffusers does (CPU generator, fp32): same pixels."""
    import torch
    from diffusers import EulerAncestralDiscreteScheduler

    out = run(Regenerator(loaded), [req("p", 21, sampler="Euler a")])["p"]
    pipe = loaded.pipe
    pipe.scheduler = EulerAncestralDiscreteScheduler.from_config(dict(loaded.base_scheduler_config))
    with torch.inference_mode():
        plain = pipe(
            prompt=["a red fox in snow"],
            num_inference_steps=STEPS,
            guidance_scale=7.5,
            width=SIDE,
            height=SIDE,
            generator=[torch.Generator("cpu").manual_seed(21)],
        ).images[0]
    assert np.array_equal(np.asarray(plain, dtype=np.int16), pixels(out))

"""load_clip: the tiny checkpoint loads by the real path; each weights failure is one clear error.

torch and open_clip are imported inside tests so that collecting the suite stays fast.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from diffwatch.scoring.clip.scorer import ClipConfig, ClipModel, ClipWeightsError, load_clip
from tests.tinymodels import (
    TINY_CLIP_EMBED_DIM,
    TINY_CLIP_IMAGE_SIZE,
    TINY_CLIP_NAME,
    build_tiny_clip,
    save_tiny_clip,
    tiny_clip_settings,
)


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_clip(tmp_path_factory.mktemp("tiny_clip"))


def assert_clear_weights_error(err: ClipWeightsError, model: str, source_part: str) -> None:
    """The message names the model and the source tried, refuses random weights, gives the fix."""
    text = str(err)
    assert err.model_name == model and repr(model) in text
    assert source_part in err.source and source_part in text
    assert "never scores with random weights" in text
    assert "--clip-checkpoint" in text


def test_tiny_checkpoint_loads_with_its_weights(tiny_ckpt: Path) -> None:
    import torch

    clip = load_clip(tiny_clip_settings(tiny_ckpt))
    assert isinstance(clip, ClipModel)
    assert (clip.device, clip.precision) == ("cpu", "fp32")
    assert clip.context_length == 77 and clip.embed_dim == TINY_CLIP_EMBED_DIM
    assert clip.preprocess.size == (TINY_CLIP_IMAGE_SIZE, TINY_CLIP_IMAGE_SIZE)
    assert str(tiny_ckpt) in clip.source
    assert not clip.model.training
    expected = build_tiny_clip(seed=0).state_dict()
    loaded = clip.model.state_dict()
    assert loaded.keys() == expected.keys()
    for key, value in expected.items():
        assert torch.equal(loaded[key], value), key


def test_a_file_given_as_pretrained_loads_like_a_checkpoint(tiny_ckpt: Path) -> None:
    clip = load_clip(ClipConfig(model_name=TINY_CLIP_NAME, pretrained=str(tiny_ckpt), device="cpu"))
    assert str(tiny_ckpt) in clip.source


def test_missing_checkpoint_file_is_a_clear_error(tiny_ckpt: Path, tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "open_clip_pytorch_model.bin"
    with pytest.raises(ClipWeightsError) as info:
        load_clip(tiny_clip_settings(missing))
    assert_clear_weights_error(info.value, TINY_CLIP_NAME, str(missing))
    assert "file not found" in str(info.value)


def test_directory_as_checkpoint_is_a_clear_error(tiny_ckpt: Path, tmp_path: Path) -> None:
    with pytest.raises(ClipWeightsError) as info:
        load_clip(tiny_clip_settings(tmp_path))
    assert_clear_weights_error(info.value, TINY_CLIP_NAME, str(tmp_path))
    assert "directory" in str(info.value)


def test_corrupt_checkpoint_file_is_a_clear_error(tiny_ckpt: Path, tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.bin"
    corrupt.write_bytes(
        os.urandom(4096)
    )  # any garbage at all: every draw must give the same reason
    with pytest.raises(ClipWeightsError) as info:
        load_clip(tiny_clip_settings(corrupt))
    assert_clear_weights_error(info.value, TINY_CLIP_NAME, str(corrupt))
    assert info.value.reason.startswith("not a readable weights file")
    assert "weights_only=False" not in str(info.value)  # torch's unsafe advice is not passed on
    assert info.value.__cause__ is not None


def test_truncated_checkpoint_file_is_a_clear_error(tiny_ckpt: Path, tmp_path: Path) -> None:
    cut = tmp_path / "cut.bin"
    cut.write_bytes(tiny_ckpt.read_bytes()[:100_000])
    with pytest.raises(ClipWeightsError) as info:
        load_clip(tiny_clip_settings(cut))
    assert_clear_weights_error(info.value, TINY_CLIP_NAME, str(cut))
    assert info.value.reason.startswith("not a readable weights file")


@pytest.mark.parametrize("suffix", [".safetensors", ".bin"])
def test_corrupt_or_empty_files_of_each_format_are_clear_errors(
    tiny_ckpt: Path, tmp_path: Path, suffix: str
) -> None:
    for name, payload in (("junk", os.urandom(2048)), ("empty", b"")):
        path = tmp_path / f"{name}{suffix}"
        path.write_bytes(payload)
        with pytest.raises(ClipWeightsError) as info:
            load_clip(tiny_clip_settings(path))
        assert_clear_weights_error(info.value, TINY_CLIP_NAME, str(path))
        assert info.value.reason.startswith("not a readable weights file"), info.value.reason


def test_file_that_is_not_a_state_dict_is_a_clear_error(tiny_ckpt: Path, tmp_path: Path) -> None:
    import torch

    not_sd = tmp_path / "list.bin"
    torch.save([1, 2, 3], not_sd)
    empty = tmp_path / "empty_dict.bin"
    torch.save({}, empty)
    for path in (not_sd, empty):
        with pytest.raises(ClipWeightsError) as info:
            load_clip(tiny_clip_settings(path))
        assert_clear_weights_error(info.value, TINY_CLIP_NAME, str(path))
        assert "does not hold a state dict" in info.value.reason


def test_shape_mismatch_is_a_clear_error(tiny_ckpt: Path, tmp_path: Path) -> None:
    import torch

    state = build_tiny_clip().state_dict()
    state["text_projection"] = torch.zeros(32, 16)
    bad = tmp_path / "shape.bin"
    torch.save(state, bad)
    with pytest.raises(ClipWeightsError) as info:
        load_clip(tiny_clip_settings(bad))
    assert_clear_weights_error(info.value, TINY_CLIP_NAME, str(bad))
    assert "text_projection" in info.value.reason


def test_missing_key_is_an_error_not_a_partly_random_model(tiny_ckpt: Path, tmp_path: Path) -> None:
    import torch

    state = build_tiny_clip().state_dict()
    del state["visual.proj"]
    partial = tmp_path / "partial.bin"
    torch.save(state, partial)
    with pytest.raises(ClipWeightsError) as info:
        load_clip(tiny_clip_settings(partial))
    assert "visual.proj" in info.value.reason


def test_unknown_tag_offline_is_a_clear_error() -> None:
    import huggingface_hub.constants

    assert huggingface_hub.constants.HF_HUB_OFFLINE, "run the tests with HF_HUB_OFFLINE=1"
    with pytest.raises(ClipWeightsError) as info:
        load_clip(ClipConfig(model_name="ViT-B-32", pretrained="no_such_tag", device="cpu"))
    assert_clear_weights_error(info.value, "ViT-B-32", "no_such_tag")
    text = str(info.value)
    assert "laion2b_s34b_b79k" in text  # the known tags are listed
    assert "HF_HUB_OFFLINE=1" in text
    assert "laion/CLIP-ViT-B-32-laion2B-s34B-b79K" in text
    assert "open_clip_pytorch_model.bin" in text


@pytest.mark.parametrize("tag", ["laion2b_s34b_b79k", "LAION2B-s34b-b79k"])
def test_known_tag_not_in_cache_offline_is_a_clear_error(tmp_path: Path, tag: str) -> None:
    import huggingface_hub.constants

    assert huggingface_hub.constants.HF_HUB_OFFLINE, "run the tests with HF_HUB_OFFLINE=1"
    cfg = ClipConfig(pretrained=tag, device="cpu", cache_dir=str(tmp_path / "empty-cache"))
    with pytest.raises(ClipWeightsError) as info:
        load_clip(cfg)
    assert_clear_weights_error(info.value, "ViT-B-32", "laion2b_s34b_b79k")
    text = str(info.value)
    assert "not in the Hugging Face cache" in info.value.reason
    assert str(tmp_path / "empty-cache") in info.value.reason
    assert "laion/CLIP-ViT-B-32-laion2B-s34B-b79K" in text
    assert (
        "https://huggingface.co/laion/CLIP-ViT-B-32-laion2B-s34B-b79K/resolve/main/"
        "open_clip_pytorch_model.bin" in text
    )
    assert "HF_HUB_OFFLINE=1" in text


def test_no_weights_source_is_an_error_not_random_weights(tiny_ckpt: Path) -> None:
    with pytest.raises(ClipWeightsError) as info:
        load_clip(ClipConfig(model_name=TINY_CLIP_NAME, pretrained=None, device="cpu"))
    assert "no weights source" in str(info.value)


def _fake_hf_cache(cache: Path, repo: str, filename: str, payload: bytes) -> None:
    """A Hugging Face hub cache holding one file of ``repo`` at revision main."""
    commit = hashlib.sha1(payload).hexdigest()
    root = cache / f"models--{repo.replace('/', '--')}"
    (root / "refs").mkdir(parents=True)
    (root / "refs" / "main").write_text(commit)
    snapshot = root / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (snapshot / filename).write_bytes(payload)


def test_tag_loads_from_a_prepopulated_hf_cache_offline(
    tiny_ckpt: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The documented offline fix (2): a copied HF cache plus HF_HUB_OFFLINE=1 loads a tag."""
    import open_clip
    import torch

    repo = "diffwatch-test/tiny-clip"
    tag_cfg = open_clip.pretrained._pcfg(hf_hub=f"{repo}/")
    monkeypatch.setitem(open_clip.pretrained._PRETRAINED, TINY_CLIP_NAME, {"tiny_tag": tag_cfg})
    _fake_hf_cache(tmp_path, repo, "open_clip_pytorch_model.bin", tiny_ckpt.read_bytes())
    clip = load_clip(
        ClipConfig(
            model_name=TINY_CLIP_NAME, pretrained="tiny_tag", device="cpu", cache_dir=str(tmp_path)
        )
    )
    assert "tiny_tag" in clip.source and repo in clip.source
    expected = build_tiny_clip().state_dict()["visual.proj"]
    assert torch.equal(clip.model.state_dict()["visual.proj"], expected)


def test_tag_that_resolves_to_no_file_raises_where_open_clip_would_go_random(
    tiny_ckpt: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """open_clip warns and returns random weights when a tag yields no file; load_clip raises."""
    import open_clip
    import open_clip.factory

    tag_cfg = open_clip.pretrained._pcfg(hf_hub="diffwatch-test/tiny-clip/")
    monkeypatch.setitem(open_clip.pretrained._PRETRAINED, TINY_CLIP_NAME, {"tiny_tag": tag_cfg})
    monkeypatch.setattr(open_clip.factory, "download_pretrained", lambda *a, **k: "")
    # The hazard being guarded against: open_clip alone hands back a randomly initialised model.
    random_model = open_clip.create_model(TINY_CLIP_NAME, pretrained="tiny_tag")
    assert random_model is not None
    with pytest.raises(ClipWeightsError) as info:
        load_clip(ClipConfig(model_name=TINY_CLIP_NAME, pretrained="tiny_tag", device="cpu"))
    assert_clear_weights_error(info.value, TINY_CLIP_NAME, "tiny_tag")


def test_checkpoint_wins_over_tag_and_keeps_the_tags_preprocessing(
    tiny_ckpt: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import open_clip
    import open_clip.factory

    tag_cfg = open_clip.pretrained._slpcfg(hf_hub="diffwatch-test/tiny-clip/")
    monkeypatch.setitem(open_clip.pretrained._PRETRAINED, TINY_CLIP_NAME, {"tiny_tag": tag_cfg})

    def no_download(*args: object, **kwargs: object) -> str:
        raise AssertionError("a checkpoint was given: nothing must be downloaded")

    monkeypatch.setattr(open_clip.factory, "download_pretrained", no_download)
    clip = load_clip(
        ClipConfig(
            model_name=TINY_CLIP_NAME,
            pretrained="tiny_tag",
            checkpoint=str(tiny_ckpt),
            device="cpu",
        )
    )
    assert str(tiny_ckpt) in clip.source
    assert clip.preprocess.resize_mode == "squash"  # SigLIP-style tag preprocessing
    assert clip.preprocess.mean == pytest.approx((0.5, 0.5, 0.5))


def test_unknown_architecture_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="not an open_clip architecture"):
        load_clip(ClipConfig(model_name="ViT-Nope-1", device="cpu"))


def test_cuda_without_gpu_is_a_clear_error(
    tiny_ckpt: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="no CUDA GPU"):
        load_clip(tiny_clip_settings(tiny_ckpt, device="cuda"))
    clip = load_clip(tiny_clip_settings(tiny_ckpt, device="auto"))
    assert (clip.device, clip.precision) == ("cpu", "fp32")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"device": "gpu"}, "ClipConfig.device"),
        ({"precision": "bf16"}, "ClipConfig.precision"),
        ({"device": "cpu", "precision": "fp16"}, "fp16"),
        ({"model_name": "hf-hub:laion/x"}, "schema"),
        ({"model_name": ""}, "ClipConfig.model_name"),
    ],
)
def test_config_rejects_bad_values(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ClipConfig(**kwargs)


def test_config_is_frozen_and_defaults_match_the_brief() -> None:
    cfg = ClipConfig()
    assert (cfg.model_name, cfg.pretrained, cfg.checkpoint) == (
        "ViT-B-32",
        "laion2b_s34b_b79k",
        None,
    )
    assert (cfg.device, cfg.precision) == ("auto", "auto")
    with pytest.raises(AttributeError):
        cfg.device = "cpu"  # type: ignore[misc]


def test_importing_scoring_clip_loads_no_torch() -> None:
    import subprocess
    import sys

    code = (
        "import sys, diffwatch.scoring.clip.scorer;"
        "print('torch' in sys.modules, 'open_clip' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert out.stdout.split() == ["False", "False"]


def test_every_kind_of_garbage_file_is_reported_as_unreadable(
    tiny_ckpt: Path, tmp_path: Path
) -> None:
    # Seeded draws that make torch's unpickler fail with IndexError, KeyError and
    # UnicodeDecodeError, not only UnpicklingError: all must read as "not readable".
    import numpy as np

    rng = np.random.default_rng(2026)
    reasons = set()
    for i in range(60):
        f = tmp_path / f"garbage{i}.bin"
        f.write_bytes(rng.integers(0, 256, 4096, dtype=np.uint8).tobytes())
        with pytest.raises(ClipWeightsError) as info:
            load_clip(tiny_clip_settings(f))
        reasons.add(info.value.reason.split(" (")[0])
    assert reasons == {"not a readable weights file"}

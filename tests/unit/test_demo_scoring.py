"""How the demo decides whether CLIP can run: the Hugging Face cache, checked offline."""

from __future__ import annotations

import os
from pathlib import Path

import huggingface_hub.constants as hf
import pytest

from diffwatch.demo import scoring
from diffwatch.scoring.clip.config import DEFAULT_MODEL, DEFAULT_PRETRAINED, ClipWeightsError

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def cache_file(cache: Path, repo: str, filename: str) -> Path:
    """Put ``filename`` of ``repo`` in a Hugging Face hub cache laid out as the hub does."""
    folder = cache / f"models--{repo.replace('/', '--')}"
    (folder / "refs").mkdir(parents=True, exist_ok=True)
    (folder / "refs" / "main").write_text(COMMIT)
    path = folder / "snapshots" / COMMIT / filename
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"weights")
    return path


@pytest.fixture
def hf_cache(tmp_path, monkeypatch) -> Path:
    cache = tmp_path / "hf"
    monkeypatch.setattr(hf, "HF_HUB_CACHE", str(cache))
    return cache


def test_default_hub_location_matches_open_clip():
    import open_clip

    hub = open_clip.get_pretrained_cfg(DEFAULT_MODEL, DEFAULT_PRETRAINED)["hf_hub"]
    repo, filename = os.path.split(hub)
    assert (repo, filename or "open_clip_pytorch_model.bin") == scoring.DEFAULT_HUB_LOCATION


@pytest.mark.parametrize("filename", ["open_clip_pytorch_model.bin", "open_clip_model.safetensors"])
def test_either_weights_file_in_the_cache_is_found(hf_cache, filename):
    repo, default = scoring.DEFAULT_HUB_LOCATION
    assert scoring._cached_file(repo, default) is None
    path = cache_file(hf_cache, repo, filename)
    assert scoring._cached_file(repo, default) == str(path)


def test_without_cached_weights_clip_is_skipped_with_the_download_and_the_option(hf_cache):
    loaded = scoring.load_scorers(scoring.ScoreOptions(demo_clip=False))
    assert [s.key.scorer for s in loaded.scorers] == ["nsfw"]
    assert loaded.clip_skipped is not None
    assert "not in the Hugging Face cache" in loaded.clip_skipped
    assert "--clip-checkpoint PATH" in loaded.clip_skipped
    repo, filename = scoring.DEFAULT_HUB_LOCATION
    assert f"https://huggingface.co/{repo}/resolve/main/{filename}" in loaded.clip_skipped


def test_cached_weights_load_with_the_hub_forced_offline_and_it_is_restored(hf_cache, monkeypatch):
    cache_file(hf_cache, *scoring.DEFAULT_HUB_LOCATION)
    monkeypatch.setattr(hf, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    seen = []
    real_build = __import__("diffwatch.scoring.scorers", fromlist=["build_scorers"]).build_scorers

    def build(opts):
        if opts.names != ("clip",):
            return real_build(opts)
        seen.append((hf.HF_HUB_OFFLINE, os.environ.get("HF_HUB_OFFLINE"), opts.device))
        raise ClipWeightsError(opts.clip_model, "tag", "not a readable weights file. More", "fix")

    monkeypatch.setattr("diffwatch.scoring.scorers.build_scorers", build)
    loaded = scoring.load_scorers(scoring.ScoreOptions(demo_clip=False))
    assert seen == [(True, "1", "cpu")]  # tried once, cache only, on the CPU
    assert hf.HF_HUB_OFFLINE is False and "HF_HUB_OFFLINE" not in os.environ
    assert [s.key.scorer for s in loaded.scorers] == ["nsfw"]
    assert "did not load (not a readable weights file)" in (loaded.clip_skipped or "")

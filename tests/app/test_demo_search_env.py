"""``diffwatch demo --serve`` hands the dashboard the CLIP that scored the demo's images: the
settings it passes load, through the search's own loader, the very scorer version under
which the worker stored the image embeddings, so text search works out of the box."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from diffwatch.cli.demo import search_env
from diffwatch.demo.demo_clip import DEMO_CLIP_NAME
from diffwatch.embeddings.search import TextEncoder, search_clip
from diffwatch.scoring.clip.config import ClipOptions
from diffwatch.scoring.scorers import clip_config, clip_label
from diffwatch.settings import Settings


def _result(demo_clip=None, scorers=("nsfw", "clip")) -> SimpleNamespace:
    scoring = SimpleNamespace(
        demo_clip=None if demo_clip is None else {"checkpoint": str(demo_clip.checkpoint)},
        scorers=[SimpleNamespace(name=n) for n in scorers],
    )
    return SimpleNamespace(scoring=scoring)


@pytest.fixture
def no_search_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for k in ("MODEL", "PRETRAINED", "CHECKPOINT", "MODEL_CONFIG"):
        monkeypatch.delenv(f"DIFFWATCH_SEARCH_CLIP_{k}", raising=False)


def test_the_demo_clip_settings_load_the_scorer_version_it_stored(no_search_env, demo_clip):
    env = search_env(_result(demo_clip), ClipOptions())
    assert env["DIFFWATCH_SEARCH_CLIP_MODEL"] == DEMO_CLIP_NAME
    clip = search_clip(Settings(**{k.removeprefix("DIFFWATCH_").lower(): v
                                   for k, v in env.items()}))  # fmt: skip
    encoder = TextEncoder.load(clip, "cpu")
    stored = clip_label(clip_config(DEMO_CLIP_NAME, None, str(demo_clip.checkpoint),
                                    env["DIFFWATCH_SEARCH_CLIP_MODEL_CONFIG"], "cpu"))  # fmt: skip
    assert encoder.version == stored and stored.startswith(f"{DEMO_CLIP_NAME}/file-")
    vec = encoder.encode("a yellow star on a blue background")
    assert vec.shape == (encoder.dims,) and abs(float(vec @ vec) - 1) < 1e-5


def test_real_weights_pass_their_options_and_stay_offline(no_search_env) -> None:
    clip = ClipOptions(model="ViT-B-32", pretrained="laion2b_s34b_b79k")
    assert search_env(_result(), clip) == {
        "DIFFWATCH_SEARCH_CLIP_MODEL": "ViT-B-32",
        "DIFFWATCH_SEARCH_CLIP_PRETRAINED": "laion2b_s34b_b79k",
        "HF_HUB_OFFLINE": "1",
    }


def test_nothing_when_no_clip_scored_or_the_operator_chose(no_search_env, monkeypatch) -> None:
    assert search_env(_result(scorers=("nsfw",)), ClipOptions()) == {}
    assert search_env(SimpleNamespace(scoring=None), ClipOptions()) == {}
    monkeypatch.setenv("DIFFWATCH_SEARCH_CLIP_MODEL", "ViT-L-14")
    assert search_env(_result(scorers=("clip",)), ClipOptions()) == {}


def test_incomplete_search_settings_say_what_is_missing() -> None:
    with pytest.raises(ValueError, match="no weights are set"):
        search_clip(Settings(search_clip_model="ViT-B-32"))
    with pytest.raises(ValueError, match="DIFFWATCH_SEARCH_CLIP_MODEL is not set"):
        search_clip(Settings(search_clip_checkpoint="/weights.pt"))
    assert search_clip(Settings()) is None
    with pytest.raises(ValueError):
        Settings(search_device="tpu")

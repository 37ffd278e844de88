"""A tiny random-weight Stable Diffusion pipeline, saved with ``save_pretrained``.

RANDOM WEIGHTS: for tests and the demo only; its images are noise-like patterns that mean
nothing. It is shaped like SD 1.5 where the engine cares (a ``StableDiffusionPipeline``, VAE
scale factor 8 so 512×512 images have 64×64 latents, 4 latent channels, CLIP's real BPE
tokenizer and 77-token context, PNDM scheduler with SD 1.5's config, no safety checker) and
cheap everywhere else, so it runs on a laptop CPU. Everything is built locally: no hub.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

TINY_PIPELINE_LABEL = "tiny random-weight pipeline (demo/test only; its images mean nothing)"

# SD 1.5's scheduler config (runwayml/stable-diffusion-v1-5 scheduler_config.json).
SD15_SCHEDULER_CONFIG: dict[str, Any] = {
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "num_train_timesteps": 1000,
    "prediction_type": "epsilon",
    "set_alpha_to_one": False,
    "skip_prk_steps": True,
    "steps_offset": 1,
    "clip_sample": False,
    "trained_betas": None,
}

# CLIP's BPE: 49152 - 256 - 2 merges are used (open_clip's SimpleTokenizer does the same).
_N_MERGES = 49152 - 256 - 2
CLIP_VOCAB_SIZE = 49408
BOS_ID, EOS_ID = 49406, 49407


def write_clip_tokenizer(directory: Path) -> Path:
    """Write CLIP's vocab.json and merges.txt into ``directory`` (offline, from open_clip's file).

    The files equal openai/clip-vit-large-patch14's: the BPE merges bundled with open_clip
    (``bpe_simple_vocab_16e6.txt.gz``), the 256 byte symbols and their ``</w>`` forms, the
    merged symbols, then ``<|startoftext|>`` (49406) and ``<|endoftext|>`` (49407).
    """
    import open_clip.tokenizer as oct

    with gzip.open(oct.default_bpe(), "rt", encoding="utf-8") as f:
        lines = f.read().split("\n")
    merges = [tuple(line.split()) for line in lines[1 : _N_MERGES + 1]]
    symbols = list(oct.bytes_to_unicode().values())
    symbols += [s + "</w>" for s in symbols]
    symbols += ["".join(m) for m in merges]
    symbols += ["<|startoftext|>", "<|endoftext|>"]
    if len(symbols) != CLIP_VOCAB_SIZE:
        raise RuntimeError(f"open_clip's BPE file gave {len(symbols)} tokens, expected 49408")
    directory.mkdir(parents=True, exist_ok=True)
    vocab = {s: i for i, s in enumerate(symbols)}
    (directory / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), "utf-8")
    merges_text = "#version: 0.2\n" + "\n".join(" ".join(m) for m in merges) + "\n"
    (directory / "merges.txt").write_text(merges_text, "utf-8")
    return directory


def load_clip_tokenizer(directory: Path) -> Any:
    """A transformers ``CLIPTokenizer`` (77 tokens) written to and loaded from ``directory``."""
    from transformers import CLIPTokenizer

    write_clip_tokenizer(directory)
    return CLIPTokenizer.from_pretrained(directory, model_max_length=77)


def build_tiny_pipeline(seed: int = 0) -> Any:
    """The tiny random-weight ``StableDiffusionPipeline`` in memory (fp32, CPU); see module doc."""
    import tempfile

    import torch
    from diffusers import (
        AutoencoderKL,
        PNDMScheduler,
        StableDiffusionPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel

    state = torch.random.get_rng_state()
    try:
        torch.manual_seed(seed)
        # 4 levels like SD's UNet, but attention only at the 8×8 level: on a CPU,
        # self-attention over 64×64 or 32×32 latents (4096 or 1024 tokens) dominates.
        unet = UNet2DConditionModel(
            sample_size=64,
            in_channels=4,
            out_channels=4,
            block_out_channels=(16, 16, 32, 32),
            layers_per_block=1,
            down_block_types=("DownBlock2D",) * 3 + ("CrossAttnDownBlock2D",),
            up_block_types=("CrossAttnUpBlock2D",) + ("UpBlock2D",) * 3,
            cross_attention_dim=32,
            attention_head_dim=8,
            norm_num_groups=8,
        )
        # 4 blocks: scale factor 2**3 = 8, as SD's VAE; few channels at full resolution.
        vae = AutoencoderKL(
            in_channels=3,
            out_channels=3,
            latent_channels=4,
            block_out_channels=(8, 8, 16, 16),
            down_block_types=("DownEncoderBlock2D",) * 4,
            up_block_types=("UpDecoderBlock2D",) * 4,
            layers_per_block=1,
            norm_num_groups=8,
            sample_size=512,
        )
        text_encoder = CLIPTextModel(
            CLIPTextConfig(
                vocab_size=CLIP_VOCAB_SIZE,
                hidden_size=32,
                intermediate_size=64,
                num_hidden_layers=2,
                num_attention_heads=2,
                max_position_embeddings=77,
                projection_dim=32,
                bos_token_id=BOS_ID,
                eos_token_id=EOS_ID,
                pad_token_id=EOS_ID,
            )
        )
    finally:
        torch.random.set_rng_state(state)
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer = load_clip_tokenizer(Path(tmp))
    return StableDiffusionPipeline(
        vae=vae.eval(),
        text_encoder=text_encoder.eval(),
        tokenizer=tokenizer,
        unet=unet.eval(),
        scheduler=PNDMScheduler.from_config(SD15_SCHEDULER_CONFIG),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


def save_tiny_pipeline(directory: Path, seed: int = 0) -> Path:
    """Build the tiny random-weight pipeline (seeded) and ``save_pretrained`` it to ``directory``.

    Random weights: for tests and the demo only (``TINY_PIPELINE_LABEL``). Load it with
    ``diffwatch.drift.diffusion_load.load_pipeline(DiffusionConfig(source=str(directory)))``.
    About 2 MB on disk (the text encoder's 49408-token embedding is most of it).
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    from diffwatch.drift.diffusion_load import quiet_loading

    with quiet_loading():
        build_tiny_pipeline(seed).save_pretrained(directory)
    return directory


def tiny_pipeline_dir(home: Path) -> Path:
    """The tiny pipeline under ``home/demo-models/tiny-pipeline``, saved there on first use
    (the demo's and ``--tiny-pipeline``'s stand-in for a production pipeline)."""
    directory = Path(home) / "demo-models" / "tiny-pipeline"
    if not (directory / "model_index.json").is_file():
        save_tiny_pipeline(directory)
    return directory


def build_tiny_sdxl_pipeline(seed: int = 0) -> Any:
    """A tiny random-weight ``StableDiffusionXLPipeline`` (two text encoders, text-time
    conditioning, Euler): for tests that the engine handles SDXL-class pipelines too."""
    import tempfile

    import torch
    from diffusers import (
        AutoencoderKL,
        EulerDiscreteScheduler,
        StableDiffusionXLPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    text_config = CLIPTextConfig(
        vocab_size=CLIP_VOCAB_SIZE, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=2, max_position_embeddings=77, projection_dim=32,
        bos_token_id=BOS_ID, eos_token_id=EOS_ID, pad_token_id=EOS_ID,
    )  # fmt: skip
    state = torch.random.get_rng_state()
    try:
        torch.manual_seed(seed)
        unet = UNet2DConditionModel(
            sample_size=32, in_channels=4, out_channels=4, block_out_channels=(16, 32),
            layers_per_block=1, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
            up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), attention_head_dim=(2, 4),
            use_linear_projection=True, addition_embed_type="text_time",
            addition_time_embed_dim=8, norm_num_groups=8,
            # 6 time ids (original size, crop, target size) × 8, plus the pooled text (32).
            projection_class_embeddings_input_dim=6 * 8 + 32,
            cross_attention_dim=64,  # both encoders' hidden states side by side
        )  # fmt: skip
        vae = AutoencoderKL(
            in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(8, 16),
            down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
            layers_per_block=1, norm_num_groups=8, sample_size=64,
        )  # fmt: skip
        text_encoder = CLIPTextModel(text_config)
        text_encoder_2 = CLIPTextModelWithProjection(text_config)
    finally:
        torch.random.set_rng_state(state)
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer = load_clip_tokenizer(Path(tmp))
    scheduler = EulerDiscreteScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", steps_offset=1,
        timestep_spacing="leading",
    )  # fmt: skip
    return StableDiffusionXLPipeline(
        vae=vae.eval(), text_encoder=text_encoder.eval(), text_encoder_2=text_encoder_2.eval(),
        tokenizer=tokenizer, tokenizer_2=tokenizer, unet=unet.eval(), scheduler=scheduler,
    )  # fmt: skip


def save_tiny_sdxl_pipeline(directory: Path, seed: int = 0) -> Path:
    """Build the tiny SDXL pipeline (seeded) and ``save_pretrained`` it to ``directory``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    from diffwatch.drift.diffusion_load import quiet_loading

    with quiet_loading():
        build_tiny_sdxl_pipeline(seed).save_pretrained(directory)
    return directory

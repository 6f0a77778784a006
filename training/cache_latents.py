"""Encode a clip data set once into a latent cache for the diffusion stages (`egotwin.data.latents`).

    python -m training.cache_latents --data_root DATA --split train --output_dir cache/train \
        --video_vae runs/stage0_video_vae/video_vae --motion_vae runs/stage1_motion_vae/motion_vae --text_encoder minilm

`--video_vae` is a trained small VAE folder (stage 0) or a CogVideoX diffusers folder (its `vae/` is used, frozen,
tiled), or `none` for a motion-only cache: all stage 2 reads, so it can start before stage 0 has finished;
`--text_encoder` is 'minilm' or a CogVideoX diffusers folder (T5). The motion VAE folder holds its feature statistics.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from egotwin.config import parse_config
from egotwin.data.latents import cache_latents
from egotwin.models.motion_vae import MotionVAE
from egotwin.models.text_encoder import TextEncoder
from egotwin.models.video_vae import load_pretrained_video_vae
from egotwin.motion.normalization import FeatureStats
from egotwin.motion.representation import get_representation
from training.common import build_clip_dataset


@dataclasses.dataclass(frozen=True)
class CacheConfig:
    """Encode a clip data set once into a latent cache for the diffusion stages."""

    data_root: str = ""
    """Clip folder, or synthetic:N (required)."""
    split: str = "train"
    """Which split to encode."""
    output_dir: str = ""
    """Cache folder to write (required)."""
    video_vae: str = ""
    """Stage-0 video_vae folder, a CogVideoX diffusers folder, or 'none' (a motion-only cache, for stage 2;
    required)."""
    motion_vae: str = ""
    """Stage-1 motion_vae folder, with feature_stats.safetensors (required)."""
    text_encoder: str = "minilm"
    """'minilm' or a CogVideoX diffusers folder (T5)."""
    batch_size: int = 4
    """Clips per encoder forward pass."""
    shard_size: int = 256
    """Clips per cache shard file."""


def main(argv: list[str] | None = None) -> None:
    config = parse_config(CacheConfig, argv, prog="python -m training.cache_latents")
    missing = [name for name in ("data_root", "output_dir", "video_vae", "motion_vae") if not getattr(config, name)]
    if missing:
        raise SystemExit(f"python -m training.cache_latents: error: --{', --'.join(missing)} required")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    motion_vae = MotionVAE.from_pretrained(config.motion_vae).to(device)
    representation = get_representation(motion_vae.config.representation)
    stats = FeatureStats.load(
        Path(config.motion_vae) / "feature_stats.safetensors",
        dim=representation.dim,
        representation=representation.name,
    )
    video_vae = None if config.video_vae.lower() == "none" else load_pretrained_video_vae(config.video_vae).to(device)
    text_encoder = TextEncoder.load(config.text_encoder).to(device)
    dataset = build_clip_dataset(config.data_root, config.split, need_video=video_vae is not None)
    index = cache_latents(
        dataset,
        config.output_dir,
        video_vae,
        motion_vae,
        text_encoder,
        representation,
        stats,
        config.batch_size,
        config.shard_size,
    )
    print(f"cached {len(dataset)} clips: {index}")


if __name__ == "__main__":
    main()

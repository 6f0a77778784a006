"""Encode a clip data set once into a latent cache for the diffusion stages (`egotwin.data.latents`).

    python -m training.cache_latents --data_root DATA --split train --output_dir cache/train \
        --video_vae runs/stage0_video_vae/video_vae --motion_vae runs/stage1_motion_vae/motion_vae --text_encoder minilm

`--video_vae` is a trained small VAE folder (stage 0) or a CogVideoX diffusers folder (its `vae/` is used, frozen, tiled),
or `none` for a motion-only cache: all stage 2 reads, so it can start before stage 0 has finished;
`--text_encoder` is 'minilm' or a CogVideoX diffusers folder (T5). The motion VAE folder holds its feature statistics.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from egotwin.data.latents import cache_latents
from egotwin.models.motion_vae import MotionVAE
from egotwin.models.text_encoder import TextEncoder
from egotwin.models.video_vae import load_pretrained_video_vae
from egotwin.motion.normalization import FeatureStats
from egotwin.motion.representation import get_representation
from training.common import build_clip_dataset


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data_root", required=True, help="EgoWorld clip folder, or synthetic:N")
    parser.add_argument("--split", default="train")
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--video_vae", required=True, help="stage-0 video_vae folder, a CogVideoX diffusers folder, or 'none' (motion-only cache, for stage 2)")
    parser.add_argument("--motion_vae", required=True, help="stage-1 motion_vae folder (with feature_stats.safetensors)")
    parser.add_argument("--text_encoder", default="minilm", help="'minilm' or a CogVideoX diffusers folder (T5)")
    parser.add_argument("--batch_size", type=int, default=4)
    parser.add_argument("--shard_size", type=int, default=256)
    args = parser.parse_args(argv)

    device = "cuda" if torch.cuda.is_available() else "cpu"
    motion_vae = MotionVAE.from_pretrained(args.motion_vae).to(device)
    representation = get_representation(motion_vae.config.representation)
    stats = FeatureStats.load(Path(args.motion_vae) / "feature_stats.safetensors", dim=representation.dim,
                              representation=representation.name)
    video_vae = None if args.video_vae.lower() == "none" else load_pretrained_video_vae(args.video_vae).to(device)
    text_encoder = TextEncoder.load(args.text_encoder).to(device)
    dataset = build_clip_dataset(args.data_root, args.split, need_video=video_vae is not None)
    index = cache_latents(dataset, args.output_dir, video_vae, motion_vae, text_encoder, representation, stats,
                          args.batch_size, args.shard_size)
    print(f"cached {len(dataset)} clips: {index}")


if __name__ == "__main__":
    main()

"""The video VAE: diffusers' `AutoencoderKLCogVideoX` (design "Tokenizers"), small or pretrained, and the latent layout
helpers.

Full scale loads the pretrained CogVideoX VAE from a local diffusers folder, frozen, with tiling and slicing to bound
memory. The small embedded model is a small configuration of the same class (4x temporal compression and 16 latent
channels like CogVideoX) trained on EgoWorld video in stage 0: the shipped one compresses 8x in space like CogVideoX
(`SMALL_VIDEO_VAE_CONFIG`); its successor, with one spatial stage fewer (4x, `small_video_vae(block_out_channels=
(16, 32, 64))`), keeps the detail 64x64 frames need (docs/experiments.md, 2026-11-24).

Layouts: video (B, 3, T, H, W) in [-1, 1] (the VAE's own input layout); latents (B, T', 16, H/s, W/s) for spatial
compression s, multiplied by the config's scaling factor, the layout CogVideoX's transformer takes
(T' = 1 + (T - 1) / 4: 41 frames -> 11).
"""

from __future__ import annotations

import types
from pathlib import Path

import numpy as np
import torch
from diffusers import AutoencoderKLCogVideoX
from torch import nn

SMALL_VIDEO_VAE_CONFIG: dict = dict(
    block_out_channels=(16, 32, 64, 64),
    layers_per_block=1,
    norm_num_groups=16,
    latent_channels=16,
    temporal_compression_ratio=4,
    sample_height=64,
    sample_width=64,
)
"""2.6M parameters: four down blocks (three 2x spatial and two 2x temporal stages, as in CogVideoX). The full-resolution
blocks are the narrow ones because they cost the most: decoding a 5 s 64x64 clip takes 0.8 s on 2 CPU cores against
2.2 s with widths (32, 64, 64, 64). The scaling factor stays CogVideoX's until stage 0 measures the latents' spread
(`latent_scaling_factor`)."""


def _conv3d_forward_mkldnn(self: nn.Conv3d, x: torch.Tensor) -> torch.Tensor:
    if x.device.type == "cpu" and x.dtype == torch.float32 and self.padding_mode == "zeros":
        return torch.mkldnn_convolution(
            x.contiguous(), self.weight, self.bias, self.padding, self.stride, self.dilation, self.groups
        )
    return nn.Conv3d.forward(self, x)


def use_mkldnn_conv3d(vae: AutoencoderKLCogVideoX) -> AutoencoderKLCogVideoX:
    """Route the VAE's 3D convolutions through oneDNN on CPU (float32); returns `vae`. Same numbers (to ~1e-5).

    Why: for a batch of one, PyTorch's CPU heuristic picks its unvectorised `slow_conv3d` for small inputs (the VAE
    decodes two latent frames at a time), about 3x slower on the whole decode; oneDNN also differentiates."""
    for module in vae.modules():
        if isinstance(module, nn.Conv3d):
            module.forward = types.MethodType(_conv3d_forward_mkldnn, module)
    return vae


def small_video_vae(**overrides) -> AutoencoderKLCogVideoX:
    """A randomly initialised small CogVideoX VAE (`SMALL_VIDEO_VAE_CONFIG`, updated with `overrides`). The number of
    blocks follows `block_out_channels`: n blocks downsample 2^(n-1) x in space (the temporal 4x needs n >= 3)."""
    config = {**SMALL_VIDEO_VAE_CONFIG, **overrides}
    blocks = len(config["block_out_channels"])
    if blocks < 3:
        raise ValueError(f"the small video VAE needs at least 3 blocks for its 4x temporal compression, got {blocks}")
    config.setdefault("down_block_types", ("CogVideoXDownBlock3D",) * blocks)
    config.setdefault("up_block_types", ("CogVideoXUpBlock3D",) * blocks)
    return use_mkldnn_conv3d(AutoencoderKLCogVideoX(**config))


def load_pretrained_video_vae(
    folder: str | Path, dtype: torch.dtype = torch.float32, tiling: bool | None = None, slicing: bool = True
) -> AutoencoderKLCogVideoX:
    """The VAE of a local CogVideoX diffusers folder (its `vae` subfolder, or a VAE folder itself), frozen in eval mode.

    `tiling` None: on for full-scale VAEs (native sample height >= 256), off for the small one, whose 64x64 clips are
    below any useful tile size (diffusers' tiled encode of a 64x64 clip even returns 9x9 latents instead of 8x8)."""
    folder = Path(folder)
    subfolder = "vae" if (folder / "vae" / "config.json").is_file() else None
    if subfolder is None and not (folder / "config.json").is_file():
        raise FileNotFoundError(f"{folder}: no CogVideoX VAE here (expected config.json in it or in vae/)")
    vae = AutoencoderKLCogVideoX.from_pretrained(folder, subfolder=subfolder, torch_dtype=dtype, local_files_only=True)
    vae.requires_grad_(False).eval()
    use_mkldnn_conv3d(vae)
    if tiling or (tiling is None and vae.config.sample_height >= 256):
        vae.enable_tiling()
    if slicing:
        vae.enable_slicing()
    return vae


def _scale(vae: AutoencoderKLCogVideoX) -> float:
    # CogVideoX 1.5 VAEs set invert_scale_latents: their latents are divided by the factor, not multiplied.
    factor = vae.config.scaling_factor
    return 1.0 / factor if vae.config.invert_scale_latents else factor


def _check_video(video: torch.Tensor) -> None:
    if video.ndim != 5 or video.shape[1] != 3:
        raise ValueError(f"video must be (B, 3, T, H, W) in [-1, 1], got {tuple(video.shape)}")
    if (video.shape[2] - 1) % 4:
        raise ValueError(f"the video VAE takes 4k+1 frames (e.g. 41), got {video.shape[2]}")


def encode_video_distribution(vae: AutoencoderKLCogVideoX, video: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Video (B, 3, T, H, W) in [-1, 1] -> posterior mean and std of the scaled latents, each (B, T', C, h, w)."""
    _check_video(video)
    posterior = vae.encode(video.to(vae.dtype)).latent_dist
    scale = _scale(vae)
    return (posterior.mean * scale).transpose(1, 2), (posterior.std * scale).transpose(1, 2)


def encode_video(
    vae: AutoencoderKLCogVideoX, video: torch.Tensor, sample: bool = False, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Video (B, 3, T, H, W) in [-1, 1] -> scaled latents (B, T', C, h, w): the posterior mean, or a draw when
    `sample`."""
    mean, std = encode_video_distribution(vae, video)
    if not sample:
        return mean
    return mean + std * torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)


def decode_video(vae: AutoencoderKLCogVideoX, latents: torch.Tensor) -> torch.Tensor:
    """Scaled latents (B, T', C, h, w) -> video (B, 3, T, H, W), nominally in [-1, 1] (not clamped)."""
    if latents.ndim != 5 or latents.shape[2] != vae.config.latent_channels:
        raise ValueError(
            f"video latents must be (B, T', {vae.config.latent_channels}, h, w), got {tuple(latents.shape)}"
        )
    return vae.decode(latents.transpose(1, 2).to(vae.dtype) / _scale(vae)).sample


@torch.no_grad()
def round_trip_frames(vae: AutoencoderKLCogVideoX, frames: np.ndarray, batch_size: int = 8) -> np.ndarray:
    """Videos (N, T, H, W, 3) uint8 -> their reconstructions (encode to the posterior mean, decode), same layout:
    what a video decoded by this VAE can at best look like (T = 4k + 1). `batch_size` videos per forward pass."""
    frames = np.asarray(frames)
    out = []
    for start in range(0, len(frames), batch_size):
        video = torch.from_numpy(np.ascontiguousarray(frames[start : start + batch_size])).to(vae.device)
        video = video.permute(0, 4, 1, 2, 3).float() / 127.5 - 1.0
        reconstruction = decode_video(vae, encode_video(vae, video)).float().clamp(-1, 1)
        out.append(((reconstruction.permute(0, 2, 3, 4, 1) + 1.0) * 127.5).round().to(torch.uint8).cpu().numpy())
    return np.concatenate(out)


def latent_scaling_factor(latents: torch.Tensor) -> float:
    """1 / std of unscaled latents: the factor that gives the diffusion model unit-variance latents (as SD and CogVideoX
    set it)."""
    return float(1.0 / latents.float().std())

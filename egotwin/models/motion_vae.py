"""The causal motion VAE (the paper's stage 1, design "Tokenizers"): 4k+1 motion frames (B, T, D) -> k+1 latents
(B, k+1, C).

Every convolution is a 1D convolution padded on the left only, and the two 2x temporal downsamplings map
4k+1 -> 2k+1 -> k+1 with frame 0 kept apart (a stride-2 kernel-3 convolution with two frames of left padding puts
frame 0 alone in output 0), so latent 0 depends on frame 0 (the initial pose P0) only and latent j on frames <= 4j:
motion latent j never sees the future, like CogVideoX's causal video VAE. The decoder mirrors it: the upsampling
repeats every latent but the first twice (k+1 -> 2k+1 -> 4k+1), so decoded frame t depends on latents <= ceil(t / 4)
only.

Normalisation is a LayerNorm over channels at each time step: a GroupNorm (as in image VAEs) would pool statistics over
the whole sequence and leak the future into the past.

The loss (`motion_vae_loss`) averages a reconstruction term over the representation's feature groups (head-centric:
head_3d, head_6d, joint_3d, joint_6d) and adds a KL term, so it does not depend on which representation is used.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from diffusers.utils import BaseOutput
from torch import nn

DEFAULT_LATENT_CHANNELS = 32
"""C of a motion latent. One latent covers 4 frames (0.25 s) of a ~70 degree-of-freedom body, and latent 0 a whole
pose alone; 32 is the width VPoser found enough for a body pose, and small next to the 4 x 282 features it replaces."""


def num_latent_frames(num_frames: int) -> int:
    """4k+1 motion frames -> k+1 latents; raises on any other length."""
    if num_frames < 1 or (num_frames - 1) % 4:
        raise ValueError(f"the motion VAE takes 4k+1 frames (e.g. 81), got {num_frames}")
    return (num_frames - 1) // 4 + 1


@dataclass
class MotionLatentDistribution:
    """Diagonal Gaussian posterior over motion latents, mean and log-variance (B, k+1, C).

    diffusers' `DiagonalGaussianDistribution` splits channels on dim 1 and sums its KL over image dims (1, 2, 3);
    motion latents are sequences (B, T', C), hence this small counterpart."""

    mean: torch.Tensor
    logvar: torch.Tensor

    def __post_init__(self) -> None:
        self.logvar = self.logvar.clamp(-30.0, 20.0)

    @property
    def std(self) -> torch.Tensor:
        return torch.exp(0.5 * self.logvar)

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        noise = torch.randn(self.mean.shape, generator=generator, device=self.mean.device, dtype=self.mean.dtype)
        return self.mean + self.std * noise

    def mode(self) -> torch.Tensor:
        return self.mean

    def kl(self) -> torch.Tensor:
        """KL to N(0, I) per element, (B, k+1, C)."""
        return 0.5 * (self.mean.pow(2) + self.logvar.exp() - 1.0 - self.logvar)


@dataclass
class MotionVAEOutput(BaseOutput):
    """`sample`: reconstruction (B, T, D); `latent_dist`: the posterior it was decoded from."""

    sample: torch.Tensor
    latent_dist: MotionLatentDistribution


class CausalConv1d(nn.Conv1d):
    """Conv1d on (B, C, T) padded with (kernel_size - 1) zeros on the left only, so output t sees
    inputs <= t * stride."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1):
        super().__init__(in_channels, out_channels, kernel_size, stride=stride)
        self.causal_padding = kernel_size - 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(F.pad(x, (self.causal_padding, 0)))


class ChannelNorm(nn.LayerNorm):
    """LayerNorm over the channels of (B, C, T) at each time step (causal, unlike GroupNorm over time)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.transpose(1, 2)).transpose(1, 2)


class CausalResnetBlock1D(nn.Module):
    """norm -> SiLU -> causal conv, twice, plus a (1x1-projected) skip connection."""

    def __init__(self, in_channels: int, out_channels: int, dropout: float = 0.0):
        super().__init__()
        self.norm1 = ChannelNorm(in_channels)
        self.conv1 = CausalConv1d(in_channels, out_channels)
        self.norm2 = ChannelNorm(out_channels)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = CausalConv1d(out_channels, out_channels)
        self.skip = nn.Conv1d(in_channels, out_channels, 1) if in_channels != out_channels else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return self.skip(x) + h


class CausalDownsample1D(nn.Module):
    """2m+1 -> m+1 frames: output i sees inputs 2i-2..2i, so output 0 sees input 0 alone."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = CausalConv1d(channels, channels, kernel_size=3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class CausalUpsample1D(nn.Module):
    """m+1 -> 2m+1 frames: frame 0 stays single, every later frame is repeated twice, then a causal conv."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = CausalConv1d(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.cat((x[:, :, :1], x[:, :, 1:].repeat_interleave(2, dim=2)), dim=2)
        return self.conv(x)


class CausalMotionEncoder(nn.Module):
    """(B, D, 4k+1) -> Gaussian parameters (B, 2C, k+1)."""

    def __init__(
        self,
        in_channels: int,
        block_out_channels: tuple[int, ...],
        layers_per_block: int,
        latent_channels: int,
        dropout: float,
    ):
        super().__init__()
        self.conv_in = CausalConv1d(in_channels, block_out_channels[0])
        blocks, channels = [], block_out_channels[0]
        for width in block_out_channels:
            for _ in range(layers_per_block):
                blocks.append(CausalResnetBlock1D(channels, width, dropout))
                channels = width
            blocks.append(CausalDownsample1D(channels))
        blocks.append(CausalResnetBlock1D(channels, channels, dropout))
        self.blocks = nn.Sequential(*blocks)
        self.norm_out = ChannelNorm(channels)
        self.conv_out = CausalConv1d(channels, 2 * latent_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_out(F.silu(self.norm_out(self.blocks(self.conv_in(x)))))


class CausalMotionDecoder(nn.Module):
    """(B, C, k+1) -> (B, D, 4k+1), the encoder's mirror image."""

    def __init__(
        self,
        out_channels: int,
        block_out_channels: tuple[int, ...],
        layers_per_block: int,
        latent_channels: int,
        dropout: float,
    ):
        super().__init__()
        widths = tuple(reversed(block_out_channels))
        self.conv_in = CausalConv1d(latent_channels, widths[0])
        blocks, channels = [CausalResnetBlock1D(widths[0], widths[0], dropout)], widths[0]
        for width in widths:
            blocks.append(CausalUpsample1D(channels))
            for _ in range(layers_per_block):
                blocks.append(CausalResnetBlock1D(channels, width, dropout))
                channels = width
        self.blocks = nn.Sequential(*blocks)
        self.norm_out = ChannelNorm(channels)
        self.conv_out = CausalConv1d(channels, out_channels)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.conv_out(F.silu(self.norm_out(self.blocks(self.conv_in(z)))))


class MotionVAE(ModelMixin, ConfigMixin):
    """Causal 1D-convolutional VAE over z-scored motion features, with two 2x temporal stages (4x in all).

    Layouts: features (B, T, D) with T = 4k+1 (81 at 16 fps for 5 s); latents (B, k+1, C) (21 for 81 frames), the
    sequence layout the diffusion transformer takes (its motion token width is `config.latent_channels`).
    `config.scaling_factor` (set by stage 1 from the latents' spread, as for the video VAE): the diffusion transformer
    sees latents multiplied by it, so both modalities enter the diffusion at unit variance; divide before `decode`.
    """

    @register_to_config
    def __init__(
        self,
        in_channels: int = 282,
        latent_channels: int = DEFAULT_LATENT_CHANNELS,
        block_out_channels: tuple[int, ...] = (256, 256),
        layers_per_block: int = 2,
        dropout: float = 0.0,
        representation: str = "head_centric",
        scaling_factor: float = 1.0,
    ):
        super().__init__()
        if len(block_out_channels) != 2:
            raise ValueError(
                f"the motion VAE has exactly two 2x temporal stages, got block_out_channels={block_out_channels}"
            )
        block_out_channels = tuple(block_out_channels)
        self.encoder = CausalMotionEncoder(in_channels, block_out_channels, layers_per_block, latent_channels, dropout)
        self.decoder = CausalMotionDecoder(in_channels, block_out_channels, layers_per_block, latent_channels, dropout)

    def encode(self, features: torch.Tensor) -> MotionLatentDistribution:
        """Z-scored features (B, T, D), T = 4k+1 -> posterior over latents (B, k+1, C)."""
        if features.ndim != 3 or features.shape[-1] != self.config.in_channels:
            raise ValueError(f"motion VAE input must be (B, T, {self.config.in_channels}), got {tuple(features.shape)}")
        num_latent_frames(features.shape[1])
        moments = self.encoder(features.transpose(1, 2)).transpose(1, 2)
        mean, logvar = moments.chunk(2, dim=-1)
        return MotionLatentDistribution(mean, logvar)

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Latents (B, k+1, C) -> z-scored features (B, 4k+1, D)."""
        if latents.ndim != 3 or latents.shape[-1] != self.config.latent_channels:
            raise ValueError(
                f"motion latents must be (B, T', {self.config.latent_channels}), got {tuple(latents.shape)}"
            )
        return self.decoder(latents.transpose(1, 2)).transpose(1, 2)

    def forward(
        self, features: torch.Tensor, sample_posterior: bool = True, generator: torch.Generator | None = None
    ) -> MotionVAEOutput:
        """Encode, draw a latent (or take the mean), decode: (B, T, D) -> reconstruction (B, T, D)."""
        posterior = self.encode(features)
        latents = posterior.sample(generator) if sample_posterior else posterior.mode()
        return MotionVAEOutput(sample=self.decode(latents), latent_dist=posterior)


def motion_vae_loss(
    reconstruction: torch.Tensor,
    target: torch.Tensor,
    posterior: MotionLatentDistribution,
    loss_groups: dict[str, torch.Tensor],
    kl_weight: float = 1e-4,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Per-group smooth-L1 reconstruction averaged over the groups, plus `kl_weight` x mean KL (design "Tokenizers").

    reconstruction, target: (B, T, D) z-scored; loss_groups: name -> LongTensor of feature indices (from the
    representation). Averaging group means (not all features) keeps the 6-feature head groups from being drowned by
    the 264 joint features. Returns (total loss, {"recon/<group>", "recon", "kl", "loss"} detached terms)."""
    if not loss_groups:
        raise ValueError("loss_groups is empty")
    terms = {}
    for name, index in loss_groups.items():
        index = index.to(target.device)
        terms[f"recon/{name}"] = F.smooth_l1_loss(
            reconstruction.index_select(-1, index), target.index_select(-1, index)
        )
    recon = torch.stack(list(terms.values())).mean()
    kl = posterior.kl().mean()
    loss = recon + kl_weight * kl
    logs = {key: value.detach() for key, value in terms.items()}
    logs.update(recon=recon.detach(), kl=kl.detach(), loss=loss.detach())
    return loss, logs

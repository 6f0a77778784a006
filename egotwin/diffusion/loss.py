"""The asynchronous diffusion training loss (paper Eq. 2, design "Transformer" and "Asynchronous diffusion").

Video and motion get independent timesteps (a `shared_timestep` switch gives the "w/o AD" ablation). The clean
latents of I0 (video latent frame 0, `O^0`) and P0 (motion latent 0) replace their noisy versions in the input and
are left out of the loss. The loss is the v-prediction MSE of each modality, summed; this equals CogVideoX's recipe
(x0 error weighted by 1 / (1 - alpha_bar_t)), since x0_pred - x0 = -sqrt(1 - alpha_bar_t) (v_pred - v).
Stage 2 passes no video latents (text + motion only); the video loss is then absent.

Noise, noisy latents and targets are made in the latents' dtype (float32 from a cache); what enters the transformer is
cast to the dtype of its parameters: a model cast whole to bfloat16 (DeepSpeed's bf16 mode, which adds no autocast)
gets bfloat16 inputs, a float32 model under autocast or FSDP's mixed precision gets float32 ones (cast there).
The loss itself is computed in float32.
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from diffusers import CogVideoXDDIMScheduler, CogVideoXDPMScheduler
from diffusers.utils.torch_utils import randn_tensor

from egotwin.models.transformer import EgoTwinTransformer3DModel


@dataclass
class DiffusionLossOutput:
    """The loss and its parts.

    Args:
        loss: video_loss + motion_loss, scalar.
        video_loss: v-MSE over video latent frames 1.. (None without video).
        motion_loss: v-MSE over motion latents 1.. (None without motion).
        video_timestep: `(B,)` timesteps used for video (None without video).
        motion_timestep: `(B,)` timesteps used for motion (None without motion).
    """

    loss: torch.Tensor
    video_loss: torch.Tensor | None
    motion_loss: torch.Tensor | None
    video_timestep: torch.Tensor | None
    motion_timestep: torch.Tensor | None


Generators = torch.Generator | list[torch.Generator] | None
"""One generator for the batch, or one per batch item: then an item's draws depend on its own generator only, so a
batch split over several processes gets the same noise as the whole batch in one."""


def per_item(draw, batch_size: int, generator: Generators) -> torch.Tensor:
    """`draw(n, generator)` `(n,)` for a batch: one call, or one per generator of a list, concatenated."""
    if isinstance(generator, list):
        if len(generator) != batch_size:
            raise ValueError(f"{len(generator)} generators for a batch of {batch_size}")
        return torch.cat([draw(1, g) for g in generator])
    return draw(batch_size, generator)


def sample_timesteps(
    batch_size: int,
    num_train_timesteps: int,
    shared_timestep: bool = False,
    generator: Generators = None,
    device: torch.device | str = "cpu",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Uniform training timesteps `(t_v, t_m)`, each `(B,)` long; independent, or equal with `shared_timestep`."""

    def draw(n: int, g: torch.Generator | None) -> torch.Tensor:
        gen_device = g.device if g is not None else device
        return torch.randint(0, num_train_timesteps, (n,), generator=g, device=gen_device).to(device)

    t_v = per_item(draw, batch_size, generator)
    if shared_timestep:
        return t_v, t_v.clone()
    return t_v, per_item(draw, batch_size, generator)


def replace_initial(noisy: torch.Tensor, clean: torch.Tensor) -> torch.Tensor:
    """`noisy` `(B, N, ...)` with its entry 0 along dim 1 (O^0 or P0's latent) taken from `clean` `(B, N or 1, ...)`."""
    return torch.cat([clean[:, :1].to(noisy.dtype), noisy[:, 1:]], dim=1)


def generated_mse(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """MSE over entries 1.. along dim 1: the conditioning latent 0 (I0 or P0) is left out of the loss."""
    return F.mse_loss(prediction[:, 1:].float(), target[:, 1:].float())


def _noised(
    scheduler: CogVideoXDDIMScheduler | CogVideoXDPMScheduler,
    latents: torch.Tensor,
    timestep: torch.Tensor,
    generator: Generators,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(noisy input with the clean initial latent, v target) for clean `latents` at `timestep` `(B,)`."""
    noise = randn_tensor(latents.shape, generator=generator, device=latents.device, dtype=latents.dtype)
    noisy = replace_initial(scheduler.add_noise(latents, noise, timestep), latents)
    return noisy, scheduler.get_velocity(latents, noise, timestep)


def compute_dtype(model: torch.nn.Module) -> torch.dtype:
    """The dtype a (possibly wrapped: DDP, DeepSpeed, FSDP) model's inputs must have: that of its parameters."""
    return next(model.parameters()).dtype


def diffusion_loss(
    transformer: EgoTwinTransformer3DModel,
    scheduler: CogVideoXDDIMScheduler | CogVideoXDPMScheduler,
    prompt_embeds: torch.Tensor,
    video_latents: torch.Tensor | None = None,
    motion_latents: torch.Tensor | None = None,
    shared_timestep: bool = False,
    generator: Generators = None,
) -> DiffusionLossOutput:
    """One training loss evaluation.

    Args:
        prompt_embeds: text embeddings `(B, N_text, D_text)` (text dropout is the caller's: pass the null embedding).
        video_latents: clean, scaled video latents `(B, F, C, H, W)`, frame 0 = I0; None for stage 2.
        motion_latents: clean, normalised motion latents `(B, M, C_m)`, latent 0 = P0.
        shared_timestep: one timestep for both modalities (the "w/o AD" ablation).
        generator: seeds timesteps and noise (a list: one generator per batch item).
    """
    if video_latents is None and motion_latents is None:
        raise ValueError("diffusion_loss needs video latents, motion latents, or both")
    batch_size = prompt_embeds.size(0)
    t_v, t_m = sample_timesteps(
        batch_size, scheduler.config.num_train_timesteps, shared_timestep, generator, prompt_embeds.device
    )
    video_input = video_target = motion_input = motion_target = None
    if video_latents is not None:
        video_input, video_target = _noised(scheduler, video_latents, t_v, generator)
    if motion_latents is not None:
        motion_input, motion_target = _noised(scheduler, motion_latents, t_m, generator)

    dtype = compute_dtype(transformer)
    output = transformer(
        hidden_states=video_input.to(dtype) if video_input is not None else None,
        encoder_hidden_states=prompt_embeds.to(dtype),
        timestep=t_v if video_latents is not None else None,
        motion_hidden_states=motion_input.to(dtype) if motion_input is not None else None,
        motion_timestep=t_m if motion_latents is not None else None,
    )
    video_loss = generated_mse(output.sample, video_target) if video_latents is not None else None
    motion_loss = generated_mse(output.motion_sample, motion_target) if motion_latents is not None else None
    loss = sum(part for part in (video_loss, motion_loss) if part is not None)
    return DiffusionLossOutput(
        loss=loss,
        video_loss=video_loss,
        motion_loss=motion_loss,
        video_timestep=t_v if video_latents is not None else None,
        motion_timestep=t_m if motion_latents is not None else None,
    )

"""Classifier-free guidance over text and the other modality (paper Eq. 3 and 4, design "Sampling and guidance").

"Dropping" a modality = feeding it as pure noise at timestep T (the last training timestep; pure noise under zero
terminal SNR); "conditioning" on it = feeding it clean at timestep 0. With e(z_v, z_m, c, t_v, t_m) the network's
prediction for the generated modality:

- TM2V (Eq. 3), motion given clean:
  ``e(z_v^t, z_m^T, 0, t, T) + w_t [e(z_v^t, z_m^T, c, t, T) - e(z_v^t, z_m^T, 0, t, T)]
  + w_m [e(z_v^t, z_m^0, c, t, 0) - e(z_v^t, z_m^T, c, t, T)]``  (0 = null text)
- TV2M: the mirror image, video given clean, weight ``w_v``.
- T2VM (Eq. 4): both modalities noisy at the same t (or, with a motion lead, the motion at its own smaller t_m in
  place of the motion's t below), four evaluations:
  N = e(z_v^t, z_m^t, 0, t, t), C = e(z_v^t, z_m^t, c, t, t), Dv = e(z_v^t, z_m^T, c, t, T) (motion dropped),
  Dm = e(z_v^T, z_m^t, c, T, t) (video dropped);
  ``video = N_v + w_t (C_v - N_v) + w_m (C_v - Dv_v)``, ``motion = N_m + w_t (C_m - N_m) + w_v (C_m - Dm_m)``.

Why four in T2VM when the spec counts three: TM2V and TV2M generate one modality, whose text term and cross-modal
term share the "other modality dropped" row, so three rows suffice. T2VM generates both, and each modality's
cross-modal term needs a reference with exactly the *other* modality dropped: (z_v^t, z_m^T) for video, (z_v^T, z_m^t)
for motion. No single row drops "the other modality" for both, so one third row cannot serve both terms; the text pair
(N, C) is shared, since both of its rows hold both modalities co-noised. Four is the minimum (Eq. 3 written out per
modality would take five).
All of a step's evaluations run as one batched transformer call (`3B` or `4B` rows).
I0 and P0 stay clean in every variant: callers pass latents whose entry 0 already holds them.
"""

from dataclasses import dataclass
from typing import Literal

import torch

from egotwin.data.constants import MODES
from egotwin.models.transformer import EgoTwinTransformer3DModel

GuidanceMode = Literal["t2vm", "tm2v", "tv2m"]


@dataclass(frozen=True)
class GuidanceScales:
    """Guidance weights (defaults to be tuned on validation).

    Args:
        text: w_t, text guidance.
        motion: w_m, how strongly the video follows the motion (TM2V, and the video side of T2VM).
        video: w_v, how strongly the motion follows the video (TV2M, and the motion side of T2VM).
        video_text: w_t of the video's prediction alone (TM2V, and the video side of T2VM); None: `text`, the
            paper's one w_t for both modalities. Our choice beyond the paper's equations: a strong text pull that the
            motion needs can make the video trade what the start frame showed for what the prompt suggests.
    """

    text: float = 6.0
    motion: float = 1.5
    video: float = 1.5
    video_text: float | None = None

    @property
    def text_for_video(self) -> float:
        return self.text if self.video_text is None else self.video_text


@dataclass
class GuidanceBatch:
    """The network inputs of all guidance variants of one step, stacked variant-major along the batch.

    Args:
        video: `(nB, F, C, H, W)`. motion: `(nB, M, C_m)`. prompt_embeds: `(nB, N_text, D_text)`.
        video_timestep, motion_timestep: `(nB,)`. num_variants: n (3, or 4 for T2VM).
    """

    video: torch.Tensor
    motion: torch.Tensor
    prompt_embeds: torch.Tensor
    video_timestep: torch.Tensor
    motion_timestep: torch.Tensor
    num_variants: int


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"unknown guidance mode {mode!r}; choose one of {MODES}")


def build_guidance_batch(
    mode: GuidanceMode,
    video: torch.Tensor,
    motion: torch.Tensor,
    timestep: torch.Tensor | int,
    prompt_embeds: torch.Tensor,
    negative_prompt_embeds: torch.Tensor,
    dropped_video: torch.Tensor,
    dropped_motion: torch.Tensor,
    num_train_timesteps: int = 1000,
    motion_timestep: torch.Tensor | int | None = None,
) -> GuidanceBatch:
    """Stack the guidance variants of one sampling step.

    Args:
        mode: "t2vm", "tm2v" or "tv2m".
        video: `(B, F, C, H, W)` video latents: noisy at `timestep` when generated (t2vm, tm2v), clean when
            given (tv2m).
        motion: `(B, M, C_m)` motion latents: noisy when generated (t2vm, tv2m), clean when given (tm2v).
        timestep: the current timestep of the generated modalities, scalar or `(B,)`.
        prompt_embeds, negative_prompt_embeds: text and null-text embeddings `(B, N_text, D_text)`.
        dropped_video, dropped_motion: pure-noise stand-ins for a dropped modality, shaped like `video` / `motion`,
            with entry 0 holding the clean I0 / P0 latent.
        motion_timestep: t2vm only: the motion's own timestep when it runs ahead of the video (asynchronous
            sampling, `EgoTwinPipeline.__call__(motion_lead=...)`); None = `timestep` (Eq. 4 as written).
    """
    _check_mode(mode)
    if motion_timestep is not None and mode != "t2vm":
        raise ValueError(f"motion_timestep is for t2vm, where both modalities are generated; mode is {mode!r}")
    batch_size = video.size(0)
    t = torch.as_tensor(timestep, device=video.device).reshape(-1).expand(batch_size)
    t_m = t if motion_timestep is None else torch.as_tensor(motion_timestep, device=video.device).reshape(-1)
    t_m = t_m.expand(batch_size).to(t.dtype)
    last = torch.full_like(t, num_train_timesteps - 1)
    zero = torch.zeros_like(t)
    text, null = prompt_embeds, negative_prompt_embeds
    # Each variant: (video, t_v, motion, t_m, text).
    if mode == "tm2v":
        variants = [
            (video, t, dropped_motion, last, null),
            (video, t, dropped_motion, last, text),
            (video, t, motion, zero, text),
        ]
    elif mode == "tv2m":
        variants = [
            (dropped_video, last, motion, t, null),
            (dropped_video, last, motion, t, text),
            (video, zero, motion, t, text),
        ]
    else:
        variants = [
            (video, t, motion, t_m, null),
            (video, t, motion, t_m, text),
            (video, t, dropped_motion, last, text),
            (dropped_video, last, motion, t_m, text),
        ]
    columns = list(zip(*variants))
    return GuidanceBatch(
        video=torch.cat(columns[0]),
        video_timestep=torch.cat(columns[1]),
        motion=torch.cat(columns[2]),
        motion_timestep=torch.cat(columns[3]),
        prompt_embeds=torch.cat(columns[4]),
        num_variants=len(variants),
    )


def _guide(
    unconditional: torch.Tensor, text: torch.Tensor, joint: torch.Tensor, w_text: float, w_cross: float
) -> torch.Tensor:
    """Eq. 3: e_null + w_t (e_text - e_null) + w_cross (e_joint - e_text)."""
    return unconditional + w_text * (text - unconditional) + w_cross * (joint - text)


def _joint_guide(
    unconditional: torch.Tensor, text: torch.Tensor, other_dropped: torch.Tensor, w_text: float, w_cross: float
) -> torch.Tensor:
    """Eq. 4 (T2VM): N + w_t (C - N) + w_cross (C - D), with D the text-conditioned row without the other modality."""
    return unconditional + w_text * (text - unconditional) + w_cross * (text - other_dropped)


def combine_guidance(
    mode: GuidanceMode, video_out: torch.Tensor, motion_out: torch.Tensor, scales: GuidanceScales
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Combine the network outputs of a `GuidanceBatch` (same row order) into the guided predictions.

    Args:
        video_out: `(nB, F, C, H, W)`; motion_out: `(nB, M, C_m)`.

    Returns:
        (video prediction `(B, F, C, H, W)`, motion prediction `(B, M, C_m)`); None for the given modality.
    """
    _check_mode(mode)
    if mode == "tm2v":
        return _guide(*video_out.chunk(3), scales.text_for_video, scales.motion), None
    if mode == "tv2m":
        return None, _guide(*motion_out.chunk(3), scales.text, scales.video)
    video_null, video_text, video_no_motion, _ = video_out.chunk(4)
    motion_null, motion_text, _, motion_no_video = motion_out.chunk(4)
    return (
        _joint_guide(video_null, video_text, video_no_motion, scales.text_for_video, scales.motion),
        _joint_guide(motion_null, motion_text, motion_no_video, scales.text, scales.video),
    )


def guided_prediction(
    transformer: EgoTwinTransformer3DModel,
    mode: GuidanceMode,
    video: torch.Tensor,
    motion: torch.Tensor,
    timestep: torch.Tensor | int,
    prompt_embeds: torch.Tensor,
    negative_prompt_embeds: torch.Tensor,
    dropped_video: torch.Tensor,
    dropped_motion: torch.Tensor,
    scales: GuidanceScales = GuidanceScales(),
    num_train_timesteps: int = 1000,
    motion_timestep: torch.Tensor | int | None = None,
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Guided (video, motion) velocity predictions of one step, from one batched transformer call.

    Arguments as in `build_guidance_batch` (`num_train_timesteps`: the scheduler's); returns as `combine_guidance`.
    """
    batch = build_guidance_batch(
        mode,
        video,
        motion,
        timestep,
        prompt_embeds,
        negative_prompt_embeds,
        dropped_video,
        dropped_motion,
        num_train_timesteps,
        motion_timestep,
    )
    output = transformer(
        hidden_states=batch.video,
        encoder_hidden_states=batch.prompt_embeds,
        timestep=batch.video_timestep,
        motion_hidden_states=batch.motion,
        motion_timestep=batch.motion_timestep,
    )
    return combine_guidance(mode, output.sample, output.motion_sample, scales)

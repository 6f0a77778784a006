"""The structured joint attention mask of EgoTwin (design "Attention mask").

Token order in the joint attention is ``[text, video, motion]``. Video latent frame ``i`` is the observation
``O^i``; motion latent 0 encodes the initial pose P0 and the action ``A^i`` is motion latents ``{2i+1, 2i+2}``,
the motion that carries ``O^i`` to ``O^{i+1}``. The mask encodes forward dynamics ``{O^i, A^i} -> O^{i+1}`` and
inverse dynamics ``{O^i, O^{i+1}} -> A^i``:

- text <-> every token, video <-> video, motion <-> motion: open;
- ``O^0`` <-> motion latent 0 (I0 <-> P0): open both ways;
- a video token of ``O^i`` (i >= 1) attends to the motion tokens of ``A^{i-1}`` only;
- a motion token of ``A^i`` attends to the video tokens of ``O^i`` and ``O^{i+1}`` only;
- every other video <-> motion pair is blocked.

``full_attention=True`` opens every pair (the "w/o IM" ablation).
"""

from functools import lru_cache

import torch


def video_motion_links(num_frames: int, num_motion_latents: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Which latent frame may see which motion latent, and the reverse.

    Returns:
        video_sees_motion: bool `(num_frames, num_motion_latents)`, ``[i, j]``: ``O^i`` may attend to motion latent j.
        motion_sees_video: bool `(num_motion_latents, num_frames)`, ``[j, i]``: motion latent j may attend to ``O^i``.
    """
    frame = torch.arange(num_frames)[:, None]
    latent = torch.arange(num_motion_latents)[None, :]
    action = torch.div(latent - 1, 2, rounding_mode="floor")  # -1 for the initial pose latent
    initial = (frame == 0) & (latent == 0)
    video_sees_motion = initial | ((frame >= 1) & (latent >= 1) & (action == frame - 1))
    motion_sees_video = initial | ((latent >= 1) & ((frame == action) | (frame == action + 1)))
    return video_sees_motion, motion_sees_video.T.contiguous()


@lru_cache(maxsize=32)
def build_attention_mask(
    text_len: int,
    num_frames: int,
    tokens_per_frame: int,
    num_motion_latents: int,
    full_attention: bool = False,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Boolean joint attention mask over ``[text, video, motion]`` tokens, True where attention is allowed.

    Video tokens are frame-major (CogVideoX patch order): counted from the first video token, the
    ``tokens_per_frame`` tokens starting at ``f * tokens_per_frame`` belong to latent frame ``f``.
    Motion tokens are one per motion latent.
    The result is cached per shape and device and shared between callers: do not modify it in place.

    Returns:
        mask: bool `(L, L)` with ``L = text_len + num_frames * tokens_per_frame + num_motion_latents``; row = query.
    """
    if min(text_len, num_frames, tokens_per_frame, num_motion_latents) < 0:
        raise ValueError("token counts must be non-negative")
    num_video = num_frames * tokens_per_frame
    length = text_len + num_video + num_motion_latents
    mask = torch.ones(length, length, dtype=torch.bool)
    if not full_attention:
        video_sees_motion, motion_sees_video = video_motion_links(num_frames, num_motion_latents)
        video = slice(text_len, text_len + num_video)
        motion = slice(text_len + num_video, length)
        mask[video, motion] = video_sees_motion.repeat_interleave(tokens_per_frame, dim=0)
        mask[motion, video] = motion_sees_video.repeat_interleave(tokens_per_frame, dim=1)
    return mask.to(device)

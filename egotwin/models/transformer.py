"""The EgoTwin diffusion transformer: CogVideoX text and video branches plus a motion branch (design "Transformer").

The text and video branches are diffusers' CogVideoX, module for module and key for key, so a
`CogVideoXTransformer3DModel` state dict loads into them unchanged, and with no motion tokens the output equals
CogVideoX's. The motion branch lives on the lower ``motion_num_layers`` layers: in each of them the motion tokens
have their own adaLN (driven by the motion timestep), QKV projections into the shared attention width, qk-norm,
output projection and feed-forward at a reduced width, and join the text and video tokens in one attention,
in the order ``[text, video, motion]``, under the structured mask of `attention_mask.py`.
Above the lower half the stack is plain CogVideoX; the motion head reads the motion tokens after the last motion layer.

Positions on one time axis (decided here): video keeps CogVideoX's own scheme (3D sincos for 2B, 3D RoPE for 5B),
where latent frame ``i`` sits at temporal position ``i``. Motion latent ``j`` ends at motion frame ``4j`` (16 fps),
i.e. at ``j / 4`` s, and video latent ``i`` ends at video frame ``4i`` (8 fps), i.e. at ``i / 2`` s; so motion
latent ``j`` sits at temporal position ``j * motion_time_scale`` with ``motion_time_scale = 0.5``, and gets the
1D sinusoidal encoding of that position (the same frequencies CogVideoX uses on its temporal axis) added after
its input projection. Action ``A^i`` (latents 2i+1, 2i+2) thus sits at positions ``i + 0.5`` and ``i + 1``,
between ``O^i`` and ``O^{i+1}``. RoPE, where used, applies to video tokens only.
"""

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from diffusers import CogVideoXTransformer3DModel
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.attention import Attention, FeedForward
from diffusers.models.embeddings import (
    CogVideoXPatchEmbed,
    TimestepEmbedding,
    Timesteps,
    apply_rotary_emb,
    get_1d_sincos_pos_embed_from_grid,
    get_3d_rotary_pos_embed,
)
from diffusers.models.modeling_utils import ModelMixin
from diffusers.models.normalization import AdaLayerNorm
from diffusers.models.transformers.cogvideox_transformer_3d import CogVideoXBlock
from diffusers.pipelines.cogvideo.pipeline_cogvideox import get_resize_crop_region_for_grid
from diffusers.utils import BaseOutput
from safetensors import safe_open
from torch import nn

from egotwin.models.attention_mask import build_attention_mask


@dataclass
class EgoTwinTransformerOutput(BaseOutput):
    """Velocity predictions.

    Args:
        sample: video prediction `(B, F, C, H, W)`, or None when no video tokens were given.
        motion_sample: motion prediction `(B, M, C_m)`, or None when no motion tokens were given.
    """

    sample: torch.Tensor | None = None
    motion_sample: torch.Tensor | None = None


class EgoTwinAttnProcessor:
    """Joint attention of text, video and motion tokens in one SDPA call.

    Text and video use the CogVideoX attention module's projections and qk-norm (exactly as
    `CogVideoXAttnProcessor2_0`); motion uses its own `Attention` module's projections and qk-norm.
    RoPE applies to video tokens only. Without motion tokens it keeps `CogVideoXAttnProcessor2_0`'s contract and
    returns (video, text), so the parent `CogVideoXBlock.forward` runs unchanged; with them it returns
    (video, text, motion).
    """

    def __call__(
        self,
        attn: Attention,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        image_rotary_emb: tuple[torch.Tensor, torch.Tensor] | None = None,
        motion_hidden_states: torch.Tensor | None = None,
        motion_attn: Attention | None = None,
    ) -> tuple[torch.Tensor, ...]:
        """Attend; inputs `(B, N_video, D)`, `(B, N_text, D)`, `(B, M, D_m)`, mask bool `(L, L)` (True = allowed).

        Returns:
            (video `(B, N_video, D)`, text `(B, N_text, D)`), followed by motion `(B, M, D_m)` when motion was given.
        """
        text_len, video_len = encoder_hidden_states.size(1), hidden_states.size(1)
        batch_size = hidden_states.size(0)
        queries, keys, values = _project_heads(attn, torch.cat([encoder_hidden_states, hidden_states], dim=1))
        if image_rotary_emb is not None:
            video = slice(text_len, text_len + video_len)
            queries[:, :, video] = apply_rotary_emb(queries[:, :, video], image_rotary_emb)
            keys[:, :, video] = apply_rotary_emb(keys[:, :, video], image_rotary_emb)
        if motion_hidden_states is not None:
            motion_q, motion_k, motion_v = _project_heads(motion_attn, motion_hidden_states)
            queries = torch.cat([queries, motion_q], dim=2)
            keys = torch.cat([keys, motion_k], dim=2)
            values = torch.cat([values, motion_v], dim=2)

        out = F.scaled_dot_product_attention(queries, keys, values, attn_mask=attention_mask, dropout_p=0.0)
        out = out.transpose(1, 2).reshape(batch_size, out.size(2), -1)

        text_video = attn.to_out[1](attn.to_out[0](out[:, : text_len + video_len]))
        if motion_hidden_states is None:
            return text_video[:, text_len:], text_video[:, :text_len]
        motion = motion_attn.to_out[1](motion_attn.to_out[0](out[:, text_len + video_len :]))
        return text_video[:, text_len:], text_video[:, :text_len], motion


def _project_heads(attn: Attention, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """q, k, v of `x` `(B, N, D)` by `attn`'s projections, each `(B, heads, N, head_dim)`, qk-normed."""
    batch_size = x.size(0)
    q, k, v = (
        proj(x).view(batch_size, -1, attn.heads, proj.out_features // attn.heads).transpose(1, 2)
        for proj in (attn.to_q, attn.to_k, attn.to_v)
    )
    if attn.norm_q is not None:
        q = attn.norm_q(q)
    if attn.norm_k is not None:
        k = attn.norm_k(k)
    return q, k, v


class MotionBranchLayer(nn.Module):
    """The motion tokens' own weights in one joint layer: adaLN-Zero, attention projections, feed-forward.

    The adaLN modulation (shift, scale, gate before attention and before the feed-forward) comes from the motion
    time embedding in one projection, as `CogVideoXLayerNormZero` does for text and video.
    """

    def __init__(
        self,
        motion_dim: int,
        num_attention_heads: int,
        attention_head_dim: int,
        time_embed_dim: int,
        ff_inner_dim: int | None,
        attention_bias: bool,
        activation_fn: str,
        dropout: float,
        norm_elementwise_affine: bool,
        norm_eps: float,
    ):
        super().__init__()
        self.adaln = nn.Sequential(nn.SiLU(), nn.Linear(time_embed_dim, 6 * motion_dim))
        self.norm1 = nn.LayerNorm(motion_dim, eps=norm_eps, elementwise_affine=norm_elementwise_affine)
        # Projections into the shared attention width (heads x head_dim) and back to the motion width.
        self.attn = Attention(
            query_dim=motion_dim,
            dim_head=attention_head_dim,
            heads=num_attention_heads,
            qk_norm="layer_norm",
            eps=1e-6,
            bias=attention_bias,
            out_bias=True,
        )
        self.norm2 = nn.LayerNorm(motion_dim, eps=norm_eps, elementwise_affine=norm_elementwise_affine)
        self.ff = FeedForward(
            motion_dim, dropout=dropout, activation_fn=activation_fn, final_dropout=True, inner_dim=ff_inner_dim
        )


class EgoTwinBlock(CogVideoXBlock):
    """A `CogVideoXBlock` (same submodules, same keys) with a motion branch joined in its attention."""

    def __init__(self, *, motion: MotionBranchLayer, **cogvideox_block_kwargs: Any):
        super().__init__(**cogvideox_block_kwargs)
        self.attn1.set_processor(EgoTwinAttnProcessor())
        self.motion = motion

    def forward(
        self,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor,
        temb: torch.Tensor,
        image_rotary_emb: tuple[torch.Tensor, torch.Tensor] | None = None,
        attention_kwargs: dict[str, Any] | None = None,
        motion_hidden_states: torch.Tensor | None = None,
        motion_temb: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """video `(B, N_v, D)`, text `(B, N_t, D)`, motion `(B, M, D_m)` or None -> the three updated."""
        if motion_hidden_states is None:
            video, text = super().forward(
                hidden_states, encoder_hidden_states, temb, image_rotary_emb, attention_kwargs
            )
            return video, text, None
        if attention_kwargs:  # CogVideoX's processors take them; the joint processor has none, so never drop them
            raise ValueError(f"the joint EgoTwin blocks take no attention_kwargs, got {sorted(attention_kwargs)}")
        text_len = encoder_hidden_states.size(1)

        # 1. Attention: each modality normed by its own adaLN, one joint attention.
        norm_video, norm_text, gate_msa, enc_gate_msa = self.norm1(hidden_states, encoder_hidden_states, temb)
        modulation = self.motion.adaln(motion_temb)[:, None].chunk(6, dim=-1)
        shift_msa, scale_msa, motion_gate_msa, shift_ff, scale_ff, motion_gate_ff = modulation
        norm_motion = self.motion.norm1(motion_hidden_states) * (1 + scale_msa) + shift_msa
        attn_video, attn_text, attn_motion = self.attn1(
            hidden_states=norm_video,
            encoder_hidden_states=norm_text,
            attention_mask=attention_mask,
            image_rotary_emb=image_rotary_emb,
            motion_hidden_states=norm_motion,
            motion_attn=self.motion.attn,
        )
        hidden_states = hidden_states + gate_msa * attn_video
        encoder_hidden_states = encoder_hidden_states + enc_gate_msa * attn_text
        motion_hidden_states = motion_hidden_states + motion_gate_msa * attn_motion

        # 2. Feed-forward: text and video share CogVideoX's, motion has its own.
        norm_video, norm_text, gate_ff, enc_gate_ff = self.norm2(hidden_states, encoder_hidden_states, temb)
        ff_output = self.ff(torch.cat([norm_text, norm_video], dim=1))
        hidden_states = hidden_states + gate_ff * ff_output[:, text_len:]
        encoder_hidden_states = encoder_hidden_states + enc_gate_ff * ff_output[:, :text_len]
        norm_motion = self.motion.norm2(motion_hidden_states) * (1 + scale_ff) + shift_ff
        motion_hidden_states = motion_hidden_states + motion_gate_ff * self.motion.ff(norm_motion)
        return hidden_states, encoder_hidden_states, motion_hidden_states


_SAFETENSORS_DTYPES = {"F32": torch.float32, "BF16": torch.bfloat16, "F16": torch.float16, "F64": torch.float64}


def stored_dtype(folder: str | os.PathLike, subfolder: str | None = None) -> torch.dtype | None:
    """The dtype a diffusers model folder's weights were saved in (that of its first floating-point tensor), or None
    where it holds no safetensors file."""
    root = Path(folder) / (subfolder or "")
    for path in sorted(root.glob("*.safetensors")):
        with safe_open(path, framework="pt") as weights:
            for key in weights.keys():  # noqa: SIM118 (a safetensors file, not a dict)
                dtype = _SAFETENSORS_DTYPES.get(weights.get_slice(key).get_dtype())
                if dtype is not None:
                    return dtype
    return None


class EgoTwinTransformer3DModel(ModelMixin, ConfigMixin):
    """Three-branch diffusion transformer over text, video latents and motion latents.

    The first block of arguments is `CogVideoXTransformer3DModel`'s, with the same meaning and defaults (a CogVideoX
    config dict passes through unchanged); CogVideoX 1.5's temporal patches (`patch_size_t`) and `ofs` embedding are
    not supported, since the mask needs one token group per latent frame. The motion arguments:

    Args:
        motion_in_channels: channels `C_m` of a motion latent (the motion VAE's latent size).
        motion_out_channels: output channels of the motion head (default `motion_in_channels`).
        motion_dim: width of the motion branch.
        motion_num_layers: number of lower layers that carry the motion branch (default `num_layers // 2`).
        motion_ff_inner_dim: hidden width of the motion feed-forward (default `4 * motion_dim`).
        motion_time_scale: temporal position of motion latent j is `j * motion_time_scale` in video-latent-frame units.
        full_attention: open every video <-> motion pair (the "w/o IM" ablation) instead of the structured mask.
    """

    _supports_gradient_checkpointing = True
    _no_split_modules = ["CogVideoXBlock", "EgoTwinBlock", "CogVideoXPatchEmbed"]
    _skip_layerwise_casting_patterns = ["patch_embed", "norm"]

    @register_to_config
    def __init__(
        self,
        num_attention_heads: int = 30,
        attention_head_dim: int = 64,
        in_channels: int = 16,
        out_channels: int | None = 16,
        flip_sin_to_cos: bool = True,
        freq_shift: int = 0,
        time_embed_dim: int = 512,
        ofs_embed_dim: int | None = None,
        text_embed_dim: int = 4096,
        num_layers: int = 30,
        dropout: float = 0.0,
        attention_bias: bool = True,
        sample_width: int = 90,
        sample_height: int = 60,
        sample_frames: int = 49,
        patch_size: int = 2,
        patch_size_t: int | None = None,
        temporal_compression_ratio: int = 4,
        max_text_seq_length: int = 226,
        activation_fn: str = "gelu-approximate",
        timestep_activation_fn: str = "silu",
        norm_elementwise_affine: bool = True,
        norm_eps: float = 1e-5,
        spatial_interpolation_scale: float = 1.875,
        temporal_interpolation_scale: float = 1.0,
        use_rotary_positional_embeddings: bool = False,
        use_learned_positional_embeddings: bool = False,
        patch_bias: bool = True,
        motion_in_channels: int = 16,
        motion_out_channels: int | None = None,
        motion_dim: int = 512,
        motion_num_layers: int | None = None,
        motion_ff_inner_dim: int | None = None,
        motion_time_scale: float = 0.5,
        full_attention: bool = False,
    ):
        super().__init__()
        if patch_size_t is not None or ofs_embed_dim:
            raise ValueError(
                "EgoTwin supports CogVideoX 1.0 layouts only: patch_size_t and ofs_embed_dim must be None "
                "(the attention mask needs one token group per latent frame)"
            )
        if not use_rotary_positional_embeddings and use_learned_positional_embeddings:
            raise ValueError(
                "learned positional embeddings require use_rotary_positional_embeddings=True (as in CogVideoX)"
            )
        motion_num_layers = num_layers // 2 if motion_num_layers is None else motion_num_layers
        if not 1 <= motion_num_layers <= num_layers:
            raise ValueError(f"motion_num_layers must be in [1, {num_layers}], got {motion_num_layers}")
        if motion_dim % 2:
            raise ValueError(f"motion_dim must be even for the sinusoidal time encoding, got {motion_dim}")
        inner_dim = num_attention_heads * attention_head_dim
        values_per_token = (out_channels or in_channels) * patch_size**2
        if values_per_token > inner_dim:
            # proj_out would map inner_dim features to more values than that: its outputs span only an inner_dim
            # subspace, so the noise in the other directions is never predicted and stays in every sample
            raise ValueError(
                f"a {patch_size}x{patch_size} patch of {out_channels or in_channels} channels is {values_per_token} "
                f"values per token, more than the transformer's width ({inner_dim}): the output projection could "
                f"not predict every latent value; use a smaller patch_size or a wider model"
            )

        # 1. CogVideoX text/video input, time embedding (names as in CogVideoXTransformer3DModel).
        self.patch_embed = CogVideoXPatchEmbed(
            patch_size=patch_size,
            in_channels=in_channels,
            embed_dim=inner_dim,
            text_embed_dim=text_embed_dim,
            bias=patch_bias,
            sample_width=sample_width,
            sample_height=sample_height,
            sample_frames=sample_frames,
            temporal_compression_ratio=temporal_compression_ratio,
            max_text_seq_length=max_text_seq_length,
            spatial_interpolation_scale=spatial_interpolation_scale,
            temporal_interpolation_scale=temporal_interpolation_scale,
            use_positional_embeddings=not use_rotary_positional_embeddings,
            use_learned_positional_embeddings=use_learned_positional_embeddings,
        )
        self.embedding_dropout = nn.Dropout(dropout)
        self.time_proj = Timesteps(inner_dim, flip_sin_to_cos, freq_shift)
        self.time_embedding = TimestepEmbedding(inner_dim, time_embed_dim, timestep_activation_fn)

        # 2. Motion input and motion time embedding.
        self.motion_proj_in = nn.Linear(motion_in_channels, motion_dim)
        self.motion_time_proj = Timesteps(motion_dim, flip_sin_to_cos, freq_shift)
        self.motion_time_embedding = TimestepEmbedding(motion_dim, time_embed_dim, timestep_activation_fn)

        # 3. Blocks: the lower ones joined with a motion branch, the upper ones plain CogVideoX.
        block_kwargs = dict(
            dim=inner_dim,
            num_attention_heads=num_attention_heads,
            attention_head_dim=attention_head_dim,
            time_embed_dim=time_embed_dim,
            dropout=dropout,
            activation_fn=activation_fn,
            attention_bias=attention_bias,
            norm_elementwise_affine=norm_elementwise_affine,
            norm_eps=norm_eps,
        )
        motion_kwargs = dict(
            motion_dim=motion_dim,
            num_attention_heads=num_attention_heads,
            attention_head_dim=attention_head_dim,
            time_embed_dim=time_embed_dim,
            ff_inner_dim=motion_ff_inner_dim,
            attention_bias=attention_bias,
            activation_fn=activation_fn,
            dropout=dropout,
            norm_elementwise_affine=norm_elementwise_affine,
            norm_eps=norm_eps,
        )
        self.transformer_blocks = nn.ModuleList(
            [EgoTwinBlock(motion=MotionBranchLayer(**motion_kwargs), **block_kwargs) for _ in range(motion_num_layers)]
            + [CogVideoXBlock(**block_kwargs) for _ in range(num_layers - motion_num_layers)]
        )
        self.norm_final = nn.LayerNorm(inner_dim, norm_eps, norm_elementwise_affine)

        # 4. Output heads.
        self.norm_out = AdaLayerNorm(
            embedding_dim=time_embed_dim,
            output_dim=2 * inner_dim,
            norm_elementwise_affine=norm_elementwise_affine,
            norm_eps=norm_eps,
            chunk_dim=1,
        )
        self.proj_out = nn.Linear(inner_dim, patch_size * patch_size * out_channels)
        self.motion_norm_out = AdaLayerNorm(
            embedding_dim=time_embed_dim,
            output_dim=2 * motion_dim,
            norm_elementwise_affine=norm_elementwise_affine,
            norm_eps=norm_eps,
            chunk_dim=1,
        )
        self.motion_proj_out = nn.Linear(motion_dim, motion_out_channels or motion_in_channels)

        self.gradient_checkpointing = False

    @classmethod
    def from_pretrained(
        cls, pretrained_model_name_or_path: str | os.PathLike, **kwargs: Any
    ) -> "EgoTwinTransformer3DModel":
        """diffusers' `from_pretrained`, except that without `torch_dtype` (or `dtype`) the weights keep the dtype they
        were saved in (diffusers would load float32, twice the memory of a bf16 CogVideoX-5B checkpoint)."""
        dtype = kwargs.pop("dtype", None) or kwargs.pop("torch_dtype", None)  # diffusers' new name, and its old one
        dtype = dtype or stored_dtype(pretrained_model_name_or_path, kwargs.get("subfolder"))
        return super().from_pretrained(pretrained_model_name_or_path, dtype=dtype, **kwargs)

    @classmethod
    def from_cogvideox(
        cls,
        transformer: CogVideoXTransformer3DModel | str | os.PathLike,
        torch_dtype: torch.dtype | None = None,
        **motion_config: Any,
    ) -> "EgoTwinTransformer3DModel":
        """EgoTwin with text/video branches copied from a CogVideoX transformer and a fresh motion branch.

        Args:
            transformer: a `CogVideoXTransformer3DModel`, or a local folder holding one (diffusers format; either the
                transformer folder itself or a pipeline folder with a `transformer/` subfolder). Nothing is downloaded.
            torch_dtype: dtype of the model (default: the stored one, bf16 for the published CogVideoX-5B; the model
                is built in it, so a bf16 5B never exists in float32 on the way).
            motion_config: the motion arguments of `__init__` (`motion_dim=...`, ...).
        """
        if not isinstance(transformer, CogVideoXTransformer3DModel):
            folder = os.fspath(transformer)
            subfolder = "transformer" if os.path.isfile(os.path.join(folder, "transformer", "config.json")) else None
            torch_dtype = torch_dtype or stored_dtype(folder, subfolder)
            transformer = CogVideoXTransformer3DModel.from_pretrained(
                folder, subfolder=subfolder, dtype=torch_dtype, local_files_only=True
            )
        dtype = torch_dtype or transformer.dtype
        config = {key: value for key, value in transformer.config.items() if not key.startswith("_")}
        previous = torch.get_default_dtype()
        torch.set_default_dtype(dtype)  # the fresh motion branch is initialised in the model's dtype
        try:
            model = cls(**config, **motion_config)
        finally:
            torch.set_default_dtype(previous)
        model = model.to(transformer.device, dtype)
        missing, unexpected = model.load_state_dict(transformer.state_dict(), strict=False)
        not_motion = [key for key in missing if not cls.is_motion_parameter(key)]
        if unexpected or not_motion:
            raise ValueError(f"CogVideoX weights do not fit: unexpected {unexpected}, missing {not_motion}")
        return model

    @staticmethod
    def is_motion_parameter(name: str) -> bool:
        """True for the motion branch's parameters (new weights), False for CogVideoX's text/video weights."""
        return name.startswith("motion_") or ".motion." in name

    def motion_parameters(self) -> list[nn.Parameter]:
        """The motion branch's parameters (trained alone in stage 2 with the text branch frozen)."""
        return [param for name, param in self.named_parameters() if self.is_motion_parameter(name)]

    def video_rotary_embedding(
        self, num_frames: int, height: int, width: int, device: torch.device | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """CogVideoX 1.0's 3D RoPE for `num_frames` latent frames of `height x width` latents, as its pipeline builds
        it.

        Returns:
            (cos, sin), each `(num_frames * height/p * width/p, attention_head_dim)`.
        """
        p = self.config.patch_size
        grid_height, grid_width = height // p, width // p
        crops = get_resize_crop_region_for_grid(
            (grid_height, grid_width), self.config.sample_width // p, self.config.sample_height // p
        )
        return get_3d_rotary_pos_embed(
            embed_dim=self.config.attention_head_dim,
            crops_coords=crops,
            grid_size=(grid_height, grid_width),
            temporal_size=num_frames,
            device=device,
        )

    def motion_position_embedding(self, num_motion_latents: int, device: torch.device) -> torch.Tensor:
        """Sinusoidal encoding `(M, motion_dim)` of motion latents on the video's time axis (see module docstring)."""
        positions = torch.arange(num_motion_latents, device=device, dtype=torch.float64) * self.config.motion_time_scale
        return get_1d_sincos_pos_embed_from_grid(self.config.motion_dim, positions, dtype=torch.float64).float()

    def attention_mask(
        self, text_len: int, num_frames: int, tokens_per_frame: int, num_motion_latents: int, device: torch.device
    ) -> torch.Tensor | None:
        """The joint attention mask for these token counts, or None where every pair is open anyway."""
        if self.config.full_attention or num_frames == 0 or num_motion_latents == 0:
            return None
        return build_attention_mask(text_len, num_frames, tokens_per_frame, num_motion_latents, False, device)

    def forward(
        self,
        hidden_states: torch.Tensor | None,
        encoder_hidden_states: torch.Tensor,
        timestep: torch.Tensor | float | None,
        motion_hidden_states: torch.Tensor | None = None,
        motion_timestep: torch.Tensor | float | None = None,
        image_rotary_emb: tuple[torch.Tensor, torch.Tensor] | None = None,
        attention_kwargs: dict[str, Any] | None = None,
        return_dict: bool = True,
    ) -> EgoTwinTransformerOutput | tuple[torch.Tensor | None, torch.Tensor | None]:
        """Predict video and motion velocities.

        Args:
            hidden_states: noisy video latents `(B, F, C, H, W)`, or None for text + motion only (stage 2).
            encoder_hidden_states: text embeddings `(B, N_text, text_embed_dim)`; with sincos positions (2B style)
                `N_text` must equal `max_text_seq_length`, as in CogVideoX.
            timestep: video timestep `(B,)` (drives the video and text adaLN). Without video it may be None:
                the text adaLN then uses the motion timestep.
            motion_hidden_states: noisy motion latents `(B, M, C_m)`, or None for CogVideoX alone.
            motion_timestep: motion timestep `(B,)`, required with motion latents.
            image_rotary_emb: precomputed video RoPE (cos, sin); built here when the config uses RoPE and none is given.
        """
        if hidden_states is None and motion_hidden_states is None:
            raise ValueError("give video latents, motion latents, or both")
        if motion_hidden_states is not None and motion_timestep is None:
            raise ValueError("motion_timestep is required with motion latents")
        if hidden_states is not None and timestep is None:
            raise ValueError("timestep (the video timestep) is required with video latents")
        if timestep is None:
            timestep = motion_timestep
        batch_size = encoder_hidden_states.size(0)
        dtype = encoder_hidden_states.dtype

        # 1. Time embeddings
        emb = self.time_embedding(self.time_proj(timestep).to(dtype))
        motion_emb = None
        if motion_hidden_states is not None:
            motion_emb = self.motion_time_embedding(self.motion_time_proj(motion_timestep).to(dtype))

        # 2. Patch embeddings (CogVideoX's, text first) and motion embedding
        num_frames = height = width = 0
        if hidden_states is not None:
            _, num_frames, _, height, width = hidden_states.shape
            if self.config.use_rotary_positional_embeddings and image_rotary_emb is None:
                image_rotary_emb = self.video_rotary_embedding(num_frames, height, width, hidden_states.device)
            tokens = self.embedding_dropout(self.patch_embed(encoder_hidden_states, hidden_states))
            text_len = encoder_hidden_states.size(1)
            encoder_hidden_states, hidden_states = tokens[:, :text_len], tokens[:, text_len:]
        else:
            encoder_hidden_states = self.embedding_dropout(self.patch_embed.text_proj(encoder_hidden_states))
            hidden_states = encoder_hidden_states.new_zeros(batch_size, 0, encoder_hidden_states.size(-1))
            image_rotary_emb = None
        num_motion = 0
        if motion_hidden_states is not None:
            num_motion = motion_hidden_states.size(1)
            motion_hidden_states = self.motion_proj_in(motion_hidden_states)
            motion_hidden_states = motion_hidden_states + self.motion_position_embedding(
                num_motion, motion_hidden_states.device
            ).to(dtype)
            motion_hidden_states = self.embedding_dropout(motion_hidden_states)

        # 3. Transformer blocks; the mask is built once per shape (cached).
        p = self.config.patch_size
        mask = self.attention_mask(
            encoder_hidden_states.size(1), num_frames, (height // p) * (width // p), num_motion, hidden_states.device
        )
        for block in self.transformer_blocks:
            joint = isinstance(block, EgoTwinBlock)
            if not joint and num_frames == 0:
                break  # without video the upper layers cannot change the motion output
            args = (hidden_states, encoder_hidden_states, emb, image_rotary_emb, attention_kwargs)
            if joint:
                args += (motion_hidden_states, motion_emb, mask)
            if torch.is_grad_enabled() and self.gradient_checkpointing:
                outputs = self._gradient_checkpointing_func(block, *args)
            else:
                outputs = block(*args)
            hidden_states, encoder_hidden_states = outputs[0], outputs[1]
            if joint:
                motion_hidden_states = outputs[2]

        # 4. Output heads
        motion_output = None
        if motion_hidden_states is not None:
            motion_output = self.motion_proj_out(self.motion_norm_out(motion_hidden_states, temb=motion_emb))
        video_output = None
        if num_frames > 0:
            hidden_states = self.norm_final(hidden_states)
            hidden_states = self.proj_out(self.norm_out(hidden_states, temb=emb))
            # 5. Unpatchify (CogVideoX 1.0 layout)
            video_output = hidden_states.reshape(batch_size, num_frames, height // p, width // p, -1, p, p)
            video_output = video_output.permute(0, 1, 4, 2, 5, 3, 6).flatten(5, 6).flatten(3, 4)

        if not return_dict:
            return video_output, motion_output
        return EgoTwinTransformerOutput(sample=video_output, motion_sample=motion_output)

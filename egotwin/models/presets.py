"""Named configurations of the EgoTwin transformer: the shipped CPU model and the two CogVideoX scales.

`cogvideox-2b` and `cogvideox-5b` carry the exact transformer configs of the CogVideoX-2b / CogVideoX-5b checkpoints
(diffusers format) plus a motion branch on the lower half of the layers; `sample_frames` keeps the checkpoints'
value 49 (positional embeddings follow the actual frame count, 11 latent frames for a 5 s clip).
The 5b motion width 672 gives a motion branch of 294.4M parameters next to CogVideoX-5B's 5,570.3M (paper: ~300M).
"""

from typing import Any

from accelerate import init_empty_weights

from egotwin.models.transformer import EgoTwinTransformer3DModel

_COGVIDEOX_COMMON: dict[str, Any] = dict(
    attention_head_dim=64,
    in_channels=16,
    out_channels=16,
    time_embed_dim=512,
    text_embed_dim=4096,
    sample_width=90,
    sample_height=60,
    sample_frames=49,
    patch_size=2,
    max_text_seq_length=226,
    spatial_interpolation_scale=1.875,
    temporal_interpolation_scale=1.0,
    motion_in_channels=16,
)

TRANSFORMER_PRESETS: dict[str, dict[str, Any]] = {
    # The embedded CPU model: 64x64 frames -> 16-channel 8x8 latents, MiniLM text (384-d, 32 tokens), 32-channel motion
    # latents (the motion VAE's default width). Sized for the demo's budget: a 50-step T2VM sample is 50 batched
    # evaluations of 4 rows, about 120 ms each on 2 CPU cores at this width and depth (8 layers x 256 took 320 ms).
    "tiny": dict(
        num_attention_heads=3,
        attention_head_dim=64,
        in_channels=16,
        out_channels=16,
        time_embed_dim=128,
        text_embed_dim=384,
        num_layers=6,
        sample_width=8,
        sample_height=8,
        sample_frames=41,
        patch_size=2,
        max_text_seq_length=32,
        motion_in_channels=32,
        motion_dim=96,
        motion_num_layers=3,
    ),
    "cogvideox-2b": dict(
        _COGVIDEOX_COMMON,
        num_attention_heads=30,
        num_layers=30,
        use_rotary_positional_embeddings=False,
        motion_dim=448,
        motion_num_layers=15,
    ),
    "cogvideox-5b": dict(
        _COGVIDEOX_COMMON,
        num_attention_heads=48,
        num_layers=42,
        use_rotary_positional_embeddings=True,
        motion_dim=672,
        motion_num_layers=21,
    ),
}


def transformer_config(name: str, **overrides: Any) -> dict[str, Any]:
    """The keyword arguments of `EgoTwinTransformer3DModel` for preset `name`, with `overrides` applied."""
    if name not in TRANSFORMER_PRESETS:
        raise ValueError(f"unknown transformer preset {name!r}; choose one of {sorted(TRANSFORMER_PRESETS)}")
    return {**TRANSFORMER_PRESETS[name], **overrides}


def build_transformer(name: str, meta: bool = False, **overrides: Any) -> EgoTwinTransformer3DModel:
    """A randomly initialised transformer of preset `name`; `meta=True` allocates no weights (for counting)."""
    config = transformer_config(name, **overrides)
    if not meta:
        return EgoTwinTransformer3DModel(**config)
    with init_empty_weights():
        return EgoTwinTransformer3DModel(**config)


def parameter_counts(model: EgoTwinTransformer3DModel) -> dict[str, int]:
    """Parameter counts: `cogvideox` (text/video branches), `motion` (the new branch) and `total`."""
    motion = sum(param.numel() for param in model.motion_parameters())
    total = sum(param.numel() for param in model.parameters())
    return {"cogvideox": total - motion, "motion": motion, "total": total}


def count_parameters_cli() -> None:
    """Print the parameter counts of every preset (built on the meta device, so no memory is used)."""
    for name in TRANSFORMER_PRESETS:
        counts = parameter_counts(build_transformer(name, meta=True))
        print(f"{name:>14}: " + ", ".join(f"{key} {value / 1e6:,.1f}M" for key, value in counts.items()))


if __name__ == "__main__":
    count_parameters_cli()

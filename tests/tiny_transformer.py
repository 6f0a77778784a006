"""The tiny random CogVideoX-shaped transformer settings shared by the transformer, mask and diffusion tests
(diffusers' `get_dummy_components` practice): each test adds only the sizes it probes."""

TINY_COGVIDEOX = dict(
    num_attention_heads=2,
    attention_head_dim=16,
    in_channels=4,
    out_channels=4,
    time_embed_dim=32,
    text_embed_dim=24,
    patch_size=2,
    sample_frames=9,
)
TINY_MOTION = dict(motion_in_channels=6, motion_dim=32)

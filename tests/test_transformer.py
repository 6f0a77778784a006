"""The EgoTwin transformer against diffusers' CogVideoX, its motion branch, presets and parameter counts."""

from types import SimpleNamespace

import pytest
import torch
from accelerate import init_empty_weights
from diffusers import CogVideoXPipeline, CogVideoXTransformer3DModel
from diffusers.models.embeddings import get_1d_sincos_pos_embed_from_grid
from tiny_transformer import TINY_COGVIDEOX as TINY
from tiny_transformer import TINY_MOTION

from egotwin.models.presets import build_transformer, parameter_counts, transformer_config
from egotwin.models.transformer import EgoTwinTransformer3DModel

TINY_COGVIDEOX = dict(**TINY, num_layers=4, sample_width=8, sample_height=8, max_text_seq_length=7)
MOTION = TINY_MOTION


def random_cogvideox(rope: bool) -> CogVideoXTransformer3DModel:
    torch.manual_seed(0)
    model = CogVideoXTransformer3DModel(**TINY_COGVIDEOX, use_rotary_positional_embeddings=rope)
    # Random (not default-zero) adaLN weights so that every path carries signal.
    with torch.no_grad():
        for param in model.parameters():
            param.add_(0.05 * torch.randn_like(param))
    return model.eval()


def inputs(batch: int = 2, frames: int = 3):
    generator = torch.Generator().manual_seed(3)
    return (
        torch.randn(batch, frames, 4, 8, 8, generator=generator),
        torch.randn(batch, 7, 24, generator=generator),
        torch.tensor([10, 500][:batch]),
        torch.randn(batch, 5, 6, generator=generator),
        torch.tensor([900, 3][:batch]),
    )


@pytest.mark.parametrize("rope", [False, True], ids=["2b-sincos", "5b-rope"])
def test_without_motion_equals_diffusers_cogvideox(rope):
    cogvideox = random_cogvideox(rope)
    model = EgoTwinTransformer3DModel.from_cogvideox(cogvideox, **MOTION).eval()
    video, text, t, _, _ = inputs()
    # The rotary embedding as diffusers' own CogVideoX pipeline prepares it (VAE scale 8, pixel size = 8 x latent).
    fake_pipe = SimpleNamespace(vae_scale_factor_spatial=8, transformer=cogvideox)
    rotary = CogVideoXPipeline._prepare_rotary_positional_embeddings(fake_pipe, 64, 64, 3, "cpu") if rope else None
    with torch.no_grad():
        expected = cogvideox(video, text, t, image_rotary_emb=rotary).sample
        ours = model(video, text, t).sample  # builds its own RoPE when the config asks for it
    assert ours.shape == expected.shape == video.shape
    torch.testing.assert_close(ours, expected, atol=1e-5, rtol=1e-5)


def test_cogvideox_weights_load_with_strict_keys_for_text_and_video(tmp_path):
    cogvideox = random_cogvideox(rope=True)
    cogvideox.save_pretrained(tmp_path / "transformer")
    model = EgoTwinTransformer3DModel.from_cogvideox(tmp_path, **MOTION)  # pipeline folder with transformer/
    ours, theirs = model.state_dict(), cogvideox.state_dict()
    assert set(theirs) <= set(ours)
    assert all(EgoTwinTransformer3DModel.is_motion_parameter(key) for key in set(ours) - set(theirs))
    for key, value in theirs.items():
        assert torch.equal(ours[key], value), key


def test_motion_branch_changes_video_and_returns_motion():
    model = EgoTwinTransformer3DModel.from_cogvideox(random_cogvideox(rope=False), **MOTION).eval()
    video, text, t, motion, t_m = inputs()
    with torch.no_grad():
        plain = model(video, text, t).sample
        joint = model(video, text, t, motion_hidden_states=motion, motion_timestep=t_m)
        other_t_m = model(video, text, t, motion_hidden_states=motion, motion_timestep=t_m.flip(0))
    assert joint.motion_sample.shape == motion.shape
    assert (joint.sample - plain).abs().max() > 1e-4
    # The motion timestep drives the motion adaLN.
    assert (other_t_m.motion_sample - joint.motion_sample).abs().max() > 1e-4


def test_stage2_text_and_motion_only():
    model = EgoTwinTransformer3DModel.from_cogvideox(random_cogvideox(rope=True), **MOTION)
    _, text, _, motion, t_m = inputs()
    out = model(None, text, None, motion_hidden_states=motion, motion_timestep=t_m)
    assert out.sample is None and out.motion_sample.shape == motion.shape
    with torch.no_grad():
        other_text = model(None, text + 1.0, None, motion_hidden_states=motion, motion_timestep=t_m).motion_sample
    assert (other_text - out.motion_sample).abs().max() > 1e-4
    out.motion_sample.square().mean().backward()
    # Gradients reach the motion branch and the text input projection, not the video head or the upper layers.
    assert all(param.grad is not None for param in model.motion_parameters())
    assert model.patch_embed.text_proj.weight.grad is not None
    assert model.proj_out.weight.grad is None
    assert all(param.grad is None for param in model.transformer_blocks[-1].parameters())


def test_motion_positions_share_the_video_time_axis():
    model = EgoTwinTransformer3DModel(**TINY_COGVIDEOX, **MOTION)
    table = model.motion_position_embedding(21, torch.device("cpu"))
    # Motion latent 2i ends where video latent i ends (0.25 s vs 0.5 s per latent), so it sits at position i.
    frames = torch.arange(11, dtype=torch.float64)
    torch.testing.assert_close(table[::2], get_1d_sincos_pos_embed_from_grid(32, frames).float())


def test_loading_keeps_the_stored_dtype_or_takes_torch_dtype(tmp_path):
    """A bf16 CogVideoX folder (as CogVideoX-5B is published) gives a bf16 EgoTwin with CogVideoX's weights bit for
    bit and a motion branch initialised in bf16; `torch_dtype` overrides; EgoTwin's own folders load likewise."""
    cogvideox = random_cogvideox(rope=True).to(torch.bfloat16)
    cogvideox.save_pretrained(tmp_path / "cogvideox" / "transformer")
    model = EgoTwinTransformer3DModel.from_cogvideox(tmp_path / "cogvideox", **MOTION)
    assert {param.dtype for param in model.parameters()} == {torch.bfloat16}
    ours = model.state_dict()
    assert all(torch.equal(ours[key], value) for key, value in cogvideox.state_dict().items())
    assert all(param.abs().sum() > 0 for param in model.motion_parameters() if param.dim() > 1)
    assert (
        EgoTwinTransformer3DModel.from_cogvideox(tmp_path / "cogvideox", torch_dtype=torch.float32, **MOTION).dtype
        == torch.float32
    )
    model.save_pretrained(tmp_path / "egotwin")
    assert EgoTwinTransformer3DModel.from_pretrained(tmp_path / "egotwin").dtype == torch.bfloat16
    loaded = EgoTwinTransformer3DModel.from_pretrained(tmp_path / "egotwin", torch_dtype=torch.float32)
    assert loaded.dtype == torch.float32 and torch.equal(loaded.proj_out.weight, model.proj_out.weight.float())


def test_save_and_load_round_trip(tmp_path):
    model = EgoTwinTransformer3DModel(**TINY_COGVIDEOX, **MOTION, full_attention=True).eval()
    model.save_pretrained(tmp_path)
    loaded = EgoTwinTransformer3DModel.from_pretrained(tmp_path).eval()
    assert loaded.config.full_attention and loaded.config.motion_dim == 32
    video, text, t, motion, t_m = inputs()
    with torch.no_grad():
        a = model(video, text, t, motion_hidden_states=motion, motion_timestep=t_m)
        b = loaded(video, text, t, motion_hidden_states=motion, motion_timestep=t_m)
    assert torch.equal(a.sample, b.sample) and torch.equal(a.motion_sample, b.motion_sample)


def test_gradient_checkpointing_gives_the_same_gradients():
    video, text, t, motion, t_m = inputs()
    grads = []
    for checkpointing in (False, True):
        torch.manual_seed(0)
        model = EgoTwinTransformer3DModel(**TINY_COGVIDEOX, **MOTION)
        if checkpointing:
            model.enable_gradient_checkpointing()
        out = model(video, text, t, motion_hidden_states=motion, motion_timestep=t_m)
        (out.sample.square().mean() + out.motion_sample.square().mean()).backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None]))
    torch.testing.assert_close(grads[0], grads[1])


def test_bad_inputs_raise_clear_errors():
    model = EgoTwinTransformer3DModel(**TINY_COGVIDEOX, **MOTION)
    video, text, t, motion, _ = inputs()
    with pytest.raises(ValueError, match="motion_timestep"):
        model(video, text, t, motion_hidden_states=motion)
    with pytest.raises(ValueError, match="video latents, motion latents"):
        model(None, text, t)
    with pytest.raises(ValueError, match="patch_size_t"):
        EgoTwinTransformer3DModel(**TINY_COGVIDEOX, patch_size_t=2)
    with pytest.raises(ValueError, match="motion_num_layers"):
        EgoTwinTransformer3DModel(**TINY_COGVIDEOX, motion_num_layers=5)
    with pytest.raises(ValueError, match="unknown transformer preset"):
        transformer_config("cogvideox-9b")


def test_a_patch_wider_than_the_model_is_refused():
    """The tiny preset is 192 wide: 2x2 patches of 16 latent channels (64 values per token) fit, 4x4 patches (256) do
    not. A model built anyway could only output a 192-dimensional subspace of each token's 256 values, so a quarter of
    the noise would never be removed (a 4x4-patch model trained to 11000 steps sampled pure noise)."""
    tiny = transformer_config("tiny")
    assert tiny["num_attention_heads"] * tiny["attention_head_dim"] == 192
    with pytest.raises(ValueError, match="256 values per token, more than the transformer's width \\(192\\)"):
        EgoTwinTransformer3DModel(**{**tiny, "patch_size": 4, "sample_height": 16, "sample_width": 16})
    # exactly as wide as a token's values is accepted
    EgoTwinTransformer3DModel(
        **{**TINY_COGVIDEOX, "num_attention_heads": 1, "attention_head_dim": 16, "patch_size": 2, "out_channels": 4}
    )


@pytest.mark.parametrize("name", ["cogvideox-2b", "cogvideox-5b"])
def test_preset_text_video_part_counts_equal_cogvideox(name):
    model = build_transformer(name, meta=True)
    cogvideox_config = {k: v for k, v in transformer_config(name).items() if not k.startswith("motion_")}
    with init_empty_weights():
        cogvideox = CogVideoXTransformer3DModel(**cogvideox_config)
    counts = parameter_counts(model)
    assert counts["cogvideox"] == sum(p.numel() for p in cogvideox.parameters())
    assert len([b for b in model.transformer_blocks if hasattr(b, "motion")]) == model.config.num_layers // 2
    if name == "cogvideox-5b":
        assert counts["cogvideox"] == 5_570_283_072  # CogVideoX-5B's transformer
        assert 280e6 < counts["motion"] < 320e6  # the paper's ~300M motion branch


def test_tiny_preset_runs_a_5_second_clip():
    model = build_transformer("tiny").eval()
    generator = torch.Generator().manual_seed(0)
    video = torch.randn(1, 11, 16, 8, 8, generator=generator)
    motion = torch.randn(1, 21, 32, generator=generator)
    text = torch.randn(1, 32, 384, generator=generator)
    with torch.no_grad():
        out = model(video, text, torch.tensor([999]), motion_hidden_states=motion, motion_timestep=torch.tensor([0]))
    assert out.sample.shape == video.shape and out.motion_sample.shape == motion.shape
    assert torch.isfinite(out.sample).all() and torch.isfinite(out.motion_sample).all()

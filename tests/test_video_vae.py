"""The video VAE helpers around diffusers' AutoencoderKLCogVideoX: layouts, scaling, loading frozen, bad input."""

import pytest
import torch
from diffusers import AutoencoderKLCogVideoX

from egotwin.models.video_vae import (
    SMALL_VIDEO_VAE_CONFIG,
    decode_video,
    encode_video,
    encode_video_distribution,
    latent_scaling_factor,
    load_pretrained_video_vae,
    small_video_vae,
)


@pytest.fixture(scope="module")
def tiny_vae() -> AutoencoderKLCogVideoX:
    torch.manual_seed(0)
    return small_video_vae(block_out_channels=(8, 8, 8, 8), norm_num_groups=4, sample_height=32, sample_width=32).eval()


def test_small_default_is_a_few_million_parameters_with_cogvideox_compression():
    vae = small_video_vae()
    params = sum(p.numel() for p in vae.parameters())
    assert 1e6 < params < 6e6
    assert vae.config.latent_channels == 16 and vae.config.temporal_compression_ratio == 4
    assert 2 ** (len(vae.config.block_out_channels) - 1) == 8  # three spatial 2x stages
    assert SMALL_VIDEO_VAE_CONFIG["sample_height"] == 64


@torch.no_grad()
def test_block_count_sets_the_spatial_compression():
    """Three blocks: 4x in space (the next small model's layout), still 4x in time; fewer cannot compress time 4x."""
    torch.manual_seed(0)
    vae = small_video_vae(block_out_channels=(8, 8, 8), norm_num_groups=4).eval()
    latents = encode_video(vae, torch.rand(1, 3, 41, 64, 64) * 2 - 1)
    assert latents.shape == (1, 11, 16, 16, 16)
    assert decode_video(vae, latents).shape == (1, 3, 41, 64, 64)
    with pytest.raises(ValueError, match="at least 3 blocks"):
        small_video_vae(block_out_channels=(8, 8))


@torch.no_grad()
def test_41_frames_to_11_latents_in_transformer_layout(tiny_vae):
    video = torch.rand(2, 3, 41, 16, 16) * 2 - 1
    mean, std = encode_video_distribution(tiny_vae, video)
    assert mean.shape == std.shape == (2, 11, 16, 2, 2)
    # Same numbers as diffusers' own posterior, scaled and moved to (B, T', C, h, w).
    direct = tiny_vae.encode(video).latent_dist
    factor = tiny_vae.config.scaling_factor
    torch.testing.assert_close(mean, direct.mean.permute(0, 2, 1, 3, 4) * factor)
    torch.testing.assert_close(std, direct.std.permute(0, 2, 1, 3, 4) * factor)
    assert torch.equal(encode_video(tiny_vae, video), mean)
    sampled = encode_video(tiny_vae, video, sample=True, generator=torch.Generator().manual_seed(0))
    assert not torch.equal(sampled, mean)
    decoded = decode_video(tiny_vae, mean)
    assert decoded.shape == (2, 3, 41, 16, 16)
    torch.testing.assert_close(decoded, tiny_vae.decode(direct.mean).sample)


def test_bad_input_is_rejected(tiny_vae):
    with pytest.raises(ValueError, match="4k\\+1"):
        encode_video(tiny_vae, torch.zeros(1, 3, 40, 16, 16))
    with pytest.raises(ValueError, match="B, 3, T, H, W"):
        encode_video(tiny_vae, torch.zeros(1, 41, 3, 16, 16))
    with pytest.raises(ValueError, match="16"):
        decode_video(tiny_vae, torch.zeros(1, 11, 8, 2, 2))
    with pytest.raises(FileNotFoundError, match="no CogVideoX VAE"):
        load_pretrained_video_vae("/nonexistent")


@torch.no_grad()
def test_load_pretrained_from_a_cogvideox_folder_is_frozen_and_identical(tiny_vae, tmp_path):
    tiny_vae.save_pretrained(tmp_path / "cogvideox" / "vae")
    loaded = load_pretrained_video_vae(tmp_path / "cogvideox", tiling=True)
    assert not any(p.requires_grad for p in loaded.parameters()) and not loaded.training
    assert loaded.use_tiling and loaded.use_slicing
    video = torch.rand(1, 3, 9, 16, 16) * 2 - 1
    torch.testing.assert_close(encode_video(loaded, video), encode_video(tiny_vae, video))
    # A VAE folder itself (what stage 0 exports) loads too; a small VAE is not tiled by default.
    small = load_pretrained_video_vae(tmp_path / "cogvideox" / "vae")
    assert small.config.latent_channels == 16 and not small.use_tiling


def test_latent_scaling_factor_gives_unit_spread():
    latents = 3.0 * torch.randn(100_000, generator=torch.Generator().manual_seed(0))
    factor = latent_scaling_factor(latents)
    assert factor == pytest.approx(1 / 3, rel=1e-2)
    assert (latents * factor).std().item() == pytest.approx(1.0, rel=1e-4)


def test_mkldnn_route_matches_stock_convolutions_in_value_and_gradient():
    torch.manual_seed(1)
    routed = small_video_vae(block_out_channels=(8, 8, 8, 8), norm_num_groups=4, sample_height=32, sample_width=32)
    stock = AutoencoderKLCogVideoX.from_config(routed.config)
    routed.load_state_dict(stock.state_dict())
    video = torch.rand(1, 3, 9, 16, 16) * 2 - 1
    outputs = []
    for vae in (stock, routed):
        latents = vae.encode(video).latent_dist.mode()
        reconstruction = vae.decode(latents).sample
        reconstruction.square().mean().backward()
        outputs.append((reconstruction.detach(), vae.encoder.conv_in.conv.weight.grad.clone()))
    assert torch.allclose(outputs[0][0], outputs[1][0], atol=1e-5)
    assert torch.allclose(outputs[0][1], outputs[1][1], rtol=1e-3, atol=1e-6)

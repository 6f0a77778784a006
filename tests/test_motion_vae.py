"""The causal motion VAE: shapes, causality probes (random and after training), save/load, and the grouped loss."""

import math

import pytest
import torch

from egotwin.models.motion_vae import MotionLatentDistribution, MotionVAE, motion_vae_loss, num_latent_frames
from egotwin.motion.representation import get_representation


def tiny_vae(in_channels: int = 282) -> MotionVAE:
    torch.manual_seed(0)
    return MotionVAE(in_channels=in_channels, latent_channels=8, block_out_channels=(32, 32), layers_per_block=1)


def assert_causal_encoder(vae: MotionVAE, frames: int = 81) -> None:
    """Changing frame f leaves latents j < ceil(f / 4) bit-identical and changes latent ceil(f / 4)."""
    vae.eval()
    x = torch.randn(2, frames, vae.config.in_channels)
    with torch.no_grad():
        base = vae.encode(x)
        for f in (0, 1, 3, 4, 5, 40, 41, frames - 1):
            probe = x.clone()
            probe[:, f] += torch.randn_like(probe[:, f])
            out = vae.encode(probe)
            first = math.ceil(f / 4)
            for stat in ("mean", "logvar"):
                a, b = getattr(base, stat), getattr(out, stat)
                assert torch.equal(a[:, :first], b[:, :first]), f"frame {f} leaked into latents before {first}"
                assert not torch.allclose(a[:, first], b[:, first]), f"frame {f} did not reach latent {first}"


def assert_causal_decoder(vae: MotionVAE, latents: int = 21) -> None:
    """Changing latent j leaves decoded frames t < 4j - 3 bit-identical (frame t depends on latents <= ceil(t / 4))."""
    vae.eval()
    z = torch.randn(2, latents, vae.config.latent_channels)
    with torch.no_grad():
        base = vae.decode(z)
        for j in (0, 1, 2, 10, latents - 1):
            probe = z.clone()
            probe[:, j] += 1.0
            out = vae.decode(probe)
            first = max(4 * j - 3, 0)
            assert torch.equal(base[:, :first], out[:, :first])
            assert not torch.allclose(base[:, first], out[:, first])


def test_shapes_81_to_21_and_back():
    vae = tiny_vae()
    x = torch.randn(3, 81, 282)
    posterior = vae.encode(x)
    assert posterior.mean.shape == (3, 21, 8) and posterior.std.shape == (3, 21, 8)
    assert vae(x).sample.shape == (3, 81, 282)
    assert vae.encode(torch.randn(1, 5, 282)).mean.shape == (1, 2, 8)
    assert vae.encode(torch.randn(1, 1, 282)).mean.shape == (1, 1, 8)
    assert [num_latent_frames(t) for t in (1, 5, 41, 81)] == [1, 2, 11, 21]


def test_bad_input_is_rejected():
    vae = tiny_vae()
    with pytest.raises(ValueError, match="4k\\+1"):
        vae.encode(torch.randn(1, 80, 282))
    with pytest.raises(ValueError, match="282"):
        vae.encode(torch.randn(1, 81, 100))
    with pytest.raises(ValueError, match="latents"):
        vae.decode(torch.randn(1, 21, 9))
    with pytest.raises(ValueError, match="two 2x temporal stages"):
        MotionVAE(block_out_channels=(32, 32, 32))


def test_causality_at_random_init():
    vae = tiny_vae()
    assert_causal_encoder(vae)
    assert_causal_decoder(vae)


def test_causality_after_training_steps():
    vae = tiny_vae()
    groups = {"a": torch.arange(0, 100), "b": torch.arange(100, 282)}
    optimizer = torch.optim.AdamW(vae.parameters(), lr=1e-3)
    data = torch.randn(4, 81, 282)
    losses = []
    for _ in range(5):
        out = vae(data, generator=torch.Generator().manual_seed(0))
        loss, _ = motion_vae_loss(out.sample, data, out.latent_dist, groups)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    assert_causal_encoder(vae)
    assert_causal_decoder(vae)


def test_save_load_round_trip(tmp_path):
    vae = tiny_vae()
    vae.save_pretrained(tmp_path / "vae")
    loaded = MotionVAE.from_pretrained(tmp_path / "vae")
    assert loaded.config.latent_channels == 8 and tuple(loaded.config.block_out_channels) == (32, 32)
    x = torch.randn(2, 81, 282)
    with torch.no_grad():
        assert torch.equal(vae(x, sample_posterior=False).sample, loaded(x, sample_posterior=False).sample)


def test_loss_averages_group_means():
    target = torch.zeros(1, 5, 10)
    recon = torch.zeros(1, 5, 10)
    recon[..., 0] = 0.5  # one wrong feature in a group of 2, none in a group of 8
    groups = {"small": torch.tensor([0, 1]), "large": torch.arange(2, 10)}
    zero = MotionLatentDistribution(torch.zeros(1, 2, 4), torch.zeros(1, 2, 4))
    loss, logs = motion_vae_loss(recon, target, zero, groups, kl_weight=1.0)
    small = 0.5 * 0.5**2 / 2  # smooth-L1 of 0.5 is 0.125, averaged over the group's 2 features
    assert logs["recon/small"].item() == pytest.approx(small)
    assert logs["recon/large"].item() == 0.0
    assert logs["kl"].item() == 0.0  # N(0, I) has zero KL to the prior
    assert loss.item() == pytest.approx(small / 2)
    shifted = MotionLatentDistribution(torch.ones(1, 2, 4), torch.zeros(1, 2, 4))
    assert motion_vae_loss(recon, target, shifted, groups)[1]["kl"].item() == pytest.approx(0.5)


@pytest.mark.parametrize("name", ["head_centric", "root_centric"])
def test_works_with_either_representation(name):
    representation = get_representation(name)
    vae = tiny_vae(representation.dim)
    x = torch.randn(2, 81, representation.dim)
    out = vae(x)
    loss, logs = motion_vae_loss(out.sample, x, out.latent_dist, representation.loss_groups)
    assert torch.isfinite(loss) and set(logs) >= {f"recon/{g}" for g in representation.loss_groups}
    loss.backward()

"""Feature statistics: streaming agrees with numpy, floors, round trips, files and the errors for mismatched sizes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from egotwin.body.builtin import builtin_rest_joints
from egotwin.body.skeleton import HEAD
from egotwin.motion.head_centric import HeadCentricRepresentation
from egotwin.motion.normalization import DEFAULT_STD_FLOOR, FeatureStats, FeatureStatsError
from egotwin.motion.random_motion import smooth_random_motion


def test_streaming_matches_numpy_even_far_from_zero():
    """Chunks of different sizes, features offset by 1e8 with spread 1e-2: a naive sum of squares would cancel to
    garbage; the merged statistics match numpy over the whole array."""
    generator = torch.Generator().manual_seed(0)
    chunks = [1e8 + 1e-2 * torch.randn(n, 7, 5, generator=generator, dtype=torch.float64) for n in (1, 4, 2, 9)]
    stats = FeatureStats.accumulate(chunks, std_floor=1e-9)
    everything = torch.cat(chunks).reshape(-1, 5).numpy()
    assert stats.count == everything.shape[0] == 16 * 7
    np.testing.assert_allclose(stats.std.numpy(), everything.std(0), rtol=1e-5)
    np.testing.assert_allclose(stats.mean.double().numpy(), everything.mean(0), rtol=1e-7)


def test_head_centric_statistics_normalise_and_floor():
    rep = HeadCentricRepresentation()
    generator = torch.Generator().manual_seed(1)
    batches = [
        rep.encode_batch(*smooth_random_motion(8, 81, generator=generator), builtin_rest_joints()) for _ in range(3)
    ]
    stats = FeatureStats.accumulate(batches, representation=rep.name)
    assert stats.dim == 282 and stats.count == 3 * 8 * 81
    # The head's own joint position in the head frame is always zero: its spread is the floor, and it maps to 0.
    head_j_p = torch.arange(rep.parts["j_p"].start + 3 * HEAD, rep.parts["j_p"].start + 3 * HEAD + 3)
    assert (stats.std[head_j_p] == DEFAULT_STD_FLOOR).all()
    normalized = stats.normalize(torch.cat(batches).reshape(-1, 282))
    assert normalized[:, head_j_p].abs().max() < 1e-3
    varying = stats.std > DEFAULT_STD_FLOOR
    torch.testing.assert_close(normalized[:, varying].mean(0), torch.zeros(int(varying.sum())), rtol=0, atol=1e-4)
    torch.testing.assert_close(
        normalized[:, varying].std(0, correction=0), torch.ones(int(varying.sum())), rtol=0, atol=1e-4
    )
    torch.testing.assert_close(stats.denormalize(normalized), torch.cat(batches).reshape(-1, 282), rtol=0, atol=1e-5)


def test_save_and_load(tmp_path):
    stats = FeatureStats(
        mean=torch.linspace(-1, 1, 282), std=torch.linspace(0.1, 2, 282), count=123, representation="head_centric"
    )
    path = tmp_path / "motion_stats.safetensors"
    stats.save(path)
    loaded = FeatureStats.load(path, dim=282, representation="head_centric")
    assert torch.equal(loaded.mean, stats.mean) and torch.equal(loaded.std, stats.std)
    assert loaded.count == 123 and loaded.representation == "head_centric"
    with pytest.raises(FeatureStatsError, match="statistics are for 282 features, the model uses 269"):
        FeatureStats.load(path, dim=269)
    with pytest.raises(FeatureStatsError, match="not 'root_centric'"):
        FeatureStats.load(path, representation="root_centric")
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not a header")
    with pytest.raises(FeatureStatsError, match="not a readable statistics file"):
        FeatureStats.load(broken)
    with pytest.raises(FileNotFoundError):
        FeatureStats.load(tmp_path / "missing.safetensors")


def test_mismatches_are_clear_errors():
    stats = FeatureStats(mean=torch.zeros(269), std=torch.ones(269), representation="root_centric")
    with pytest.raises(FeatureStatsError, match="features have 282 values per frame but the statistics have 269"):
        stats.normalize(torch.zeros(2, 81, 282))
    with pytest.raises(FeatureStatsError, match="features have 282"):
        stats.denormalize(torch.zeros(282))
    with pytest.raises(FeatureStatsError, match="no features"):
        FeatureStats.accumulate([])
    with pytest.raises(FeatureStatsError, match="disagree in size"):
        FeatureStats.accumulate([torch.zeros(3, 4), torch.zeros(3, 5)])
    with pytest.raises(FeatureStatsError, match="finite and positive"):
        FeatureStats(mean=torch.zeros(3), std=torch.tensor([1.0, 0.0, 1.0]))
    with pytest.raises(FeatureStatsError, match="shape"):
        FeatureStats(mean=torch.zeros(3), std=torch.ones(4))

"""Known answers for FID, R-Precision, MM-Dist, diversity and F1."""

import numpy as np
import pytest
import scipy.linalg

from egotwin.eval.metrics import binary_f1, diversity, fid, frechet_distance, mm_dist, r_precision


def test_frechet_distance_of_two_diagonal_gaussians_is_analytic():
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    var1, var2 = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 1.0])
    expected = ((mu1 - mu2) ** 2).sum() + (var1 + var2 - 2 * np.sqrt(var1 * var2)).sum()  # = 5 + 1 + 1 + 4
    assert frechet_distance(mu1, np.diag(var1), mu2, np.diag(var2)) == pytest.approx(expected) == pytest.approx(11.0)


def test_frechet_distance_of_full_covariances_matches_the_commuting_formula():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(4, 4))
    sigma = a @ a.T + np.eye(4)
    # sigma and 4 sigma commute: sqrt(sigma 4 sigma) = 2 sigma -> distance = tr(sigma + 4 sigma - 4 sigma) = tr(sigma)
    assert frechet_distance(np.zeros(4), sigma, np.zeros(4), 4 * sigma) == pytest.approx(np.trace(sigma))
    assert frechet_distance(np.ones(4), sigma, np.ones(4), sigma) == pytest.approx(0.0, abs=1e-8)
    np.testing.assert_allclose(scipy.linalg.sqrtm(sigma @ (4 * sigma)), 2 * sigma, atol=1e-8)


def test_fid_of_samples_converges_to_the_gaussians_distance():
    rng = np.random.default_rng(1)
    a = rng.normal(0.0, 1.0, size=(20000, 2))
    b = rng.normal([3.0, 0.0], [2.0, 1.0], size=(20000, 2))
    assert fid(a, b) == pytest.approx(9.0 + (1 + 4 - 2 * 2), rel=0.03)
    assert fid(a, a) == pytest.approx(0.0, abs=1e-6)


def test_r_precision_known_ranks():
    motion = np.arange(32, dtype=float)[:, None]
    assert r_precision(motion, motion).tolist() == [1.0, 1.0, 1.0]
    # every text shifted by 0.6: the previous item's text (0.4 away) beats the own text (0.6), except for item 0
    shifted = motion + 0.6
    np.testing.assert_allclose(r_precision(motion, shifted), [1 / 32, 1.0, 1.0])
    # a last incomplete batch is dropped: 40 pairs score like the first 32
    np.testing.assert_allclose(r_precision(np.arange(40.0)[:, None], np.arange(40.0)[:, None] + 0.6), [1 / 32, 1, 1])
    with pytest.raises(ValueError, match="at least 32"):
        r_precision(motion[:10], motion[:10])


def test_r_precision_matches_a_brute_force_ranking():
    rng = np.random.default_rng(2)
    motion, text = rng.normal(size=(64, 8)), rng.normal(size=(64, 8))
    text[:, :4] = motion[:, :4]  # half informative
    hits = np.zeros(3)
    for b in range(2):
        m, t = motion[32 * b : 32 * (b + 1)], text[32 * b : 32 * (b + 1)]
        for i in range(32):
            order = np.argsort([np.linalg.norm(m[i] - t[j]) for j in range(32)])
            hits += [i in order[:k] for k in (1, 2, 3)]
    np.testing.assert_allclose(r_precision(motion, text), hits / 64)


def test_mm_dist_and_diversity():
    motion = np.zeros((5, 3))
    text = np.tile([3.0, 4.0, 0.0], (5, 1))
    assert mm_dist(motion, text) == pytest.approx(5.0)
    two_points = np.array([[0.0, 0.0], [0.0, 2.0]])
    assert diversity(two_points, num_pairs=50) == pytest.approx(2.0)


def test_binary_f1():
    assert binary_f1([1, 1, 0, 0], [1, 0, 1, 0]) == pytest.approx(0.5)
    assert binary_f1([[1, 0], [1, 1]], [[1, 0], [1, 1]]) == 1.0
    assert binary_f1([0, 0], [0, 0]) == 1.0
    assert binary_f1([1, 1], [0, 0]) == 0.0
    with pytest.raises(ValueError, match="shapes differ"):
        binary_f1([1, 0], [1, 0, 1])

"""Known answers for the Sim(3) alignment and the TransErr / RotErr metrics."""

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from egotwin.eval.trajectory import Sim3, rotation_angles, trajectory_errors, umeyama_alignment


def random_path(num: int = 41, seed: int = 0) -> np.ndarray:
    """(T, 4, 4) camera-to-world poses of a smooth random walk with turning."""
    rng = np.random.default_rng(seed)
    poses = np.tile(np.eye(4), (num, 1, 1))
    poses[:, :3, :3] = Rotation.from_rotvec(np.cumsum(rng.normal(0, 0.05, (num, 3)), 0)).as_matrix()
    poses[:, :3, 3] = np.cumsum(rng.normal(0, 0.1, (num, 3)), 0)
    return poses


def sim3_transform(poses: np.ndarray, rotation: np.ndarray, translation: np.ndarray, scale: float) -> np.ndarray:
    out = poses.copy()
    out[:, :3, :3] = rotation @ poses[:, :3, :3]
    out[:, :3, 3] = scale * poses[:, :3, 3] @ rotation.T + translation
    return out


def test_umeyama_recovers_a_known_similarity():
    rng = np.random.default_rng(1)
    source = rng.normal(size=(50, 3))
    rotation = Rotation.from_rotvec([0.3, -1.2, 0.7]).as_matrix()
    truth = Sim3(rotation, np.array([1.0, -2.0, 0.5]), 2.5)
    fitted = umeyama_alignment(source, truth.apply(source))
    np.testing.assert_allclose(fitted.rotation, rotation, atol=1e-10)
    np.testing.assert_allclose(fitted.translation, truth.translation, atol=1e-10)
    assert fitted.scale == pytest.approx(2.5, abs=1e-10)
    np.testing.assert_allclose(fitted.matrix()[:3, :3], 2.5 * rotation, atol=1e-10)


def test_umeyama_rotation_matches_scipy_kabsch_on_noisy_points():
    rng = np.random.default_rng(2)
    source = rng.normal(size=(30, 3))
    target = source @ Rotation.from_rotvec([0.1, 0.5, -0.4]).as_matrix().T + rng.normal(0, 0.05, (30, 3))
    fitted = umeyama_alignment(source, target, with_scale=False)
    # SciPy's Kabsch solver on the centred sets is an independent implementation of the same least squares
    kabsch, _ = Rotation.align_vectors(target - target.mean(0), source - source.mean(0))
    np.testing.assert_allclose(fitted.rotation, kabsch.as_matrix(), atol=1e-9)
    assert fitted.scale == 1.0


def test_umeyama_never_returns_a_reflection():
    rng = np.random.default_rng(3)
    source = rng.normal(size=(20, 3))
    mirrored = source * np.array([1.0, 1.0, -1.0])
    assert np.linalg.det(umeyama_alignment(source, mirrored).rotation) == pytest.approx(1.0)


def test_identical_trajectories_have_zero_error():
    path = random_path()
    errors = trajectory_errors(path, path)
    assert errors.trans_err == pytest.approx(0.0, abs=1e-9)
    assert errors.rot_err == pytest.approx(0.0, abs=1e-6)
    assert errors.scale == pytest.approx(1.0)


def test_rotated_and_similarity_transformed_copies_have_zero_error():
    path = random_path(seed=4)
    rotated = sim3_transform(path, Rotation.from_rotvec([0.0, 2.0, 0.0]).as_matrix(), np.zeros(3), 1.0)
    moved = sim3_transform(path, Rotation.from_rotvec([0.4, -0.3, 1.1]).as_matrix(), np.array([3.0, -1.0, 2.0]), 0.37)
    for copy in (rotated, moved):
        errors = trajectory_errors(copy, path)
        assert errors.trans_err == pytest.approx(0.0, abs=1e-8)
        assert errors.rot_err == pytest.approx(0.0, abs=1e-5)
    assert trajectory_errors(moved, path).scale == pytest.approx(1 / 0.37)


def test_known_perturbations_give_their_analytic_errors():
    path = random_path(seed=5)
    # rotation: a fixed 0.1 rad turn about each camera's own z axis from frame 1 on -> RotErr = 40 * 0.1
    turned = path.copy()
    turned[1:, :3, :3] = path[1:, :3, :3] @ Rotation.from_rotvec([0, 0, 0.1]).as_matrix()
    errors = trajectory_errors(turned, path)
    assert errors.rot_err == pytest.approx(40 * 0.1, abs=1e-9)
    assert errors.rot_err_mean == pytest.approx(40 * 0.1 / 41, abs=1e-9)
    assert errors.trans_err == pytest.approx(0.0, abs=1e-9)
    # translation: a reference displaced along y by n_t, with n orthogonal to (1, x, z) of a path in the x-z plane,
    # leaves the identity as the best similarity (the displacement is uncorrelated with the path) -> TransErr = sum |n|
    rng = np.random.default_rng(6)
    planar = np.tile(np.eye(4), (41, 1, 1))
    planar[:, 0, 3], planar[:, 2, 3] = rng.normal(size=41), rng.normal(size=41)
    basis = np.stack([np.ones(41), planar[:, 0, 3], planar[:, 2, 3]], 1)
    noise = rng.normal(0, 0.05, 41)
    noise -= basis @ np.linalg.lstsq(basis, noise, rcond=None)[0]
    displaced = planar.copy()
    displaced[:, 1, 3] += noise
    errors = trajectory_errors(planar, displaced)
    assert errors.scale == pytest.approx(1.0, abs=1e-9)
    assert errors.trans_err == pytest.approx(np.abs(noise).sum(), abs=1e-9)


def test_rotation_angles_match_scipy():
    a = Rotation.random(10, random_state=0).as_matrix()
    b = Rotation.random(10, random_state=1).as_matrix()
    expected = (Rotation.from_matrix(a) * Rotation.from_matrix(b).inv()).magnitude()
    np.testing.assert_allclose(rotation_angles(a, b), expected, atol=1e-9)


def test_bad_input_is_rejected():
    path = random_path()
    with pytest.raises(ValueError, match="equal length"):
        trajectory_errors(path[:10], path)
    broken = path.copy()
    broken[3, 0, 3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        trajectory_errors(broken, path)
    with pytest.raises(ValueError, match=r"\(N, 3\)"):
        umeyama_alignment(np.zeros((4, 2)), np.zeros((4, 2)))


def test_a_motionless_estimate_is_compared_as_is():
    path = random_path(seed=6)
    still = np.tile(np.eye(4), (41, 1, 1))
    errors = trajectory_errors(still, path)
    centred = path[:, :3, 3] - path[:, :3, 3].mean(0)
    assert errors.trans_err == pytest.approx(np.linalg.norm(centred, axis=1).sum())

"""Rotation conversions checked against scipy.spatial.transform.Rotation on random rotations, including angles near 0
and near pi, where the naive formulas lose precision."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation, Slerp

from egotwin.body.rotations import (
    axis_angle_to_matrix,
    axis_angle_to_quaternion,
    geodesic_angle,
    gram_schmidt,
    matrix_to_axis_angle,
    matrix_to_quaternion,
    matrix_to_rotation_6d,
    quaternion_slerp,
    quaternion_to_axis_angle,
    quaternion_to_matrix,
    rotation_6d_to_matrix,
    rotation_about_y,
)


def rotvecs(rng: np.random.Generator) -> np.ndarray:
    """(N, 3) rotation vectors: uniform random rotations, plus angles near 0 and near pi, and exactly 0 and pi."""
    axes = rng.normal(size=(60, 3))
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    angles = np.concatenate(
        (
            np.zeros(1),
            [1e-9, 1e-7, 1e-5, 1e-3],
            rng.uniform(0, 1e-4, 10),
            [np.pi, np.pi - 1e-9, np.pi - 1e-6, np.pi - 1e-4],
            np.pi - rng.uniform(0, 1e-3, 10),
            rng.uniform(0, np.pi, 30),
        )
    )
    uniform = Rotation.random(100, random_state=int(rng.integers(1 << 31))).as_rotvec()
    return np.concatenate((axes[: len(angles)] * angles[:, None], uniform))


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


def as_torch(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(x).double()


def same_rotation_vector(a: np.ndarray, b: np.ndarray, atol: float) -> None:
    """Rotation vectors agree, allowing the axis flip that leaves a rotation by exactly pi unchanged."""
    close = np.isclose(a, b, atol=atol).all(-1)
    angle = np.linalg.norm(b, axis=-1)
    flipped = np.isclose(a, -b, atol=atol).all(-1) & (np.abs(angle - np.pi) < 1e-3)
    assert (close | flipped).all(), np.abs(a - b).max(-1)[~(close | flipped)]


def test_axis_angle_to_matrix_matches_scipy(rng: np.random.Generator) -> None:
    v = rotvecs(rng)
    expected = Rotation.from_rotvec(v).as_matrix()
    np.testing.assert_allclose(axis_angle_to_matrix(as_torch(v)).numpy(), expected, atol=1e-12)
    # float32 stays accurate at tiny angles (the Taylor branch) too
    np.testing.assert_allclose(axis_angle_to_matrix(torch.from_numpy(v).float()).numpy(), expected, atol=2e-6)


def test_matrix_to_quaternion_matches_scipy(rng: np.random.Generator) -> None:
    v = rotvecs(rng)
    expected = Rotation.from_rotvec(v).as_quat()[:, [3, 0, 1, 2]]  # scipy is scalar-last
    expected *= np.where(expected[:, :1] < 0, -1, 1)
    q = matrix_to_quaternion(as_torch(Rotation.from_rotvec(v).as_matrix())).numpy()
    assert (q[:, 0] >= 0).all()
    # q and -q are the same rotation; at angle pi (w = 0) the sign is not fixed by w >= 0
    sign = np.where((q * expected).sum(-1, keepdims=True) < 0, -1, 1)
    np.testing.assert_allclose(q * sign, expected, atol=1e-9)
    matrices = Rotation.from_rotvec(v).as_matrix()
    np.testing.assert_allclose(quaternion_to_matrix(as_torch(expected)).numpy(), matrices, atol=1e-12)


def test_matrix_to_axis_angle_matches_scipy_near_zero_and_pi(rng: np.random.Generator) -> None:
    v = rotvecs(rng)
    matrices = Rotation.from_rotvec(v).as_matrix()
    ours = matrix_to_axis_angle(as_torch(matrices)).numpy()
    same_rotation_vector(ours, Rotation.from_matrix(matrices).as_rotvec(), atol=1e-7)
    np.testing.assert_allclose(np.linalg.norm(ours, axis=-1), np.linalg.norm(v, axis=-1), atol=1e-7)


def test_quaternion_axis_angle_round_trip(rng: np.random.Generator) -> None:
    v = rotvecs(rng)
    q = axis_angle_to_quaternion(as_torch(v))
    np.testing.assert_allclose(q.numpy(), Rotation.from_rotvec(v).as_quat()[:, [3, 0, 1, 2]], atol=1e-12)
    same_rotation_vector(quaternion_to_axis_angle(q).numpy(), v, atol=1e-9)
    # the negated quaternion is the same rotation and maps to the same rotation vector
    same_rotation_vector(quaternion_to_axis_angle(-q).numpy(), v, atol=1e-9)


def test_6d_round_trip_and_layout(rng: np.random.Generator) -> None:
    matrices = as_torch(Rotation.random(50, random_state=1).as_matrix())
    d6 = matrix_to_rotation_6d(matrices)
    assert d6.shape == (50, 6)
    torch.testing.assert_close(d6[:, :3], matrices[:, :, 0])  # first column, then second column
    torch.testing.assert_close(d6[:, 3:], matrices[:, :, 1])
    torch.testing.assert_close(rotation_6d_to_matrix(d6), matrices)


def test_6d_of_arbitrary_input_is_a_proper_rotation() -> None:
    d6 = torch.randn(7, 5, 6, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 3
    r = rotation_6d_to_matrix(d6)
    assert r.shape == (7, 5, 3, 3)
    torch.testing.assert_close(r @ r.transpose(-1, -2), torch.eye(3, dtype=torch.float64).expand_as(r))
    torch.testing.assert_close(torch.linalg.det(r), torch.ones(7, 5, dtype=torch.float64))
    # Gram-Schmidt keeps the direction of the first vector and the plane of the first two
    torch.testing.assert_close(r[..., :, 0], d6[..., :3] / d6[..., :3].norm(dim=-1, keepdim=True))
    torch.testing.assert_close(torch.linalg.cross(r[..., :, 0], r[..., :, 1]), r[..., :, 2])
    assert ((r[..., :, 1] * d6[..., 3:]).sum(-1) > 0).all()
    torch.testing.assert_close(gram_schmidt(d6[..., :3], d6[..., 3:]), r)


def test_batch_shapes_are_preserved() -> None:
    g = torch.Generator().manual_seed(0)
    v = torch.randn(2, 3, 4, 3, generator=g)
    m = axis_angle_to_matrix(v)
    assert m.shape == (2, 3, 4, 3, 3)
    assert matrix_to_quaternion(m).shape == (2, 3, 4, 4)
    assert matrix_to_axis_angle(m).shape == (2, 3, 4, 3)
    assert matrix_to_rotation_6d(m).shape == (2, 3, 4, 6)
    assert geodesic_angle(m, m).shape == (2, 3, 4)
    # batched results equal element-wise results
    torch.testing.assert_close(matrix_to_axis_angle(m)[1, 2, 3], matrix_to_axis_angle(m[1, 2, 3]))
    assert axis_angle_to_matrix(torch.zeros(3)).shape == (3, 3)


def test_rotation_about_y_matches_scipy() -> None:
    angles = np.linspace(-np.pi, np.pi, 13)
    np.testing.assert_allclose(
        rotation_about_y(as_torch(angles)).numpy(), Rotation.from_euler("y", angles[:, None]).as_matrix(), atol=1e-12
    )


def test_geodesic_angle_matches_scipy_magnitude(rng: np.random.Generator) -> None:
    v = rotvecs(rng)
    r1 = Rotation.random(len(v), random_state=2)
    r2 = r1 * Rotation.from_rotvec(v)
    ours = geodesic_angle(as_torch(r1.as_matrix()), as_torch(r2.as_matrix())).numpy()
    np.testing.assert_allclose(ours, (r1.inv() * r2).magnitude(), atol=1e-7)
    np.testing.assert_allclose(ours, np.linalg.norm(v, axis=-1), atol=1e-7)


def test_slerp_matches_scipy(rng: np.random.Generator) -> None:
    starts = Rotation.random(20, random_state=3)
    ends = Rotation.random(20, random_state=4)
    # include nearly identical and nearly opposite pairs
    ends = Rotation.concatenate(
        [
            ends,
            starts[:3] * Rotation.from_rotvec([[1e-8, 0, 0]] * 3),
            starts[3:6] * Rotation.from_rotvec([[0, np.pi - 1e-3, 0]] * 3),
        ]
    )
    starts = Rotation.concatenate([starts, starts[:6]])
    t = np.linspace(0, 1, 7)
    q0 = as_torch(starts.as_quat()[:, [3, 0, 1, 2]])
    q1 = -as_torch(ends.as_quat()[:, [3, 0, 1, 2]])  # the sign must not matter: slerp takes the shorter arc
    for i in range(len(starts)):
        expected = Slerp([0, 1], Rotation.concatenate([starts[i], ends[i]]))(t).as_matrix()
        ours = quaternion_to_matrix(quaternion_slerp(q0[i].expand(7, 4), q1[i].expand(7, 4), as_torch(t))).numpy()
        np.testing.assert_allclose(ours, expected, atol=1e-9)

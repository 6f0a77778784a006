"""Batched rotation conversions in torch.

Conventions (fixed for the whole project):
- rotation matrices act on column vectors: v_world = R @ v_local.
- 6D = the first two columns of the matrix, column after column: (R00, R10, R20, R01, R11, R21) (Zhou et al. 2019).
- quaternions are scalar-first (w, x, y, z), unit norm; scipy's `as_quat()` is scalar-last.
- axis-angle is the rotation vector axis * angle (SMPL-X's pose layout).
All functions take any leading batch shape `(...)`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def gram_schmidt(a1: torch.Tensor, a2: torch.Tensor) -> torch.Tensor:
    """Orthonormal frame from two (..., 3) vectors: b1 = a1/|a1|, b2 = a2 minus its b1 part, b3 = b1 x b2.
    Returns (..., 3, 3) with b1, b2, b3 as columns."""
    b1 = F.normalize(a1, dim=-1)
    b2 = F.normalize(a2 - (b1 * a2).sum(-1, keepdim=True) * b1, dim=-1)
    b3 = torch.linalg.cross(b1, b2, dim=-1)
    return torch.stack((b1, b2, b3), dim=-1)


def matrix_to_rotation_6d(matrix: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3) -> (..., 6): the first two columns."""
    return torch.cat((matrix[..., :, 0], matrix[..., :, 1]), dim=-1)


def rotation_6d_to_matrix(d6: torch.Tensor) -> torch.Tensor:
    """(..., 6) -> (..., 3, 3) through Gram-Schmidt, so any 6D vector (e.g. a network output) gives a rotation."""
    return gram_schmidt(d6[..., :3], d6[..., 3:])


def _skew(v: torch.Tensor) -> torch.Tensor:
    zero = torch.zeros_like(v[..., 0])
    x, y, z = v.unbind(-1)
    return torch.stack((zero, -z, y, z, zero, -x, -y, x, zero), dim=-1).reshape(*v.shape[:-1], 3, 3)


def axis_angle_to_matrix(axis_angle: torch.Tensor) -> torch.Tensor:
    """(..., 3) rotation vectors -> (..., 3, 3) by Rodrigues' formula, with Taylor terms near zero angle."""
    theta2 = (axis_angle * axis_angle).sum(-1, keepdim=True)[..., None]  # (..., 1, 1)
    theta = theta2.clamp_min(1e-24).sqrt()
    small = theta2 < 1e-8
    # sin(t)/t and (1 - cos t)/t^2, replaced by their series where t is tiny to avoid 0/0.
    a = torch.where(small, 1 - theta2 / 6, torch.sin(theta) / theta)
    b = torch.where(small, 0.5 - theta2 / 24, (1 - torch.cos(theta)) / theta2.clamp_min(1e-24))
    k = _skew(axis_angle)
    eye = torch.eye(3, dtype=axis_angle.dtype, device=axis_angle.device).expand_as(k)
    return eye + a * k + b * (k @ k)


def matrix_to_quaternion(matrix: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3) -> (..., 4) scalar-first unit quaternion with w >= 0 (Shepperd's method: stable for every angle)."""
    m = matrix
    m00, m11, m22 = m[..., 0, 0], m[..., 1, 1], m[..., 2, 2]
    # Four candidate solutions, each well conditioned when its leading component is the largest.
    q_abs = (
        torch.stack((1 + m00 + m11 + m22, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22), dim=-1)
        .clamp_min(0)
        .sqrt()
    )
    r = lambda i, j: m[..., i, j]  # noqa: E731
    candidates = torch.stack(
        (
            torch.stack((q_abs[..., 0] ** 2, r(2, 1) - r(1, 2), r(0, 2) - r(2, 0), r(1, 0) - r(0, 1)), -1),
            torch.stack((r(2, 1) - r(1, 2), q_abs[..., 1] ** 2, r(1, 0) + r(0, 1), r(0, 2) + r(2, 0)), -1),
            torch.stack((r(0, 2) - r(2, 0), r(1, 0) + r(0, 1), q_abs[..., 2] ** 2, r(2, 1) + r(1, 2)), -1),
            torch.stack((r(1, 0) - r(0, 1), r(2, 0) + r(0, 2), r(2, 1) + r(1, 2), q_abs[..., 3] ** 2), -1),
        ),
        dim=-2,
    ) / (2 * q_abs[..., None].clamp_min(0.1))
    best = q_abs.argmax(-1)
    q = torch.gather(candidates, -2, best[..., None, None].expand(*best.shape, 1, 4)).squeeze(-2)
    q = F.normalize(q, dim=-1)
    return torch.where(q[..., :1] < 0, -q, q)


def quaternion_to_matrix(quaternion: torch.Tensor) -> torch.Tensor:
    """(..., 4) scalar-first quaternion (normalised here) -> (..., 3, 3)."""
    w, x, y, z = F.normalize(quaternion, dim=-1).unbind(-1)
    return torch.stack(
        (
            1 - 2 * (y * y + z * z),
            2 * (x * y - w * z),
            2 * (x * z + w * y),
            2 * (x * y + w * z),
            1 - 2 * (x * x + z * z),
            2 * (y * z - w * x),
            2 * (x * z - w * y),
            2 * (y * z + w * x),
            1 - 2 * (x * x + y * y),
        ),
        dim=-1,
    ).reshape(*quaternion.shape[:-1], 3, 3)


def quaternion_to_axis_angle(quaternion: torch.Tensor) -> torch.Tensor:
    """(..., 4) -> (..., 3) rotation vector with angle in [0, pi]."""
    q = F.normalize(quaternion, dim=-1)
    q = torch.where(q[..., :1] < 0, -q, q)
    v = q[..., 1:]
    sin_half = v.norm(dim=-1, keepdim=True)
    angle = 2 * torch.atan2(sin_half, q[..., :1])
    # angle / sin(angle/2), with its limit 2 (+ angle^2/12) for tiny angles.
    scale = torch.where(sin_half < 1e-6, 2 + angle * angle / 12, angle / sin_half.clamp_min(1e-12))
    return v * scale


def axis_angle_to_quaternion(axis_angle: torch.Tensor) -> torch.Tensor:
    """(..., 3) -> (..., 4) scalar-first quaternion."""
    angle = axis_angle.norm(dim=-1, keepdim=True)
    half = angle / 2
    scale = torch.where(angle < 1e-6, 0.5 - angle * angle / 48, torch.sin(half) / angle.clamp_min(1e-12))
    return torch.cat((torch.cos(half), axis_angle * scale), dim=-1)


def matrix_to_axis_angle(matrix: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3) -> (..., 3), through the quaternion (exact near 0 and near pi)."""
    return quaternion_to_axis_angle(matrix_to_quaternion(matrix))


def quaternion_slerp(q0: torch.Tensor, q1: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation of unit quaternions (..., 4) at fractions t (...,), along the shorter arc."""
    dot = (q0 * q1).sum(-1, keepdim=True)
    q1 = torch.where(dot < 0, -q1, q1)
    dot = dot.abs().clamp(max=1.0)
    t = t[..., None]
    omega = torch.acos(dot)
    sin_omega = torch.sin(omega)
    linear = sin_omega < 1e-6  # nearly identical: linear interpolation is exact to float precision
    w0 = torch.where(linear, 1 - t, torch.sin((1 - t) * omega) / sin_omega.clamp_min(1e-12))
    w1 = torch.where(linear, t, torch.sin(t * omega) / sin_omega.clamp_min(1e-12))
    return F.normalize(w0 * q0 + w1 * q1, dim=-1)


def rotation_about_y(angle: torch.Tensor) -> torch.Tensor:
    """(...,) yaw angles in radians -> (..., 3, 3) rotations about the world up axis (+y)."""
    c, s = torch.cos(angle), torch.sin(angle)
    one, zero = torch.ones_like(angle), torch.zeros_like(angle)
    return torch.stack((c, zero, s, zero, one, zero, -s, zero, c), dim=-1).reshape(*angle.shape, 3, 3)


def geodesic_angle(r1: torch.Tensor, r2: torch.Tensor) -> torch.Tensor:
    """Angle in radians of the rotation taking r1 to r2, for (..., 3, 3) inputs."""
    rel = r1.transpose(-1, -2) @ r2
    cos = ((rel.diagonal(dim1=-2, dim2=-1).sum(-1) - 1) / 2).clamp(-1.0, 1.0)
    # acos loses precision near 0; use atan2 of the sine (from the skew part) and cosine.
    skew = torch.stack(
        (rel[..., 2, 1] - rel[..., 1, 2], rel[..., 0, 2] - rel[..., 2, 0], rel[..., 1, 0] - rel[..., 0, 1]), -1
    )
    return torch.atan2(skew.norm(dim=-1) / 2, cos)

"""Forward kinematics checked against smplx.lbs.batch_rigid_transform, plus the local/global round trip."""

from __future__ import annotations

import math

import pytest
import torch

from egotwin.body.builtin import builtin_rest_joints
from egotwin.body.kinematics import forward_kinematics, local_from_global
from egotwin.body.rotations import axis_angle_to_matrix, rotation_about_y
from egotwin.body.skeleton import JOINT_INDEX, NUM_JOINTS, PARENTS

lbs = pytest.importorskip("smplx.lbs")


def random_pose(batch: int, seed: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return axis_angle_to_matrix(torch.randn(batch, NUM_JOINTS, 3, generator=g, dtype=dtype) * 0.8)


def test_matches_smplx_batch_rigid_transform() -> None:
    rotations = random_pose(16, 0)
    rest = builtin_rest_joints(1.8, dtype=torch.float64)
    global_rot, joints = forward_kinematics(rotations, rest)
    posed_joints, rel_transforms = lbs.batch_rigid_transform(
        rotations, rest.expand(16, NUM_JOINTS, 3), torch.tensor(PARENTS), dtype=torch.float64
    )
    torch.testing.assert_close(joints, posed_joints)
    torch.testing.assert_close(global_rot, rel_transforms[..., :3, :3])
    # smplx's relative transform maps a rest point x to R (x - rest_j) + p_j
    torch.testing.assert_close(rel_transforms[..., :3, 3], joints - (global_rot @ rest[..., None])[..., 0])


def test_per_sample_rest_joints_and_translation() -> None:
    rotations = random_pose(5, 1)
    g = torch.Generator().manual_seed(1)
    jitter = 0.02 * torch.randn(5, NUM_JOINTS, 3, generator=g, dtype=torch.float64)
    rest = builtin_rest_joints(1.7, dtype=torch.float64) + jitter
    trans = torch.randn(5, 3, generator=g, dtype=torch.float64)
    _, joints = forward_kinematics(rotations, rest, trans)
    posed_joints, _ = lbs.batch_rigid_transform(rotations, rest, torch.tensor(PARENTS), dtype=torch.float64)
    torch.testing.assert_close(joints, posed_joints + trans[:, None])
    torch.testing.assert_close(joints[:, 0], rest[:, 0] + trans)  # SMPL-X semantics: pelvis at rest_joints[0] + trans


def test_bone_lengths_are_preserved_and_batch_shapes() -> None:
    rotations = random_pose(6, 2).reshape(2, 3, NUM_JOINTS, 3, 3)
    rest = builtin_rest_joints(1.7, dtype=torch.float64)
    global_rot, joints = forward_kinematics(rotations, rest, torch.zeros(2, 3, 3, dtype=torch.float64))
    assert global_rot.shape == (2, 3, NUM_JOINTS, 3, 3) and joints.shape == (2, 3, NUM_JOINTS, 3)
    parents = torch.tensor(PARENTS[1:])
    torch.testing.assert_close(
        (joints[..., 1:, :] - joints[..., parents, :]).norm(dim=-1),
        (rest[1:] - rest[parents]).norm(dim=-1).expand(2, 3, NUM_JOINTS - 1),
    )
    _, single = forward_kinematics(rotations[1, 2], rest)
    torch.testing.assert_close(single, joints[1, 2])


def test_known_answer_elbow_bend() -> None:
    """Bending the left elbow 90 degrees about y (T-pose, arm along +x) swings the wrist from +x to -z."""
    rest = builtin_rest_joints(1.7, dtype=torch.float64)
    rotations = torch.eye(3, dtype=torch.float64).repeat(NUM_JOINTS, 1, 1)
    elbow, wrist = JOINT_INDEX["left_elbow"], JOINT_INDEX["left_wrist"]
    rotations[elbow] = rotation_about_y(torch.tensor(math.pi / 2, dtype=torch.float64))
    _, joints = forward_kinematics(rotations, rest)
    forearm = rest[wrist] - rest[elbow]
    expected = rest[elbow] + torch.stack((forearm[2], forearm[1], -forearm[0]))
    torch.testing.assert_close(joints[wrist], expected)
    torch.testing.assert_close(joints[:wrist], rest[:wrist])  # nothing else moved (the right wrist is joint 21)


def test_local_from_global_round_trip() -> None:
    rotations = random_pose(8, 3)
    global_rot, _ = forward_kinematics(rotations, builtin_rest_joints(dtype=torch.float64))
    local = local_from_global(global_rot)
    torch.testing.assert_close(local, rotations)

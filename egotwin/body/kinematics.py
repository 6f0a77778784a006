"""Forward kinematics over the 22-joint skeleton."""

from __future__ import annotations

import torch

from egotwin.body.skeleton import PARENTS


def forward_kinematics(
    local_rotations: torch.Tensor,
    rest_joints: torch.Tensor,
    root_translation: torch.Tensor | None = None,
    parents: tuple[int, ...] = PARENTS,
) -> tuple[torch.Tensor, torch.Tensor]:
    """World rotations and positions of every joint.

    Args:
        local_rotations: (..., J, 3, 3) parent-relative rotations; entry 0 is the root's world orientation.
        rest_joints: (J, 3) or (..., J, 3) rest-pose joint positions (the skeleton's bone offsets come from them).
        root_translation: (..., 3) added to every joint, SMPL-X's `trans`: the root sits at rest_joints[0] + trans.
        parents: parent index per joint, -1 for the root; parents must precede children.

    Returns:
        global_rotations (..., J, 3, 3) and joint positions (..., J, 3).
    """
    batch = local_rotations.shape[:-3]
    rest = rest_joints.to(local_rotations).expand(*batch, len(parents), 3)
    offsets = rest.clone()
    parent_index = torch.tensor([max(p, 0) for p in parents], device=rest.device)
    offsets[..., 1:, :] = rest[..., 1:, :] - rest[..., parent_index[1:], :]
    rotations: list[torch.Tensor] = []
    positions: list[torch.Tensor] = []
    for j, p in enumerate(parents):
        if p < 0:
            rotations.append(local_rotations[..., j, :, :])
            positions.append(offsets[..., j, :])
        else:
            rotations.append(rotations[p] @ local_rotations[..., j, :, :])
            positions.append(positions[p] + (rotations[p] @ offsets[..., j, :, None])[..., 0])
    global_rotations = torch.stack(rotations, dim=-3)
    joints = torch.stack(positions, dim=-2)
    if root_translation is not None:
        joints = joints + root_translation[..., None, :]
    return global_rotations, joints


def local_from_global(global_rotations: torch.Tensor, parents: tuple[int, ...] = PARENTS) -> torch.Tensor:
    """Inverse of the rotation part of FK: (..., J, 3, 3) world rotations -> parent-relative rotations."""
    parent_index = torch.tensor([max(p, 0) for p in parents], device=global_rotations.device)
    parent_rot = global_rotations[..., parent_index, :, :]
    local = parent_rot.transpose(-1, -2) @ global_rotations
    local[..., 0, :, :] = global_rotations[..., 0, :, :]
    return local

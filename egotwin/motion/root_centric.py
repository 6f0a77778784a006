"""The root-centric motion representation (HumanML3D style), for the "w/o MR" ablation (design "Head-centric motion").

The body is described from its pelvis ("root") and the pelvis's heading: the yaw of its forward (+z) axis about the
world up axis, H_k = rotation about y by yaw_k. Per motion frame k (r_k: pelvis world position, P_kj: joint positions):

| part           | shape  | value                                                                        |
|----------------|--------|------------------------------------------------------------------------------|
| `root_yaw_vel` | 1      | yaw_k - yaw_{k-1}, wrapped to (-pi, pi]                                      |
| `root_xz_vel`  | 2      | x and z of H_{k-1}^T (r_k - r_{k-1}): the pelvis step in the previous heading |
| `root_height`  | 1      | y of r_k (metres above the floor)                                            |
| `j_p`          | 21 x 3 | H_k^T (P_kj - r_k) for the 21 joints below the pelvis                        |
| `j_v`          | 22 x 3 | H_{k-1}^T (P_kj - P_{k-1,j}) (zero at k = 0)                                 |
| `j_r`          | 22 x 6 | parent-relative rotations in 6D; entry 0 (pelvis) is H_k^T R_pelvis          |
| `contacts`     | 4      | 1 where left/right ankle, left/right foot touch the floor, else 0            |

D = 269. Frame 0 is measured from a virtual frame -1 at the world origin facing +z (the canonical frame), so the
velocities at k = 0 carry the absolute start (yaw_0 and the pelvis's xz position) and decoding needs no extra state.

A foot joint is in contact when it is within `contact_height` of its rest-pose height and moves slower than
`contact_speed` (its speed is zero at k = 0). Contacts and the other redundant parts (`j_p`, `j_v`) are learned
targets; decoding integrates the yaw and xz velocities to recover the root, then runs FK through the local rotations.
Integration accumulates rounding error, so unlike the head-centric representation the root (and so the head) drifts
on long motions; tests/test_root_centric.py measures it.

Encoding does not canonicalise; callers canonicalise first with `Motion.canonicalize()`.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass

import torch

from egotwin.body.kinematics import forward_kinematics
from egotwin.body.rotations import matrix_to_rotation_6d, rotation_6d_to_matrix, rotation_about_y
from egotwin.body.skeleton import FOOT_JOINTS, NUM_BODY_JOINTS, NUM_JOINTS, PELVIS
from egotwin.data.constants import MOTION_FPS
from egotwin.motion.representation import MotionRepresentation, previous_frame


def heading_yaw(rotation: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3) -> (...,) yaw angle of the rotated +z axis about the world up axis (0 = facing +z)."""
    return torch.atan2(rotation[..., 0, 2], rotation[..., 2, 2])


@dataclass(frozen=True)
class RootCentricRepresentation(MotionRepresentation):
    """Root-centric features, D = 269: root_yaw_vel, root_xz_vel, root_height, j_p, j_v, j_r, contacts."""

    contact_height: float = 0.05
    """Metres a foot joint may be above its rest-pose height and still touch the floor."""
    contact_speed: float = 0.4
    """Metres per second a foot joint may move and still be planted."""
    fps: float = MOTION_FPS
    """Frame rate of the motions, to turn per-frame steps into speeds for the contact test."""

    name = "root_centric"
    part_shapes = OrderedDict(
        root_yaw_vel=(1,),
        root_xz_vel=(2,),
        root_height=(1,),
        j_p=(NUM_BODY_JOINTS, 3),
        j_v=(NUM_JOINTS, 3),
        j_r=(NUM_JOINTS, 6),
        contacts=(len(FOOT_JOINTS),),
    )
    group_parts = {
        "root": ("root_yaw_vel", "root_xz_vel", "root_height"),
        "joint_3d": ("j_p", "j_v"),
        "joint_6d": ("j_r",),
        "contacts": ("contacts",),
    }

    def encode_batch(
        self, local_rotations: torch.Tensor, trans: torch.Tensor, rest_joints: torch.Tensor
    ) -> torch.Tensor:
        """(..., T, 22, 3, 3) local rotations, (..., T, 3) trans, (22, 3) rest joints -> (..., T, 269) features."""
        self.check_motion(local_rotations, trans, rest_joints)
        rest_joints = rest_joints.to(trans)
        _, joints = forward_kinematics(local_rotations, rest_joints, trans)  # (..., T, 22, 3)
        root = joints[..., PELVIS, :]
        pelvis_rot = local_rotations[..., PELVIS, :, :]

        yaw = heading_yaw(pelvis_rot)  # (..., T)
        yaw_prev = previous_frame(yaw, -1)
        yaw_prev[..., 0] = 0  # virtual frame -1: the canonical origin facing +z
        yaw_vel = torch.remainder(yaw - yaw_prev + math.pi, 2 * math.pi) - math.pi
        heading = rotation_about_y(yaw)
        heading_prev = rotation_about_y(yaw_prev)

        root_prev = previous_frame(root, -2)
        root_prev[..., 0, :] = 0
        root_step = ((root - root_prev)[..., None, :] @ heading_prev)[..., 0, :]  # H_{k-1}^T (r_k - r_{k-1})

        # Row vectors times H is H^T applied to each vector.
        j_p = (joints[..., PELVIS + 1 :, :] - root[..., None, :]) @ heading
        step = joints - previous_frame(joints, -3)
        j_v = step @ heading_prev

        j_r = local_rotations.clone()
        j_r[..., PELVIS, :, :] = heading.transpose(-1, -2) @ pelvis_rot

        feet = joints[..., FOOT_JOINTS, :]
        near_floor = feet[..., 1] - rest_joints[..., FOOT_JOINTS, 1] < self.contact_height
        slow = step[..., FOOT_JOINTS, :].norm(dim=-1) * self.fps < self.contact_speed
        return self.pack(
            {
                "root_yaw_vel": yaw_vel[..., None],
                "root_xz_vel": root_step[..., [0, 2]],
                "root_height": root[..., 1:2],
                "j_p": j_p,
                "j_v": j_v,
                "j_r": matrix_to_rotation_6d(j_r),
                "contacts": (near_floor & slow).to(trans.dtype),
            }
        )

    def decode_batch(self, features: torch.Tensor, rest_joints: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(..., T, 269) features -> local rotations (..., T, 22, 3, 3), trans (..., T, 3); the root is integrated."""
        values = self.unpack(features)
        yaw = torch.cumsum(values["root_yaw_vel"][..., 0], dim=-1)
        yaw_prev = previous_frame(yaw, -1)
        yaw_prev[..., 0] = 0
        step = torch.zeros(*yaw.shape, 3, dtype=features.dtype, device=features.device)
        step[..., 0], step[..., 2] = values["root_xz_vel"][..., 0], values["root_xz_vel"][..., 1]
        world_step = (rotation_about_y(yaw_prev) @ step[..., None])[..., 0]
        root = torch.cumsum(world_step, dim=-2)
        root[..., 1] = values["root_height"][..., 0]

        local_rotations = rotation_6d_to_matrix(values["j_r"])
        pelvis = rotation_about_y(yaw) @ local_rotations[..., PELVIS, :, :]
        local_rotations = torch.cat((pelvis[..., None, :, :], local_rotations[..., PELVIS + 1 :, :, :]), dim=-3)
        trans = root - rest_joints.to(features)[..., PELVIS, :]
        return local_rotations, trans

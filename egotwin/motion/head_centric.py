"""EgoTwin's head-centric motion representation (design "Head-centric motion"): everything anchored to the head, the
wearer's view.

Per motion frame k (R_k, p_k: world rotation and position of the head joint; P_kj: world position of joint j):

| part     | shape  | value                                                                          |
|----------|--------|--------------------------------------------------------------------------------|
| `h_r`    | 6      | R_k in 6D                                                                      |
| `h_rdot` | 6      | R_{k-1}^T R_k in 6D (identity at k = 0)                                        |
| `h_p`    | 3      | p_k                                                                            |
| `h_pdot` | 3      | p_k - p_{k-1} (zero at k = 0)                                                  |
| `j_p`    | 22 x 3 | R_k^T (P_kj - p_k): joints in the head frame                                   |
| `j_v`    | 22 x 3 | R_k^T (P_kj - P_{k-1,j}): each joint's step, seen from the *current* head frame |
| `j_r`    | 22 x 6 | parent-relative rotations in 6D; entry 0 (pelvis) is R_k^T R_pelvis            |

D = 282. `j_v` uses the current frame's head rotation for both endpoints (rather than differencing `j_p`, which
would mix in the head's own motion), so it is the world velocity rotated into the head's view; it is zero at k = 0.

Decoding uses the absolute parts only: R_head from `h_r`, pelvis world rotation = R_head @ j_r[0], the other joints'
local rotations from j_r[1:], then the pelvis is placed so that FK puts the head exactly at `h_p`. For consistent
features (encoded from a motion) this returns the motion to float precision. For generated, inconsistent features
the decoded head *position* still equals `h_p` exactly, but the decoded head *rotation* is
R_head · j_r[0] · (local rotations down the spine to the head), which equals the `h_r` rotation only when the features
agree with each other. `head_camera` therefore reads the camera straight from `h_r` and `h_p`, with no kinematic
chain: that is the trajectory the video branch is aligned with. `camera_from_motion` gives the camera of a `Motion`
through FK; the two agree for encoded motions.

Encoding does not canonicalise; callers canonicalise first with `Motion.canonicalize()`.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import torch

from egotwin.body.head_camera import HeadCameraRig
from egotwin.body.kinematics import forward_kinematics
from egotwin.body.rotations import matrix_to_rotation_6d, rotation_6d_to_matrix
from egotwin.body.skeleton import HEAD, HEAD_CHAIN, NUM_JOINTS, PELVIS
from egotwin.motion.motion import Motion
from egotwin.motion.representation import MotionRepresentation, previous_frame

_CHAIN_PARENTS = tuple(range(-1, len(HEAD_CHAIN) - 1))  # each joint of HEAD_CHAIN hangs from the one before it


@dataclass(frozen=True)
class HeadCentricRepresentation(MotionRepresentation):
    """Head-centric features, D = 282, parts h_r, h_rdot, h_p, h_pdot, j_p, j_v, j_r in that order."""

    name = "head_centric"
    part_shapes = OrderedDict(
        h_r=(6,),
        h_rdot=(6,),
        h_p=(3,),
        h_pdot=(3,),
        j_p=(NUM_JOINTS, 3),
        j_v=(NUM_JOINTS, 3),
        j_r=(NUM_JOINTS, 6),
    )
    group_parts = {
        "head_3d": ("h_p", "h_pdot"),
        "head_6d": ("h_r", "h_rdot"),
        "joint_3d": ("j_p", "j_v"),
        "joint_6d": ("j_r",),
    }

    def encode_batch(
        self, local_rotations: torch.Tensor, trans: torch.Tensor, rest_joints: torch.Tensor
    ) -> torch.Tensor:
        """(..., T, 22, 3, 3) local rotations, (..., T, 3) trans, (22, 3) rest joints -> (..., T, 282) features."""
        self.check_motion(local_rotations, trans, rest_joints)
        global_rotations, joints = forward_kinematics(local_rotations, rest_joints, trans)
        head_rot, head_pos = global_rotations[..., HEAD, :, :], joints[..., HEAD, :]  # (..., T, 3, 3), (..., T, 3)

        relative_rot = previous_frame(head_rot, -3).transpose(-1, -2) @ head_rot
        # Exactly the identity at k = 0, not R_0^T R_0 with its rounding.
        relative_rot[..., 0, :, :] = torch.eye(3, dtype=head_rot.dtype, device=head_rot.device)
        j_r = local_rotations.clone()
        j_r[..., PELVIS, :, :] = head_rot.transpose(-1, -2) @ local_rotations[..., PELVIS, :, :]
        return self.pack(
            {
                "h_r": matrix_to_rotation_6d(head_rot),
                "h_rdot": matrix_to_rotation_6d(relative_rot),
                "h_p": head_pos,
                "h_pdot": head_pos - previous_frame(head_pos, -2),
                # Rows times R apply R^T to each vector: (..., T, 22, 3) @ (..., T, 3, 3).
                "j_p": (joints - head_pos[..., None, :]) @ head_rot,
                "j_v": (joints - previous_frame(joints, -3)) @ head_rot,
                "j_r": matrix_to_rotation_6d(j_r),
            }
        )

    def decode_batch(self, features: torch.Tensor, rest_joints: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(..., T, 282) features -> local rotations (..., T, 22, 3, 3) and trans (..., T, 3), from h_r, h_p and j_r."""
        values = self.unpack(features)
        head_rot = rotation_6d_to_matrix(values["h_r"])
        local_rotations = rotation_6d_to_matrix(values["j_r"])
        pelvis = head_rot @ local_rotations[..., PELVIS, :, :]
        local_rotations = torch.cat((pelvis[..., None, :, :], local_rotations[..., PELVIS + 1 :, :, :]), dim=-3)
        # FK with trans = 0 puts the head at some point; the trans that moves it onto h_p is the difference. Only the
        # pelvis-to-head chain matters for that, a quarter of the skeleton.
        chain = list(HEAD_CHAIN)
        _, chain_joints = forward_kinematics(
            local_rotations[..., chain, :, :], rest_joints.to(features)[..., chain, :], parents=_CHAIN_PARENTS
        )
        trans = values["h_p"] - chain_joints[..., -1, :]
        return local_rotations, trans

    def head_camera(
        self, features: torch.Tensor, rig: HeadCameraRig = HeadCameraRig(), rest_joints: torch.Tensor | None = None
    ) -> torch.Tensor:
        """(..., T, 282) features -> (..., T, 4, 4) camera-to-world poses read directly from h_r and h_p
        (`rest_joints` is not needed and ignored)."""
        values = self.unpack(features)
        return rig.camera_poses(rotation_6d_to_matrix(values["h_r"]), values["h_p"])


def head_camera(features: torch.Tensor, rig: HeadCameraRig = HeadCameraRig()) -> torch.Tensor:
    """Head-camera poses (..., T, 4, 4) straight from head-centric features (..., T, 282); no kinematic chain."""
    return HeadCentricRepresentation().head_camera(features, rig)


def camera_from_motion(motion: Motion, rig: HeadCameraRig = HeadCameraRig()) -> torch.Tensor:
    """Head-camera poses (T, 4, 4) of a `Motion`, through forward kinematics down to the head joint."""
    return rig.camera_poses(*motion.head_pose())

"""XSens (23 segments) -> EgoTwin's 22-joint SMPL-X skeleton, calibrated on the sequence's own T-pose.

Each of our joints takes one XSens segment's world rotation and the rest skeleton takes the segments' T-pose
positions, so bone lengths and height are the participant's. The T-pose calibration makes the XSens T-pose our rest
pose whatever axes XSens gives each segment:

    G_i(t) = A R_s(t) R_s(T)^-1 A^-1 F                 s = the segment of joint i, T = the T-pose
    rest_i = F^-1 (A p_s(T) - pelvis on the floor)    so G_i(T) = F for every joint: the rest pose, facing F

with A the Z-up -> Y-up rotation and F the T-pose's heading (its left = from the right hip to the left hip). Then
FK of (rest, G) puts every joint exactly where its segment is whenever the segments between two mapped joints do not
bend; the one unmapped segment, L3 (between L5 = spine1 and T12 = spine2), is where retargeting loses position.
"""

from __future__ import annotations

import numpy as np
import torch

from egotwin.body.kinematics import local_from_global
from egotwin.body.skeleton import JOINT_NAMES
from egotwin.data.nymeria.files import XSENS_SEGMENTS, XSensMotion
from egotwin.motion.motion import Motion

ZUP_TO_YUP = np.array([[1.0, 0, 0], [0, 0, 1], [0, -1, 0]])
"""A: (x, y, z) Z-up -> (x, z, -y) Y-up, a proper rotation shared by the XSens and the Aria worlds."""

SEGMENT_OF_JOINT: dict[str, str] = {
    "pelvis": "Pelvis", "left_hip": "L_UpperLeg", "right_hip": "R_UpperLeg", "spine1": "L5",
    "left_knee": "L_LowerLeg", "right_knee": "R_LowerLeg", "spine2": "T12", "left_ankle": "L_Foot",
    "right_ankle": "R_Foot", "spine3": "T8", "left_foot": "L_Toe", "right_foot": "R_Toe", "neck": "Neck",
    "left_collar": "L_Shoulder", "right_collar": "R_Shoulder", "head": "Head", "left_shoulder": "L_UpperArm",
    "right_shoulder": "R_UpperArm", "left_elbow": "L_Forearm", "right_elbow": "R_Forearm", "left_wrist": "L_Hand",
    "right_wrist": "R_Hand",
}  # fmt: skip
"""Our joint <- the XSens segment whose origin is that joint (the issue's mapping)."""
SEGMENT_INDEX = np.array([XSENS_SEGMENTS.index(SEGMENT_OF_JOINT[name]) for name in JOINT_NAMES])
"""(22,) XSens segment index of each of our joints."""


def tpose_heading(tpose_positions: np.ndarray) -> np.ndarray:
    """(3, 3) F: columns = the T-pose's left, up and forward in the Y-up world (our rest axes x, y, z)."""
    hips = ZUP_TO_YUP @ (
        tpose_positions[XSENS_SEGMENTS.index("L_UpperLeg")] - tpose_positions[XSENS_SEGMENTS.index("R_UpperLeg")]
    )
    left = np.array([hips[0], 0.0, hips[2]])
    if np.linalg.norm(left) < 1e-3:
        raise ValueError("the XSens T-pose has both hips at one place: cannot tell which way it faces")
    left /= np.linalg.norm(left)
    up = np.array([0.0, 1.0, 0.0])
    return np.stack((left, up, np.cross(left, up)), axis=1)


def rest_joints_from_tpose(tpose_positions: np.ndarray) -> np.ndarray:
    """(22, 3) rest joints in our rest frame (facing +z, y up, the floor at XSens z = 0) from the T-pose positions."""
    heading = tpose_heading(tpose_positions)
    points = tpose_positions[SEGMENT_INDEX] @ ZUP_TO_YUP.T
    origin = points[0] * np.array([1.0, 0.0, 1.0])  # below the pelvis, on the floor
    return (points - origin) @ heading


def retarget_xsens(xsens: XSensMotion, frames: np.ndarray, fps: float) -> Motion:
    """The XSens frames `frames` (K,) as a `Motion` (float64) on the T-pose's rest skeleton, in the Y-up XSens world."""
    heading = tpose_heading(xsens.tpose_positions)
    tpose = xsens.tpose_rotations[SEGMENT_INDEX]  # (22, 3, 3)
    offsets = tpose.transpose(0, 2, 1) @ ZUP_TO_YUP.T @ heading  # R_s(T)^-1 A^-1 F, per joint
    world = ZUP_TO_YUP @ xsens.rotations(frames)[:, SEGMENT_INDEX] @ offsets  # (K, 22, 3, 3)
    rest = rest_joints_from_tpose(xsens.tpose_positions)
    pelvis = xsens.positions[frames, SEGMENT_INDEX[0]] @ ZUP_TO_YUP.T
    local = local_from_global(torch.from_numpy(world))
    motion = Motion(
        trans=torch.from_numpy(pelvis - rest[0]),
        global_orient=local[:, 0],
        body_pose=local[:, 1:],
        rest_joints=torch.from_numpy(rest),
        fps=fps,
    )
    return motion

"""Whole-body kinematics for EgoWorld: per-frame controls (where the body goes, where it looks, what the hands reach
for) turned into a `Motion` on the built-in skeleton.

The controls are what the motion primitives write (see `episodes.py`); this module owns the body:
- a phase-based gait: the gait phase advances with the distance walked and the angle turned; each foot alternates
  swing and stance, stays planted during stance at a footprint chosen on the walked path, and swings on an arc
  between footprints, so that feet do not slide;
- legs and arms solved by analytic two-bone IK (hip-knee-ankle, shoulder-elbow-wrist) with a pole vector that keeps
  knees forward and elbows back and down;
- pelvis height from the gait (bob) and from crouching; torso lean; neck and head turned for looking;
- free arms swing against the legs; a reaching hand is blended towards its target.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from egotwin.body.kinematics import forward_kinematics, local_from_global
from egotwin.body.skeleton import JOINT_INDEX, PARENTS
from egotwin.data.constants import MOTION_FPS
from egotwin.motion.motion import Motion

SWING_FRACTION = 0.38  # share of a gait cycle each foot spends in the air
STEP_LENGTH = 0.62  # metres per step (half a stride)
TURN_RADIUS = 0.25  # a turn of one radian counts as this many metres of walking for the gait phase
FOOT_LIFT = 0.07
SETTLE_RATE = 0.06  # phase per frame with which a foot left in the air after a stop is brought down

J = JOINT_INDEX
LEGS = (
    (J["left_hip"], J["left_knee"], J["left_ankle"], J["left_foot"]),
    (J["right_hip"], J["right_knee"], J["right_ankle"], J["right_foot"]),
)
ARMS = (
    (J["left_shoulder"], J["left_elbow"], J["left_wrist"]),
    (J["right_shoulder"], J["right_elbow"], J["right_wrist"]),
)
SPINE = (J["spine1"], J["spine2"], J["spine3"])
SIDE_SIGN = (1.0, -1.0)  # left is +x in the body frame


@dataclass
class BodyControls:
    """Per-frame controls of one episode; every array has T rows (numpy float64)."""

    root_xz: np.ndarray
    """(T, 2) ground position of the pelvis (x, z)."""
    heading: np.ndarray
    """(T,) body yaw about +y; 0 faces +z."""
    crouch: np.ndarray
    """(T,) 0 standing .. 1 deep crouch."""
    lean: np.ndarray
    """(T,) forward torso lean, radians."""
    head_yaw: np.ndarray
    """(T,) head yaw relative to the body heading, radians (positive turns left)."""
    head_pitch: np.ndarray
    """(T,) head pitch in the world, radians (positive looks down)."""
    hand_target: np.ndarray
    """(T, 2, 3) world wrist targets of the left and right hand (used where hand_weight > 0)."""
    hand_weight: np.ndarray
    """(T, 2) 0 = free arm swinging, 1 = wrist at its target."""

    @classmethod
    def standing(cls, num_frames: int, position: tuple[float, float], heading: float) -> BodyControls:
        t = num_frames
        return cls(
            root_xz=np.tile(np.asarray(position, dtype=np.float64), (t, 1)),
            heading=np.full(t, float(heading)),
            crouch=np.zeros(t),
            lean=np.zeros(t),
            head_yaw=np.zeros(t),
            head_pitch=np.zeros(t),
            hand_target=np.zeros((t, 2, 3)),
            hand_weight=np.zeros((t, 2)),
        )


def rotation_y(angle: torch.Tensor) -> torch.Tensor:
    c, s = torch.cos(angle), torch.sin(angle)
    zero, one = torch.zeros_like(angle), torch.ones_like(angle)
    return torch.stack((c, zero, s, zero, one, zero, -s, zero, c), -1).reshape(*angle.shape, 3, 3)


def rotation_x(angle: torch.Tensor) -> torch.Tensor:
    c, s = torch.cos(angle), torch.sin(angle)
    zero, one = torch.zeros_like(angle), torch.ones_like(angle)
    return torch.stack((one, zero, zero, zero, c, -s, zero, s, c), -1).reshape(*angle.shape, 3, 3)


def rotation_between(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3) smallest rotation taking direction a (..., 3) to direction b (..., 3)."""
    a = a / a.norm(dim=-1, keepdim=True)
    b = b / b.norm(dim=-1, keepdim=True)
    v = torch.cross(a, b, dim=-1)
    c = (a * b).sum(-1).clamp(min=-0.999999)
    zero = torch.zeros_like(c)
    k = torch.stack(
        (zero, -v[..., 2], v[..., 1], v[..., 2], zero, -v[..., 0], -v[..., 1], v[..., 0], zero), -1
    ).reshape(*c.shape, 3, 3)
    eye = torch.eye(3, dtype=a.dtype).expand_as(k)
    return eye + k + k @ k / (1 + c)[..., None, None]


def two_bone_ik(
    root: torch.Tensor, target: torch.Tensor, pole: torch.Tensor, upper: float, lower: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Analytic IK of a two-bone chain: root (..., 3), target (..., 3), pole direction (..., 3) the middle joint bends
    towards, bone lengths -> middle joint (..., 3) and the reached end point (..., 3) (the target, pulled in when it is
    out of reach)."""
    offset = target - root
    dist = offset.norm(dim=-1, keepdim=True).clamp(min=1e-6)
    u = offset / dist
    d = dist.clamp(abs(upper - lower) + 1e-3, (upper + lower) * 0.999)
    cos_a = ((upper**2 + d**2 - lower**2) / (2 * upper * d)).clamp(-1, 1)
    sin_a = (1 - cos_a**2).sqrt()
    n = pole - (pole * u).sum(-1, keepdim=True) * u
    n = n / n.norm(dim=-1, keepdim=True).clamp(min=1e-9)
    middle = root + upper * (cos_a * u + sin_a * n)
    return middle, root + d * u


def gait_phase(root_xz: np.ndarray, heading: np.ndarray, start: float = 0.45) -> np.ndarray:
    """(T,) gait phase in cycles: advances with walked distance and turned angle; after a stop it runs on until both
    feet are on the ground. Left foot swings for phase mod 1 in [0, SWING_FRACTION), the right half a cycle later."""
    step = np.linalg.norm(np.diff(root_xz, axis=0), axis=1) + TURN_RADIUS * np.abs(np.diff(heading))
    phase = np.empty(len(root_xz))
    phase[0] = start
    for k in range(1, len(phase)):
        f = phase[k - 1] % 0.5
        in_swing = f < SWING_FRACTION
        phase[k] = phase[k - 1] + max(step[k - 1] / (2 * STEP_LENGTH), SETTLE_RATE if in_swing else 0.0)
    return phase


def foot_targets(controls: BodyControls, phase: np.ndarray, rest_joints: torch.Tensor) -> np.ndarray:
    """(T, 2, 3) ankle positions: planted during stance, on an arc between footprints during swing."""
    t = len(phase)
    rest = rest_joints.double().numpy()
    ankle_height = rest[LEGS[0][2], 1]
    out = np.zeros((t, 2, 3))
    frames = np.arange(t)
    for side, offset in enumerate((0.0, 0.5)):
        lateral = rest[LEGS[side][2], 0]
        forward = rest[LEGS[side][2], 2]
        u = phase + offset
        # nominal ankle position under the hip at each frame
        sin_h, cos_h = np.sin(controls.heading), np.cos(controls.heading)
        nominal = np.stack(
            (
                controls.root_xz[:, 0] + cos_h * lateral + sin_h * forward,
                controls.root_xz[:, 1] - sin_h * lateral + cos_h * forward,
            ),
            1,
        )

        def plant(cycle: int) -> np.ndarray:
            # footprint of a stance: the nominal position at the middle of that stance (clamped to the clip)
            mid = cycle + (SWING_FRACTION + 1) / 2
            k = np.interp(mid, u, frames) if u[0] <= mid <= u[-1] else (0 if mid < u[0] else t - 1)
            lo = int(math.floor(k))
            hi = min(lo + 1, t - 1)
            return nominal[lo] + (k - lo) * (nominal[hi] - nominal[lo])

        cycles = np.floor(u).astype(int)
        plants = {c: plant(c) for c in range(cycles.min() - 1, cycles.max() + 1)}
        for k in range(t):
            c, f = cycles[k], u[k] - cycles[k]
            if f >= SWING_FRACTION:
                xz, lift = plants[c], 0.0
            else:
                s = f / SWING_FRACTION
                blend = s * s * (3 - 2 * s)
                xz = plants[c - 1] + blend * (plants[c] - plants[c - 1])
                lift = FOOT_LIFT * math.sin(math.pi * s) * min(1.0, np.linalg.norm(plants[c] - plants[c - 1]) / 0.2)
            out[k, side] = (xz[0], ankle_height + lift, xz[1])
    return out


def synthesize_motion(controls: BodyControls, rest_joints: torch.Tensor, fps: float = MOTION_FPS) -> Motion:
    """Controls -> a Motion on `rest_joints` (float32)."""
    rest = rest_joints.double()
    t = len(controls.heading)
    heading = torch.as_tensor(controls.heading)
    phase = gait_phase(controls.root_xz, controls.heading)
    speed = np.linalg.norm(np.gradient(controls.root_xz, axis=0), axis=1) * fps
    walking = torch.as_tensor(np.clip(speed / 1.0, 0, 1))
    crouch = torch.as_tensor(controls.crouch)
    lean = torch.as_tensor(controls.lean)
    phase_t = torch.as_tensor(phase)

    # 1. Pelvis: position from the path, gait bob and crouch; orientation from heading and lean.
    bob = 0.018 * walking * (0.5 + 0.5 * torch.cos(4 * math.pi * (phase_t - SWING_FRACTION / 2)))
    height = rest[0, 1] - 0.03 * walking - bob - 0.42 * crouch
    body_yaw = rotation_y(heading)
    back = body_yaw @ torch.tensor([0.0, 0.0, -1.0], dtype=torch.float64)  # (T, 3)
    pelvis = torch.stack((torch.as_tensor(controls.root_xz[:, 0]), height, torch.as_tensor(controls.root_xz[:, 1])), -1)
    pelvis = pelvis + back * (0.12 * crouch)[:, None]

    global_rot = torch.eye(3, dtype=torch.float64).repeat(t, len(PARENTS), 1, 1)
    sway = 0.05 * walking * torch.sin(2 * math.pi * phase_t)  # pelvis turns with the stride
    global_rot[:, 0] = body_yaw @ rotation_y(sway) @ rotation_x(0.15 * lean + 0.25 * crouch)
    for i, joint in enumerate(SPINE):
        global_rot[:, joint] = (
            body_yaw @ rotation_y(-sway * (i + 1) / 3) @ rotation_x(lean * (i + 1) / 3 + 0.25 * crouch)
        )
    for collar in (J["left_collar"], J["right_collar"]):
        global_rot[:, collar] = global_rot[:, J["spine3"]]
    head_yaw = torch.as_tensor(controls.head_yaw)
    head_pitch = torch.as_tensor(controls.head_pitch)
    global_rot[:, J["neck"]] = body_yaw @ rotation_y(0.5 * head_yaw) @ rotation_x(0.5 * head_pitch)
    global_rot[:, J["head"]] = body_yaw @ rotation_y(head_yaw) @ rotation_x(head_pitch)

    # 2. Where the hips and shoulders are, given the torso.
    _, joints = forward_kinematics(local_from_global(global_rot), rest, pelvis - rest[0])

    # 3. Legs: two-bone IK to the gait's ankle targets, knees bending forward; feet flat along the heading.
    ankles = torch.as_tensor(foot_targets(controls, phase, rest))
    forward = body_yaw @ torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)
    for side, (hip, knee, ankle, foot) in enumerate(LEGS):
        upper = float((rest[knee] - rest[hip]).norm())
        lower = float((rest[ankle] - rest[knee]).norm())
        knee_pos, ankle_pos = two_bone_ik(joints[:, hip], ankles[:, side], forward, upper, lower)
        global_rot[:, hip] = (
            rotation_between(global_rot[:, 0] @ (rest[knee] - rest[hip]), knee_pos - joints[:, hip]) @ global_rot[:, 0]
        )
        global_rot[:, knee] = (
            rotation_between(global_rot[:, hip] @ (rest[ankle] - rest[knee]), ankle_pos - knee_pos) @ global_rot[:, hip]
        )
        global_rot[:, ankle] = body_yaw
        global_rot[:, foot] = body_yaw

    # 4. Arms: free arms hang and swing against the legs; reaching arms are blended to their targets.
    weight = torch.as_tensor(controls.hand_weight)
    targets = torch.as_tensor(controls.hand_target)
    for side, (shoulder, elbow, wrist) in enumerate(ARMS):
        sign = SIDE_SIGN[side]
        upper = float((rest[elbow] - rest[shoulder]).norm())
        lower = float((rest[wrist] - rest[elbow]).norm())
        reach = upper + lower
        swing = 0.35 * walking * torch.sin(2 * math.pi * phase_t + (math.pi if side == 0 else 0.0))
        local_free = torch.stack(
            (
                torch.full_like(swing, sign * 0.06),
                -0.96 * reach * torch.cos(swing),
                0.96 * reach * torch.sin(swing) + 0.03,
            ),
            -1,
        )
        free = joints[:, shoulder] + (global_rot[:, J["spine3"]] @ local_free[..., None])[..., 0]
        w = weight[:, side, None]
        target = free * (1 - w) + targets[:, side] * w
        pole_local = torch.tensor([sign * 0.5, -0.6, -1.0], dtype=torch.float64)
        pole = global_rot[:, J["spine3"]] @ pole_local
        elbow_pos, wrist_pos = two_bone_ik(joints[:, shoulder], target, pole, upper, lower)
        collar_rot = global_rot[:, J["spine3"]]
        global_rot[:, shoulder] = (
            rotation_between(collar_rot @ (rest[elbow] - rest[shoulder]), elbow_pos - joints[:, shoulder]) @ collar_rot
        )
        global_rot[:, elbow] = (
            rotation_between(global_rot[:, shoulder] @ (rest[wrist] - rest[elbow]), wrist_pos - elbow_pos)
            @ global_rot[:, shoulder]
        )
        global_rot[:, wrist] = global_rot[:, elbow]

    local = local_from_global(global_rot)
    return Motion(
        trans=(pelvis - rest[0]).float(),
        global_orient=local[:, 0].float(),
        body_pose=local[:, 1:].float(),
        rest_joints=rest_joints.float(),
        fps=fps,
    )

"""Write a Nymeria sequence folder (the plain files, not the VRS) from a motion we know, to test the converter.

The known motion lives in the Aria world (Y-up here, floor at y = 0). The fixture writes what Nymeria would have
recorded of it: `body/xdata.npz` (23 XSens segments at 240 Hz, Z-up, in an XSens world turned and shifted from the
Aria world, every segment with its own arbitrary axes, a T-pose facing an arbitrary way, TIME_CODE stamps offset
from device time), `recording_head/mps/slam/closed_loop_trajectory.csv` (1 kHz poses of the Aria device, rigidly
mounted on the head), the three narration CSVs and `metadata.json`. The XSens segment L3, which our skeleton has
no joint for, is put halfway along the spine1 -> spine2 bone and turns with spine1, so the XSens skeleton stays rigid.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from egotwin.body.rotations import axis_angle_to_matrix
from egotwin.body.skeleton import JOINT_INDEX
from egotwin.data.nymeria.files import NARRATION_LEVELS, XSENS_SEGMENTS
from egotwin.data.nymeria.retarget import SEGMENT_INDEX, ZUP_TO_YUP
from egotwin.motion.motion import Motion
from egotwin.motion.random_motion import walking_motion

NARRATION_COLUMNS = {
    "atomic_action": ["Describe my atomic actions"],
    "motion_narration": [
        "Describe my body posture",
        "Describe my hands/arms motion",
        "Describe my legs/feet motion",
        "Describe my focus attention",
    ],
    "activity_summarization": ["Describe my activity"],
}
"""The text columns of each narration file, as the released files name them."""
DEFAULT_HEAD_TO_DEVICE = np.array([
    [0.0, -1.0, 0.0, 0.004], [-0.17364818, 0.0, -0.98480775, 0.09], [0.98480775, 0.0, -0.17364818, 0.085],
    [0.0, 0.0, 0.0, 1.0],
])  # fmt: skip
"""The Aria device frame in our head joint's frame: 9 cm above and 8.5 cm in front of the skull base, turned."""


@dataclass
class FixtureSpec:
    """What the fixture records, beyond the motion."""

    name: str = "20230607_s0_james_johnson_act0_e72nhq"
    """Folder name: <date>_<session>_<fake name>_<act>_<uid>; the fake name is the participant."""
    location: str = "loc1"
    device_start_us: int = 5_000_000
    """Device time of the motion's first frame."""
    timecode_offset_us: int = 1_700_000_123_456
    """TIME_CODE minus device time."""
    xsens_world_yaw_deg: float = 37.0
    """Turn of the XSens world against the Aria world about the vertical."""
    xsens_world_shift: tuple[float, float, float] = (1.5, -0.3, 0.0)
    """Shift of the XSens world (Y-up: x, y, z) against the Aria world."""
    xsens_drift_m_per_s: float = 0.0
    """XSens world drifting along x against the Aria world (what per-clip re-anchoring absorbs)."""
    tpose_yaw_deg: float = -61.0
    head_to_device: np.ndarray = field(default_factory=lambda: DEFAULT_HEAD_TO_DEVICE.copy())
    slam_noise_m: float = 0.0
    """Standard deviation of white noise on the trajectory's positions."""
    quality_score: float = 1.0
    narrations: dict[str, list[tuple[float, float, str]]] = field(default_factory=dict)
    """level -> rows (start, end in device seconds, text); motion_narration's text is put in its first column."""
    broken_frames: tuple[int, ...] = ()
    """240 Hz XSens frames whose quaternions are written as NaN."""
    seed: int = 0


def _yaw(degrees: float) -> np.ndarray:
    return Rotation.from_euler("y", degrees, degrees=True).as_matrix()


def segment_poses(motion: Motion) -> tuple[np.ndarray, np.ndarray]:
    """World rotations (T, 23, 3, 3) and origins (T, 23, 3) of the XSens segments (Y-up, identity axes) of a motion:
    each mapped segment is its joint; L3 sits halfway along spine1 -> spine2 and turns with spine1."""
    rotations, joints = (x.double().numpy() for x in motion.forward_kinematics())
    seg_rot = np.zeros((motion.num_frames, 23, 3, 3))
    seg_pos = np.zeros((motion.num_frames, 23, 3))
    seg_rot[:, SEGMENT_INDEX], seg_pos[:, SEGMENT_INDEX] = rotations, joints
    spine1, spine2 = JOINT_INDEX["spine1"], JOINT_INDEX["spine2"]
    l3 = XSENS_SEGMENTS.index("L3")
    rest = motion.rest_joints.double().numpy()
    seg_rot[:, l3] = rotations[:, spine1]
    seg_pos[:, l3] = joints[:, spine1] + rotations[:, spine1] @ (0.5 * (rest[spine2] - rest[spine1]))
    return seg_rot, seg_pos


def _quaternions_wxyz(matrices: np.ndarray) -> np.ndarray:
    xyzw = Rotation.from_matrix(matrices.reshape(-1, 3, 3)).as_quat()
    return xyzw[:, [3, 0, 1, 2]].reshape(*matrices.shape[:-2], 4)


def write_xdata(path: Path, motion_240: Motion, spec: FixtureSpec, rng: np.random.Generator) -> None:
    """`body/xdata.npz` of a 240 Hz motion in the Aria world."""
    n = motion_240.num_frames
    seg_rot, seg_pos = segment_poses(motion_240)
    times = np.arange(n) / motion_240.fps
    # Y-up Aria world -> Y-up XSens world (inverse of the XSens world's placement), then Z-up
    place = _yaw(spec.xsens_world_yaw_deg)
    shift = np.asarray(spec.xsens_world_shift)[None] + np.outer(times * spec.xsens_drift_m_per_s, [1.0, 0, 0])
    axes = Rotation.random(23, random_state=rng.integers(2**31)).as_matrix()  # each segment's own axes
    to_zup = ZUP_TO_YUP.T
    rot = to_zup @ place.T @ seg_rot @ axes
    pos = np.einsum("ij,tsj->tsi", to_zup @ place.T, seg_pos - shift[:, None])
    # T-pose: the rest skeleton standing at (0.3, 0, -0.2) facing tpose_yaw (+ L3 halfway up the lower spine)
    rest = motion_240.rest_joints.double().numpy()
    heading = _yaw(spec.tpose_yaw_deg)
    tpose_rot = np.broadcast_to(to_zup @ heading, (23, 3, 3)) @ axes
    rest_seg = np.zeros((23, 3))
    rest_seg[SEGMENT_INDEX] = rest
    rest_seg[XSENS_SEGMENTS.index("L3")] = 0.5 * (rest[JOINT_INDEX["spine1"]] + rest[JOINT_INDEX["spine2"]])
    tpose_pos = (rest_seg @ heading.T + [0.3, 0.0, -0.2]) @ to_zup.T
    quats = _quaternions_wxyz(rot)
    quats[list(spec.broken_frames)] = np.nan
    device_us = spec.device_start_us + times * 1e6
    np.savez(
        path,
        timestamps_us=np.round(device_us + spec.timecode_offset_us).astype(np.int64),
        frameCount=np.array([n]),
        frameRate=np.array([motion_240.fps]),
        segmentCount=np.array([23]),
        segment_qWXYZ=quats.reshape(n, -1),
        segment_tXYZ=pos.reshape(n, -1),
        tpose_segment_qWXYZ=_quaternions_wxyz(tpose_rot).reshape(1, -1),
        tpose_segment_tXYZ=tpose_pos.reshape(1, -1),
        identity_segment_qWXYZ=_quaternions_wxyz(np.broadcast_to(np.eye(3), (23, 3, 3))).reshape(1, -1),
        identity_segment_tXYZ=tpose_pos.reshape(1, -1),
        foot_contacts=np.zeros((n, 4), dtype=np.int8),
    )


def write_trajectory(path: Path, motion_1k: Motion, spec: FixtureSpec, rng: np.random.Generator) -> None:
    """The MPS closed-loop trajectory of the head-mounted device for a motion sampled at 1 kHz."""
    head_rot, head_pos = (x.double().numpy() for x in motion_1k.head_pose())
    head = np.tile(np.eye(4), (len(head_pos), 1, 1))
    head[:, :3, :3], head[:, :3, 3] = head_rot, head_pos
    device = head @ spec.head_to_device
    pos = device[:, :3, 3] @ ZUP_TO_YUP  # Y-up -> Z-up: A^T p
    pos = pos + rng.normal(scale=spec.slam_noise_m, size=pos.shape) if spec.slam_noise_m else pos
    quat = Rotation.from_matrix(ZUP_TO_YUP.T @ device[:, :3, :3]).as_quat()  # x, y, z, w
    stamps = spec.device_start_us + np.round(np.arange(len(pos)) / motion_1k.fps * 1e6).astype(np.int64)
    header = (
        "graph_uid,tracking_timestamp_us,utc_timestamp_ns,tx_world_device,ty_world_device,tz_world_device,"
        "qx_world_device,qy_world_device,qz_world_device,qw_world_device,gravity_x_world,gravity_y_world,"
        "gravity_z_world,quality_score"
    )
    with open(path, "w") as file:
        file.write(header + "\n")
        file.writelines(
            f"g0,{t},{t * 1000 + 1_680_000_000_000_000_000},{p[0]:.7f},{p[1]:.7f},{p[2]:.7f},"
            f"{q[0]:.9f},{q[1]:.9f},{q[2]:.9f},{q[3]:.9f},0,0,-9.81,{spec.quality_score}\n"
            for t, p, q in zip(stamps, pos, quat)
        )


def write_narrations(folder: Path, spec: FixtureSpec) -> None:
    import pandas as pd

    folder.mkdir(parents=True, exist_ok=True)
    for level in NARRATION_LEVELS:
        columns = NARRATION_COLUMNS[level]
        rows = [
            {"start_time": s, "end_time": e, **{c: (text if i == 0 else "") for i, c in enumerate(columns)}}
            for s, e, text in spec.narrations.get(level, [])
        ]
        extra = {"atomic_action": ["request_id", "gaia_id"]}.get(level, [])
        table = pd.DataFrame(rows, columns=["start_time", "end_time", *columns])
        for name in extra:
            table.insert(0, name, range(len(table)))
        table.to_csv(folder / f"{level}.csv", index=False)


def write_fixture_sequence(root: str | Path, motion: Motion, spec: FixtureSpec | None = None) -> Path:
    """Write the sequence folder `root/spec.name` for `motion` (any fps; Aria world, Y-up, floor at 0); returns it.
    Device time of motion frame k is `spec.device_start_us + k / motion.fps` seconds."""
    spec = FixtureSpec() if spec is None else spec
    folder = Path(root) / spec.name
    rng = np.random.default_rng(spec.seed)
    motion = motion.to(torch.float64)
    (folder / "body").mkdir(parents=True, exist_ok=True)
    write_xdata(folder / "body" / "xdata.npz", motion.resample(240.0), spec, rng)
    slam = folder / "recording_head" / "mps" / "slam"
    slam.mkdir(parents=True, exist_ok=True)
    write_trajectory(slam / "closed_loop_trajectory.csv", motion.resample(1000.0), spec, rng)
    write_narrations(folder / "narration", spec)
    (folder / "metadata.json").write_text(json.dumps({"location": spec.location, "license": "fixture"}) + "\n")
    return folder


def fixture_motion(duration_s: float = 30.0, seed: int = 0) -> Motion:
    """A known 16 fps motion with planted feet and a head that looks around (for the hand-eye calibration):
    `walking_motion` with the head nodding and tilting as well as turning."""
    motion = walking_motion(duration=duration_s, dtype=torch.float64)
    times = torch.arange(motion.num_frames, dtype=torch.float64) / motion.fps
    phase = 2 * math.pi * (seed % 7) / 7

    nod = torch.stack(
        (
            0.35 * torch.sin(2 * math.pi * 0.23 * times + phase),
            0.5 * torch.sin(2 * math.pi * 0.11 * times),
            0.25 * torch.sin(2 * math.pi * 0.17 * times + 1.0),
        ),
        dim=-1,
    )
    body_pose = motion.body_pose.clone()
    head = JOINT_INDEX["head"] - 1
    body_pose[:, head] = axis_angle_to_matrix(nod) @ body_pose[:, head]
    return Motion(motion.trans, motion.global_orient, body_pose, motion.rest_joints, motion.fps)


class SyntheticRecording:
    """A stand-in for the head `data.vrs` (what `aria.HeadRecording` reads) when no VRS file can be written: RGB
    frames captured at `rate_hz` from `first_capture_us` on, each a flat image whose grey level is its frame index
    (mod 256), the TIME_CODE clock of `spec`, and a Fisheye624 calibration (projectaria_tools)."""

    def __init__(
        self, calibration, spec: FixtureSpec, first_capture_us: float, rate_hz: float = 30.0, count: int = 2000
    ):
        self.calibration, self.spec, self.rate_hz = calibration, spec, rate_hz
        self.captures_us = first_capture_us + np.arange(count) * 1e6 / rate_hz
        width, height = (int(v) for v in calibration.get_image_size())
        self.shape = (height, width, 3)

    def timecode_to_device_us(self, timecode_us: np.ndarray) -> np.ndarray:
        return np.asarray(timecode_us, dtype=np.float64) - self.spec.timecode_offset_us

    def rgb_rate_hz(self) -> float:
        return self.rate_hz

    def rgb_calibration(self):
        return self.calibration

    def rgb_frame(self, device_time_us: float) -> tuple[np.ndarray, float]:
        index = int(np.abs(self.captures_us - device_time_us).argmin())
        return np.full(self.shape, index % 256, np.uint8), float(self.captures_us[index])


def write_smpl_fits(folder: Path, motion: Motion, spec: FixtureSpec, betas: np.ndarray, fps: float = 48.0) -> None:
    """`body/xdata_smpl_neutral.npz` of a motion whose rest joints are the SMPL model's at `betas` (unshifted), so
    that SMPL's `transl` is the motion's `trans`; stored Y-up (our world's axes), TIME_CODE stamps, at `fps`."""
    motion = motion.to(torch.float64).resample(fps)
    n = motion.num_frames
    device_us = spec.device_start_us + np.arange(n) / fps * 1e6
    pose = np.concatenate((motion.pose_body.numpy(), np.zeros((n, 6))), axis=1)
    (folder / "body").mkdir(parents=True, exist_ok=True)
    np.savez(
        folder / "body" / "xdata_smpl_neutral.npz",
        betas=np.tile(betas, (n, 1)),
        body_pose=pose,
        global_orient=motion.root_orient.numpy(),
        transl=motion.trans.numpy(),
        timestamps=np.round(device_us + spec.timecode_offset_us).astype(np.int64),
    )

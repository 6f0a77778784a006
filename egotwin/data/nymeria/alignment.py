"""Time and space alignment of the XSens body with the Aria head recording.

Time: XSens stamps are in the TIME_CODE clock, the trajectory, the RGB frames and the narrations in the head device's
clock. `Clock` maps one to the other, from the head VRS's time-sync records or from a known constant offset.

Space: one constant head-to-device transform H per sequence (the hand-eye calibration: our retargeted head joint's
frame -> the Aria device frame), solved from relative motions as Nymeria does (`A H = H B`: rotation from the
log-rotations by an SVD, then the translation by least squares). Each clip then places the body in the Aria world by
one rigid transform about the vertical (both worlds are gravity-aligned), fitted so that head @ H meets the SLAM
device poses over the clip; what is left over is the clip's residual.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from egotwin.body.rotations import quaternion_slerp
from egotwin.data.nymeria.files import Trajectory
from egotwin.data.nymeria.retarget import ZUP_TO_YUP


# ------------------------------------------------------------------------------------------------- time
@dataclass(frozen=True)
class Clock:
    """A piecewise-linear map between TIME_CODE and device microseconds, through sample pairs (K >= 2)."""

    timecode_us: np.ndarray
    device_us: np.ndarray

    @classmethod
    def from_offset(cls, offset_us: float) -> Clock:
        """device = timecode - offset (`--timecode_offset_us`: TIME_CODE minus device time)."""
        return cls(np.array([0.0, 1e15]), np.array([-offset_us, 1e15 - offset_us]))

    def to_device(self, timecode_us: np.ndarray) -> np.ndarray:
        """TIME_CODE us -> device us (linear extrapolation past the samples, at the end segments' rates)."""
        return _interp(np.asarray(timecode_us, dtype=np.float64), self.timecode_us, self.device_us)

    def to_timecode(self, device_us: np.ndarray) -> np.ndarray:
        return _interp(np.asarray(device_us, dtype=np.float64), self.device_us, self.timecode_us)


def _interp(x: np.ndarray, xp: np.ndarray, fp: np.ndarray) -> np.ndarray:
    y = np.interp(x, xp, fp)
    low, high = x < xp[0], x > xp[-1]
    y[low] = fp[0] + (x[low] - xp[0]) * (fp[1] - fp[0]) / (xp[1] - xp[0])
    y[high] = fp[-1] + (x[high] - xp[-1]) * (fp[-1] - fp[-2]) / (xp[-1] - xp[-2])
    return y


def clock_from_recording(recording, timecode_us: np.ndarray, every_s: float = 1.0) -> Clock:
    """Sample a `HeadRecording`'s TIME_CODE -> device conversion every `every_s` over the stamps (N,)."""
    step = max(1, round(every_s * 1e6 / np.median(np.diff(timecode_us))))
    samples = np.unique(np.append(timecode_us[::step], timecode_us[-1])).astype(np.float64)
    return Clock(samples, recording.timecode_to_device_us(samples))


# ------------------------------------------------------------------------------------------ trajectory
def device_poses(trajectory: Trajectory, times_us: np.ndarray, max_gap_us: float) -> tuple[np.ndarray, np.ndarray]:
    """SLAM device-to-world poses (K, 4, 4) in the Y-up Aria world at device times (K,): positions interpolated
    linearly, rotations by slerp between the two samples around each time. `valid` (K,) is False outside the
    trajectory or where those two samples are more than `max_gap_us` apart (a tracking gap)."""
    stamps = trajectory.timestamps_us.astype(np.float64)
    hi = np.clip(np.searchsorted(stamps, times_us), 1, len(stamps) - 1)
    lo = hi - 1
    span = stamps[hi] - stamps[lo]
    frac = np.clip((times_us - stamps[lo]) / np.where(span > 0, span, 1), 0, 1)
    valid = (times_us >= stamps[0]) & (times_us <= stamps[-1]) & (span <= max_gap_us)
    position = trajectory.positions[lo] * (1 - frac[:, None]) + trajectory.positions[hi] * frac[:, None]
    wxyz = torch.from_numpy(trajectory.quaternions_xyzw[:, [3, 0, 1, 2]])
    wxyz = wxyz / wxyz.norm(dim=-1, keepdim=True)
    q = quaternion_slerp(wxyz[lo], wxyz[hi], torch.from_numpy(frac)).numpy()
    poses = np.tile(np.eye(4), (len(times_us), 1, 1))
    poses[:, :3, :3] = ZUP_TO_YUP @ Rotation.from_quat(q[:, [1, 2, 3, 0]]).as_matrix()
    poses[:, :3, 3] = position @ ZUP_TO_YUP.T
    return poses, valid


def min_quality(trajectory: Trajectory, start_us: float, end_us: float) -> float:
    """The lowest `quality_score` of the trajectory samples in [start, end] (NaN when the file has none)."""
    inside = (trajectory.timestamps_us >= start_us) & (trajectory.timestamps_us <= end_us)
    values = trajectory.quality[inside]
    return float(values.min()) if len(values) and np.isfinite(values).all() else float("nan")


# ---------------------------------------------------------------------------------------------- space
def rigid(rotation: np.ndarray, translation: np.ndarray) -> np.ndarray:
    out = np.eye(4)
    out[:3, :3], out[:3, 3] = rotation, translation
    return out


def solve_hand_eye(heads: np.ndarray, devices: np.ndarray, gap: int, min_angle_deg: float = 3.0) -> np.ndarray:
    """H (4, 4) with heads[i]^-1 heads[j] H = H devices[i]^-1 devices[j], from pairs (i, i + gap) of poses
    (K, 4, 4) taken at the same times in two worlds. Raises ValueError when the head turns too little, or about
    too few axes, for the rotation to be determined."""
    a = np.linalg.inv(heads[:-gap]) @ heads[gap:]
    b = np.linalg.inv(devices[:-gap]) @ devices[gap:]
    alpha = Rotation.from_matrix(a[:, :3, :3]).as_rotvec()
    beta = Rotation.from_matrix(b[:, :3, :3]).as_rotvec()
    keep = np.linalg.norm(alpha, axis=1) > np.radians(min_angle_deg)
    if keep.sum() < 10 or np.linalg.svd(alpha[keep], compute_uv=False)[1] < 1e-3 * keep.sum():
        raise ValueError(f"the head turns about too few axes ({keep.sum()} usable motions) to calibrate head to device")
    # Kabsch: R = argmin sum |alpha - R beta|^2
    u, _, vt = np.linalg.svd(alpha[keep].T @ beta[keep])
    d = np.sign(np.linalg.det(u @ vt))
    rotation = u @ np.diag([1.0, 1.0, d]) @ vt
    # (R_A - I) t = R t_B - t_A, stacked over all pairs
    lhs = (a[keep, :3, :3] - np.eye(3)).reshape(-1, 3)
    rhs = (b[keep, :3, 3] @ rotation.T - a[keep, :3, 3]).reshape(-1)
    translation = np.linalg.lstsq(lhs, rhs, rcond=None)[0]
    return rigid(rotation, translation)


@dataclass
class ClipAlignment:
    """The rigid transform (rotation about +y, translation) from the body's world into the Aria world for one clip,
    and how well head @ H then meets the SLAM device poses."""

    transform: np.ndarray
    """(4, 4)"""
    residual_m: np.ndarray
    """(K,) position distance per frame, metres."""
    residual_deg: np.ndarray
    """(K,) rotation angle per frame, degrees."""


def align_clip(predicted: np.ndarray, devices: np.ndarray) -> ClipAlignment:
    """Fit Y = (yaw, t) so that Y predicted[k] ~ devices[k] (both (K, 4, 4)): the yaw from the rotations (defined
    even when the wearer stands still), then the translation from the positions."""
    m = (devices[:, :3, :3] @ predicted[:, :3, :3].transpose(0, 2, 1)).sum(0)
    yaw = np.arctan2(m[0, 2] - m[2, 0], m[0, 0] + m[2, 2])
    c, s = np.cos(yaw), np.sin(yaw)
    rotation = np.array([[c, 0, s], [0, 1.0, 0], [-s, 0, c]])
    translation = (devices[:, :3, 3] - predicted[:, :3, 3] @ rotation.T).mean(0)
    transform = rigid(rotation, translation)
    placed = transform @ predicted
    residual_m = np.linalg.norm(placed[:, :3, 3] - devices[:, :3, 3], axis=1)
    relative = placed[:, :3, :3].transpose(0, 2, 1) @ devices[:, :3, :3]
    residual_deg = np.degrees(np.linalg.norm(Rotation.from_matrix(relative).as_rotvec(), axis=1))
    return ClipAlignment(transform, residual_m, residual_deg)


def floor_height(foot_heights: np.ndarray, rest_clearance: float) -> float:
    """The floor's height under a clip: the median over frames of the lowest foot joint (K, 4) minus how high that
    joint sits above the floor at rest. The median holds while one foot is planted in most frames (walking,
    standing); for a jump or stairs it is the level the feet mostly stand on."""
    return float(np.median(foot_heights.min(axis=1)) - rest_clearance)

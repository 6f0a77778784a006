"""Camera-trajectory comparison: Umeyama Sim(3) alignment and the TransErr / RotErr viewpoint-alignment metrics.

EgoTwin scores viewpoint alignment with the camera-pose metrics of CameraCtrl (He et al., 2024): a camera path is
estimated from the generated video and compared, frame by frame, with the reference path (here the head camera of
the generated motion):

    TransErr = sum_j || t_est^j - t_ref^j ||_2                        (metres of the reference path)
    RotErr   = sum_j arccos((tr(R_est^j R_ref^j^T) - 1) / 2)           (radians)

A monocular estimate has no world frame and no metric scale, so, as in CameraCtrl, poses are compared after
bringing the estimate into the reference frame: camera centres by the least-squares similarity transform
(Umeyama 1991: rotation, translation, one global scale), and orientations relative to each path's first frame
(both start at the identity, which removes the unknown world rotation of the estimate without letting a poorly
constrained position fit rotate the orientations). Sums run over all frames, frame 0 included (it contributes ~0
to RotErr by construction). Per-frame means (`*_mean`) are reported too, since sums grow with the clip length.

We do not depend on `evo` (its install pulls in matplotlib, seaborn, pandas and rosbags); our Umeyama follows its
`evo.core.geometry.umeyama_alignment` and the tests compare it with SciPy's Kabsch solver.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation


@dataclass(frozen=True)
class Sim3:
    """x -> scale * rotation @ x + translation."""

    rotation: np.ndarray
    """(3, 3)."""
    translation: np.ndarray
    """(3,)."""
    scale: float

    def apply(self, points: np.ndarray) -> np.ndarray:
        """points (..., 3) -> (..., 3)."""
        return self.scale * points @ self.rotation.T + self.translation

    def matrix(self) -> np.ndarray:
        """(4, 4) homogeneous form."""
        out = np.eye(4)
        out[:3, :3] = self.scale * self.rotation
        out[:3, 3] = self.translation
        return out


def umeyama_alignment(source: np.ndarray, target: np.ndarray, with_scale: bool = True) -> Sim3:
    """Least-squares similarity transform mapping `source` (N, 3) onto `target` (N, 3) (Umeyama 1991, eqs. 34-43).

    Degenerate inputs (all source points equal) have no defined rotation or scale: the identity rotation and unit
    scale are returned with the centroid shift, so a motionless estimate is compared with the reference as is.
    """
    source = np.asarray(source, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    if source.ndim != 2 or source.shape[1] != 3 or source.shape != target.shape:
        raise ValueError(f"need two (N, 3) point sets of equal size, got {source.shape} and {target.shape}")
    if not (np.isfinite(source).all() and np.isfinite(target).all()):
        raise ValueError("point sets contain NaN or infinite values")
    mu_source, mu_target = source.mean(0), target.mean(0)
    source_centred, target_centred = source - mu_source, target - mu_target
    variance = (source_centred**2).sum() / len(source)
    if variance < 1e-12:
        return Sim3(np.eye(3), mu_target - mu_source, 1.0)
    covariance = target_centred.T @ source_centred / len(source)
    u, d, vt = np.linalg.svd(covariance)
    # reflection guard: force det(R) = +1
    s = np.eye(3)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        s[2, 2] = -1
    rotation = u @ s @ vt
    scale = float(np.trace(np.diag(d) @ s) / variance) if with_scale else 1.0
    return Sim3(rotation, mu_target - scale * rotation @ mu_source, scale)


def rotation_angles(rotations_a: np.ndarray, rotations_b: np.ndarray) -> np.ndarray:
    """Geodesic angles (radians) between two stacks of rotations (..., 3, 3) -> (...)."""
    relative = np.asarray(rotations_a) @ np.swapaxes(np.asarray(rotations_b), -1, -2)
    flat = relative.reshape(-1, 3, 3)
    return Rotation.from_matrix(flat).magnitude().reshape(relative.shape[:-2])


def _relative_to_first(poses: np.ndarray) -> np.ndarray:
    """(T, 4, 4) camera-to-world -> (T, 3, 3) orientations in the first camera's frame."""
    return poses[0, :3, :3].T @ poses[:, :3, :3]


@dataclass(frozen=True)
class TrajectoryErrors:
    """Viewpoint-alignment errors of an estimated camera path against a reference path."""

    trans_err: float
    """Sum over frames of camera-centre distances after Sim(3) alignment (metres, reference scale)."""
    rot_err: float
    """Sum over frames of first-frame-relative rotation angles (radians)."""
    trans_err_mean: float
    rot_err_mean: float
    scale: float
    """Scale of the fitted Sim(3) (reference units per estimate unit)."""
    num_frames: int
    alignment: Sim3
    """The fitted transform from the estimate's frame into the reference frame."""

    def as_dict(self) -> dict[str, float]:
        return {
            "trans_err": self.trans_err,
            "rot_err": self.rot_err,
            "trans_err_mean": self.trans_err_mean,
            "rot_err_mean": self.rot_err_mean,
            "scale": self.scale,
            "num_frames": self.num_frames,
        }


def trajectory_errors(estimate: np.ndarray, reference: np.ndarray, with_scale: bool = True) -> TrajectoryErrors:
    """TransErr / RotErr (module docstring) of camera-to-world poses `estimate` (T, 4, 4) against `reference`
    (T, 4, 4)."""
    estimate = np.asarray(estimate, dtype=np.float64)
    reference = np.asarray(reference, dtype=np.float64)
    if estimate.ndim != 3 or estimate.shape[1:] != (4, 4) or estimate.shape != reference.shape:
        raise ValueError(f"need two (T, 4, 4) pose stacks of equal length, got {estimate.shape} and {reference.shape}")
    if len(estimate) < 2:
        raise ValueError("need at least 2 poses")
    if not (np.isfinite(estimate).all() and np.isfinite(reference).all()):
        raise ValueError("poses contain NaN or infinite values")
    sim3 = umeyama_alignment(estimate[:, :3, 3], reference[:, :3, 3], with_scale=with_scale)
    distances = np.linalg.norm(sim3.apply(estimate[:, :3, 3]) - reference[:, :3, 3], axis=-1)
    angles = rotation_angles(_relative_to_first(estimate), _relative_to_first(reference))
    return TrajectoryErrors(
        trans_err=float(distances.sum()),
        rot_err=float(angles.sum()),
        trans_err_mean=float(distances.mean()),
        rot_err_mean=float(angles.mean()),
        scale=sim3.scale,
        num_frames=len(estimate),
        alignment=sim3,
    )

"""`Motion`: a whole-body motion on the 22-joint skeleton, and its SMPL-X parameter files.

The file layout is AMASS's (`trans`, `root_orient`, `pose_body`, `betas`, `mocap_frame_rate`), so motion that users
already have loads as it is. EgoTwin adds `rest_joints` (the skeleton the motion was made on) to the files it writes;
a file without it gets the skeleton of the body model it is loaded with.
"""

from __future__ import annotations

import math
import zipfile
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from egotwin.body.builtin import builtin_rest_joints
from egotwin.body.kinematics import forward_kinematics
from egotwin.body.rotations import (
    axis_angle_to_matrix,
    matrix_to_axis_angle,
    matrix_to_quaternion,
    quaternion_slerp,
    quaternion_to_matrix,
    rotation_about_y,
)
from egotwin.body.skeleton import HEAD, NUM_BODY_JOINTS, NUM_JOINTS

MOTION_FPS = 16.0  # spec section 2


class MotionFileError(ValueError):
    """A motion file that cannot be read as a motion: missing keys, wrong shapes, non-finite values, corrupt archive."""


@dataclass
class Motion:
    """T frames of whole-body motion.

    Rotations are stored as matrices so that conversions to and from features are exact; `root_orient` and
    `pose_body` give SMPL-X's axis-angle layout.
    """

    trans: torch.Tensor
    """(T, 3) SMPL-X `trans`: the pelvis is at rest_joints[0] + trans."""
    global_orient: torch.Tensor
    """(T, 3, 3) world rotation of the pelvis."""
    body_pose: torch.Tensor
    """(T, 21, 3, 3) parent-relative rotations of joints 1..21."""
    rest_joints: torch.Tensor = field(default_factory=builtin_rest_joints)
    """(22, 3) rest-pose joint positions of the body that performs the motion."""
    fps: float = MOTION_FPS
    betas: torch.Tensor = field(default_factory=lambda: torch.zeros(10))
    """SMPL-X shape coefficients, kept for users with SMPL-X files; the built-in body ignores them."""

    def __post_init__(self) -> None:
        t = self.trans.shape[0] if self.trans.ndim == 2 else -1
        expected = {
            "trans": (self.trans, (t, 3)),
            "global_orient": (self.global_orient, (t, 3, 3)),
            "body_pose": (self.body_pose, (t, NUM_BODY_JOINTS, 3, 3)),
            "rest_joints": (self.rest_joints, (NUM_JOINTS, 3)),
        }
        for name, (value, shape) in expected.items():
            if tuple(value.shape) != shape:
                raise ValueError(f"Motion.{name} must have shape {shape} (T = {t}), got {tuple(value.shape)}")
            if not torch.isfinite(value).all():
                raise ValueError(f"Motion.{name} contains NaN or infinite values")
        if t < 1:
            raise ValueError("a Motion needs at least one frame")
        if not (math.isfinite(self.fps) and self.fps > 0):
            raise ValueError(f"Motion.fps must be positive, got {self.fps}")

    # ----------------------------------------------------------------------------------------------- views
    @property
    def num_frames(self) -> int:
        return self.trans.shape[0]

    @property
    def duration(self) -> float:
        """Seconds from the first to the last frame."""
        return (self.num_frames - 1) / self.fps

    @property
    def local_rotations(self) -> torch.Tensor:
        """(T, 22, 3, 3): root orientation followed by the 21 body rotations, the input of FK."""
        return torch.cat((self.global_orient[:, None], self.body_pose), dim=1)

    @property
    def root_orient(self) -> torch.Tensor:
        """(T, 3) axis-angle."""
        return matrix_to_axis_angle(self.global_orient)

    @property
    def pose_body(self) -> torch.Tensor:
        """(T, 63) axis-angle, SMPL-X order."""
        return matrix_to_axis_angle(self.body_pose).reshape(self.num_frames, -1)

    def forward_kinematics(self) -> tuple[torch.Tensor, torch.Tensor]:
        """World rotations (T, 22, 3, 3) and positions (T, 22, 3) of all joints."""
        return forward_kinematics(self.local_rotations, self.rest_joints, self.trans)

    def joints(self) -> torch.Tensor:
        """(T, 22, 3) world joint positions."""
        return self.forward_kinematics()[1]

    def head_pose(self) -> tuple[torch.Tensor, torch.Tensor]:
        """World rotation (T, 3, 3) and position (T, 3) of the head joint, through FK."""
        rotations, joints = self.forward_kinematics()
        return rotations[:, HEAD], joints[:, HEAD]

    # ------------------------------------------------------------------------------------------ constructors
    @classmethod
    def from_axis_angle(
        cls,
        trans: torch.Tensor,
        root_orient: torch.Tensor,
        pose_body: torch.Tensor,
        **kwargs,
    ) -> "Motion":
        """From SMPL-X's axis-angle layout: trans (T, 3), root_orient (T, 3), pose_body (T, 63) or (T, 21, 3)."""
        t = trans.shape[0]
        return cls(
            trans=trans,
            global_orient=axis_angle_to_matrix(root_orient),
            body_pose=axis_angle_to_matrix(pose_body.reshape(t, NUM_BODY_JOINTS, 3)),
            **kwargs,
        )

    @classmethod
    def rest(cls, num_frames: int = 1, rest_joints: torch.Tensor | None = None, fps: float = MOTION_FPS) -> "Motion":
        """The T-pose held still, standing on the floor."""
        rest_joints = builtin_rest_joints() if rest_joints is None else rest_joints
        eye = torch.eye(3, dtype=rest_joints.dtype)
        return cls(
            trans=torch.zeros(num_frames, 3, dtype=rest_joints.dtype),
            global_orient=eye.expand(num_frames, 3, 3).clone(),
            body_pose=eye.expand(num_frames, NUM_BODY_JOINTS, 3, 3).clone(),
            rest_joints=rest_joints,
            fps=fps,
        )

    def to(self, *args, **kwargs) -> "Motion":
        """Move or cast every tensor, like `torch.Tensor.to`."""
        return replace(
            self,
            trans=self.trans.to(*args, **kwargs),
            global_orient=self.global_orient.to(*args, **kwargs),
            body_pose=self.body_pose.to(*args, **kwargs),
            rest_joints=self.rest_joints.to(*args, **kwargs),
            betas=self.betas.to(*args, **kwargs),
        )

    def slice(self, start: int, stop: int | None = None) -> "Motion":
        """Frames [start, stop)."""
        s = slice(start, stop)
        return replace(self, trans=self.trans[s], global_orient=self.global_orient[s], body_pose=self.body_pose[s])

    # -------------------------------------------------------------------------------------------- resampling
    def resample(self, fps: float = MOTION_FPS) -> "Motion":
        """The same motion at another frame rate: positions interpolated linearly, rotations by slerp.

        The new frames are at times k / fps for k = 0 .. floor(duration * fps); the first frame is kept exactly."""
        if fps <= 0:
            raise ValueError(f"fps must be positive, got {fps}")
        count = int(math.floor(self.duration * fps + 1e-6)) + 1
        src = torch.arange(count, dtype=torch.float64) * (self.fps / fps)
        lo = src.floor().long().clamp(max=self.num_frames - 1)
        hi = (lo + 1).clamp(max=self.num_frames - 1)
        frac = (src - lo).to(self.trans.dtype)

        def lerp(x: torch.Tensor) -> torch.Tensor:
            f = frac.reshape(-1, *([1] * (x.ndim - 1)))
            return x[lo] * (1 - f) + x[hi] * f

        def slerp(r: torch.Tensor) -> torch.Tensor:
            q = matrix_to_quaternion(r)
            f = frac.reshape(-1, *([1] * (q.ndim - 2)))
            return quaternion_to_matrix(quaternion_slerp(q[lo], q[hi], f.expand(q[lo].shape[:-1])))

        return replace(
            self,
            trans=lerp(self.trans),
            global_orient=slerp(self.global_orient),
            body_pose=slerp(self.body_pose),
            fps=float(fps),
        )

    # ----------------------------------------------------------------------------------------- canonical frame
    def canonical_transform(self) -> torch.Tensor:
        """(4, 4) rigid world transform (yaw about +y and a horizontal shift) that puts the frame-0 head above the
        origin, facing +z. Height and gravity direction are kept."""
        head_rot, head_pos = self.head_pose()
        forward = head_rot[0, :, 2]
        yaw = torch.atan2(forward[0], forward[2])
        rot = rotation_about_y(-yaw)
        shift = -(rot @ head_pos[0])
        shift[1] = 0
        transform = torch.eye(4, dtype=self.trans.dtype)
        transform[:3, :3] = rot
        transform[:3, 3] = shift
        return transform

    def transformed(self, transform: torch.Tensor) -> "Motion":
        """The motion moved by a rigid (4, 4) world transform (rotation + translation)."""
        rot, shift = transform[:3, :3].to(self.trans), transform[:3, 3].to(self.trans)
        pelvis = self.trans + self.rest_joints[0]
        new_pelvis = pelvis @ rot.T + shift
        return replace(self, trans=new_pelvis - self.rest_joints[0], global_orient=rot @ self.global_orient)

    def canonicalize(self) -> tuple["Motion", torch.Tensor]:
        """The motion in its canonical frame (spec section 3) and the (4, 4) transform that was applied, so that
        cameras and scenes recorded with it can be moved the same way."""
        transform = self.canonical_transform()
        return self.transformed(transform), transform

    # -------------------------------------------------------------------------------------------------- files
    def save_npz(self, path: str | Path) -> None:
        """Write the AMASS / SMPL-X parameter layout plus EgoTwin's `rest_joints`."""
        np.savez(
            path,
            trans=self.trans.double().numpy(),
            root_orient=self.root_orient.double().numpy(),
            pose_body=self.pose_body.double().numpy(),
            betas=self.betas.double().numpy(),
            mocap_frame_rate=np.float64(self.fps),
            rest_joints=self.rest_joints.double().numpy(),
        )

    @classmethod
    def load_npz(cls, path: str | Path, rest_joints: torch.Tensor | None = None, dtype: torch.dtype = torch.float32) -> "Motion":
        """Read an AMASS-style `.npz`. Accepts `pose_body` (T, 63) or AMASS's full `poses` (T, 156 or 165), whose
        first 66 values are root_orient + pose_body. `rest_joints` overrides the skeleton stored in the file;
        without either, the built-in body is used."""
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {k: data[k] for k in data.files}
        except FileNotFoundError:
            raise
        except (zipfile.BadZipFile, EOFError, OSError, ValueError) as error:
            raise MotionFileError(f"{path}: not a readable .npz archive ({error})") from error

        def need(key: str) -> np.ndarray:
            if key not in arrays:
                raise MotionFileError(f"{path}: missing array '{key}' (found: {sorted(arrays)})")
            return arrays[key]

        trans = need("trans")
        if trans.ndim != 2 or trans.shape[1] != 3 or trans.shape[0] < 1:
            raise MotionFileError(f"{path}: 'trans' must have shape (T, 3), got {trans.shape}")
        t = trans.shape[0]
        if "pose_body" in arrays or "root_orient" in arrays:
            root_orient, pose_body = need("root_orient"), need("pose_body")
        elif "poses" in arrays:
            poses = arrays["poses"]
            if poses.ndim != 2 or poses.shape[1] < 66:
                raise MotionFileError(f"{path}: 'poses' must have shape (T, >=66), got {poses.shape}")
            root_orient, pose_body = poses[:, :3], poses[:, 3:66]
        else:
            raise MotionFileError(f"{path}: needs 'root_orient' and 'pose_body' (or AMASS 'poses'); found {sorted(arrays)}")
        pose_body = pose_body.reshape(pose_body.shape[0], -1) if pose_body.ndim == 3 else pose_body
        if root_orient.shape != (t, 3):
            raise MotionFileError(f"{path}: 'root_orient' must have shape ({t}, 3) to match 'trans', got {root_orient.shape}")
        if pose_body.shape != (t, 3 * NUM_BODY_JOINTS):
            raise MotionFileError(f"{path}: 'pose_body' must have shape ({t}, 63) to match 'trans', got {pose_body.shape}")
        fps_key = "mocap_frame_rate" if "mocap_frame_rate" in arrays else "mocap_framerate"
        fps = float(need(fps_key) if fps_key in arrays else need("mocap_frame_rate"))
        betas = arrays.get("betas", np.zeros(10))
        if rest_joints is None and "rest_joints" in arrays:
            rest_joints = torch.as_tensor(arrays["rest_joints"])
            if rest_joints.shape != (NUM_JOINTS, 3):
                raise MotionFileError(f"{path}: 'rest_joints' must have shape (22, 3), got {tuple(rest_joints.shape)}")
        for name, value in (("trans", trans), ("root_orient", root_orient), ("pose_body", pose_body), ("betas", betas)):
            if not np.isfinite(value).all():
                raise MotionFileError(f"{path}: '{name}' contains NaN or infinite values")
        if not (math.isfinite(fps) and fps > 0):
            raise MotionFileError(f"{path}: frame rate must be positive, got {fps}")
        as_tensor = lambda x: torch.as_tensor(np.asarray(x, dtype=np.float64)).to(dtype)  # noqa: E731
        return cls.from_axis_angle(
            as_tensor(trans),
            as_tensor(root_orient),
            as_tensor(pose_body),
            rest_joints=(builtin_rest_joints() if rest_joints is None else rest_joints).to(dtype),
            fps=fps,
            betas=as_tensor(np.ravel(betas)),
        )

"""`Motion`: a whole-body motion on the 22-joint skeleton, and its SMPL-X parameter files.

The file layout is AMASS's (`trans`, `root_orient`, `pose_body`, `betas`, `mocap_frame_rate`), so motion that users
already have loads as it is. EgoTwin adds `rest_joints` (the skeleton the motion was made on) to the files it writes;
a file without it gets the skeleton of the body model it is loaded with.
"""

from __future__ import annotations

import math
import zipfile
import zlib
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
from egotwin.data.constants import MOTION_FPS


def _check_rigid_transform(transform: torch.Tensor, atol: float = 1e-4) -> None:
    """Raise ValueError unless `transform` is a (4, 4) rotation + translation (no scale, shear or reflection)."""
    if tuple(transform.shape) != (4, 4):
        raise ValueError(f"a rigid transform must have shape (4, 4), got {tuple(transform.shape)}")
    t = transform.detach().double()
    rot = t[:3, :3]
    eye = torch.eye(3, dtype=t.dtype, device=t.device)
    bottom = torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=t.dtype, device=t.device)
    if not torch.isfinite(t).all():
        raise ValueError("the transform contains NaN or infinite values")
    if not torch.allclose(rot.T @ rot, eye, atol=atol) or torch.linalg.det(rot) < 0 or not torch.allclose(t[3], bottom):
        raise ValueError(f"the transform is not rigid (rotation + translation, last row 0 0 0 1):\n{transform}")


class MotionFileError(ValueError):
    """A motion file that cannot be read as a motion: missing keys, wrong shapes, non-finite values, corrupt archive."""


@dataclass
class Motion:
    """T frames of whole-body motion.

    Rotations are stored as matrices so that conversions to and from features are exact; `root_orient` and
    `pose_body` give SMPL-X's axis-angle layout. trans, global_orient and body_pose must share one floating dtype
    and device; rest_joints and betas are cast to them. Bad shapes and non-finite values raise ValueError.
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
            if not value.is_floating_point():
                raise ValueError(f"Motion.{name} must be a floating-point tensor, got {value.dtype}")
            if not torch.isfinite(value).all():
                raise ValueError(f"Motion.{name} contains NaN or infinite values")
        if t < 1:
            raise ValueError("a Motion needs at least one frame")
        for name in ("global_orient", "body_pose"):
            value = getattr(self, name)
            if value.dtype != self.trans.dtype or value.device != self.trans.device:
                raise ValueError(
                    f"Motion.{name} is {value.dtype} on {value.device} but trans is {self.trans.dtype} on "
                    f"{self.trans.device}; use one dtype and device"
                )
        if self.betas.ndim != 1 or not torch.isfinite(self.betas).all():
            raise ValueError(
                f"Motion.betas must be a finite 1-D tensor (any length), got shape {tuple(self.betas.shape)}"
            )
        self.fps = float(self.fps)
        if not (math.isfinite(self.fps) and self.fps > 0):
            raise ValueError(f"Motion.fps must be positive, got {self.fps}")
        # The skeleton and shape usually come from defaults (float32, CPU); they follow the motion's dtype and device.
        self.rest_joints = self.rest_joints.to(self.trans)
        self.betas = self.betas.to(self.trans)

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
    ) -> Motion:
        """From SMPL-X's axis-angle layout: trans (T, 3), root_orient (T, 3), pose_body (T, 63) or (T, 21, 3)."""
        t = trans.shape[0]
        if root_orient.shape != (t, 3) or pose_body.shape not in ((t, 3 * NUM_BODY_JOINTS), (t, NUM_BODY_JOINTS, 3)):
            raise ValueError(
                f"from_axis_angle needs root_orient ({t}, 3) and pose_body ({t}, 63) or ({t}, 21, 3) to match trans "
                f"{tuple(trans.shape)}; got {tuple(root_orient.shape)} and {tuple(pose_body.shape)}"
            )
        return cls(
            trans=trans,
            global_orient=axis_angle_to_matrix(root_orient),
            body_pose=axis_angle_to_matrix(pose_body.reshape(t, NUM_BODY_JOINTS, 3)),
            **kwargs,
        )

    @classmethod
    def rest(cls, num_frames: int = 1, rest_joints: torch.Tensor | None = None, fps: float = MOTION_FPS) -> Motion:
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

    def to(self, *args, **kwargs) -> Motion:
        """Move or cast every tensor, like `torch.Tensor.to`."""
        return replace(
            self,
            trans=self.trans.to(*args, **kwargs),
            global_orient=self.global_orient.to(*args, **kwargs),
            body_pose=self.body_pose.to(*args, **kwargs),
            rest_joints=self.rest_joints.to(*args, **kwargs),
            betas=self.betas.to(*args, **kwargs),
        )

    def slice(self, start: int, stop: int | None = None) -> Motion:
        """Frames [start, stop)."""
        s = slice(start, stop)
        return replace(self, trans=self.trans[s], global_orient=self.global_orient[s], body_pose=self.body_pose[s])

    # -------------------------------------------------------------------------------------------- resampling
    def resample(self, fps: float = MOTION_FPS, max_frames: int | None = None) -> Motion:
        """The same motion at another frame rate: positions interpolated linearly, rotations by slerp.

        The new frames are at times k / fps for k = 0 .. floor(duration * fps), or only the first `max_frames` of
        them: then only the source frames they need are read, so the work is bounded by `max_frames` and the source
        frames in that span, however long the motion lasts. New frames that fall on an old frame (always the first
        one) are copied from it exactly, not re-interpolated."""
        if not (math.isfinite(fps) and fps > 0):
            raise ValueError(f"fps must be positive, got {fps}")
        count = int(math.floor(self.duration * fps + 1e-6)) + 1
        source = self
        if max_frames is not None and count > max_frames:
            count = max(1, max_frames)
            source = self.slice(0, math.floor((count - 1) * self.fps / fps + 1e-9) + 2)  # frames up to the last one
        device = source.trans.device
        src = torch.arange(count, dtype=torch.float64, device=device) * (source.fps / fps)
        # Source times within 1e-9 frames of an old frame are that frame (30 -> 16 fps hits every 15th one).
        src = torch.where((src - src.round()).abs() < 1e-9, src.round(), src)
        lo = src.floor().long().clamp(max=source.num_frames - 1)
        hi = (lo + 1).clamp(max=source.num_frames - 1)
        frac = (src - lo).to(source.trans.dtype)
        on_frame = frac == 0

        def lerp(x: torch.Tensor) -> torch.Tensor:
            f = frac.reshape(-1, *([1] * (x.ndim - 1)))
            return x[lo] * (1 - f) + x[hi] * f

        def slerp(r: torch.Tensor) -> torch.Tensor:
            q = matrix_to_quaternion(r)
            f = frac.reshape(-1, *([1] * (q.ndim - 2)))
            out = quaternion_to_matrix(quaternion_slerp(q[lo], q[hi], f.expand(q[lo].shape[:-1])))
            return torch.where(on_frame.reshape(-1, *([1] * (r.ndim - 1))), r[lo], out)

        return replace(
            source,
            trans=lerp(source.trans),
            global_orient=slerp(source.global_orient),
            body_pose=slerp(source.body_pose),
            fps=float(fps),
        )

    # ----------------------------------------------------------------------------------------- canonical frame
    def canonical_transform(self) -> torch.Tensor:
        """(4, 4) rigid world transform (yaw about +y and a horizontal shift) that puts the frame-0 head above the
        origin, facing +z. Height and gravity direction are kept.

        "Facing" is the head's forward (local +z) axis projected on the floor; a head looking straight up or down has
        no heading, and its yaw is then taken as zero."""
        head_rot, head_pos = self.head_pose()
        forward = head_rot[0, :, 2]
        yaw = torch.atan2(forward[0], forward[2])
        rot = rotation_about_y(-yaw)
        shift = -(rot @ head_pos[0])
        shift[1] = 0
        transform = torch.eye(4, dtype=self.trans.dtype, device=self.trans.device)
        transform[:3, :3] = rot
        transform[:3, 3] = shift
        return transform

    def transformed(self, transform: torch.Tensor) -> Motion:
        """The motion moved by a rigid (4, 4) world transform (rotation + translation): joints p -> R p + t."""
        _check_rigid_transform(transform)
        rot, shift = transform[:3, :3].to(self.trans), transform[:3, 3].to(self.trans)
        pelvis = self.trans + self.rest_joints[0]
        new_pelvis = pelvis @ rot.T + shift
        return replace(self, trans=new_pelvis - self.rest_joints[0], global_orient=rot @ self.global_orient)

    def canonicalize(self) -> tuple[Motion, torch.Tensor]:
        """The motion in its canonical frame (design "Head-centric motion") and the (4, 4) transform that was applied,
        so that cameras and scenes recorded with it can be moved the same way."""
        transform = self.canonical_transform()
        return self.transformed(transform), transform

    # -------------------------------------------------------------------------------------------------- files
    def save_npz(self, path: str | Path) -> None:
        """Write the AMASS / SMPL-X parameter layout plus EgoTwin's `rest_joints`, in float64, to exactly `path`."""
        as_numpy = lambda x: x.detach().cpu().double().numpy()  # noqa: E731
        # Through a file object: np.savez given a name appends ".npz" to names without it.
        with open(path, "wb") as file:
            np.savez(
                file,
                trans=as_numpy(self.trans),
                root_orient=as_numpy(self.root_orient),
                pose_body=as_numpy(self.pose_body),
                betas=as_numpy(self.betas),
                mocap_frame_rate=np.float64(self.fps),
                rest_joints=as_numpy(self.rest_joints),
            )

    @classmethod
    def load_npz(
        cls, path: str | Path, rest_joints: torch.Tensor | None = None, dtype: torch.dtype = torch.float32
    ) -> Motion:
        """Read an AMASS-style `.npz`.

        Rotations come from `root_orient` (T, 3) + `pose_body` (T, 63) or (T, 21, 3), or else from AMASS's full
        `poses` (T, >= 66: SMPL 72, SMPL+H 156, SMPL-X 165), whose first 66 values are root_orient + pose_body.
        The frame rate is `mocap_frame_rate` (AMASS SMPL-X) or `mocap_framerate` (AMASS SMPL+H); `betas` may have
        any length (10, 16, 300, ...) and defaults to zeros(10). `rest_joints` overrides the skeleton stored in the
        file; without either, the built-in body is used. Other arrays (gender, dmpls, hands, markers) are ignored.
        Anything malformed raises MotionFileError; nothing is padded, cut or guessed.
        """
        path = Path(path)
        arrays, found = _read_npz(path)

        def get(key: str, ndim: tuple[int, ...]) -> np.ndarray:
            if key not in arrays:
                raise MotionFileError(f"{path}: missing array '{key}' (found: {found})")
            value = arrays[key]
            if not (np.issubdtype(value.dtype, np.floating) or np.issubdtype(value.dtype, np.integer)):
                raise MotionFileError(f"{path}: '{key}' must be numeric, got dtype {value.dtype}")
            if value.ndim not in ndim:
                raise MotionFileError(
                    f"{path}: '{key}' must have {' or '.join(map(str, ndim))} dimensions, got shape {value.shape}"
                )
            if not np.isfinite(value).all():
                raise MotionFileError(f"{path}: '{key}' contains NaN or infinite values")
            return value.astype(np.float64)

        trans = get("trans", (2,))
        t = trans.shape[0]
        if trans.shape[1] != 3 or t < 1:
            raise MotionFileError(f"{path}: 'trans' must have shape (T, 3) with T >= 1, got {trans.shape}")
        if "root_orient" in arrays or "pose_body" in arrays:
            root_orient, pose_body = get("root_orient", (2,)), get("pose_body", (2, 3))
            if pose_body.shape == (t, NUM_BODY_JOINTS, 3):
                pose_body = pose_body.reshape(t, 3 * NUM_BODY_JOINTS)
        elif "poses" in arrays:
            poses = get("poses", (2,))
            if poses.shape[0] != t or poses.shape[1] < 66:
                raise MotionFileError(
                    f"{path}: 'poses' must have shape ({t}, >= 66) to match 'trans', got {poses.shape}"
                )
            root_orient, pose_body = poses[:, :3], poses[:, 3:66]
        else:
            raise MotionFileError(f"{path}: needs 'root_orient' and 'pose_body' (or AMASS 'poses'); found {found}")
        if root_orient.shape != (t, 3):
            raise MotionFileError(
                f"{path}: 'root_orient' must have shape ({t}, 3) to match 'trans', got {root_orient.shape}"
            )
        if pose_body.shape != (t, 3 * NUM_BODY_JOINTS):
            raise MotionFileError(
                f"{path}: 'pose_body' must have shape ({t}, 63) to match 'trans', got {pose_body.shape}"
            )

        fps_keys = [key for key in ("mocap_frame_rate", "mocap_framerate") if key in arrays]
        if not fps_keys:
            raise MotionFileError(
                f"{path}: missing the frame rate ('mocap_frame_rate' or 'mocap_framerate'); found {found}"
            )
        fps = get(fps_keys[0], (0, 1))
        if fps.size != 1 or not fps.item() > 0:
            raise MotionFileError(f"{path}: '{fps_keys[0]}' must be one positive number, got {fps}")

        betas = get("betas", (1, 2)) if "betas" in arrays else np.zeros(10)
        if betas.ndim == 2:
            if betas.shape[0] != 1:
                raise MotionFileError(f"{path}: 'betas' must have shape (B,) or (1, B), got {betas.shape}")
            betas = betas[0]
        if rest_joints is None and "rest_joints" in arrays:
            rest_joints = torch.as_tensor(get("rest_joints", (2,)))
            if rest_joints.shape != (NUM_JOINTS, 3):
                raise MotionFileError(f"{path}: 'rest_joints' must have shape (22, 3), got {tuple(rest_joints.shape)}")
        as_tensor = lambda x: torch.as_tensor(x).to(dtype)  # noqa: E731
        return cls.from_axis_angle(
            as_tensor(trans),
            as_tensor(root_orient),
            as_tensor(pose_body),
            rest_joints=(builtin_rest_joints() if rest_joints is None else rest_joints).to(dtype),
            fps=fps.item(),
            betas=as_tensor(betas),
        )


# The arrays load_npz may use; others (gender, dmpls, hand poses, markers, object arrays that need pickle) are not read.
_NPZ_KEYS = (
    "trans",
    "root_orient",
    "pose_body",
    "poses",
    "betas",
    "mocap_frame_rate",
    "mocap_framerate",
    "rest_joints",
)


def _read_npz(path: Path) -> tuple[dict[str, np.ndarray], list[str]]:
    """The arrays of `_NPZ_KEYS` that the .npz archive at `path` holds, and the names of all its arrays.
    MotionFileError for anything unreadable."""
    unreadable = (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError)
    try:
        archive = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise
    except unreadable as error:
        raise MotionFileError(f"{path}: not a readable .npz archive ({error})") from error
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise MotionFileError(f"{path}: a single .npy array, not an .npz archive of named arrays")
    with archive:
        arrays = {}
        for key in _NPZ_KEYS:
            if key in archive.files:
                try:
                    arrays[key] = archive[key]
                except unreadable as error:
                    raise MotionFileError(f"{path}: array '{key}' is corrupt or unreadable ({error})") from error
        return arrays, sorted(archive.files)

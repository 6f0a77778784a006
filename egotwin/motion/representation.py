"""The surface every motion feature representation shares, and the factory that picks one by name.

A representation turns T frames of motion (parent-relative joint rotations + SMPL-X `trans` on a rest skeleton) into a
(T, D) feature matrix and back. It knows its named parts (`parts`: name -> slice of the D features, `part_shapes`:
name -> per-frame shape), packs and unpacks them, and groups features for the per-group losses of the motion VAE
(`loss_groups`). Two exist: the head-centric one EgoTwin trains with (design "Head-centric motion") and the root-centric
one of the "w/o MR" ablation. Neither canonicalises: callers put the motion in its canonical frame first
(`Motion.canonicalize()`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import OrderedDict
from typing import ClassVar

import torch

from egotwin.body.builtin import builtin_rest_joints
from egotwin.body.head_camera import HeadCameraRig
from egotwin.body.kinematics import forward_kinematics
from egotwin.body.skeleton import HEAD, NUM_JOINTS
from egotwin.data.constants import MOTION_FPS
from egotwin.motion.motion import Motion


class MotionRepresentation(ABC):
    """Base of the feature representations: part bookkeeping, input checks and the `Motion` wrappers.

    Subclasses set `name`, `part_shapes` and `group_parts`, and implement `encode_batch` / `decode_batch`.
    """

    name: ClassVar[str]
    part_shapes: ClassVar[OrderedDict[str, tuple[int, ...]]]
    """Per-frame shape of each part, in feature order."""
    group_parts: ClassVar[dict[str, tuple[str, ...]]]
    """Loss group name -> the parts it covers."""

    # --------------------------------------------------------------------------------------------- layout
    @property
    def parts(self) -> OrderedDict[str, slice]:
        """Part name -> its slice of the feature vector, in order."""
        slices, start = OrderedDict(), 0
        for part, shape in self.part_shapes.items():
            size = int(torch.Size(shape).numel())
            slices[part] = slice(start, start + size)
            start += size
        return slices

    @property
    def dim(self) -> int:
        """D, the number of features per frame."""
        return next(reversed(self.parts.values())).stop

    @property
    def loss_groups(self) -> dict[str, torch.Tensor]:
        """Loss group name -> LongTensor of the feature indices it covers."""
        parts = self.parts
        return {
            group: torch.cat([torch.arange(parts[p].start, parts[p].stop) for p in members])
            for group, members in self.group_parts.items()
        }

    def pack(self, values: dict[str, torch.Tensor]) -> torch.Tensor:
        """Part tensors (..., *part_shape) -> features (..., D), EgoAllo's `pack`."""
        missing = set(self.part_shapes) - set(values)
        if missing:
            raise ValueError(f"{self.name}: missing parts {sorted(missing)}")
        flat = []
        for part, shape in self.part_shapes.items():
            value = values[part]
            if tuple(value.shape[value.ndim - len(shape) :]) != shape:
                raise ValueError(f"{self.name}: part '{part}' must end in shape {shape}, got {tuple(value.shape)}")
            flat.append(value.reshape(*value.shape[: value.ndim - len(shape)], -1))
        return torch.cat(flat, dim=-1)

    def unpack(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        """Features (..., D) -> part name -> (..., *part_shape) views."""
        self.check_features(features)
        lead = features.shape[:-1]
        return {part: features[..., s].reshape(*lead, *self.part_shapes[part]) for part, s in self.parts.items()}

    # ------------------------------------------------------------------------------------------- checks
    def check_features(self, features: torch.Tensor) -> None:
        if features.ndim < 2 or features.shape[-1] != self.dim:
            raise ValueError(f"{self.name} features must have shape (..., T, {self.dim}), got {tuple(features.shape)}")

    @staticmethod
    def check_motion(local_rotations: torch.Tensor, trans: torch.Tensor, rest_joints: torch.Tensor) -> None:
        if local_rotations.ndim < 4 or tuple(local_rotations.shape[-3:]) != (NUM_JOINTS, 3, 3):
            raise ValueError(
                f"local_rotations must have shape (..., T, {NUM_JOINTS}, 3, 3), got {tuple(local_rotations.shape)}"
            )
        expected = (*local_rotations.shape[:-3], 3)
        if tuple(trans.shape) != expected:
            raise ValueError(f"trans must have shape {expected} to match local_rotations, got {tuple(trans.shape)}")
        if tuple(rest_joints.shape[-2:]) != (NUM_JOINTS, 3):
            raise ValueError(f"rest_joints must have shape ({NUM_JOINTS}, 3), got {tuple(rest_joints.shape)}")

    # ------------------------------------------------------------------------------------------ batched
    @abstractmethod
    def encode_batch(
        self, local_rotations: torch.Tensor, trans: torch.Tensor, rest_joints: torch.Tensor
    ) -> torch.Tensor:
        """Parent-relative rotations (..., T, 22, 3, 3) with entry 0 the pelvis's world rotation, SMPL-X `trans`
        (..., T, 3) and the rest skeleton (22, 3) (or broadcastable, e.g. (B, 1, 22, 3)) -> features (..., T, D)."""

    @abstractmethod
    def decode_batch(self, features: torch.Tensor, rest_joints: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Features (..., T, D) -> (local_rotations (..., T, 22, 3, 3), trans (..., T, 3)). Any feature values are
        accepted (6D parts go through Gram-Schmidt), so network outputs decode to valid motions."""

    # --------------------------------------------------------------------------------------- Motion API
    def encode(self, motion: Motion) -> torch.Tensor:
        """A `Motion` (already canonicalised by the caller) -> features (T, D)."""
        return self.encode_batch(motion.local_rotations, motion.trans, motion.rest_joints)

    def decode(
        self, features: torch.Tensor, rest_joints: torch.Tensor | None = None, fps: float = MOTION_FPS
    ) -> Motion:
        """Features (T, D) -> `Motion` on `rest_joints` (22, 3) (default: the built-in body)."""
        if features.ndim != 2:
            raise ValueError(f"decode takes one sequence (T, {self.dim}); use decode_batch for {tuple(features.shape)}")
        rest_joints = builtin_rest_joints(dtype=features.dtype) if rest_joints is None else rest_joints.to(features)
        local_rotations, trans = self.decode_batch(features, rest_joints)
        return Motion(
            trans=trans,
            global_orient=local_rotations[:, 0],
            body_pose=local_rotations[:, 1:],
            rest_joints=rest_joints,
            fps=fps,
        )

    def head_camera(
        self, features: torch.Tensor, rig: HeadCameraRig = HeadCameraRig(), rest_joints: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Per-frame head-camera poses (..., T, 4, 4), camera-to-world in OpenCV axes.

        This default decodes and runs FK down to the head; the head-centric representation overrides it with a
        direct read of its head parts."""
        rest_joints = builtin_rest_joints(dtype=features.dtype) if rest_joints is None else rest_joints.to(features)
        local_rotations, trans = self.decode_batch(features, rest_joints)
        rotations, joints = forward_kinematics(local_rotations, rest_joints, trans)
        return rig.camera_poses(rotations[..., HEAD, :, :], joints[..., HEAD, :])


def previous_frame(x: torch.Tensor, time_dim: int) -> torch.Tensor:
    """x shifted one frame later along `time_dim`, frame 0 repeated: entry k holds frame k-1 (frame 0 for k = 0),
    so that differences against it are zero at the first frame."""
    t = x.shape[time_dim]
    return torch.cat((x.narrow(time_dim, 0, 1), x.narrow(time_dim, 0, t - 1)), dim=time_dim)


def get_representation(name: str, **settings) -> MotionRepresentation:
    """The representation called `name` ("head_centric" or "root_centric"); `settings` go to its constructor
    (e.g. `contact_height` of the root-centric one)."""
    # Imported here: both modules import this one for the base class.
    from egotwin.motion.head_centric import HeadCentricRepresentation
    from egotwin.motion.root_centric import RootCentricRepresentation

    classes = {cls.name: cls for cls in (HeadCentricRepresentation, RootCentricRepresentation)}
    if name not in classes:
        raise ValueError(f"unknown motion representation '{name}'; choose one of {sorted(classes)}")
    return classes[name](**settings)

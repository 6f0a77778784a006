"""The skinned body mesh EgoTwin renders: the built-in mannequin, or SMPL-X when the user supplies its model files.

`load_body_model` is the one entry point. Both bodies share the 22-joint skeleton of `egotwin.body.skeleton` and are
posed the same way: forward kinematics of the local rotations, then linear blend skinning (SMPL-X's `lbs`, restricted
to the body joints).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from egotwin.body.builtin import DEFAULT_HEIGHT, builtin_mannequin, builtin_rest_joints
from egotwin.body.kinematics import forward_kinematics
from egotwin.body.skeleton import NUM_BODY_JOINTS, NUM_JOINTS

if TYPE_CHECKING:
    import trimesh

SMPLX_DIR_ENV = "EGOTWIN_SMPLX_DIR"


@dataclass
class BodyModel:
    """A rest mesh skinned to the 22-joint skeleton."""

    name: str
    """"builtin" or "smplx"."""
    rest_joints: torch.Tensor
    """(22, 3) rest joint positions, metres; T-pose facing +z, y up."""
    vertices: torch.Tensor
    """(V, 3) rest mesh vertices."""
    faces: torch.Tensor
    """(F, 3) long triangle indices."""
    skin_weights: torch.Tensor
    """(V, 22) linear blend skinning weights, rows sum to 1 (one-hot for the rigid mannequin)."""
    vertex_joint: torch.Tensor
    """(V,) long, the joint with the largest skin weight per vertex (to hide the head or find the hands)."""
    vertex_colors: torch.Tensor
    """(V, 4) uint8 RGBA."""
    pose_correctives: torch.Tensor | None = None
    """(21 * 9, V, 3) SMPL-X pose blend shapes of the body joints, or None (the mannequin has none). The offset
    added to the rest vertices is sum_k (R_k - I).flatten() . pose_correctives[9k:9k+9] over body joints k = 1..21."""

    def __post_init__(self) -> None:
        num_vertices = self.vertices.shape[0]
        expected = {
            "rest_joints": (self.rest_joints, (NUM_JOINTS, 3)),
            "vertices": (self.vertices, (num_vertices, 3)),
            "skin_weights": (self.skin_weights, (num_vertices, NUM_JOINTS)),
            "vertex_joint": (self.vertex_joint, (num_vertices,)),
            "vertex_colors": (self.vertex_colors, (num_vertices, 4)),
        }
        if self.pose_correctives is not None:
            expected["pose_correctives"] = (self.pose_correctives, (NUM_BODY_JOINTS * 9, num_vertices, 3))
        for field, (tensor, shape) in expected.items():
            if tuple(tensor.shape) != shape:
                raise ValueError(f"BodyModel.{field} must have shape {shape}, got {tuple(tensor.shape)}")
        if self.faces.ndim != 2 or self.faces.shape[1] != 3:
            raise ValueError(f"BodyModel.faces must have shape (F, 3), got {tuple(self.faces.shape)}")

    @property
    def num_vertices(self) -> int:
        return self.vertices.shape[0]

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> BodyModel:
        """Copy with the float tensors in `dtype` and every tensor on `device`."""

        def move(t: torch.Tensor | None, floating: bool) -> torch.Tensor | None:
            if t is None:
                return None
            return t.to(device=device, dtype=dtype if floating else None)

        return BodyModel(
            name=self.name,
            rest_joints=move(self.rest_joints, True),
            vertices=move(self.vertices, True),
            faces=move(self.faces, False),
            skin_weights=move(self.skin_weights, True),
            vertex_joint=move(self.vertex_joint, False),
            vertex_colors=move(self.vertex_colors, False),
            pose_correctives=move(self.pose_correctives, True),
        )

    def pose(self, local_rotations: torch.Tensor, trans: torch.Tensor | None = None) -> torch.Tensor:
        """World vertices of the posed mesh.

        Args:
            local_rotations: (..., 22, 3, 3) parent-relative joint rotations; entry 0 is the global orientation.
            trans: (..., 3) SMPL-X translation (pelvis at rest_joints[0] + trans), or None for zero.

        Returns:
            (..., V, 3) vertices.
        """
        if local_rotations.shape[-3:] != (NUM_JOINTS, 3, 3):
            raise ValueError(f"local_rotations must end in (22, 3, 3), got {tuple(local_rotations.shape)}")
        rest = self.vertices.to(local_rotations)
        if self.pose_correctives is not None:
            eye = torch.eye(3, dtype=local_rotations.dtype, device=local_rotations.device)
            pose_feature = (local_rotations[..., 1:, :, :] - eye).flatten(-3)  # (..., 189)
            correctives = self.pose_correctives.to(local_rotations).flatten(-2)  # (189, V*3)
            rest = rest + (pose_feature @ correctives).unflatten(-1, (self.num_vertices, 3))
        global_rotations, joints = forward_kinematics(local_rotations, self.rest_joints, trans)
        # Each joint's rigid transform maps rest space to world: x -> R_j (x - rest_j) + p_j.
        translations = joints - (global_rotations @ self.rest_joints.to(joints)[..., None])[..., 0]
        transforms = torch.cat((global_rotations, translations[..., None]), dim=-1).flatten(-2)  # (..., 22, 12)
        blended = (self.skin_weights.to(transforms) @ transforms).unflatten(-1, (3, 4))  # (..., V, 3, 4)
        return (blended[..., :3] @ rest[..., None])[..., 0] + blended[..., 3]

    def to_trimesh(self, vertices: torch.Tensor | np.ndarray | None = None) -> trimesh.Trimesh:
        """The mesh with per-vertex colours, at `vertices` (V, 3) (e.g. one frame of `pose`) or at rest."""
        import trimesh  # only the renderers need it; sampling must not load it

        vertices = self.vertices if vertices is None else vertices
        if isinstance(vertices, torch.Tensor):
            vertices = vertices.detach().cpu().numpy()
        if vertices.shape != (self.num_vertices, 3):
            raise ValueError(f"vertices must have shape ({self.num_vertices}, 3), got {vertices.shape}")
        return trimesh.Trimesh(
            vertices=vertices,
            faces=self.faces.cpu().numpy(),
            vertex_colors=self.vertex_colors.cpu().numpy(),
            process=False,
        )


def builtin_body_model(height: float = DEFAULT_HEIGHT) -> BodyModel:
    """The built-in mannequin of the given standing height, each vertex rigidly skinned to one joint."""
    mesh = builtin_mannequin(height)
    vertex_joint = torch.from_numpy(mesh.vertex_joint)
    return BodyModel(
        name="builtin",
        rest_joints=builtin_rest_joints(height),
        vertices=torch.from_numpy(mesh.vertices).float(),
        faces=torch.from_numpy(mesh.faces),
        skin_weights=torch.nn.functional.one_hot(vertex_joint, NUM_JOINTS).float(),
        vertex_joint=vertex_joint,
        vertex_colors=torch.from_numpy(mesh.vertex_colors),
    )


def load_body_model(
    smplx_dir: str | os.PathLike | None = None,
    height: float = DEFAULT_HEIGHT,
    betas: torch.Tensor | np.ndarray | None = None,
    gender: str = "neutral",
) -> BodyModel:
    """The body to render: SMPL-X from `smplx_dir` (or the folder named by $EGOTWIN_SMPLX_DIR), else the mannequin.

    Args:
        smplx_dir: folder holding SMPLX_{GENDER}.npz/.pkl (directly or in a `smplx/` subfolder), or the model file.
        height: standing height in metres of the built-in mannequin; SMPL-X takes its size from `betas` instead.
        betas: (B,) SMPL-X shape coefficients (zeros when None); ignored by the built-in body, which has no shape space.
        gender: "neutral", "male" or "female" (SMPL-X only).

    Raises:
        SMPLXFileError: the SMPL-X folder or file is missing or malformed.
    """
    if smplx_dir is None:
        smplx_dir = os.environ.get(SMPLX_DIR_ENV) or None
    if smplx_dir is None:
        return builtin_body_model(height)
    from egotwin.body.smplx_body import smplx_body_model  # smplx is only needed for this path

    return smplx_body_model(Path(smplx_dir), betas=betas, gender=gender)

"""EgoTwin's own neutral body: rest joints from anthropometric proportions (no licensed SMPL-X data).

Proportions are fractions of standing height H, after the classic segment-length tables of Drillis and Contini
(1966) (knee 0.285 H, hip 0.53 H, shoulder 0.818 H, upper arm 0.186 H, forearm 0.146 H), rounded and adjusted to
the SMPL-X joint placement: pelvis joint between the hips, a three-part spine, the head joint at the skull base.
The rest pose is SMPL-X's: a T-pose facing +z, y up, x to the person's left, feet on the floor (y = 0).

The mannequin mesh dresses that skeleton in capsules, ellipsoids and boxes (trimesh primitives), one rigid piece per
bone, with a shirt, trousers, shoes, bare skin-coloured hands (palm + five fingers) and a head with visor and nose.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from egotwin.body.skeleton import JOINT_INDEX, JOINT_NAMES

if TYPE_CHECKING:
    import trimesh

DEFAULT_HEIGHT = 1.70

# (x, y, z) / H for the left side and the midline; right-side joints mirror x.
_REST_FRACTIONS: dict[str, tuple[float, float, float]] = {
    "pelvis": (0.0, 0.545, 0.0),
    "left_hip": (0.052, 0.512, 0.0),
    "spine1": (0.0, 0.600, -0.006),
    "left_knee": (0.055, 0.285, 0.004),
    "spine2": (0.0, 0.665, -0.004),
    "left_ankle": (0.057, 0.040, -0.012),
    "spine3": (0.0, 0.728, 0.002),
    "left_foot": (0.062, 0.010, 0.062),
    "neck": (0.0, 0.835, -0.010),
    "left_collar": (0.040, 0.805, -0.004),
    "head": (0.0, 0.885, 0.004),
    "left_shoulder": (0.105, 0.815, -0.008),
    "left_elbow": (0.291, 0.815, -0.012),
    "left_wrist": (0.437, 0.815, -0.008),
}


def builtin_rest_joints(height: float = DEFAULT_HEIGHT, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(22, 3) rest joint positions in metres of the built-in body of the given standing height."""
    if not 0.5 <= height <= 2.5:
        raise ValueError(f"body height must be between 0.5 and 2.5 m, got {height}")
    rows = []
    for name in JOINT_NAMES:
        if name.startswith("right_"):
            x, y, z = _REST_FRACTIONS["left_" + name[len("right_") :]]
            x = -x
        else:
            x, y, z = _REST_FRACTIONS[name]
        rows.append((x * height, y * height, z * height))
    return torch.tensor(rows, dtype=dtype)


# Mannequin colours (RGBA). Hands get their own skin tone, and forearms wear sleeves, so the hands stand out as the
# only bare skin in an egocentric view; the head (hidden in egocentric renders) carries a dark visor and a nose so
# third-person renders show where the person faces.
SHIRT = (58, 104, 186, 255)
TROUSERS = (64, 66, 78, 255)
SHOES = (34, 32, 30, 255)
HEAD_SKIN = (214, 166, 128, 255)
HAND_SKIN = (240, 184, 140, 255)
VISOR = (28, 30, 40, 255)


@dataclass(frozen=True)
class MannequinMesh:
    """The built-in body's rest mesh: closed primitives, each rigidly attached to one joint."""

    vertices: np.ndarray  # (V, 3) float64, metres, rest pose
    faces: np.ndarray  # (F, 3) int64
    vertex_joint: np.ndarray  # (V,) int64, the joint each vertex is attached to
    vertex_colors: np.ndarray  # (V, 4) uint8


def _capsule(a: np.ndarray, b: np.ndarray, radius: float) -> trimesh.Trimesh:
    """Capsule whose end-sphere centres are a and b."""
    import trimesh

    axis = b - a
    length = float(np.linalg.norm(axis))
    mesh = trimesh.creation.capsule(height=length, radius=radius, count=[8, 8])
    transform = trimesh.geometry.align_vectors([0.0, 0.0, 1.0], axis / length)
    transform[:3, 3] = (a + b) / 2
    mesh.apply_transform(transform)
    return mesh


def _ellipsoid(center: np.ndarray, radii: tuple[float, float, float]) -> trimesh.Trimesh:
    import trimesh

    mesh = trimesh.creation.icosphere(subdivisions=2)
    mesh.apply_scale(radii)
    mesh.apply_translation(center)
    return mesh


def _box(low: tuple[float, float, float], high: tuple[float, float, float]) -> trimesh.Trimesh:
    import trimesh

    low_, high_ = np.asarray(low, dtype=float), np.asarray(high, dtype=float)
    lo, hi = np.minimum(low_, high_), np.maximum(low_, high_)
    return trimesh.creation.box(extents=hi - lo, transform=trimesh.transformations.translation_matrix((lo + hi) / 2))


def _hand(wrist: np.ndarray, side: float, h: float) -> list[trimesh.Trimesh]:
    """Palm box and five finger capsules in the T-pose (arm along +x*side, palm facing down, thumb forward).

    About 1.2 times anatomical size, so a hand still covers a recognisable patch of a 64 x 64 egocentric frame.
    """
    x0 = wrist[0]
    palm_end = x0 + side * 0.064 * h
    parts = [
        _box(
            (x0 + side * 0.002 * h, wrist[1] - 0.013 * h, wrist[2] - 0.031 * h),
            (palm_end, wrist[1] + 0.013 * h, wrist[2] + 0.031 * h),
        )
    ]
    finger_radius = 0.0072 * h
    for dz, length in zip((0.022, 0.0075, -0.0075, -0.022), (0.046, 0.052, 0.049, 0.040)):
        start = np.array([palm_end, wrist[1], wrist[2] + dz * h])
        parts.append(_capsule(start, start + [side * (length * h - finger_radius), 0.0, 0.0], finger_radius))
    thumb_base = np.array([x0 + side * 0.020 * h, wrist[1] - 0.004 * h, wrist[2] + 0.030 * h])
    parts.append(_capsule(thumb_base, thumb_base + [side * 0.026 * h, -0.005 * h, 0.022 * h], 0.0082 * h))
    return parts


def builtin_mannequin(height: float = DEFAULT_HEIGHT) -> MannequinMesh:
    """The mannequin mesh of the built-in body (about 2,300 vertices), in the rest pose of builtin_rest_joints(height).

    Every part is a closed, consistently wound primitive (capsule, ellipsoid or box) attached to the joint whose
    rotation moves it in SMPL-X skinning: a bone's part belongs to the bone's proximal joint (thigh -> hip).
    """
    import trimesh  # imported here: sampling code imports this module and must not load the mesh library

    h = height
    j = builtin_rest_joints(height, dtype=torch.float64).numpy()
    J = JOINT_INDEX
    parts: list[tuple[int, trimesh.Trimesh, tuple[int, int, int, int]]] = [
        (J["pelvis"], _ellipsoid(np.array([0.0, 0.525 * h, -0.006 * h]), (0.098 * h, 0.060 * h, 0.066 * h)), TROUSERS),
        (J["spine1"], _ellipsoid(np.array([0.0, 0.625 * h, -0.002 * h]), (0.086 * h, 0.066 * h, 0.060 * h)), SHIRT),
        (J["spine2"], _ellipsoid(np.array([0.0, 0.690 * h, 0.000 * h]), (0.092 * h, 0.068 * h, 0.064 * h)), SHIRT),
        (J["spine3"], _ellipsoid(np.array([0.0, 0.770 * h, -0.002 * h]), (0.106 * h, 0.074 * h, 0.068 * h)), SHIRT),
        (J["neck"], _capsule(j[J["neck"]] - [0, 0.02 * h, 0], j[J["head"]] + [0, 0.01 * h, 0], 0.030 * h), HEAD_SKIN),
        (J["head"], _ellipsoid(np.array([0.0, 0.937 * h, 0.012 * h]), (0.052 * h, 0.063 * h, 0.060 * h)), HEAD_SKIN),
        (J["head"], _box((-0.040 * h, 0.940 * h, 0.040 * h), (0.040 * h, 0.958 * h, 0.068 * h)), VISOR),
    ]
    nose = trimesh.creation.cone(radius=0.011 * h, height=0.028 * h, sections=10)
    nose.apply_translation([0.0, 0.922 * h, 0.062 * h])
    parts.append((J["head"], nose, HEAD_SKIN))
    for prefix, side in (("left_", 1.0), ("right_", -1.0)):
        names = ("hip", "knee", "ankle", "foot", "collar", "shoulder", "elbow", "wrist")
        p = {name: j[J[prefix + name]] for name in names}
        x = p["ankle"][0]
        parts += [
            (J[prefix + "hip"], _capsule(p["hip"], p["knee"], 0.046 * h), TROUSERS),
            (J[prefix + "knee"], _capsule(p["knee"], p["ankle"] + [0, 0.008 * h, 0], 0.034 * h), TROUSERS),
            (J[prefix + "ankle"], _box((x - 0.030 * h, 0.0, -0.042 * h), (x + 0.030 * h, 0.048 * h, 0.072 * h)), SHOES),
            (J[prefix + "foot"], _box((x - 0.028 * h, 0.0, 0.072 * h), (x + 0.028 * h, 0.030 * h, 0.112 * h)), SHOES),
            (J[prefix + "collar"], _capsule(p["collar"], p["shoulder"], 0.036 * h), SHIRT),
            (J[prefix + "shoulder"], _capsule(p["shoulder"], p["elbow"], 0.031 * h), SHIRT),
            (J[prefix + "elbow"], _capsule(p["elbow"], p["wrist"], 0.025 * h), SHIRT),
        ]
        parts += [(J[prefix + "wrist"], mesh, HAND_SKIN) for mesh in _hand(p["wrist"], side, h)]

    vertices, faces, vertex_joint, colors = [], [], [], []
    offset = 0
    for joint, mesh, color in parts:
        vertices.append(np.asarray(mesh.vertices))
        faces.append(np.asarray(mesh.faces) + offset)
        vertex_joint.append(np.full(len(mesh.vertices), joint))
        colors.append(np.tile(np.array(color, dtype=np.uint8), (len(mesh.vertices), 1)))
        offset += len(mesh.vertices)
    return MannequinMesh(
        vertices=np.concatenate(vertices),
        faces=np.concatenate(faces).astype(np.int64),
        vertex_joint=np.concatenate(vertex_joint).astype(np.int64),
        vertex_colors=np.concatenate(colors),
    )

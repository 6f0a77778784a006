"""EgoTwin's own neutral body: rest joints from anthropometric proportions (no licensed SMPL-X data).

Proportions are fractions of standing height H, after the classic segment-length tables of Drillis and Contini
(1966) (knee 0.285 H, hip 0.53 H, shoulder 0.818 H, upper arm 0.186 H, forearm 0.146 H), rounded and adjusted to
the SMPL-X joint placement: pelvis joint between the hips, a three-part spine, the head joint at the skull base.
The rest pose is SMPL-X's: a T-pose facing +z, y up, x to the person's left, feet on the floor (y = 0).
"""

from __future__ import annotations

import torch

from egotwin.body.skeleton import JOINT_NAMES

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
            x, y, z = _REST_FRACTIONS["left_" + name[len("right_"):]]
            x = -x
        else:
            x, y, z = _REST_FRACTIONS[name]
        rows.append((x * height, y * height, z * height))
    return torch.tensor(rows, dtype=dtype)

"""The rest skeleton of NymeriaPlus SMPL fits (`--body smpl`), from the user's own SMPL model file (not shipped).

SMPL joints 0-21 are SMPL-X's body joints (same names, order and tree), so the fits' `global_orient` and the first
63 values of `body_pose` are our `root_orient` and `pose_body` as they are; only the rest joints depend on the model:
SMPL's `J_regressor @ (v_template + shapedirs @ betas)`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from egotwin.body.skeleton import FOOT_JOINTS, NUM_JOINTS
from egotwin.body.smplx_body import _read_model_file


def _dense(value) -> np.ndarray:
    """A model array as float64 numpy (SMPL .pkl files hold scipy-sparse and chumpy arrays)."""
    return np.asarray(value.toarray() if hasattr(value, "toarray") else value, dtype=np.float64)


def smpl_rest(model_path: str | Path, betas: np.ndarray) -> tuple[np.ndarray, float, float]:
    """For SMPL shape `betas` (B,): the rest joints (22, 3) moved up so the rest mesh stands on y = 0, how far they
    were moved (subtract it from the fits' `transl` to keep the pelvis where it was), and the lowest foot joint's
    height above the floor at rest."""
    path = Path(model_path)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: no SMPL model file (--smpl_model: SMPL_NEUTRAL.pkl or .npz from smpl.is.tue.mpg.de)"
        )
    data = _read_model_file(path)
    missing = [key for key in ("v_template", "shapedirs", "J_regressor") if key not in data]
    if missing:
        raise ValueError(f"{path}: not an SMPL model file (lacks {missing})")
    template, shapedirs, regressor = (_dense(data[key]) for key in ("v_template", "shapedirs", "J_regressor"))
    count = min(len(betas), shapedirs.shape[-1])
    shaped = template + shapedirs[:, :, :count] @ np.asarray(betas[:count], dtype=np.float64)
    joints = (regressor @ shaped)[:NUM_JOINTS]
    lift = -float(shaped[:, 1].min())
    rest = joints + np.array([0.0, lift, 0.0])
    return rest, lift, float(rest[list(FOOT_JOINTS), 1].min())

"""The rest skeleton of NymeriaPlus SMPL fits (`--body smpl`), from the user's own SMPL model file (not shipped).

SMPL joints 0-21 are SMPL-X's body joints (same names, order and tree), so the fits' `global_orient` and the first
63 values of `body_pose` are our `root_orient` and `pose_body` as they are; only the rest joints depend on the model.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from egotwin.body.skeleton import FOOT_JOINTS, NUM_JOINTS


def smpl_rest(model_path: str | Path, betas: np.ndarray) -> tuple[np.ndarray, float, float]:
    """For SMPL shape `betas` (B,): the rest joints (22, 3) moved up so the rest mesh stands on y = 0, how far they
    were moved (add it to the fits' `transl`), and the lowest foot joint's height above the floor at rest."""
    import smplx

    path = Path(model_path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no SMPL model file (--smpl_model: SMPL_NEUTRAL.pkl or .npz from smpl.is.tue.mpg.de)")
    model = smplx.create(str(path), model_type="smpl", gender="neutral", num_betas=len(betas))
    with torch.no_grad():
        output = model(betas=torch.as_tensor(betas, dtype=torch.float32)[None])
    joints = output.joints[0, :NUM_JOINTS].double().numpy()
    lift = -float(output.vertices[0, :, 1].min())
    rest = joints + np.array([0.0, lift, 0.0])
    return rest, lift, float(rest[list(FOOT_JOINTS), 1].min())

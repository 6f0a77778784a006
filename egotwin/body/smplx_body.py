"""Real SMPL-X as EgoTwin's body, when the user has the (licensed) model files.

The model is built by `smplx.create`; EgoTwin keeps its 22 body joints. For the shape `betas` we take SMPL-X's shaped
rest mesh and its first 22 joints, fold the skin weights of the hand, jaw and eye joints onto their nearest body
ancestor (wrists, head), and keep the pose blend shapes of the 21 body joints. With zero hand/face pose this is exact:
a joint whose local rotation is the identity moves exactly like its parent, so folding its weights changes nothing,
and the folded-away joints add nothing to the pose blend shapes. Hands are flat (`flat_hand_mean=True`).
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch

from egotwin.body.body_model import BodyModel
from egotwin.body.builtin import HAND_SKIN, HEAD_SKIN
from egotwin.body.skeleton import HEAD, LEFT_WRIST, NUM_BODY_JOINTS, NUM_JOINTS, PARENTS, RIGHT_WRIST

SMPLX_NUM_JOINTS = 55  # body 22 + jaw + 2 eyes + 2 x 15 finger joints
BODY_COLOR = (178, 180, 190, 255)
GENDERS = ("neutral", "male", "female")

# Keys smplx.SMPLX reads from the model file (smplx/body_models.py: SMPL, SMPLH and SMPLX constructors).
REQUIRED_KEYS = (
    "v_template",
    "f",
    "shapedirs",
    "posedirs",
    "J_regressor",
    "kintree_table",
    "weights",
    "hands_componentsl",
    "hands_componentsr",
    "hands_meanl",
    "hands_meanr",
    "lmk_faces_idx",
    "lmk_bary_coords",
)


class SMPLXFileError(ValueError):
    """The SMPL-X model folder or file is missing or malformed."""


def find_smplx_file(smplx_dir: Path, gender: str = "neutral") -> Path:
    """The SMPLX_{GENDER}.npz (or .pkl) file in `smplx_dir` or its `smplx/` subfolder; `smplx_dir` may be the file."""
    if gender not in GENDERS:
        raise ValueError(f"gender must be one of {GENDERS}, got {gender!r}")
    smplx_dir = Path(smplx_dir)
    if smplx_dir.is_file():
        return smplx_dir
    if not smplx_dir.is_dir():
        raise SMPLXFileError(f"SMPL-X model folder {smplx_dir} does not exist")
    candidates = [
        folder / f"SMPLX_{gender.upper()}.{ext}"
        for folder in (smplx_dir, smplx_dir / "smplx")
        for ext in ("npz", "pkl")
    ]
    for path in candidates:
        if path.is_file():
            return path
    raise SMPLXFileError(f"no SMPL-X model file in {smplx_dir}: looked for {', '.join(str(p) for p in candidates)}")


def _read_model_file(path: Path) -> dict[str, np.ndarray]:
    try:
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=True) as data:
                return {key: data[key] for key in data.files}
        if path.suffix == ".pkl":
            with open(path, "rb") as f:
                return dict(pickle.load(f, encoding="latin1"))
    except Exception as error:  # noqa: BLE001 - any reader failure means an unreadable file; say which one
        raise SMPLXFileError(f"{path} is not a readable SMPL-X model file: {error}") from error
    raise SMPLXFileError(f"{path}: SMPL-X model files end in .npz or .pkl")


def check_smplx_file(path: Path) -> dict[str, np.ndarray]:
    """The model file's arrays; raises SMPLXFileError naming the first missing key or wrong shape, so smplx never
    fails with a bare assert or an index error."""
    data = _read_model_file(path)
    for key in REQUIRED_KEYS:
        if key not in data:
            raise SMPLXFileError(f"{path} lacks {key!r}")
    v_template = np.asarray(data["v_template"])
    if v_template.ndim != 2 or v_template.shape[1] != 3:
        raise SMPLXFileError(f"{path}: 'v_template' has shape {v_template.shape}, expected (V, 3)")
    num_vertices = v_template.shape[0]
    expected = {
        "weights": (num_vertices, SMPLX_NUM_JOINTS),
        "J_regressor": (SMPLX_NUM_JOINTS, num_vertices),
        "kintree_table": (2, SMPLX_NUM_JOINTS),
        "posedirs": (num_vertices, 3, (SMPLX_NUM_JOINTS - 1) * 9),
    }
    for key, shape in expected.items():
        if np.shape(data[key]) != shape:
            raise SMPLXFileError(f"{path}: {key!r} has shape {np.shape(data[key])}, expected {shape}")
    shapedirs = np.shape(data["shapedirs"])
    if len(shapedirs) != 3 or shapedirs[:2] != (num_vertices, 3):
        raise SMPLXFileError(f"{path}: 'shapedirs' has shape {shapedirs}, expected ({num_vertices}, 3, B)")
    faces = np.asarray(data["f"])
    if faces.ndim != 2 or faces.shape[1] != 3 or faces.min() < 0 or faces.max() >= num_vertices:
        raise SMPLXFileError(f"{path}: 'f' must be (F, 3) vertex indices below {num_vertices}")
    parents = tuple(int(p) for p in np.asarray(data["kintree_table"])[0, 1:NUM_JOINTS])
    if parents != PARENTS[1:]:
        raise SMPLXFileError(f"{path}: the kinematic tree of the first 22 joints is not SMPL-X's body tree")
    return data


def fold_skin_weights(weights: torch.Tensor, parents: torch.Tensor) -> torch.Tensor:
    """(V, 55) SMPL-X skin weights -> (V, 22): each hand/face joint's weight goes to its nearest body ancestor."""
    body_ancestor = list(range(len(parents)))
    for joint in range(NUM_JOINTS, len(parents)):  # parents precede children, so ancestors are already resolved
        body_ancestor[joint] = body_ancestor[int(parents[joint])]
    index = torch.tensor(body_ancestor, device=weights.device).expand_as(weights)
    return torch.zeros(weights.shape[0], NUM_JOINTS, dtype=weights.dtype, device=weights.device).scatter_add_(
        1, index, weights
    )


def smplx_body_model(
    smplx_dir: Path, betas: torch.Tensor | np.ndarray | None = None, gender: str = "neutral"
) -> BodyModel:
    """BodyModel of SMPL-X with shape `betas` (B,) (zeros when None) from the model files in `smplx_dir`."""
    import smplx  # imported here: only this optional path needs it

    path = find_smplx_file(smplx_dir, gender)
    num_shape = check_smplx_file(path)["shapedirs"].shape[-1]
    betas = torch.zeros(10) if betas is None else torch.as_tensor(np.asarray(betas), dtype=torch.float32)
    if betas.ndim != 1:
        raise ValueError(f"betas must have shape (B,), got {tuple(betas.shape)}")
    # smplx splits shapedirs into shape and expression directions: 300 + 100, or 10 + 10 in older/smaller files.
    max_betas = 300 if num_shape >= 400 else 10
    if betas.shape[0] > max_betas:
        raise ValueError(f"{path} has {max_betas} shape coefficients, got {betas.shape[0]} betas")
    model = smplx.create(
        str(path),
        model_type="smplx",
        gender=gender,
        ext=path.suffix[1:],
        num_betas=betas.shape[0],
        use_pca=False,
        flat_hand_mean=True,
    )
    with torch.no_grad():
        # At zero pose every joint transform is the identity, so the output is the shaped rest mesh and joints.
        output = model(betas=betas[None])
    vertices = output.vertices[0]
    skin_weights = fold_skin_weights(model.lbs_weights, model.parents)
    vertex_joint = skin_weights.argmax(-1)
    colors = torch.tensor(BODY_COLOR, dtype=torch.uint8).repeat(len(vertices), 1)
    colors[(vertex_joint == LEFT_WRIST) | (vertex_joint == RIGHT_WRIST)] = torch.tensor(HAND_SKIN, dtype=torch.uint8)
    colors[vertex_joint == HEAD] = torch.tensor(HEAD_SKIN, dtype=torch.uint8)
    # posedirs is (54 * 9, V * 3), joint-major; the body joints' rows come first.
    pose_correctives = model.posedirs[: NUM_BODY_JOINTS * 9].reshape(NUM_BODY_JOINTS * 9, -1, 3)
    return BodyModel(
        name="smplx",
        rest_joints=output.joints[0, :NUM_JOINTS].clone(),
        vertices=vertices.clone(),
        faces=torch.as_tensor(model.faces.astype(np.int64)),
        skin_weights=skin_weights.float(),
        vertex_joint=vertex_joint,
        vertex_colors=colors,
        pose_correctives=pose_correctives.clone().float(),
    )

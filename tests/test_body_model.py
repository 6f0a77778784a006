"""Body models: the built-in mannequin (geometry, rigid skinning, hands, height) and the optional SMPL-X path, checked
against smplx's own forward pass on a synthetic SMPL-X-shaped model file written by the test (no licensed data)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import trimesh

from egotwin.body.body_model import SMPLX_DIR_ENV, BodyModel, builtin_body_model, load_body_model
from egotwin.body.builtin import HAND_SKIN, builtin_rest_joints
from egotwin.body.kinematics import forward_kinematics
from egotwin.body.rotations import axis_angle_to_matrix
from egotwin.body.skeleton import FOOT_JOINTS, HEAD, JOINT_INDEX, LEFT_WRIST, NUM_JOINTS, PARENTS, RIGHT_WRIST

smplx = pytest.importorskip("smplx")
from egotwin.body.smplx_body import SMPLXFileError, fold_skin_weights  # noqa: E402


def random_local_rotations(batch: tuple[int, ...], scale: float, generator: torch.Generator) -> torch.Tensor:
    return axis_angle_to_matrix(torch.randn(*batch, NUM_JOINTS, 3, generator=generator) * scale)


@pytest.fixture(scope="module")
def mannequin() -> BodyModel:
    return builtin_body_model(1.70)


# --- the built-in mannequin ---------------------------------------------------------------------------------------


def test_mannequin_fields_and_size(mannequin: BodyModel) -> None:
    assert mannequin.name == "builtin"
    assert mannequin.vertices.dtype == torch.float32 and mannequin.faces.dtype == torch.long
    assert mannequin.vertex_colors.dtype == torch.uint8
    assert 500 < mannequin.num_vertices <= 4000  # light enough to render every frame of thousands of clips
    torch.testing.assert_close(mannequin.skin_weights.sum(-1), torch.ones(mannequin.num_vertices))
    assert torch.equal(mannequin.skin_weights.argmax(-1), mannequin.vertex_joint)
    assert set(mannequin.vertex_joint.tolist()) == set(range(NUM_JOINTS))  # every bone is dressed
    torch.testing.assert_close(mannequin.rest_joints, builtin_rest_joints(1.70))


def test_mannequin_parts_are_closed_and_consistently_wound(mannequin: BodyModel) -> None:
    mesh = mannequin.to_trimesh()
    parts = mesh.split(only_watertight=False)
    assert len(parts) >= 30
    for part in parts:
        assert part.is_watertight and part.is_winding_consistent
        assert part.volume > 0  # outward normals
    # every face lies within one joint's piece, so the mesh splits cleanly into rigid parts
    joints_of_face = mannequin.vertex_joint[mannequin.faces]
    assert torch.equal(joints_of_face.min(-1).values, joints_of_face.max(-1).values)


@pytest.mark.parametrize("height", [1.50, 1.70, 1.95])
def test_mannequin_height_and_feet_on_floor(height: float) -> None:
    body = builtin_body_model(height)
    posed = body.pose(torch.eye(3).expand(NUM_JOINTS, 3, 3), torch.zeros(3))
    top, bottom = posed[:, 1].max().item(), posed[:, 1].min().item()
    assert abs(top - height) / height < 0.03
    assert abs(bottom) < 0.005
    feet = torch.isin(body.vertex_joint, torch.tensor(FOOT_JOINTS))
    assert posed[feet, 1].min().abs() < 0.005
    # the nose / visor sit in front (+z), so the facing direction is visible
    head = posed[body.vertex_joint == HEAD]
    assert head[:, 2].max() > body.rest_joints[HEAD, 2] + 0.08 * height


def test_mannequin_hands_near_wrists_in_their_own_colour(mannequin: BodyModel) -> None:
    hand_color = torch.tensor(HAND_SKIN, dtype=torch.uint8)
    is_hand_color = (mannequin.vertex_colors == hand_color).all(-1)
    on_wrist = (mannequin.vertex_joint == LEFT_WRIST) | (mannequin.vertex_joint == RIGHT_WRIST)
    assert torch.equal(is_hand_color, on_wrist)  # only the hands wear that colour
    for wrist, side in ((LEFT_WRIST, 1.0), (RIGHT_WRIST, -1.0)):
        hand = mannequin.vertices[mannequin.vertex_joint == wrist]
        distance = (hand - mannequin.rest_joints[wrist]).norm(dim=-1)
        assert distance.max() < 0.22 and distance.min() < 0.05  # about 1.2 x anatomical size, attached at the wrist
        assert (side * (hand[:, 0] - mannequin.rest_joints[wrist, 0]) > -0.02).all()  # it points away from the body
    others = mannequin.vertex_colors[~on_wrist, :3].float()
    assert (others - hand_color[:3].float()).norm(dim=-1).min() > 20  # clearly different from every other colour


def test_mannequin_vertices_follow_their_joint_rigidly(mannequin: BodyModel) -> None:
    g = torch.Generator().manual_seed(0)
    rotations = random_local_rotations((4,), 0.6, g)
    trans = torch.randn(4, 3, generator=g)
    posed = mannequin.pose(rotations, trans)
    global_rot, joints = forward_kinematics(rotations, mannequin.rest_joints, trans)
    j = mannequin.vertex_joint
    expected = (global_rot[:, j] @ (mannequin.vertices - mannequin.rest_joints[j])[..., None])[..., 0] + joints[:, j]
    torch.testing.assert_close(posed, expected, atol=1e-5, rtol=0)
    # rigidity: pairwise distances within a part do not change
    for joint in (HEAD, LEFT_WRIST, JOINT_INDEX["right_knee"]):
        rest_part, posed_part = mannequin.vertices[j == joint], posed[2, j == joint]
        distances = lambda x: (x[:, None] - x[None]).norm(dim=-1)  # noqa: E731
        torch.testing.assert_close(distances(posed_part), distances(rest_part), atol=1e-5, rtol=0)


def test_pose_batch_shapes_and_to_trimesh(mannequin: BodyModel) -> None:
    g = torch.Generator().manual_seed(1)
    rotations = random_local_rotations((2, 3), 0.3, g)
    posed = mannequin.pose(rotations, torch.zeros(2, 3, 3))
    assert posed.shape == (2, 3, mannequin.num_vertices, 3)
    torch.testing.assert_close(posed[1, 2], mannequin.pose(rotations[1, 2], torch.zeros(3)))
    mesh = mannequin.to_trimesh(posed[0, 0])
    assert isinstance(mesh, trimesh.Trimesh)
    np.testing.assert_allclose(mesh.vertices, posed[0, 0].numpy(), atol=1e-6)
    assert mesh.visual.vertex_colors.shape == (mannequin.num_vertices, 4)
    with pytest.raises(ValueError, match="22, 3, 3"):
        mannequin.pose(torch.eye(3).expand(21, 3, 3), torch.zeros(3))


def test_load_body_model_defaults_to_builtin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SMPLX_DIR_ENV, raising=False)
    body = load_body_model(height=1.60)
    assert body.name == "builtin"
    torch.testing.assert_close(body.rest_joints, builtin_rest_joints(1.60))


# --- SMPL-X, from a synthetic model file ---------------------------------------------------------------------------

# SMPL-X's 55-joint tree: the 22 body joints, jaw and eyes on the head, 15 finger joints per wrist (index, middle,
# pinky, ring, thumb; three each).
_HAND_PARENTS = lambda wrist, first: [  # noqa: E731
    p for finger in range(5) for p in (wrist, first + 3 * finger, first + 3 * finger + 1)
]
SMPLX_PARENTS = list(PARENTS) + [HEAD, HEAD, HEAD] + _HAND_PARENTS(LEFT_WRIST, 25) + _HAND_PARENTS(RIGHT_WRIST, 40)
NUM_SMPLX_VERTICES = 9930  # smplx picks extra keypoints at fixed vertex ids up to 9929


def write_synthetic_smplx(path, rng: np.random.Generator, drop: str | None = None, **overrides) -> None:
    """A random SMPL-X-shaped model file: the keys and shapes smplx.SMPLX reads, with 20 shape/expression dirs."""
    v = NUM_SMPLX_VERTICES
    rest = builtin_rest_joints(1.7, dtype=torch.float64).numpy()
    # vertices scattered around the body joints, J_regressor averaging nearby vertices, so joints land on a skeleton
    owner = rng.integers(0, 55, size=v)
    body_owner = (
        fold_skin_weights(
            torch.nn.functional.one_hot(torch.from_numpy(owner), 55).double(), torch.tensor(SMPLX_PARENTS)
        )
        .argmax(-1)
        .numpy()
    )
    v_template = rest[body_owner] + rng.normal(scale=0.05, size=(v, 3))
    regressor = np.zeros((55, v))
    for joint in range(55):
        members = np.flatnonzero(owner == joint)
        regressor[joint, members] = rng.dirichlet(np.ones(len(members)))
    weights = rng.dirichlet(np.full(55, 0.2), size=v)
    weights[np.arange(v), owner] += 2.0
    weights /= weights.sum(1, keepdims=True)
    kintree = np.stack((np.array([-1] + SMPLX_PARENTS[1:]), np.arange(55)))
    data = {
        "v_template": v_template,
        "f": rng.integers(0, v, size=(2000, 3)).astype(np.uint32),
        "shapedirs": rng.normal(scale=0.01, size=(v, 3, 20)),
        "posedirs": rng.normal(scale=0.01, size=(v, 3, 486)).astype(np.float32),
        "J_regressor": regressor,
        "kintree_table": kintree,
        "weights": weights,
        "hands_componentsl": rng.normal(size=(45, 45)),
        "hands_componentsr": rng.normal(size=(45, 45)),
        "hands_meanl": rng.normal(scale=0.2, size=45),
        "hands_meanr": rng.normal(scale=0.2, size=45),
        "lmk_faces_idx": rng.integers(0, 2000, size=51),
        "lmk_bary_coords": rng.dirichlet(np.ones(3), size=51),
    }
    data.update(overrides)
    if drop is not None:
        del data[drop]
    np.savez(path, **data)


@pytest.fixture(scope="module")
def smplx_dir(tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("smplx_models")
    write_synthetic_smplx(folder / "SMPLX_NEUTRAL.npz", np.random.default_rng(0))
    return folder


def test_fold_skin_weights_keeps_mass_on_body_ancestors() -> None:
    weights = torch.rand(50, 55, generator=torch.Generator().manual_seed(0))
    weights /= weights.sum(-1, keepdim=True)
    folded = fold_skin_weights(weights, torch.tensor(SMPLX_PARENTS))
    torch.testing.assert_close(folded.sum(-1), torch.ones(50, dtype=weights.dtype))
    torch.testing.assert_close(folded[:, LEFT_WRIST], weights[:, [LEFT_WRIST, *range(25, 40)]].sum(-1))
    torch.testing.assert_close(folded[:, HEAD], weights[:, [HEAD, 22, 23, 24]].sum(-1))
    torch.testing.assert_close(folded[:, 5], weights[:, 5])


def test_smplx_body_matches_smplx_forward(smplx_dir, monkeypatch: pytest.MonkeyPatch) -> None:
    g = torch.Generator().manual_seed(2)
    betas = torch.randn(10, generator=g)
    monkeypatch.setenv(SMPLX_DIR_ENV, str(smplx_dir))  # picked up from the environment
    body = load_body_model(betas=betas)
    assert body.name == "smplx"
    assert body.num_vertices == NUM_SMPLX_VERTICES and body.pose_correctives is not None
    torch.testing.assert_close(body.skin_weights.sum(-1), torch.ones(body.num_vertices))

    reference = smplx.create(
        str(smplx_dir / "SMPLX_NEUTRAL.npz"),
        model_type="smplx",
        num_betas=10,
        use_pca=False,
        flat_hand_mean=True,
        batch_size=3,
    )
    axis_angle = torch.randn(3, NUM_JOINTS, 3, generator=g) * 0.5
    trans = torch.randn(3, 3, generator=g)
    with torch.no_grad():
        expected = reference(
            betas=betas.expand(3, 10),
            global_orient=axis_angle[:, 0],
            body_pose=axis_angle[:, 1:].flatten(1),
            transl=trans,
        )
        rest_output = reference(betas=betas.expand(3, 10))
    torch.testing.assert_close(body.rest_joints, rest_output.joints[0, :NUM_JOINTS])
    posed = body.pose(axis_angle_to_matrix(axis_angle), trans)
    torch.testing.assert_close(posed, expected.vertices, atol=2e-5, rtol=0)
    # the pose blend shapes matter: without them the vertices would be off by far more than float error
    no_correctives = BodyModel(**{**body.__dict__, "pose_correctives": None})
    assert (no_correctives.pose(axis_angle_to_matrix(axis_angle), trans) - expected.vertices).abs().max() > 1e-3
    _, joints = forward_kinematics(axis_angle_to_matrix(axis_angle), body.rest_joints, trans)
    torch.testing.assert_close(joints, expected.joints[:, :NUM_JOINTS], atol=2e-5, rtol=0)


def test_smplx_missing_folder_and_file(tmp_path) -> None:
    with pytest.raises(SMPLXFileError, match="does not exist"):
        load_body_model(tmp_path / "nowhere")
    with pytest.raises(SMPLXFileError, match="SMPLX_NEUTRAL.npz"):
        load_body_model(tmp_path)
    (tmp_path / "SMPLX_NEUTRAL.npz").write_bytes(b"not a zip file")
    with pytest.raises(SMPLXFileError, match="not a readable SMPL-X model file"):
        load_body_model(tmp_path)


def test_smplx_malformed_files_name_the_problem(tmp_path) -> None:
    rng = np.random.default_rng(3)
    write_synthetic_smplx(tmp_path / "SMPLX_NEUTRAL.npz", rng, drop="shapedirs")
    with pytest.raises(SMPLXFileError, match=r"SMPLX_NEUTRAL.npz lacks 'shapedirs'"):
        load_body_model(tmp_path)
    write_synthetic_smplx(tmp_path / "SMPLX_NEUTRAL.npz", rng, weights=np.ones((NUM_SMPLX_VERTICES, 22)) / 22)
    with pytest.raises(SMPLXFileError, match=r"'weights' has shape \(9930, 22\), expected \(9930, 55\)"):
        load_body_model(tmp_path)

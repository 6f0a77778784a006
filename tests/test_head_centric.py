"""Head-centric features: layout, exact round trips, known answers against scipy, and the camera read from features."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from egotwin.body.builtin import builtin_rest_joints
from egotwin.body.head_camera import HeadCameraRig
from egotwin.body.kinematics import forward_kinematics
from egotwin.body.rotations import rotation_6d_to_matrix, rotation_about_y
from egotwin.body.skeleton import HEAD, HEAD_CHAIN, NUM_JOINTS
from egotwin.motion.head_centric import HeadCentricRepresentation, camera_from_motion, head_camera
from egotwin.motion.motion import Motion
from egotwin.motion.random_motion import extreme_random_motion, smooth_random_motion, walking_motion
from egotwin.motion.representation import MotionRepresentation, get_representation

REP = HeadCentricRepresentation()


def _motion(local: torch.Tensor, trans: torch.Tensor) -> Motion:
    return Motion(
        trans=trans,
        global_orient=local[:, 0],
        body_pose=local[:, 1:],
        rest_joints=builtin_rest_joints(dtype=trans.dtype),
    )


def test_layout_matches_the_spec():
    assert REP.name == "head_centric" and REP.dim == 282
    sizes = {name: s.stop - s.start for name, s in REP.parts.items()}
    assert list(sizes.items()) == [
        ("h_r", 6),
        ("h_rdot", 6),
        ("h_p", 3),
        ("h_pdot", 3),
        ("j_p", 66),
        ("j_v", 66),
        ("j_r", 132),
    ]
    groups = REP.loss_groups
    assert groups["head_3d"].tolist() == list(range(12, 18))
    assert groups["head_6d"].tolist() == list(range(0, 12))
    assert groups["joint_3d"].tolist() == list(range(18, 150))
    assert groups["joint_6d"].tolist() == list(range(150, 282))
    assert all(g.dtype == torch.long for g in groups.values())
    assert sorted(torch.cat(list(groups.values())).tolist()) == list(range(282)), "groups must cover each feature once"
    assert isinstance(get_representation("head_centric"), HeadCentricRepresentation)
    assert isinstance(REP, MotionRepresentation)


@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-10), (torch.float32, 1e-5)])
@pytest.mark.parametrize("kind", ["smooth", "extreme"])
def test_round_trip_is_exact(kind, dtype, tol):
    generator = torch.Generator().manual_seed(1)
    make = smooth_random_motion if kind == "smooth" else extreme_random_motion
    local, trans = make(6, 81, generator=generator, dtype=dtype)
    rest = builtin_rest_joints(dtype=dtype)
    features = REP.encode_batch(local, trans, rest)
    assert features.shape == (6, 81, 282) and features.dtype == dtype
    local_back, trans_back = REP.decode_batch(features, rest)
    rot, joints = forward_kinematics(local, rest, trans)
    rot_back, joints_back = forward_kinematics(local_back, rest, trans_back)
    assert (joints_back - joints).abs().max() < tol
    assert (rot_back - rot).abs().max() < tol
    assert (local_back - local).abs().max() < tol
    assert (trans_back - trans).abs().max() < tol
    # Consistent features are a fixed point: encoding the decoded motion gives them back.
    assert (REP.encode_batch(local_back, trans_back, rest) - features).abs().max() < 10 * tol


def test_motion_wrappers_and_batch_agree():
    generator = torch.Generator().manual_seed(2)
    local, trans = smooth_random_motion(3, 41, generator=generator, dtype=torch.float64)
    batch = REP.encode_batch(local, trans, builtin_rest_joints(dtype=torch.float64))
    for i in range(3):
        motion = _motion(local[i], trans[i])
        features = REP.encode(motion)
        torch.testing.assert_close(features, batch[i], rtol=0, atol=1e-12)
        decoded = REP.decode(features, motion.rest_joints, fps=16)
        assert isinstance(decoded, Motion) and decoded.fps == 16 and decoded.num_frames == 41
        torch.testing.assert_close(decoded.joints(), motion.joints(), rtol=0, atol=1e-10)


def test_per_sample_skeletons_broadcast():
    generator = torch.Generator().manual_seed(3)
    local, trans = smooth_random_motion(2, 17, generator=generator, dtype=torch.float64)
    rest = torch.stack((builtin_rest_joints(1.55, torch.float64), builtin_rest_joints(1.95, torch.float64)))[:, None]
    features = REP.encode_batch(local, trans, rest)
    for i in range(2):
        torch.testing.assert_close(features[i], REP.encode_batch(local[i], trans[i], rest[i, 0]), rtol=0, atol=1e-12)
    local_back, trans_back = REP.decode_batch(features, rest)
    torch.testing.assert_close(trans_back, trans, rtol=0, atol=1e-10)


def test_known_answers_against_scipy():
    """Every part recomputed from its definition with scipy rotations and numpy, independent of our FK and 6D code."""
    generator = torch.Generator().manual_seed(4)
    local, trans = smooth_random_motion(1, 12, rotation_scale=0.8, generator=generator, dtype=torch.float64)
    local, trans = local[0], trans[0]
    rest = builtin_rest_joints(dtype=torch.float64)
    values = REP.unpack(REP.encode_batch(local, trans, rest))
    joints = _motion(local, trans).joints().numpy()

    def six_d(matrix: np.ndarray) -> np.ndarray:
        return np.concatenate((matrix[..., :, 0], matrix[..., :, 1]), -1)

    # Head rotation: compose the local rotations down pelvis -> spine1 -> spine2 -> spine3 -> neck -> head.
    head = Rotation.identity(12)
    for j in HEAD_CHAIN:
        head = head * Rotation.from_matrix(local[:, j].numpy())
    head_m = head.as_matrix()
    np.testing.assert_allclose(values["h_r"].numpy(), six_d(head_m), atol=1e-12)
    relative = np.concatenate((np.eye(3)[None], (head[:-1].inv() * head[1:]).as_matrix()))
    np.testing.assert_allclose(values["h_rdot"].numpy(), six_d(relative), atol=1e-12)
    np.testing.assert_array_equal(values["h_rdot"][0].numpy(), [1, 0, 0, 0, 1, 0])
    p = joints[:, HEAD]
    np.testing.assert_allclose(values["h_p"].numpy(), p, atol=1e-12)
    np.testing.assert_allclose(values["h_pdot"].numpy(), np.concatenate((np.zeros((1, 3)), p[1:] - p[:-1])), atol=1e-12)
    np.testing.assert_allclose(
        values["j_p"].numpy(), np.einsum("tji,tkj->tki", head_m, joints - p[:, None]), atol=1e-12
    )
    steps = np.concatenate((np.zeros((1, NUM_JOINTS, 3)), joints[1:] - joints[:-1]))
    np.testing.assert_allclose(values["j_v"].numpy(), np.einsum("tji,tkj->tki", head_m, steps), atol=1e-12)
    pelvis_in_head = (head.inv() * Rotation.from_matrix(local[:, 0].numpy())).as_matrix()
    np.testing.assert_allclose(values["j_r"][:, 0].numpy(), six_d(pelvis_in_head), atol=1e-12)
    np.testing.assert_allclose(values["j_r"][:, 1:].numpy(), six_d(local[:, 1:].numpy()), atol=1e-12)
    assert np.abs(values["j_p"][:, HEAD].numpy()).max() < 1e-12, "the head sits at its own origin"


def test_rest_pose_standing_still():
    rest = builtin_rest_joints(dtype=torch.float64)
    values = REP.unpack(REP.encode(Motion.rest(5, rest)))
    identity_6d = torch.tensor([1.0, 0, 0, 0, 1, 0], dtype=torch.float64)
    assert (values["h_r"] == identity_6d).all() and (values["h_rdot"] == identity_6d).all()
    torch.testing.assert_close(values["h_p"], rest[HEAD].expand(5, 3), rtol=0, atol=1e-12)
    assert (values["h_pdot"] == 0).all() and (values["j_v"] == 0).all()
    torch.testing.assert_close(values["j_p"], (rest - rest[HEAD]).expand(5, 22, 3), rtol=0, atol=1e-12)


def test_head_relative_parts_ignore_where_the_body_is():
    """Moving the whole motion rigidly (yaw + shift) changes h_r, h_p, h_pdot and nothing that is head-relative."""
    generator = torch.Generator().manual_seed(5)
    local, trans = smooth_random_motion(1, 33, generator=generator, dtype=torch.float64)
    motion = _motion(local[0], trans[0])
    transform = torch.eye(4, dtype=torch.float64)
    transform[:3, :3] = rotation_about_y(torch.tensor(2.1, dtype=torch.float64))
    transform[:3, 3] = torch.tensor([3.0, 0.5, -7.0])
    before, after = REP.unpack(REP.encode(motion)), REP.unpack(REP.encode(motion.transformed(transform)))
    for part in ("h_rdot", "j_p", "j_v", "j_r"):
        torch.testing.assert_close(after[part], before[part], rtol=0, atol=1e-12)
    torch.testing.assert_close(after["h_p"], before["h_p"] @ transform[:3, :3].T + transform[:3, 3], rtol=0, atol=1e-12)
    torch.testing.assert_close(after["h_pdot"], before["h_pdot"] @ transform[:3, :3].T, rtol=0, atol=1e-12)


def test_canonicalised_motion_starts_above_the_origin_facing_forward():
    motion, _ = (
        walking_motion(3.0, dtype=torch.float64)
        .transformed(torch.tensor([[0.0, 0, 1, 4], [0, 1, 0, 0], [-1, 0, 0, 2], [0, 0, 0, 1]], dtype=torch.float64))
        .canonicalize()
    )
    values = REP.unpack(REP.encode(motion))
    head_rot = rotation_6d_to_matrix(values["h_r"][0])
    assert values["h_p"][0, [0, 2]].abs().max() < 1e-12
    assert abs(head_rot[0, 2].item()) < 1e-12 and head_rot[2, 2] > 0


@pytest.mark.parametrize("kind", ["smooth", "extreme"])
def test_camera_from_features_matches_camera_through_fk(kind):
    generator = torch.Generator().manual_seed(6)
    make = smooth_random_motion if kind == "smooth" else extreme_random_motion
    local, trans = make(4, 81, generator=generator, dtype=torch.float64)
    rig = HeadCameraRig(eye_offset=(0.01, 0.09, 0.12), pitch_down_deg=15)
    features = REP.encode_batch(local, trans, builtin_rest_joints(dtype=torch.float64))
    cameras = head_camera(features, rig)
    assert cameras.shape == (4, 81, 4, 4)
    torch.testing.assert_close(REP.head_camera(features, rig), cameras, rtol=0, atol=0)
    for i in range(4):
        decoded = REP.decode(features[i])
        through_fk = camera_from_motion(decoded, rig)
        torch.testing.assert_close(cameras[i], through_fk, rtol=0, atol=1e-10)
        torch.testing.assert_close(
            cameras[i], rig.camera_poses(*_motion(local[i], trans[i]).head_pose()), rtol=0, atol=1e-10
        )


def test_inconsistent_features_keep_the_head_position():
    """A generated j_r that disagrees with h_r: the decoded head lands on h_p, its rotation follows the chain."""
    generator = torch.Generator().manual_seed(7)
    local, trans = smooth_random_motion(1, 21, generator=generator, dtype=torch.float64)
    features = REP.encode_batch(local, trans, builtin_rest_joints(dtype=torch.float64))[0]
    noisy = features.clone()
    noisy[:, REP.parts["j_r"]] += 0.3 * torch.randn(21, 132, generator=generator, dtype=torch.float64)
    decoded = REP.decode(noisy)
    head_rot, head_pos = decoded.head_pose()
    torch.testing.assert_close(head_pos, noisy[:, REP.parts["h_p"]], rtol=0, atol=1e-12)
    mismatch = (head_rot - rotation_6d_to_matrix(noisy[:, REP.parts["h_r"]])).abs().amax()
    assert mismatch > 1e-2, "with inconsistent features the chain's head rotation differs from h_r"
    # The camera from features follows h_r / h_p regardless.
    torch.testing.assert_close(head_camera(noisy)[:, :3, 3], head_camera(features)[:, :3, 3], rtol=0, atol=1e-12)


def test_any_features_decode_to_a_valid_motion():
    features = torch.randn(2, 9, 282, generator=torch.Generator().manual_seed(8))
    local, trans = REP.decode_batch(features, builtin_rest_joints())
    eye = torch.eye(3).expand_as(local)
    assert torch.isfinite(trans).all()
    assert (local.transpose(-1, -2) @ local - eye).abs().max() < 1e-5
    assert (torch.linalg.det(local) - 1).abs().max() < 1e-5


def test_decode_is_differentiable():
    features = REP.encode_batch(
        *smooth_random_motion(1, 9, generator=torch.Generator().manual_seed(9)), builtin_rest_joints()
    )
    features.requires_grad_(True)
    local, trans = REP.decode_batch(features, builtin_rest_joints())
    (local.sum() + trans.sum()).backward()
    assert torch.isfinite(features.grad).all() and features.grad.abs().sum() > 0


def test_bad_inputs_are_refused():
    rest = builtin_rest_joints()
    local, trans = smooth_random_motion(1, 5)
    with pytest.raises(ValueError, match=r"features must have shape \(\.\.\., T, 282\)"):
        REP.decode_batch(torch.zeros(1, 5, 281), rest)
    with pytest.raises(ValueError, match="trans must have shape"):
        REP.encode_batch(local, trans[:, :4], rest)
    with pytest.raises(ValueError, match="local_rotations must have shape"):
        REP.encode_batch(local[..., :21, :, :], trans, rest)
    with pytest.raises(ValueError, match="rest_joints must have shape"):
        REP.encode_batch(local, trans, rest[:21])
    with pytest.raises(ValueError, match="decode takes one sequence"):
        REP.decode(torch.zeros(2, 5, 282))
    with pytest.raises(ValueError, match="unknown motion representation 'hml3d'"):
        get_representation("hml3d")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_both_representations_run_on_cuda():
    local, trans = smooth_random_motion(2, 17, generator=torch.Generator().manual_seed(10))
    rest = builtin_rest_joints()
    for name in ("head_centric", "root_centric"):
        rep = get_representation(name)
        features = rep.encode_batch(local.cuda(), trans.cuda(), rest.cuda())
        assert features.is_cuda
        torch.testing.assert_close(features.cpu(), rep.encode_batch(local, trans, rest), rtol=0, atol=1e-5)
        local_back, trans_back = rep.decode_batch(features, rest.cuda())
        torch.testing.assert_close(trans_back.cpu(), trans, rtol=0, atol=1e-5)
        assert rep.head_camera(features, HeadCameraRig(), rest.cuda()).is_cuda

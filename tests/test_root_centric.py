"""Root-centric (HumanML3D-style) features: layout, round trips, known answers, foot contacts and integration drift."""

from __future__ import annotations

import math

import pytest
import torch

from egotwin.body.builtin import builtin_rest_joints
from egotwin.body.head_camera import HeadCameraRig
from egotwin.body.kinematics import forward_kinematics
from egotwin.body.rotations import rotation_about_y
from egotwin.body.skeleton import NUM_BODY_JOINTS
from egotwin.motion.head_centric import HeadCentricRepresentation
from egotwin.motion.motion import Motion
from egotwin.motion.random_motion import extreme_random_motion, smooth_random_motion, walking_motion
from egotwin.motion.representation import MotionRepresentation, get_representation
from egotwin.motion.root_centric import RootCentricRepresentation

REP = RootCentricRepresentation()
F64 = torch.float64


def _still(num_frames: int, yaw: torch.Tensor | float = 0.0, trans: torch.Tensor | None = None) -> Motion:
    """The rest pose turned by `yaw` (scalar or per frame) and moved by `trans` (T, 3)."""
    motion = Motion.rest(num_frames, builtin_rest_joints(dtype=F64))
    yaw = torch.as_tensor(yaw, dtype=F64).expand(num_frames)
    motion.global_orient = rotation_about_y(yaw)
    if trans is not None:
        motion.trans = trans
    return motion


def test_layout_and_shared_surface():
    assert REP.name == "root_centric" and REP.dim == 1 + 2 + 1 + 63 + 66 + 132 + 4 == 269
    assert list(REP.parts) == ["root_yaw_vel", "root_xz_vel", "root_height", "j_p", "j_v", "j_r", "contacts"]
    groups = REP.loss_groups
    assert set(groups) == {"root", "joint_3d", "joint_6d", "contacts"}
    assert groups["root"].tolist() == [0, 1, 2, 3] and groups["contacts"].tolist() == [265, 266, 267, 268]
    assert sorted(torch.cat(list(groups.values())).tolist()) == list(range(269))
    assert isinstance(get_representation("root_centric"), RootCentricRepresentation)
    # The same surface as the head-centric representation.
    for name in (
        "dim",
        "parts",
        "loss_groups",
        "name",
        "encode",
        "decode",
        "encode_batch",
        "decode_batch",
        "head_camera",
    ):
        assert hasattr(REP, name) and hasattr(HeadCentricRepresentation(), name)
    assert isinstance(REP, MotionRepresentation)


@pytest.mark.parametrize(
    "kind, dtype, tol",
    [
        ("smooth", F64, 1e-10),
        ("smooth", torch.float32, 1e-5),
        ("extreme", F64, 1e-10),
        ("extreme", torch.float32, 1e-4),
    ],
)
def test_round_trip(kind, dtype, tol):
    """A 5 s clip (81 frames) returns to float precision; the extreme case has any rotation and a 10 m cube of
    positions, hence the looser float32 bound."""
    make = smooth_random_motion if kind == "smooth" else extreme_random_motion
    local, trans = make(6, 81, generator=torch.Generator().manual_seed(11), dtype=dtype)
    rest = builtin_rest_joints(dtype=dtype)
    features = REP.encode_batch(local, trans, rest)
    assert features.shape == (6, 81, 269)
    local_back, trans_back = REP.decode_batch(features, rest)
    rot, joints = forward_kinematics(local, rest, trans)
    rot_back, joints_back = forward_kinematics(local_back, rest, trans_back)
    assert (joints_back - joints).abs().max() < tol
    assert (rot_back - rot).abs().max() < tol
    assert (trans_back - trans).abs().max() < tol


def test_motion_wrappers_and_head_camera():
    local, trans = smooth_random_motion(2, 33, generator=torch.Generator().manual_seed(12), dtype=F64)
    rest = builtin_rest_joints(dtype=F64)
    features = REP.encode_batch(local, trans, rest)
    rig = HeadCameraRig()
    cameras = REP.head_camera(features, rig, rest)
    for i in range(2):
        motion = Motion(trans=trans[i], global_orient=local[i, :, 0], body_pose=local[i, :, 1:], rest_joints=rest)
        torch.testing.assert_close(REP.encode(motion), features[i], rtol=0, atol=1e-12)
        decoded = REP.decode(features[i], rest, fps=16)
        torch.testing.assert_close(decoded.joints(), motion.joints(), rtol=0, atol=1e-10)
        torch.testing.assert_close(cameras[i], rig.camera_poses(*motion.head_pose()), rtol=0, atol=1e-10)


def test_walking_forward_in_the_heading_frame():
    """Facing +x (yaw = pi/2) and walking along +x at 1.6 m/s: the step is straight ahead in the heading frame."""
    fps, speed, t = 16, 1.6, 9
    trans = torch.zeros(t, 3, dtype=F64)
    trans[:, 0] = 2.0 + speed / fps * torch.arange(t, dtype=F64)
    values = REP.unpack(REP.encode(_still(t, math.pi / 2, trans)))
    rest = builtin_rest_joints(dtype=F64)
    torch.testing.assert_close(values["root_yaw_vel"][:, 0], torch.tensor([math.pi / 2] + [0.0] * (t - 1), dtype=F64))
    # Frame 0 is measured from the origin facing +z: the pelvis is 2 m to the +x side (the person's left).
    torch.testing.assert_close(values["root_xz_vel"][0], torch.tensor([2.0, 0.0], dtype=F64))
    torch.testing.assert_close(values["root_xz_vel"][1:], torch.tensor([0.0, speed / fps], dtype=F64).expand(t - 1, 2))
    torch.testing.assert_close(values["root_height"][:, 0], rest[0, 1].expand(t))
    # Joints relative to the pelvis, in the heading frame: the rest skeleton whatever the world yaw.
    torch.testing.assert_close(values["j_p"], (rest[1:] - rest[0]).expand(t, NUM_BODY_JOINTS, 3))
    torch.testing.assert_close(values["j_v"][1:], torch.tensor([0.0, 0.0, speed / fps], dtype=F64).expand(t - 1, 22, 3))


def test_yaw_velocity_wraps_across_pi():
    """Turning in place at 0.5 rad per frame through +-pi: the velocity stays 0.5, never a 2 pi jump."""
    yaw = 2.5 + 0.5 * torch.arange(12, dtype=F64)
    features = REP.encode(_still(12, yaw))
    values = REP.unpack(features)
    torch.testing.assert_close(values["root_yaw_vel"][1:, 0], torch.full((11,), 0.5, dtype=F64))
    decoded = REP.decode(features, builtin_rest_joints(dtype=F64))
    torch.testing.assert_close(decoded.global_orient, rotation_about_y(yaw), rtol=0, atol=1e-12)


def test_only_the_start_depends_on_where_the_body_is():
    """Moving the whole motion by a yaw about the origin plus a horizontal shift changes frame 0's root velocities
    (measured from the origin) and nothing else."""
    local, trans = smooth_random_motion(1, 25, generator=torch.Generator().manual_seed(13), dtype=F64)
    motion = Motion(
        trans=trans[0],
        global_orient=local[0, :, 0],
        body_pose=local[0, :, 1:],
        rest_joints=builtin_rest_joints(dtype=F64),
    )
    transform = torch.eye(4, dtype=F64)
    transform[:3, :3] = rotation_about_y(torch.tensor(-1.3, dtype=F64))
    transform[:3, 3] = torch.tensor([-4.0, 0.0, 6.0])
    before, after = REP.encode(motion), REP.encode(motion.transformed(transform))
    torch.testing.assert_close(after[1:], before[1:], rtol=0, atol=1e-10)
    torch.testing.assert_close(after[0, 3:], before[0, 3:], rtol=0, atol=1e-10)
    assert (after[0, :3] - before[0, :3]).abs().max() > 1.0


def test_foot_contacts():
    contacts = lambda motion: REP.unpack(REP.encode(motion))["contacts"]  # noqa: E731
    assert (contacts(_still(6)) == 1).all(), "standing still on the floor"
    lifted = torch.zeros(6, 3, dtype=F64)
    lifted[:, 1] = 0.2
    assert (contacts(_still(6, trans=lifted)) == 0).all(), "20 cm above the floor"
    sliding = torch.zeros(6, 3, dtype=F64)
    sliding[:, 2] = 2.0 / 16 * torch.arange(6, dtype=F64)  # 2 m/s
    sliding_contacts = contacts(_still(6, trans=sliding))
    assert (sliding_contacts[0] == 1).all() and (sliding_contacts[1:] == 0).all(), "speed is zero at frame 0"
    # Lifting only the left leg's foot (knee bent back) clears the left ankle and foot, the right ones stay down.
    bent = _still(4)
    bent.body_pose[:, 3] = torch.tensor([[1.0, 0, 0], [0, 0, -1], [0, 1, 0]], dtype=F64)  # left knee, 90 degrees
    values = contacts(bent)
    assert values[:, [0, 2]].eq(0).all() and values[:, [1, 3]].eq(1).all()
    # A custom threshold makes the 20 cm lift count as contact.
    assert (get_representation("root_centric", contact_height=0.3).encode(_still(6, trans=lifted))[:, -4:] == 1).all()


def test_integration_drift_on_a_long_walk():
    """60 s of walking with turns (961 frames): the root is integrated from velocities, so rounding and feature
    errors accumulate. Exact features decoded in float32 stay within 1e-4 m of the float64 head at the end; with
    1e-3 noise on every feature (as a generator makes) the root-centric head drifts decimetres while the
    head-centric head, read from absolute h_p, stays within millimetres."""
    motion = walking_motion(60.0, dtype=F64)
    truth = motion.head_pose()[1]
    features = REP.encode(motion)
    float32 = REP.decode(features.float(), motion.rest_joints.float()).head_pose()[1].double()
    end_error_f32 = (float32[-1] - truth[-1]).norm().item()
    round_trip_f32 = (
        REP.decode(REP.encode(motion.to(torch.float32)), motion.rest_joints.float()).head_pose()[1].double()
    )
    end_error_f32_both = (round_trip_f32[-1] - truth[-1]).norm().item()

    generator = torch.Generator().manual_seed(14)
    head_rep = HeadCentricRepresentation()
    head_features = head_rep.encode(motion)
    noisy_errors = {"root_centric": [], "head_centric": []}
    for _ in range(5):
        for rep, clean in ((REP, features), (head_rep, head_features)):
            noise = 1e-3 * torch.randn(clean.shape, generator=generator, dtype=F64)
            head = rep.decode(clean + noise, motion.rest_joints).head_pose()[1]
            noisy_errors[rep.name].append((head[-1] - truth[-1]).norm().item())
    root_noisy = sorted(noisy_errors["root_centric"])[2]
    head_noisy = sorted(noisy_errors["head_centric"])[2]
    print(
        f"\nroot-centric drift after 60 s: float32 decode {end_error_f32:.2e} m, float32 encode+decode "
        f"{end_error_f32_both:.2e} m; with 1e-3 feature noise (median of 5): root-centric {root_noisy:.3f} m, "
        f"head-centric {head_noisy:.4f} m"
    )
    assert end_error_f32 < 1e-4 and end_error_f32_both < 1e-4
    assert root_noisy > 20 * head_noisy and head_noisy < 0.01


def test_decode_is_differentiable_through_the_integration():
    rest = builtin_rest_joints()
    features = REP.encode_batch(*smooth_random_motion(1, 9, generator=torch.Generator().manual_seed(15)), rest)
    features.requires_grad_(True)
    local, trans = REP.decode_batch(features, rest)
    trans[:, -1].sum().backward()
    root = REP.loss_groups["root"]
    # The last root position depends on every xz velocity, on the yaw velocity of every frame but the last (the last
    # step is taken in the previous heading), and on no contact.
    assert (features.grad[0, :, root[1:3]].abs() > 0).all()
    assert (features.grad[0, :-1, root[0]].abs() > 0).all() and features.grad[0, -1, root[0]] == 0
    assert (features.grad[0, :, REP.parts["contacts"]] == 0).all()


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match=r"features must have shape \(\.\.\., T, 269\)"):
        REP.decode_batch(torch.zeros(3, 282), builtin_rest_joints())
    local, trans = smooth_random_motion(1, 4)
    with pytest.raises(ValueError, match="trans must have shape"):
        REP.encode_batch(local, trans[..., :2], builtin_rest_joints())

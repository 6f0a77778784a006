"""Motion: AMASS-style .npz files (round trip, AMASS layouts, every kind of bad file), resampling against analytic
motion and scipy's Slerp, canonicalisation (design "Head-centric motion") and rigid transforms, constructor
validation."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation, Slerp

from egotwin.body.builtin import builtin_rest_joints
from egotwin.body.rotations import axis_angle_to_matrix
from egotwin.body.skeleton import HEAD, NUM_BODY_JOINTS
from egotwin.motion.motion import MOTION_FPS, Motion, MotionFileError

F64 = torch.float64


def random_motion(num_frames: int = 20, seed: int = 0, fps: float = 30.0, dtype: torch.dtype = F64) -> Motion:
    """Random root orientation (tilted too), random pose, random path, on a random-height built-in body."""
    g = torch.Generator().manual_seed(seed)
    height = 1.5 + 0.4 * torch.rand((), generator=g).item()
    return Motion.from_axis_angle(
        trans=torch.randn(num_frames, 3, generator=g, dtype=dtype),
        root_orient=torch.randn(num_frames, 3, generator=g, dtype=dtype),
        pose_body=0.6 * torch.randn(num_frames, 63, generator=g, dtype=dtype),
        rest_joints=builtin_rest_joints(height, dtype=dtype),
        fps=fps,
        betas=torch.randn(10, generator=g, dtype=dtype),
    )


def amass_arrays(num_frames: int = 12, seed: int = 1) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "trans": rng.normal(size=(num_frames, 3)),
        "root_orient": rng.normal(size=(num_frames, 3)),
        "pose_body": 0.5 * rng.normal(size=(num_frames, 63)),
        "betas": rng.normal(size=10),
        "mocap_frame_rate": np.float64(120.0),
    }


# ------------------------------------------------------------------------------------------------ npz files
def test_npz_round_trip_is_exact_in_float64(tmp_path):
    motion = random_motion()
    path = tmp_path / "clip.npz"
    motion.save_npz(path)
    loaded = Motion.load_npz(path, dtype=F64)
    assert torch.equal(loaded.trans, motion.trans)
    assert torch.equal(loaded.rest_joints, motion.rest_joints)
    assert torch.equal(loaded.betas, motion.betas)
    assert loaded.fps == motion.fps
    torch.testing.assert_close(loaded.local_rotations, motion.local_rotations, atol=1e-12, rtol=0)
    torch.testing.assert_close(loaded.joints(), motion.joints(), atol=1e-12, rtol=0)


def test_npz_round_trip_float32_default(tmp_path):
    motion = random_motion(dtype=torch.float32)
    motion.save_npz(tmp_path / "clip.npz")
    loaded = Motion.load_npz(tmp_path / "clip.npz")
    assert loaded.trans.dtype == torch.float32 and loaded.rest_joints.dtype == torch.float32
    torch.testing.assert_close(loaded.joints(), motion.joints(), atol=1e-5, rtol=0)


def test_save_npz_writes_exactly_the_given_path(tmp_path):
    path = tmp_path / "walk.motion"
    random_motion().save_npz(path)
    assert path.exists() and not (tmp_path / "walk.motion.npz").exists()
    assert Motion.load_npz(path).num_frames == 20


def test_amass_smplh_poses_layout_loads(tmp_path):
    """AMASS SMPL+H files: `poses` (T, 156), `mocap_framerate`, 16 betas, dmpls and a gender string."""
    rng = np.random.default_rng(3)
    poses = 0.5 * rng.normal(size=(15, 156))
    trans = rng.normal(size=(15, 3))
    np.savez(
        tmp_path / "a.npz",
        trans=trans,
        poses=poses,
        betas=rng.normal(size=16),
        dmpls=rng.normal(size=(15, 8)),
        gender=np.array("female"),
        mocap_framerate=np.array(60.0),
    )
    motion = Motion.load_npz(tmp_path / "a.npz", dtype=F64)
    assert motion.fps == 60.0 and motion.betas.shape == (16,)
    assert torch.equal(motion.trans, torch.from_numpy(trans))
    expected = Rotation.from_rotvec(poses[:, :66].reshape(-1, 3)).as_matrix().reshape(15, 22, 3, 3)
    np.testing.assert_allclose(motion.local_rotations.numpy(), expected, atol=1e-12)


def test_amass_smplx_layout_with_extra_and_pickled_keys_loads(tmp_path):
    """AMASS SMPL-X files: root_orient/pose_body plus `poses` (T, 165), hands, jaw, 300 betas; extra arrays, even
    object arrays that only load with pickle, are ignored."""
    arrays = amass_arrays()
    arrays["betas"] = np.random.default_rng(0).normal(size=300)
    arrays["poses"] = np.zeros((12, 165))  # would give a T-pose if it were (wrongly) preferred
    arrays["pose_hand"] = np.zeros((12, 90))
    arrays["markers_latent"] = np.zeros((50, 3))
    arrays["surface_model_type"] = np.array("smplx")
    arrays["latent_labels"] = np.array([{"label": 1}, None], dtype=object)
    np.savez(tmp_path / "x.npz", **arrays)
    motion = Motion.load_npz(tmp_path / "x.npz", dtype=F64)
    assert motion.betas.shape == (300,) and motion.fps == 120.0
    torch.testing.assert_close(motion.root_orient, torch.from_numpy(arrays["root_orient"]), atol=1e-12, rtol=0)
    torch.testing.assert_close(motion.pose_body, torch.from_numpy(arrays["pose_body"]), atol=1e-12, rtol=0)


def test_npz_accepts_pose_body_21x3_betas_1xb_and_integer_frame_rate(tmp_path):
    arrays = amass_arrays()
    arrays["pose_body"] = arrays["pose_body"].reshape(12, 21, 3)
    arrays["betas"] = arrays["betas"][None]
    arrays["mocap_frame_rate"] = np.array([30])
    np.savez(tmp_path / "a.npz", **arrays)
    motion = Motion.load_npz(tmp_path / "a.npz", dtype=F64)
    assert motion.betas.shape == (10,) and motion.fps == 30.0
    torch.testing.assert_close(
        motion.pose_body, torch.from_numpy(arrays["pose_body"].reshape(12, 63)), atol=1e-12, rtol=0
    )


def test_npz_without_rest_joints_uses_the_given_or_builtin_skeleton(tmp_path):
    np.savez(tmp_path / "a.npz", **amass_arrays())
    assert torch.equal(Motion.load_npz(tmp_path / "a.npz").rest_joints, builtin_rest_joints())
    tall = builtin_rest_joints(1.9)
    assert torch.equal(Motion.load_npz(tmp_path / "a.npz", rest_joints=tall).rest_joints, tall)


def _without(key):
    def edit(a):
        del a[key]

    return edit


def _setter(key, value):
    def edit(a):
        a[key] = value(a) if callable(value) else value

    return edit


BAD_NPZ = {
    "missing trans": (_without("trans"), "missing array 'trans'"),
    "missing root_orient": (_without("root_orient"), "missing array 'root_orient'"),
    "missing pose_body": (_without("pose_body"), "missing array 'pose_body'"),
    "no rotations at all": (
        lambda a: [a.pop("root_orient"), a.pop("pose_body")],
        "needs 'root_orient' and 'pose_body'",
    ),
    "missing frame rate": (_without("mocap_frame_rate"), "missing the frame rate"),
    "trans (T, 4)": (_setter("trans", np.zeros((12, 4))), "'trans' must have shape"),
    "trans 1-D": (_setter("trans", np.zeros(36)), "'trans' must have 2 dimensions"),
    "zero frames": (
        lambda a: a.update(trans=np.zeros((0, 3)), root_orient=np.zeros((0, 3)), pose_body=np.zeros((0, 63))),
        "T >= 1",
    ),
    "root_orient too short": (_setter("root_orient", lambda a: a["root_orient"][:-1]), "'root_orient' must have shape"),
    "pose_body too long": (
        _setter("pose_body", lambda a: np.concatenate([a["pose_body"]] * 2)),
        "'pose_body' must have shape",
    ),
    "pose_body (T, 60)": (_setter("pose_body", lambda a: a["pose_body"][:, :60]), "'pose_body' must have shape"),
    "pose_body (T, 7, 9)": (
        _setter("pose_body", lambda a: a["pose_body"].reshape(12, 7, 9)),
        "'pose_body' must have shape",
    ),
    "poses (T, 60)": (
        lambda a: [a.pop("root_orient"), a.update(poses=a.pop("pose_body")[:, :60])],
        "'poses' must have",
    ),
    "NaN in trans": (_setter("trans", lambda a: np.where(np.arange(3) == 1, np.nan, a["trans"])), "NaN or infinite"),
    "inf in pose_body": (_setter("pose_body", lambda a: a["pose_body"] + np.inf), "NaN or infinite"),
    "NaN in betas": (_setter("betas", np.full(10, np.nan)), "NaN or infinite"),
    "betas per frame": (_setter("betas", np.zeros((12, 10))), "'betas' must have shape"),
    "string trans": (_setter("trans", np.full((12, 3), "x")), "must be numeric"),
    "boolean pose_body": (_setter("pose_body", np.zeros((12, 63), dtype=bool)), "must be numeric"),
    "zero frame rate": (_setter("mocap_frame_rate", np.float64(0)), "one positive number"),
    "negative frame rate": (_setter("mocap_frame_rate", np.float64(-30)), "one positive number"),
    "two frame rates": (_setter("mocap_frame_rate", np.array([30.0, 60.0])), "one positive number"),
    "rest_joints (24, 3)": (_setter("rest_joints", np.zeros((24, 3))), "'rest_joints' must have shape"),
}


@pytest.mark.parametrize("case", list(BAD_NPZ))
def test_bad_npz_content_raises_clear_error(tmp_path, case):
    edit, message = BAD_NPZ[case]
    arrays = amass_arrays()
    edit(arrays)
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(MotionFileError, match=message) as error:
        Motion.load_npz(tmp_path / "bad.npz")
    assert "bad.npz" in str(error.value)


def test_bad_npz_archives_raise_clear_errors(tmp_path):
    good = tmp_path / "good.npz"
    random_motion(num_frames=200).save_npz(good)
    data = good.read_bytes()
    (tmp_path / "truncated.npz").write_bytes(data[: len(data) // 2])
    (tmp_path / "garbage.npz").write_bytes(np.random.default_rng(0).bytes(5000))
    (tmp_path / "empty.npz").write_bytes(b"")
    (tmp_path / "text.npz").write_text("trans,root_orient\n1,2\n")
    np.save(tmp_path / "single.npy", np.zeros((12, 3)))
    # A zip whose member bytes are damaged: the directory reads, the array does not.
    corrupt = bytearray(data)
    start = data.find(b"\x93NUMPY", data.find(b"trans.npy"))
    corrupt[start : start + 6] = b"XXXXXX"
    (tmp_path / "corrupt_member.npz").write_bytes(bytes(corrupt))
    for name in ("truncated.npz", "garbage.npz", "empty.npz", "text.npz", "single.npy", "corrupt_member.npz"):
        with pytest.raises(MotionFileError, match=name.replace(".", r"\.")):
            Motion.load_npz(tmp_path / name)
    with pytest.raises(FileNotFoundError):
        Motion.load_npz(tmp_path / "nowhere.npz")


# ------------------------------------------------------------------------------------------------- resampling
def analytic_motion(fps: float, duration: float = 2.0, dtype: torch.dtype = F64) -> tuple[Motion, dict]:
    """Constant-velocity translation and constant angular velocity rotations (root and every joint, each about its
    own fixed axis), sampled at `fps`; returns the motion and the parameters to evaluate it at any time."""
    g = torch.Generator().manual_seed(7)
    params = {
        "p0": torch.randn(3, generator=g, dtype=dtype),
        "v": torch.randn(3, generator=g, dtype=dtype),
        "r0": axis_angle_to_matrix(torch.randn(22, 3, generator=g, dtype=dtype)),
        "w": 2.0 * torch.randn(22, 3, generator=g, dtype=dtype),  # rad/s, well below pi per frame at 30 fps
    }
    times = torch.arange(int(round(duration * fps)) + 1, dtype=dtype) / fps
    trans, rotations = evaluate(params, times)
    motion = Motion(trans=trans, global_orient=rotations[:, 0], body_pose=rotations[:, 1:], fps=fps)
    return motion, params


def evaluate(params: dict, times: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    trans = params["p0"] + times[:, None] * params["v"]
    rotations = axis_angle_to_matrix(times[:, None, None] * params["w"]) @ params["r0"]
    return trans, rotations


@pytest.mark.parametrize("source_fps", [30.0, 60.0, 120.0, 25.0, 29.97, 8.0])
def test_resample_reproduces_analytic_motion(source_fps):
    motion, params = analytic_motion(source_fps)
    resampled = motion.resample(MOTION_FPS)
    expected_frames = math.floor(motion.duration * MOTION_FPS + 1e-6) + 1
    assert resampled.fps == MOTION_FPS and resampled.num_frames == expected_frames
    trans, rotations = evaluate(params, torch.arange(expected_frames, dtype=F64) / MOTION_FPS)
    torch.testing.assert_close(resampled.trans, trans, atol=1e-12, rtol=0)
    torch.testing.assert_close(resampled.local_rotations, rotations, atol=1e-12, rtol=0)
    # The first frame is copied, not interpolated.
    assert torch.equal(resampled.trans[0], motion.trans[0])
    assert torch.equal(resampled.local_rotations[0], motion.local_rotations[0])


def test_resample_frames_on_source_frames_are_exact_copies():
    motion = random_motion(num_frames=61, fps=32.0)
    resampled = motion.resample(16.0)
    assert resampled.num_frames == 31
    for name in ("trans", "global_orient", "body_pose"):
        assert torch.equal(getattr(resampled, name), getattr(motion, name)[::2])
    assert torch.equal(motion.resample(32.0).body_pose, motion.body_pose)


def test_resample_matches_scipy_slerp_on_random_rotations():
    motion = random_motion(num_frames=31, fps=30.0, seed=5)
    resampled = motion.resample(16.0)
    times_in = np.arange(31) / 30.0
    times_out = np.arange(resampled.num_frames) / 16.0
    for joint in (0, 4, 15, 21):
        slerp = Slerp(times_in, Rotation.from_matrix(motion.local_rotations[:, joint].numpy()))
        np.testing.assert_allclose(
            resampled.local_rotations[:, joint].numpy(), slerp(times_out).as_matrix(), atol=1e-10
        )
    expected_trans = np.stack([np.interp(times_out, times_in, motion.trans[:, a].numpy()) for a in range(3)], -1)
    np.testing.assert_allclose(resampled.trans.numpy(), expected_trans, atol=1e-12)


def test_resample_float32_single_frame_and_bad_fps():
    motion = random_motion(num_frames=31, dtype=torch.float32)
    out = motion.resample(16.0)
    assert out.trans.dtype == torch.float32 and out.num_frames == 17
    assert Motion.rest(1).resample(16.0).num_frames == 1
    for fps in (0.0, -16.0, float("nan")):
        with pytest.raises(ValueError, match="fps must be positive"):
            motion.resample(fps)


# ---------------------------------------------------------------------------------------------- canonical frame
def pairwise_distances(joints: torch.Tensor) -> torch.Tensor:
    flat = joints.reshape(-1, 3)
    return (flat[:, None] - flat[None]).norm(dim=-1)


@pytest.mark.parametrize("seed", range(5))
def test_canonicalize_puts_head_at_origin_facing_z_and_keeps_everything_relative(seed):
    motion = random_motion(num_frames=10, seed=seed)
    canonical, transform = motion.canonicalize()
    head_rot, head_pos = canonical.head_pose()
    old_rot, old_pos = motion.head_pose()
    # Frame-0 head above the origin, at its old height, looking towards +z (its forward axis has no x component).
    torch.testing.assert_close(head_pos[0, [0, 2]], torch.zeros(2, dtype=F64), atol=1e-12, rtol=0)
    torch.testing.assert_close(head_pos[0, 1], old_pos[0, 1], atol=1e-12, rtol=0)
    forward = head_rot[0, :, 2]
    assert abs(forward[0].item()) < 1e-12 and forward[2].item() > 0
    # Gravity kept: the transform is a yaw about +y (and a horizontal shift).
    torch.testing.assert_close(transform[:3, 1], torch.tensor([0.0, 1.0, 0.0], dtype=F64), atol=1e-12, rtol=0)
    assert transform[1, 3].item() == 0.0
    # Everything relative is invariant: all pairwise joint distances over all frames, the head's frame-to-frame
    # rotations, the body pose; every joint and the head rotation are moved by the returned transform.
    new_joints, old_joints = canonical.joints(), motion.joints()
    torch.testing.assert_close(pairwise_distances(new_joints), pairwise_distances(old_joints), atol=1e-10, rtol=0)
    torch.testing.assert_close(new_joints, old_joints @ transform[:3, :3].T + transform[:3, 3], atol=1e-12, rtol=0)
    torch.testing.assert_close(head_rot, transform[:3, :3] @ old_rot, atol=1e-12, rtol=0)
    torch.testing.assert_close(canonical.body_pose, motion.body_pose)
    relative = lambda r: r[:-1].transpose(-1, -2) @ r[1:]  # noqa: E731
    torch.testing.assert_close(relative(head_rot), relative(old_rot), atol=1e-12, rtol=0)
    # Canonical is a fixed point.
    again, identity = canonical.canonicalize()
    torch.testing.assert_close(identity, torch.eye(4, dtype=F64), atol=1e-12, rtol=0)


def test_canonical_transform_known_answer():
    """A person standing 2 m along +x and turned to face +x is moved back to the origin and turned to face +z."""
    quarter = torch.tensor([[0.0, math.pi / 2, 0.0]], dtype=F64)
    motion = Motion.from_axis_angle(torch.tensor([[2.0, 0.0, 0.0]], dtype=F64), quarter, torch.zeros(1, 63, dtype=F64))
    transform = motion.canonical_transform()
    expected = torch.eye(4, dtype=F64)
    expected[:3, :3] = axis_angle_to_matrix(-quarter[0])
    head = motion.rest_joints[HEAD]  # rest head x = 0: after the turn it is at (2 + head_z, ., 0)
    expected[:3, 3] = torch.tensor([0.0, 0.0, -(2.0 + head[2].item())], dtype=F64)
    torch.testing.assert_close(transform, expected, atol=1e-12, rtol=0)


def test_transformed_composes_and_rejects_non_rigid_transforms():
    motion = random_motion(num_frames=6, seed=2)
    g = torch.Generator().manual_seed(0)

    def rigid() -> torch.Tensor:
        t = torch.eye(4, dtype=F64)
        t[:3, :3] = axis_angle_to_matrix(torch.randn(3, generator=g, dtype=F64))
        t[:3, 3] = torch.randn(3, generator=g, dtype=F64)
        return t

    a, b = rigid(), rigid()
    torch.testing.assert_close(
        motion.transformed(a).transformed(b).joints(), motion.transformed(b @ a).joints(), atol=1e-12, rtol=0
    )
    torch.testing.assert_close(
        motion.transformed(a).transformed(torch.linalg.inv(a)).joints(), motion.joints(), atol=1e-12, rtol=0
    )
    mirror = torch.diag(torch.tensor([-1.0, 1.0, 1.0, 1.0], dtype=F64))
    scaled = torch.diag(torch.tensor([2.0, 2.0, 2.0, 1.0], dtype=F64))
    projective = rigid()
    projective[3, 0] = 0.5
    for bad in (mirror, scaled, projective):
        with pytest.raises(ValueError, match="not rigid"):
            motion.transformed(bad)
    with pytest.raises(ValueError, match="shape"):
        motion.transformed(torch.eye(3, dtype=F64))


# ------------------------------------------------------------------------------------------------ constructor
def test_invalid_constructor_input_raises():
    good = random_motion(num_frames=4)
    fields = {"trans": good.trans, "global_orient": good.global_orient, "body_pose": good.body_pose}
    bad_cases = [
        (dict(trans=good.trans.clone().index_fill_(0, torch.tensor([1]), math.nan)), "NaN"),
        (dict(body_pose=good.body_pose.clone().fill_(math.inf)), "NaN or infinite"),
        (dict(trans=good.trans[:3]), "global_orient must have shape"),
        (dict(body_pose=torch.eye(3, dtype=F64).expand(4, 22, 3, 3)), "body_pose must have shape"),
        (dict(global_orient=good.global_orient[:, :2]), "global_orient must have shape"),
        (dict(trans=good.trans[0]), "trans must have shape"),
        (
            dict(trans=good.trans[:0], global_orient=good.global_orient[:0], body_pose=good.body_pose[:0]),
            "at least one",
        ),
        (dict(rest_joints=torch.zeros(24, 3)), "rest_joints must have shape"),
        (dict(global_orient=good.global_orient.float()), "use one dtype"),
        (dict(trans=torch.zeros(4, 3, dtype=torch.long)), "floating-point"),
        (dict(fps=0.0), "fps must be positive"),
        (dict(fps=math.nan), "fps must be positive"),
        (dict(betas=torch.zeros(4, 10)), "betas must be a finite 1-D"),
    ]
    for change, message in bad_cases:
        with pytest.raises(ValueError, match=message):
            Motion(**{**fields, **change})
    with pytest.raises(ValueError, match="pose_body"):
        Motion.from_axis_angle(good.trans, good.root_orient, torch.zeros(4, 60, dtype=F64))


def test_defaults_follow_dtype_and_to_casts_everything():
    motion = Motion(
        trans=torch.zeros(2, 3, dtype=F64),
        global_orient=torch.eye(3, dtype=F64).expand(2, 3, 3),
        body_pose=torch.eye(3, dtype=F64).expand(2, NUM_BODY_JOINTS, 3, 3),
    )
    assert motion.rest_joints.dtype == F64 and motion.betas.dtype == F64 and motion.fps == MOTION_FPS
    single = random_motion().to(torch.float32)
    for name in ("trans", "global_orient", "body_pose", "rest_joints", "betas"):
        assert getattr(single, name).dtype == torch.float32
    torch.testing.assert_close(single.joints(), random_motion().joints().float(), atol=1e-5, rtol=0)
    back = single.to(dtype=F64)
    assert back.joints().dtype == F64 and back.fps == 30.0


def test_slice_views_and_rest():
    motion = random_motion(num_frames=10)
    part = motion.slice(2, 5)
    assert part.num_frames == 3 and torch.equal(part.trans, motion.trans[2:5])
    assert math.isclose(part.duration, 2 / 30.0)
    with pytest.raises(ValueError, match="at least one frame"):
        motion.slice(5, 5)
    rest = Motion.rest(3)
    torch.testing.assert_close(rest.joints(), builtin_rest_joints().expand(3, 22, 3))
    assert rest.pose_body.shape == (3, 63) and rest.root_orient.abs().max() == 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert motion.head_pose()[0].shape == (10, 3, 3)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_motion_on_cuda_matches_cpu(tmp_path):
    motion = random_motion(num_frames=31, fps=30.0)
    gpu = motion.to("cuda")
    assert gpu.rest_joints.is_cuda and gpu.betas.is_cuda
    torch.testing.assert_close(gpu.resample(16.0).joints().cpu(), motion.resample(16.0).joints(), atol=1e-10, rtol=0)
    canonical, transform = gpu.canonicalize()
    assert transform.is_cuda
    torch.testing.assert_close(canonical.joints().cpu(), motion.canonicalize()[0].joints(), atol=1e-10, rtol=0)
    gpu.save_npz(tmp_path / "gpu.npz")
    loaded = Motion.load_npz(tmp_path / "gpu.npz", dtype=F64)
    torch.testing.assert_close(loaded.joints(), motion.joints(), atol=1e-12, rtol=0)


def test_resample_with_max_frames_is_the_start_of_the_full_resample_and_bounded():
    motion = random_motion(num_frames=301, fps=60.0, seed=3)
    full = motion.resample(MOTION_FPS)
    first = motion.resample(MOTION_FPS, max_frames=81)
    assert first.num_frames == 81
    for name in ("trans", "global_orient", "body_pose"):
        torch.testing.assert_close(getattr(first, name), getattr(full, name)[:81], atol=1e-12, rtol=0)
    # a 2-frame motion at 1e-6 fps lasts 1e6 s: without the bound that is 16 million frames (issue 24)
    slow = Motion.rest(2, fps=1e-6)
    assert slow.resample(MOTION_FPS, max_frames=81).num_frames == 81

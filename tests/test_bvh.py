"""BVH export/import: exact round trips, agreement with the independent `bvh` reader from PyPI (hierarchy, offsets,
channels, frame time, and forward kinematics redone from its numbers with scipy), and clear errors for bad files."""

from __future__ import annotations

import math
import re
import warnings

import bvh
import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from egotwin.body.builtin import builtin_rest_joints
from egotwin.body.skeleton import JOINT_NAMES, PARENTS
from egotwin.motion.bvh import HIERARCHY_ORDER, load_bvh, motion_from_bvh, motion_to_bvh, save_bvh
from egotwin.motion.motion import Motion, MotionFileError

F64 = torch.float64


def random_motion(num_frames: int = 25, seed: int = 0, dtype: torch.dtype = F64, fps: float = 16.0) -> Motion:
    g = torch.Generator().manual_seed(seed)
    return Motion.from_axis_angle(
        trans=torch.randn(num_frames, 3, generator=g, dtype=dtype),
        root_orient=2.0 * torch.randn(num_frames, 3, generator=g, dtype=dtype),
        pose_body=torch.randn(num_frames, 63, generator=g, dtype=dtype),
        rest_joints=builtin_rest_joints(1.62, dtype=dtype),
        fps=fps,
    )


def assert_same_motion(loaded: Motion, motion: Motion, atol: float) -> None:
    assert loaded.num_frames == motion.num_frames and loaded.fps == motion.fps
    torch.testing.assert_close(loaded.rest_joints, motion.rest_joints, atol=atol, rtol=0)
    torch.testing.assert_close(loaded.trans, motion.trans, atol=atol, rtol=0)
    torch.testing.assert_close(loaded.local_rotations, motion.local_rotations, atol=atol, rtol=0)
    torch.testing.assert_close(loaded.joints(), motion.joints(), atol=atol, rtol=0)


# ------------------------------------------------------------------------------------------------ round trips
@pytest.mark.parametrize("order", ["ZXY", "XYZ", "YZX", "ZYX", "XZY", "YXZ"])
def test_round_trip_is_exact_in_float64_for_every_rotation_order(order):
    motion = random_motion(seed=len(order) + ord(order[0]))
    assert_same_motion(motion_from_bvh(motion_to_bvh(motion, rotation_order=order), dtype=F64), motion, atol=1e-12)


def test_round_trip_float32_file_in_centimetres(tmp_path):
    motion = random_motion(dtype=torch.float32, fps=30.0)
    path = tmp_path / "walk.bvh"
    save_bvh(motion, path, scale=100.0)
    loaded = load_bvh(path, scale=100.0)
    assert loaded.trans.dtype == torch.float32 and loaded.betas.abs().max() == 0
    assert_same_motion(loaded, motion, atol=1e-6)
    # The file really is in centimetres: the pelvis of the 1.62 m body sits at 0.545 * 162 cm.
    assert re.search(r"ROOT pelvis\s*\{\s*OFFSET 0 88\.29\d* 0", path.read_text())


def test_round_trip_at_gimbal_lock_and_half_turns():
    """X = +-90 degrees (gimbal lock of ZXY) and 180 degree turns are still represented exactly, without warnings;
    within 1e-7 rad of the lock scipy snaps to it, which costs at most about twice that."""
    quarter = math.pi / 2
    near = float(torch.tensor(quarter, dtype=torch.float32))  # 4.4e-8 rad past the lock
    for angle, atol in ((quarter, 1e-12), (near, 2e-7)):
        angles = torch.tensor(
            [[0.0, 0.0, 0.0], [angle, 0, 0], [-angle, 0, 0], [0, math.pi, 0], [math.pi, 0, 0]], dtype=F64
        )
        motion = Motion.from_axis_angle(
            trans=torch.zeros(5, 3, dtype=F64), root_orient=angles, pose_body=angles.repeat(1, 21)
        )
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            text = motion_to_bvh(motion)
        assert_same_motion(motion_from_bvh(text, dtype=F64), motion, atol=atol)


def test_crlf_line_endings_and_trailing_blank_lines_are_read():
    motion = random_motion(num_frames=4)
    text = motion_to_bvh(motion).replace("\n", "\r\n") + "\r\n\r\n"
    assert_same_motion(motion_from_bvh(text, dtype=F64), motion, atol=1e-12)


def test_six_digit_frame_time_snaps_to_the_integer_rate():
    text = motion_to_bvh(random_motion(num_frames=3, fps=30.0))
    text = re.sub(r"Frame Time: \S+", "Frame Time: 0.033333", text)
    assert motion_from_bvh(text).fps == 30.0
    text = re.sub(r"Frame Time: \S+", "Frame Time: 0.0333667", text)  # 29.97 fps is not snapped
    assert motion_from_bvh(text).fps == pytest.approx(1 / 0.0333667, rel=1e-12)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_motion_writes_the_same_file():
    motion = random_motion(num_frames=5)
    assert motion_to_bvh(motion.to("cuda")) == motion_to_bvh(motion)


# ------------------------------------------------------------------------------------- the independent reader
def test_independent_bvh_reader_agrees_with_our_file():
    motion = random_motion(num_frames=9, seed=3, fps=16.0)
    text = motion_to_bvh(motion, rotation_order="ZXY")
    parsed = bvh.Bvh(text)
    rest = motion.rest_joints.numpy()

    assert parsed.get_joints_names() == [JOINT_NAMES[j] for j in HIERARCHY_ORDER]
    assert parsed.nframes == 9 and parsed.frame_time == 1 / 16
    assert len(parsed.search("End", "Site")) == 5
    rotation_channels = ["Zrotation", "Xrotation", "Yrotation"]
    assert parsed.joint_channels("pelvis") == ["Xposition", "Yposition", "Zposition", *rotation_channels]
    for j, name in enumerate(JOINT_NAMES):
        parent = PARENTS[j]
        expected_offset = rest[j] if parent < 0 else rest[j] - rest[parent]
        np.testing.assert_allclose(parsed.joint_offset(name), expected_offset, atol=1e-15)
        if parent >= 0:
            assert parsed.joint_channels(name) == rotation_channels
            assert parsed.joint_parent(name).name == JOINT_NAMES[parent]

    # Forward kinematics from the reader's numbers alone (scipy Euler angles, BVH offsets) gives our joints.
    joints = np.zeros((9, 22, 3))
    world = np.zeros((9, 22, 3, 3))
    for name in parsed.get_joints_names():
        j = JOINT_NAMES.index(name)
        local = Rotation.from_euler("ZXY", parsed.frames_joint_channels(name, rotation_channels), degrees=True)
        offset = np.array(parsed.joint_offset(name))
        parent = PARENTS[j]
        if parent < 0:
            world[:, j] = local.as_matrix()
            joints[:, j] = parsed.frames_joint_channels(name, ["Xposition", "Yposition", "Zposition"])
        else:
            world[:, j] = world[:, parent] @ local.as_matrix()
            joints[:, j] = joints[:, parent] + world[:, parent] @ offset
    np.testing.assert_allclose(joints, motion.joints().numpy(), atol=1e-12)


def other_tool_bvh(motion: Motion, orders: dict[int, str]) -> str:
    """A BVH as another exporter might write it: children in reverse order, a rotation order per joint, the root's
    rotations before its positions (Z, X, Y), centimetres, six decimals. Written here with scipy alone."""
    rest = motion.rest_joints.numpy() * 100
    children = {j: [c for c in range(22) if PARENTS[c] == j][::-1] for j in range(22)}
    lines, columns = ["HIERARCHY"], []

    def write(j: int) -> None:
        parent = PARENTS[j]
        offset = rest[j] - (rest[parent] if parent >= 0 else 0)
        lines.append(
            f"{'ROOT' if parent < 0 else 'JOINT'} {JOINT_NAMES[j]}\n{{\nOFFSET {' '.join(f'{v:.6f}' for v in offset)}"
        )
        rotations = [f"{axis}rotation" for axis in orders[j]]
        positions = ["Zposition", "Xposition", "Yposition"] if parent < 0 else []
        lines.append(f"CHANNELS {len(rotations) + len(positions)} {' '.join(rotations + positions)}")
        euler = Rotation.from_matrix(motion.local_rotations[:, j].numpy()).as_euler(orders[j], degrees=True)
        columns.append(euler)
        if parent < 0:
            pelvis = (motion.trans + motion.rest_joints[0]).numpy() * 100
            columns.append(pelvis[:, [2, 0, 1]])
        for child in children[j]:
            write(child)
        if not children[j]:
            lines.append("End Site\n{\nOFFSET 0.0 5.0 0.0\n}")
        lines.append("}")

    write(0)
    values = np.concatenate(columns, axis=1)
    lines += ["MOTION", f"Frames:\t{motion.num_frames}", "Frame Time:\t0.033333"]
    lines += [" ".join(f"{v:.6f}" for v in row) for row in values]
    return "\n".join(lines) + "\n"


def test_import_of_a_bvh_from_another_exporter():
    motion = random_motion(num_frames=7, seed=11, fps=30.0)
    permutations = ["XYZ", "XZY", "YXZ", "YZX", "ZXY", "ZYX"]
    orders = {j: permutations[j % 6] for j in range(22)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy's gimbal-lock note; the rotations stay exact
        text = other_tool_bvh(motion, orders)
    loaded = motion_from_bvh(text, scale=100.0, dtype=F64)
    assert loaded.fps == 30.0
    torch.testing.assert_close(loaded.rest_joints, motion.rest_joints, atol=1e-8, rtol=0)
    torch.testing.assert_close(loaded.local_rotations, motion.local_rotations, atol=1e-6, rtol=0)
    torch.testing.assert_close(loaded.joints(), motion.joints(), atol=1e-6, rtol=0)


# ------------------------------------------------------------------------------------------------- bad files
MOTION_TEXT = motion_to_bvh(random_motion(num_frames=6, seed=9))


def _edit_frame(frame: int, edit):
    """A text edit that applies `edit` to the list of values on the MOTION line of `frame`."""

    def apply(text: str) -> str:
        lines = text.splitlines()
        index = lines.index("MOTION") + 3 + frame
        lines[index] = " ".join(edit(lines[index].split()))
        return "\n".join(lines) + "\n"

    return apply


def _swap(a: str, b: str):
    return lambda t: t.replace(a, "@").replace(b, a).replace("@", b)


ROTATIONS = "CHANNELS 3 Zrotation Xrotation Yrotation"
BAD_BVH = {
    # MOTION section
    "truncated MOTION section": (
        lambda t: t[: t.rstrip().rindex("\n") + 1],
        "says 6 frames but the MOTION section has 5",
    ),
    "extra frame line": (lambda t: t + t.splitlines()[-1] + "\n", "says 6 frames but the MOTION section has 7"),
    "blank line inside the frames": (_edit_frame(2, lambda v: []), "expected 69 values \\(frame 2\\), got 0"),
    "value missing from a line": (_edit_frame(1, lambda v: v[:-1]), "expected 69 values \\(frame 1\\), got 68"),
    "value added to a line": (_edit_frame(4, lambda v: v + ["0"]), "expected 69 values \\(frame 4\\), got 70"),
    "non-numeric value": (_edit_frame(3, lambda v: v[:10] + ["abc"] + v[11:]), "non-numeric value"),
    "NaN value": (_edit_frame(0, lambda v: ["nan"] + v[1:]), "NaN or infinite"),
    "infinite value": (_edit_frame(5, lambda v: v[:-1] + ["-inf"]), "NaN or infinite"),
    "no MOTION section": (lambda t: t.split("MOTION")[0], "no MOTION section"),
    "no Frames line": (lambda t: t.replace("Frames: 6", "Frame count 6"), "expected 'Frames: <number>'"),
    "fractional frame count": (lambda t: t.replace("Frames: 6", "Frames: 6.5"), "'Frames:' must be a positive integer"),
    "zero frames": (lambda t: t.replace("Frames: 6", "Frames: 0"), "'Frames:' must be a positive integer"),
    "bad frame time": (lambda t: t.replace("Frame Time: 0.0625", "Frame Time: fast"), "'Frame Time:' must be"),
    "negative frame time": (lambda t: t.replace("Frame Time: 0.0625", "Frame Time: -0.0625"), "'Frame Time:' must be"),
    # HIERARCHY section
    "renamed joint": (
        lambda t: t.replace("JOINT left_knee", "JOINT LeftKnee"),
        "unknown joints \\['LeftKnee'\\], missing joints \\['left_knee'\\]",
    ),
    "root renamed": (lambda t: t.replace("ROOT pelvis", "ROOT Hips"), "unknown joints \\['Hips'\\]"),
    "re-parented joint": (
        _swap("JOINT left_hip", "JOINT left_knee"),
        "joint 'left_knee' has parent 'pelvis' in the BVH file, expected 'left_hip'",
    ),
    "position channels on a joint": (
        lambda t: t.replace(ROTATIONS, "CHANNELS 4 Xposition Zrotation Xrotation Yrotation", 1),
        "joint 'left_hip' must have position channels \\[\\]",
    ),
    "root without position": (
        lambda t: t.replace("CHANNELS 6 Xposition Yposition Zposition", "CHANNELS 3", 1),
        "joint 'pelvis' must have position channels",
    ),
    "two X rotations": (
        lambda t: t.replace(ROTATIONS, "CHANNELS 3 Xrotation Xrotation Yrotation", 1),
        "three channels",
    ),
    "scale channel": (
        lambda t: t.replace(ROTATIONS, "CHANNELS 4 Xscale Zrotation Xrotation Yrotation", 1),
        "three channels",
    ),
    "non-numeric offset": (
        lambda t: t.replace("OFFSET 0 ", "OFFSET zero ", 1),
        "expected a number for the OFFSET of 'pelvis'",
    ),
    "NaN offset": (lambda t: t.replace("OFFSET 0 ", "OFFSET nan ", 1), "OFFSET of 'pelvis' is not finite"),
    "missing brace": (
        lambda t: t.replace("\tJOINT left_knee\n\t\t{", "\tJOINT left_knee\n", 1),
        "expected '\\{', got 'OFFSET'",
    ),
    "truncated hierarchy": (
        lambda t: "\n".join(t.splitlines()[:40]) + "\nMOTION\nFrames: 1\nFrame Time: 0.1\n0\n",
        "unexpected end of the HIERARCHY section",
    ),
    "no HIERARCHY keyword": (lambda t: t.replace("HIERARCHY", "SKELETON"), "expected 'HIERARCHY', got 'SKELETON'"),
}


@pytest.mark.parametrize("case", list(BAD_BVH))
def test_bad_bvh_raises_clear_error(case):
    edit, message = BAD_BVH[case]
    bad = edit(MOTION_TEXT)
    assert bad != MOTION_TEXT
    with pytest.raises(MotionFileError, match=message):
        motion_from_bvh(bad, source="bad.bvh")


def test_errors_name_the_file_and_line(tmp_path):
    path = tmp_path / "clip.bvh"
    path.write_text(_edit_frame(2, lambda v: v[:3])(MOTION_TEXT))
    line = MOTION_TEXT.splitlines().index("MOTION") + 3 + 2 + 1  # 1-based
    with pytest.raises(MotionFileError, match=f"clip.bvh, line {line}: expected 69 values"):
        load_bvh(path)
    path.write_bytes(b"\xff\xfe\x00binary")
    with pytest.raises(MotionFileError, match="not a text BVH file"):
        load_bvh(path)


def test_bad_arguments():
    motion = random_motion(num_frames=2)
    with pytest.raises(ValueError, match="permutation of 'XYZ'"):
        motion_to_bvh(motion, rotation_order="ZXX")
    with pytest.raises(ValueError, match="scale must be positive"):
        motion_to_bvh(motion, scale=0.0)
    with pytest.raises(ValueError, match="scale must be positive"):
        motion_from_bvh(MOTION_TEXT, scale=-1.0)


def test_deeply_nested_or_overlong_files_are_refused_with_a_clear_error():
    # 20,000 nested joints: a RecursionError before (issue 24); now refused at the depth limit, naming the line
    nested = (
        "HIERARCHY\nROOT pelvis\n{\nOFFSET 0 0 0\n"
        "CHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation\n"
    )
    nested += "".join(
        f"JOINT j{i}\n{{\nOFFSET 0 0.1 0\nCHANNELS 3 Zrotation Xrotation Yrotation\n" for i in range(20_000)
    )
    nested += "}\n" * 20_001 + "MOTION\nFrames: 1\nFrame Time: 0.1\n0\n"
    with pytest.raises(MotionFileError, match=r"deep.bvh, line \d+: joints nested more than 64 levels deep"):
        motion_from_bvh(nested, source="deep.bvh")
    with pytest.raises(MotionFileError, match="big.bvh: 6 frames; at most 5 are read"):
        motion_from_bvh(MOTION_TEXT, source="big.bvh", max_frames=5)

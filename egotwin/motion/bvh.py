"""BVH export and import of a `Motion`, so that generated motion opens in Blender, MotionBuilder and the like.

The files we write, and the files we read back:
- HIERARCHY: our 22 joints, named by `JOINT_NAMES`, nested as `PARENTS`, children in joint-index order.
  The ROOT is the pelvis; its OFFSET is the rest-pose pelvis position `rest_joints[0]`, and every other joint's
  OFFSET is its rest-pose bone vector `rest_joints[j] - rest_joints[parent]`. Rest-pose joint frames are aligned
  with the world (y up, facing +z), exactly like SMPL-X's, so the parent-relative rotations are written unchanged.
- Units: metres by default; `scale` multiplies every length written (scale=100 for centimetres) and divides every
  length read.
- Channels: the root has 6, `Xposition Yposition Zposition` then its rotation; the others have 3 rotation channels.
  Rotations are Euler angles in degrees, in the order `rotation_order` (default "ZXY", the common mocap convention),
  intrinsic, so "ZXY" means R = Rz @ Rx @ Ry acting on column vectors; the conversion is scipy's `Rotation`.
  The root position channels are the pelvis world position (the convention Blender's importer uses), not an
  offset from the ROOT OFFSET.
- End Sites for the five leaf joints (head, wrists, feet) continue their last bone: the head's by 2x (the skull top),
  a wrist's by 0.7x (the hand), a foot's by 0.5x (the toes). They are drawn by viewers and ignored on import.
- MOTION: `Frames:` T, `Frame Time:` 1 / fps, one line of 69 values per frame. Every number is written as the
  shortest decimal that reads back as the same float64 (float32 for float32 motions),
  so export then import is exact to the motion's float precision.

Import reads any channel order that the file declares, accepts the joints in any nesting order as long as names
and parents are ours (a different skeleton is an error naming the mismatch), rebuilds `rest_joints` from the
OFFSETs, and refuses anything malformed (truncated MOTION section, wrong value count per line, non-numeric or
non-finite values) with a MotionFileError naming the line. BVH stores no body shape: loaded motions get zero betas.
"""

from __future__ import annotations

import math
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from egotwin.body.skeleton import (
    HEAD,
    JOINT_INDEX,
    JOINT_NAMES,
    LEFT_FOOT,
    LEFT_WRIST,
    NUM_JOINTS,
    PARENTS,
    RIGHT_FOOT,
    RIGHT_WRIST,
)
from egotwin.motion.motion import Motion, MotionFileError

DEFAULT_ROTATION_ORDER = "ZXY"
MAX_DEPTH = 64
"""Deepest joint nesting read (ours is 8 levels; mocap skeletons with fingers about 12); deeper files are refused
before they are parsed further, so that a malicious file cannot exhaust the stack."""
POSITION_CHANNELS = ("Xposition", "Yposition", "Zposition")

# Length of each leaf's End Site as a multiple of the bone that ends in it (see the module docstring).
END_SITE_FRACTION: dict[int, float] = {HEAD: 2.0, LEFT_WRIST: 0.7, RIGHT_WRIST: 0.7, LEFT_FOOT: 0.5, RIGHT_FOOT: 0.5}

_CHILDREN: tuple[tuple[int, ...], ...] = tuple(
    tuple(c for c in range(NUM_JOINTS) if PARENTS[c] == j) for j in range(NUM_JOINTS)
)


def _depth_first(joint: int = 0) -> list[int]:
    """Joint indices in the order a BVH hierarchy lists them (and its MOTION lines hold their channels)."""
    order = [joint]
    for child in _CHILDREN[joint]:
        order += _depth_first(child)
    return order


HIERARCHY_ORDER: tuple[int, ...] = tuple(_depth_first())


def _check_rotation_order(order: str) -> str:
    if sorted(order) != ["X", "Y", "Z"]:
        raise ValueError(f"rotation_order must be a permutation of 'XYZ', like 'ZXY'; got {order!r}")
    return order


def _numbers(values: np.ndarray) -> str:
    """Space-separated shortest positional decimals that parse back to exactly these floats (of their dtype)."""
    return " ".join(np.format_float_positional(v, unique=True, trim="-") for v in values)


def _euler_degrees(rotations: np.ndarray, order: str) -> np.ndarray:
    """(..., 3, 3) rotation matrices -> (..., 3) intrinsic Euler angles in degrees, in the order of `order`."""
    with warnings.catch_warnings():
        # At gimbal lock scipy sets the third angle to zero; the rotation is still represented (exactly at the lock,
        # to ~2e-7 within the 1e-7 rad where scipy snaps to it).
        warnings.filterwarnings("ignore", message="Gimbal lock detected")
        angles = Rotation.from_matrix(rotations.reshape(-1, 3, 3)).as_euler(order, degrees=True)
    return angles.reshape(*rotations.shape[:-2], 3)


def motion_to_bvh(motion: Motion, scale: float = 1.0, rotation_order: str = DEFAULT_ROTATION_ORDER) -> str:
    """The text of a BVH file holding `motion` (see the module docstring for the layout)."""
    order = _check_rotation_order(rotation_order)
    if not (math.isfinite(scale) and scale > 0):
        raise ValueError(f"scale must be positive, got {scale}")
    # Computed in float64, written with as many digits as the motion's own precision holds (float32 or float64).
    precision = np.float64 if motion.trans.dtype == torch.float64 else np.float32
    rest = motion.rest_joints.detach().cpu().double().numpy() * scale
    rotation_channels = " ".join(f"{axis}rotation" for axis in order)

    lines = ["HIERARCHY"]

    def write_joint(joint: int, depth: int) -> None:
        pad = "\t" * depth
        parent = PARENTS[joint]
        offset = rest[joint] if parent < 0 else rest[joint] - rest[parent]
        lines.append(f"{pad}{'ROOT' if parent < 0 else 'JOINT'} {JOINT_NAMES[joint]}")
        lines.append(pad + "{")
        lines.append(f"{pad}\tOFFSET {_numbers(offset.astype(precision))}")
        if parent < 0:
            lines.append(f"{pad}\tCHANNELS 6 {' '.join(POSITION_CHANNELS)} {rotation_channels}")
        else:
            lines.append(f"{pad}\tCHANNELS 3 {rotation_channels}")
        for child in _CHILDREN[joint]:
            write_joint(child, depth + 1)
        if not _CHILDREN[joint]:
            end = (rest[joint] - rest[parent]) * END_SITE_FRACTION[joint]
            end_offset = _numbers(end.astype(precision))
            lines.extend((f"{pad}\tEnd Site", pad + "\t{", f"{pad}\t\tOFFSET {end_offset}", pad + "\t}"))
        lines.append(pad + "}")

    write_joint(0, 0)
    pelvis = (motion.trans + motion.rest_joints[0]).detach().cpu().double().numpy() * scale
    angles = _euler_degrees(motion.local_rotations.detach().cpu().double().numpy(), order)  # (T, 22, 3)
    values = np.concatenate((pelvis, angles[:, list(HIERARCHY_ORDER)].reshape(motion.num_frames, -1)), axis=1)
    lines += ["MOTION", f"Frames: {motion.num_frames}", f"Frame Time: {_numbers(np.array([1.0 / motion.fps]))}"]
    lines += [_numbers(row) for row in values.astype(precision)]
    return "\n".join(lines) + "\n"


def save_bvh(
    motion: Motion, path: str | Path, scale: float = 1.0, rotation_order: str = DEFAULT_ROTATION_ORDER
) -> None:
    """Write `motion` as a BVH file (metres unless `scale` says otherwise)."""
    Path(path).write_text(motion_to_bvh(motion, scale=scale, rotation_order=rotation_order))


# ------------------------------------------------------------------------------------------------------ import
@dataclass
class _BvhJoint:
    name: str
    parent: str | None
    offset: np.ndarray
    channels: list[str] = field(default_factory=list)


class _Tokens:
    """The HIERARCHY section as a stream of whitespace-separated tokens, with their line numbers for errors."""

    def __init__(self, lines: list[str], source: str) -> None:
        self.items = [(token, number) for number, line in enumerate(lines, 1) for token in line.split()]
        self.position = 0
        self.source = source

    def error(self, message: str) -> MotionFileError:
        line = self.items[min(self.position, len(self.items) - 1)][1] if self.items else 1
        return MotionFileError(f"{self.source}, line {line}: {message}")

    def peek(self) -> str | None:
        return self.items[self.position][0] if self.position < len(self.items) else None

    def next(self, what: str) -> str:
        if self.position >= len(self.items):
            raise self.error(f"unexpected end of the HIERARCHY section, expected {what}")
        token = self.items[self.position][0]
        self.position += 1
        return token

    def expect(self, expected: str) -> None:
        token = self.next(repr(expected))
        if token != expected:
            self.position -= 1
            raise self.error(f"expected {expected!r}, got {token!r}")

    def number(self, what: str) -> float:
        token = self.next(what)
        try:
            value = float(token)
        except ValueError:
            self.position -= 1
            raise self.error(f"expected a number for {what}, got {token!r}") from None
        if not math.isfinite(value):
            self.position -= 1
            raise self.error(f"{what} is not finite: {token!r}")
        return value


def _parse_joint(tokens: _Tokens, parent: str | None, joints: list[_BvhJoint], depth: int = 0) -> None:
    """One ROOT/JOINT block (its keyword already read), appended to `joints` before its children; `depth` is its
    nesting level (0 for the ROOT)."""
    if depth > MAX_DEPTH:
        raise tokens.error(f"joints nested more than {MAX_DEPTH} levels deep; EgoTwin's skeleton has 22 joints")
    name = tokens.next("a joint name")
    tokens.expect("{")
    tokens.expect("OFFSET")
    offset = np.array([tokens.number(f"the OFFSET of '{name}'") for _ in range(3)])
    joint = _BvhJoint(name, parent, offset)
    joints.append(joint)
    if tokens.peek() == "CHANNELS":
        tokens.next("CHANNELS")
        count = tokens.next("a channel count")
        if not count.isdigit():
            raise tokens.error(f"expected a channel count for '{name}', got {count!r}")
        joint.channels = [tokens.next(f"a channel name of '{name}'") for _ in range(int(count))]
    while True:
        keyword = tokens.next(f"JOINT, End Site or '}}' in '{name}'")
        if keyword == "}":
            return
        if keyword == "JOINT":
            _parse_joint(tokens, name, joints, depth + 1)
        elif keyword == "End":
            tokens.expect("Site")
            tokens.expect("{")
            tokens.expect("OFFSET")
            for _ in range(3):
                tokens.number(f"the End Site OFFSET of '{name}'")
            tokens.expect("}")
        else:
            tokens.position -= 1
            raise tokens.error(f"expected JOINT, End Site or '}}' in '{name}', got {keyword!r}")


def _check_skeleton(joints: list[_BvhJoint], source: str) -> None:
    """Raise MotionFileError naming the first difference between the file's hierarchy and ours."""
    names = [j.name for j in joints]
    unknown = [n for n in names if n not in JOINT_INDEX]
    missing = [n for n in JOINT_NAMES if n not in names]
    repeated = sorted(n for n, count in Counter(names).items() if count > 1)
    if unknown or missing or repeated:
        raise MotionFileError(
            f"{source}: the BVH skeleton is not EgoTwin's 22-joint SMPL-X body: unknown joints {unknown}, "
            f"missing joints {missing}, repeated joints {repeated}"
        )
    for joint in joints:
        parent = PARENTS[JOINT_INDEX[joint.name]]
        expected_parent = JOINT_NAMES[parent] if parent >= 0 else None
        if joint.parent != expected_parent:
            raise MotionFileError(
                f"{source}: joint '{joint.name}' has parent {joint.parent!r} in the BVH file, "
                f"expected {expected_parent!r}"
            )
        rotations = [c for c in joint.channels if c.endswith("rotation")]
        positions = [c for c in joint.channels if c.endswith("position")]
        others = [c for c in joint.channels if c not in rotations and c not in positions]
        if sorted(rotations) != ["Xrotation", "Yrotation", "Zrotation"] or others:
            raise MotionFileError(
                f"{source}: joint '{joint.name}' must have the three channels Xrotation Yrotation Zrotation "
                f"(in any order), got {joint.channels}"
            )
        expected_positions = list(POSITION_CHANNELS) if joint.parent is None else []
        if sorted(positions) != expected_positions:
            raise MotionFileError(
                f"{source}: joint '{joint.name}' must have position channels {expected_positions} "
                f"(bone lengths are fixed), got {positions}"
            )


def motion_from_bvh(
    text: str,
    scale: float = 1.0,
    dtype: torch.dtype = torch.float32,
    source: str = "<bvh text>",
    max_frames: int | None = None,
) -> Motion:
    """The Motion held in BVH `text` (see the module docstring for what is accepted); `source` names it in errors.
    A file whose 'Frames:' line says more than `max_frames` is refused before its frames are read."""
    if not (math.isfinite(scale) and scale > 0):
        raise ValueError(f"scale must be positive, got {scale}")
    lines = text.splitlines()
    stripped = [line.strip() for line in lines]
    if "MOTION" not in stripped:
        raise MotionFileError(f"{source}: no MOTION section")
    motion_line = stripped.index("MOTION")

    # 1. Hierarchy.
    tokens = _Tokens(lines[:motion_line], source)
    tokens.expect("HIERARCHY")
    tokens.expect("ROOT")
    joints: list[_BvhJoint] = []
    _parse_joint(tokens, None, joints)
    if tokens.peek() is not None:
        raise tokens.error(f"unexpected {tokens.peek()!r} after the ROOT joint")
    _check_skeleton(joints, source)

    # 2. Frame count and frame time.
    def header(index: int, keyword: list[str]) -> str:
        number = motion_line + 1 + index
        words = stripped[number].split() if number < len(stripped) else []
        if words[: len(keyword)] != keyword or len(words) != len(keyword) + 1:
            raise MotionFileError(f"{source}, line {number + 1}: expected '{' '.join(keyword)} <number>'")
        return words[-1]

    frames_text, frame_time_text = header(0, ["Frames:"]), header(1, ["Frame", "Time:"])
    if not frames_text.isdigit() or int(frames_text) < 1:
        raise MotionFileError(f"{source}: 'Frames:' must be a positive integer, got {frames_text!r}")
    num_frames = int(frames_text)
    if max_frames is not None and num_frames > max_frames:
        raise MotionFileError(f"{source}: {num_frames} frames; at most {max_frames} are read")
    try:
        frame_time = float(frame_time_text)
    except ValueError:
        frame_time = math.nan
    if not (math.isfinite(frame_time) and frame_time > 0):
        raise MotionFileError(f"{source}: 'Frame Time:' must be a positive number of seconds, got {frame_time_text!r}")
    fps = 1.0 / frame_time
    # Many tools write Frame Time with 6 digits (0.033333); snap such rates to the integer they stand for.
    if abs(fps - round(fps)) < 1e-4 * fps:
        fps = float(round(fps))

    # 3. Frames: exactly `Frames:` lines of exactly one value per channel; blank lines at the end are allowed.
    first_data = motion_line + 3
    data = stripped[first_data:]
    while data and not data[-1]:
        data.pop()
    if len(data) != num_frames:
        raise MotionFileError(
            f"{source}: 'Frames:' says {num_frames} frames but the MOTION section has {len(data)} lines"
        )
    num_channels = sum(len(j.channels) for j in joints)
    values = np.empty((num_frames, num_channels))
    for frame, line in enumerate(data):
        where = f"{source}, line {first_data + frame + 1}"
        words = line.split()
        if len(words) != num_channels:
            raise MotionFileError(f"{where}: expected {num_channels} values (frame {frame}), got {len(words)}")
        try:
            values[frame] = [float(w) for w in words]
        except ValueError as error:
            raise MotionFileError(f"{where}: non-numeric value ({error})") from None
        if not np.isfinite(values[frame]).all():
            raise MotionFileError(f"{where}: NaN or infinite value")

    # 4. Channels -> rest skeleton, pelvis positions and local rotations, in our joint order.
    rest = np.zeros((NUM_JOINTS, 3))
    local = np.zeros((num_frames, NUM_JOINTS, 3, 3))
    pelvis = np.zeros((num_frames, 3))
    column = 0
    for joint in joints:  # parents come before their children in a BVH hierarchy
        index = JOINT_INDEX[joint.name]
        parent = PARENTS[index]
        rest[index] = joint.offset / scale + (rest[parent] if parent >= 0 else 0.0)
        channel_values = values[:, column : column + len(joint.channels)]
        column += len(joint.channels)
        rotation_columns = [i for i, c in enumerate(joint.channels) if c.endswith("rotation")]
        order = "".join(joint.channels[i][0] for i in rotation_columns)
        local[:, index] = Rotation.from_euler(order, channel_values[:, rotation_columns], degrees=True).as_matrix()
        if parent < 0:
            for axis, name in enumerate(POSITION_CHANNELS):
                pelvis[:, axis] = channel_values[:, joint.channels.index(name)] / scale

    as_tensor = lambda x: torch.as_tensor(x).to(dtype)  # noqa: E731
    return Motion(
        trans=as_tensor(pelvis - rest[0]),
        global_orient=as_tensor(local[:, 0]),
        body_pose=as_tensor(local[:, 1:]),
        rest_joints=as_tensor(rest),
        fps=fps,
    )


def load_bvh(
    path: str | Path, scale: float = 1.0, dtype: torch.dtype = torch.float32, max_frames: int | None = None
) -> Motion:
    """Read a BVH file written by `save_bvh` (or any tool, with our joint names and hierarchy); see
    `motion_from_bvh` for `max_frames`."""
    path = Path(path)
    try:
        text = path.read_text()
    except UnicodeDecodeError as error:
        raise MotionFileError(f"{path}: not a text BVH file ({error})") from error
    return motion_from_bvh(text, scale=scale, dtype=dtype, source=str(path), max_frames=max_frames)

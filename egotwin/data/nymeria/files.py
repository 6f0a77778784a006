"""Readers for the plain files of a Nymeria sequence: `body/xdata.npz` (XSens), `body/xdata_smpl_neutral.npz`
(NymeriaPlus SMPL), the MPS `closed_loop_trajectory.csv`, the narration CSVs and `metadata.json`.

Each reader returns plain numpy arrays and raises `NymeriaFormatError` naming the file and the fault. The layout and
keys follow Nymeria's own definitions (facebookresearch/nymeria_dataset, `nymeria/definitions.py`,
`nymeria/xsens_constants.py`) and the MPS trajectory format (projectaria_tools docs); docs/nymeria.md lists them.
"""

from __future__ import annotations

import json
import re
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

XDATA = "body/xdata.npz"
SMPL_NPZ = "body/xdata_smpl_neutral.npz"
TRAJECTORY = "recording_head/mps/slam/closed_loop_trajectory.csv"
DATA_VRS = "recording_head/data/data.vrs"
MOTION_VRS = "recording_head/data/motion.vrs"
METADATA_JSON = "metadata.json"
NARRATION_LEVELS = ("atomic_action", "motion_narration", "activity_summarization")
"""The three narration files (`narration/<level>.csv`), finest-grained action first."""

XSENS_SEGMENTS = (
    "Pelvis", "L5", "L3", "T12", "T8", "Neck", "Head",
    "R_Shoulder", "R_UpperArm", "R_Forearm", "R_Hand",
    "L_Shoulder", "L_UpperArm", "L_Forearm", "L_Hand",
    "R_UpperLeg", "R_LowerLeg", "R_Foot", "R_Toe",
    "L_UpperLeg", "L_LowerLeg", "L_Foot", "L_Toe",
)  # fmt: skip
"""The 23 XSens segments in the order of `segment_qWXYZ` / `segment_tXYZ`."""
XSENS_PARENTS = (-1, 0, 1, 2, 3, 4, 5, 4, 7, 8, 9, 4, 11, 12, 13, 0, 15, 16, 17, 0, 19, 20, 21)
XSENS_FPS = 240.0
MAX_STEP_ERROR_US = 1_000
"""A 240 Hz time stamp more than 1 ms off the regular grid is a broken frame (Nymeria's reader uses this tolerance)."""
MIN_QUATERNION_NORM = 0.1
"""Quaternions shorter than this are invalid (Nymeria's reader replaces them by the previous frame's)."""
SEQUENCE_NAME = re.compile(r"^(?P<date>\d{8})_(?P<session>s\d+)_(?P<name>.+)_(?P<act>act\d+)_(?P<uid>[a-z0-9]+)$")
"""`<date>_<session_id>_<fake_name>_<act_id>_<uid>`, e.g. 20230607_s0_james_johnson_act0_e72nhq."""


class NymeriaFormatError(ValueError):
    """A Nymeria file or folder that cannot be read; the message names the path and the fault."""


# ---------------------------------------------------------------------------------------------- XSens
@dataclass
class XSensMotion:
    """The XSens body of one sequence (segment poses from segment to XSens world: Z-up, metres)."""

    timestamps_us: np.ndarray
    """(N,) int64 TIME_CODE microseconds on the regular grid (see `read_xdata`)."""
    quaternions: np.ndarray
    """(N, 23, 4) w-x-y-z segment-to-world rotations (as stored: an hour at 240 Hz as matrices would take 1.4 GB)."""
    positions: np.ndarray
    """(N, 23, 3) segment origins, metres."""
    tpose_rotations: np.ndarray
    """(23, 3, 3) the calibration T-pose."""
    tpose_positions: np.ndarray
    """(23, 3)"""
    broken: np.ndarray
    """(N,) bool: frames whose time stamp, quaternion or position was invalid and has been repaired."""
    fps: float = XSENS_FPS

    @property
    def num_frames(self) -> int:
        return len(self.timestamps_us)

    def rotations(self, frames: np.ndarray) -> np.ndarray:
        """(K, 23, 3, 3) segment-to-world rotation matrices of the frames (K,)."""
        return quaternions_wxyz_to_matrices(self.quaternions[frames])


def _load_npz(path: Path) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise NymeriaFormatError(f"{path}: missing")
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {key: archive[key] for key in archive.files}
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError) as error:
        raise NymeriaFormatError(f"{path}: not a readable .npz archive ({error})") from error


def _require(path: Path, arrays: dict[str, np.ndarray], key: str, size: int | None = None) -> np.ndarray:
    if key not in arrays:
        raise NymeriaFormatError(f"{path}: missing array '{key}' (found: {sorted(arrays)})")
    value = np.asarray(arrays[key])
    if not np.issubdtype(value.dtype, np.number):
        raise NymeriaFormatError(f"{path}: '{key}' must be numeric, got dtype {value.dtype}")
    if size is not None and (value.size == 0 or value.size % size):
        raise NymeriaFormatError(f"{path}: '{key}' must hold a multiple of {size} values, got shape {value.shape}")
    return value


def regular_time_grid(timestamps_us: np.ndarray, fps: float) -> tuple[np.ndarray, np.ndarray]:
    """The regular grid t0 + i / fps that the stamps (N,) were sampled on, and which stamps lie off it by more than
    `MAX_STEP_ERROR_US` (N,) bool. t0 is the median of the stamps' offsets, so a few corrupt stamps cannot move it.
    Raises ValueError when more than 1% of the stamps are off the grid (dropped or duplicated frames)."""
    step = 1e6 / fps
    index = np.arange(len(timestamps_us))
    t0 = np.median(timestamps_us.astype(np.float64) - index * step)
    grid = t0 + index * step
    off = ~(np.abs(timestamps_us - grid) <= MAX_STEP_ERROR_US)  # NaN stamps count as off
    if off.mean() > 0.01:
        raise ValueError(
            f"{off.sum()} of {len(off)} time stamps lie more than {MAX_STEP_ERROR_US} us off a regular "
            f"{fps:g} Hz grid (dropped or repeated frames)"
        )
    return np.round(grid).astype(np.int64), off


def _repair_previous(values: np.ndarray, bad: np.ndarray) -> np.ndarray:
    """Frames marked `bad` take the value of the nearest earlier good frame (the first good frame for leading ones)."""
    good = np.flatnonzero(~bad)
    source = good[np.clip(np.searchsorted(good, np.arange(len(bad)), side="right") - 1, 0, None)]
    return values[source]


def read_xdata(path: str | Path) -> XSensMotion:
    """Read `body/xdata.npz`: segment poses (N, 23) as rotations and positions, the T-pose, and TIME_CODE stamps.

    Repairs, as Nymeria's own reader does, and marks the repaired frames `broken` (the converter drops clips that
    contain one, and counts them): stamps off the regular 240 Hz grid by more than 1 ms are put back on it;
    quaternions that are not finite or shorter than 0.1, and non-finite positions, take the previous good frame's."""
    path = Path(path)
    arrays = _load_npz(path)
    stamps = _require(path, arrays, "timestamps_us").reshape(-1)
    quats = _require(path, arrays, "segment_qWXYZ", 23 * 4).reshape(-1, 23, 4).astype(np.float64)
    positions = _require(path, arrays, "segment_tXYZ", 23 * 3).reshape(-1, 23, 3).astype(np.float64)
    tpose_q = _require(path, arrays, "tpose_segment_qWXYZ", 23 * 4).reshape(-1, 23, 4)[0].astype(np.float64)
    tpose_t = _require(path, arrays, "tpose_segment_tXYZ", 23 * 3).reshape(-1, 23, 3)[0].astype(np.float64)
    n = len(stamps)
    if n < 2 or len(quats) != n or len(positions) != n:
        raise NymeriaFormatError(
            f"{path}: timestamps_us ({n}), segment_qWXYZ ({len(quats)}) and segment_tXYZ ({len(positions)}) "
            "must have the same number (>= 2) of frames"
        )
    fps = float(np.asarray(arrays["frameRate"]).reshape(-1)[0]) if "frameRate" in arrays else XSENS_FPS
    try:
        stamps, broken = regular_time_grid(stamps.astype(np.float64), fps)
    except ValueError as error:
        raise NymeriaFormatError(f"{path}: {error}") from error
    norms = np.linalg.norm(quats, axis=-1)
    bad_frame = ~np.isfinite(norms).all(1) | (np.nan_to_num(norms) < MIN_QUATERNION_NORM).any(1)
    bad_frame |= ~np.isfinite(positions).all((1, 2))
    if bad_frame.all():
        raise NymeriaFormatError(f"{path}: no frame has valid segment quaternions and positions")
    tpose_norm = np.linalg.norm(tpose_q, axis=-1)
    if not (np.isfinite(tpose_t).all() and np.isfinite(tpose_norm).all() and (tpose_norm >= MIN_QUATERNION_NORM).all()):
        raise NymeriaFormatError(f"{path}: the T-pose (tpose_segment_qWXYZ / tpose_segment_tXYZ) is not valid")
    quats, positions = _repair_previous(quats, bad_frame), _repair_previous(positions, bad_frame)
    return XSensMotion(
        timestamps_us=stamps,
        quaternions=quats,
        positions=positions,
        tpose_rotations=quaternions_wxyz_to_matrices(tpose_q),
        tpose_positions=tpose_t,
        broken=broken | bad_frame,
        fps=fps,
    )


def quaternions_wxyz_to_matrices(quaternions: np.ndarray) -> np.ndarray:
    """(..., 4) w-x-y-z quaternions (any length) -> (..., 3, 3) rotation matrices."""
    flat = quaternions.reshape(-1, 4)
    return Rotation.from_quat(flat[:, [1, 2, 3, 0]]).as_matrix().reshape(*quaternions.shape[:-1], 3, 3)


# ------------------------------------------------------------------------------------------------ SMPL
@dataclass
class SmplFits:
    """NymeriaPlus SMPL (neutral) fits: parameters in a Y-up version of the Aria world (see docs/nymeria.md)."""

    timestamps_us: np.ndarray
    """(N,) int64 TIME_CODE microseconds."""
    betas: np.ndarray
    """(10,) the mean over frames."""
    global_orient: np.ndarray
    """(N, 3) axis-angle."""
    body_pose: np.ndarray
    """(N, 69) axis-angle, SMPL joints 1..23."""
    transl: np.ndarray
    """(N, 3)"""


def read_smpl(path: str | Path) -> SmplFits:
    """Read `body/xdata_smpl_neutral.npz` (keys `betas`, `body_pose`, `global_orient`, `transl`, `timestamps`)."""
    path = Path(path)
    arrays = _load_npz(path)
    stamps = _require(path, arrays, "timestamps").reshape(-1)
    n = len(stamps)
    shapes = {"global_orient": 3, "body_pose": 69, "transl": 3}
    values = {
        key: _require(path, arrays, key, width).reshape(-1, width).astype(np.float64) for key, width in shapes.items()
    }
    betas = _require(path, arrays, "betas").astype(np.float64)
    betas = betas.reshape(-1, betas.shape[-1]).mean(0)
    for key, value in values.items():
        if len(value) != n:
            raise NymeriaFormatError(f"{path}: '{key}' has {len(value)} frames, 'timestamps' has {n}")
        if not np.isfinite(value).all():
            raise NymeriaFormatError(f"{path}: '{key}' contains NaN or infinite values")
    if n < 2 or not np.isfinite(stamps).all() or (np.diff(stamps) <= 0).any():
        raise NymeriaFormatError(f"{path}: 'timestamps' must be at least 2 finite, increasing values")
    return SmplFits(stamps.astype(np.int64), betas, values["global_orient"], values["body_pose"], values["transl"])


# ------------------------------------------------------------------------------------------ trajectory
@dataclass
class Trajectory:
    """MPS closed-loop poses of the head Aria device (device to world; world gravity-aligned, Z-up, metres)."""

    timestamps_us: np.ndarray
    """(M,) int64 device time, increasing."""
    positions: np.ndarray
    """(M, 3)"""
    quaternions_xyzw: np.ndarray
    """(M, 4) scalar-last, as the CSV stores them."""
    quality: np.ndarray
    """(M,) `quality_score`; NaN where the file has no such column."""


TRAJECTORY_COLUMNS = (
    "tracking_timestamp_us",
    "tx_world_device",
    "ty_world_device",
    "tz_world_device",
    "qx_world_device",
    "qy_world_device",
    "qz_world_device",
    "qw_world_device",
)


def read_trajectory(path: str | Path) -> Trajectory:
    """Read an MPS `closed_loop_trajectory.csv`; rows with non-finite values are dropped (they are gaps)."""
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise NymeriaFormatError(f"{path}: missing")
    try:
        table = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise NymeriaFormatError(f"{path}: not a readable CSV ({error})") from error
    missing = [c for c in TRAJECTORY_COLUMNS if c not in table.columns]
    if missing:
        raise NymeriaFormatError(f"{path}: missing columns {missing} (an MPS closed-loop trajectory has them)")
    try:
        values = table[list(TRAJECTORY_COLUMNS)].to_numpy(np.float64)
        quality = (
            table["quality_score"].to_numpy(np.float64) if "quality_score" in table else np.full(len(table), np.nan)
        )
    except ValueError as error:
        raise NymeriaFormatError(f"{path}: non-numeric pose values ({error})") from error
    keep = np.isfinite(values).all(1) & (np.linalg.norm(values[:, 4:], axis=1) > MIN_QUATERNION_NORM)
    values, quality = values[keep], quality[keep]
    if len(values) < 2:
        raise NymeriaFormatError(f"{path}: fewer than 2 valid poses")
    order = np.argsort(values[:, 0], kind="stable")
    values, quality = values[order], quality[order]
    return Trajectory(values[:, 0].astype(np.int64), values[:, 1:4], values[:, 4:8], quality)


# ------------------------------------------------------------------------------------------- narrations
@dataclass
class Narration:
    """One row of a narration CSV: times in seconds of the head device clock, and its text columns."""

    start_s: float
    end_s: float
    texts: dict[str, str] = field(default_factory=dict)
    """Column name ("Describe my ...") -> text, empty cells left out."""

    @property
    def text(self) -> str:
        """All text columns as one sentence sequence, in column order."""
        return " ".join(sentence(t) for t in self.texts.values())


def sentence(text: str) -> str:
    """`text` with whitespace collapsed, its first letter capitalised and a full stop added unless it ends in
    punctuation."""
    text = " ".join(text.split())
    if not text:
        return text
    text = text[0].upper() + text[1:]
    return text if text[-1] in ".!?" else text + "."


def read_narrations(path: str | Path) -> list[Narration]:
    """Rows of a narration CSV, sorted by start time: `start_time`, `end_time` (seconds) and every column whose name
    starts with "Describe" as text. Rows without text are left out."""
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise NymeriaFormatError(f"{path}: missing")
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise NymeriaFormatError(f"{path}: not a readable CSV ({error})") from error
    text_columns = [c for c in table.columns if str(c).startswith("Describe")]
    if "start_time" not in table or "end_time" not in table or not text_columns:
        raise NymeriaFormatError(
            f"{path}: needs 'start_time', 'end_time' and at least one 'Describe ...' text column; found {list(table)}"
        )
    rows = []
    for line, record in enumerate(table.to_dict("records"), 2):
        try:
            start, end = float(record["start_time"]), float(record["end_time"])
        except ValueError:
            raise NymeriaFormatError(f"{path}:{line}: start_time/end_time must be numbers") from None
        if not (np.isfinite(start) and np.isfinite(end) and end >= start):
            raise NymeriaFormatError(f"{path}:{line}: need finite start_time <= end_time, got {start}, {end}")
        texts = {c: " ".join(record[c].split()) for c in text_columns if record[c].strip()}
        if texts:
            rows.append(Narration(start, end, texts))
    return sorted(rows, key=lambda r: (r.start_s, r.end_s))


# ---------------------------------------------------------------------------------------------- identity
@dataclass(frozen=True)
class SequenceInfo:
    """Who and where: from `metadata.json` when it says, else from the folder name."""

    uid: str
    name: str
    participant: str
    location: str
    metadata: dict


PARTICIPANT_KEYS = ("participant_id", "participant", "fake_name", "subject_id")
LOCATION_KEYS = ("location", "location_id", "scene", "environment")


def _first_value(data: dict, keys: tuple[str, ...]) -> str | None:
    """The first of `keys` found in `data` or in any dict nested in it."""
    for key in keys:
        if data.get(key) not in (None, ""):
            return str(data[key])
    for value in data.values():
        if isinstance(value, dict) and (found := _first_value(value, keys)) is not None:
            return found
    return None


def read_sequence_info(folder: str | Path) -> SequenceInfo:
    """The sequence's uid, participant and location. The participant is `metadata.json`'s first key among
    `PARTICIPANT_KEYS` (searched in nested objects too), else the fake name in the folder name; the location is the
    first of `LOCATION_KEYS`, else "unknown"."""
    folder = Path(folder)
    metadata = {}
    if (folder / METADATA_JSON).is_file():
        try:
            metadata = json.loads((folder / METADATA_JSON).read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise NymeriaFormatError(f"{folder / METADATA_JSON}: not JSON ({error})") from error
        if not isinstance(metadata, dict):
            raise NymeriaFormatError(f"{folder / METADATA_JSON}: must hold a JSON object")
    match = SEQUENCE_NAME.match(folder.name)
    participant = _first_value(metadata, PARTICIPANT_KEYS) or (match["name"] if match else None)
    if participant is None:
        raise NymeriaFormatError(
            f"{folder}: cannot tell the participant: the folder name is not <date>_<session>_<name>_<act>_<uid> and "
            f"{METADATA_JSON} has none of {PARTICIPANT_KEYS}"
        )
    uid = str(metadata.get("sequence_uid") or (match["uid"] if match else folder.name))
    location = _first_value(metadata, LOCATION_KEYS) or "unknown"
    return SequenceInfo(uid=uid, name=folder.name, participant=participant, location=location, metadata=metadata)


def check_sequence_folder(folder: str | Path, need_video: bool, body: str) -> None:
    """Raise NymeriaFormatError unless `folder` looks like a Nymeria sequence with what the conversion needs."""
    folder = Path(folder)
    if not folder.is_dir():
        raise NymeriaFormatError(f"{folder}: not a folder")
    body_file = XDATA if body == "xsens" else SMPL_NPZ
    if not (folder / "body").is_dir() and not (folder / "recording_head").is_dir():
        raise NymeriaFormatError(
            f"{folder}: not a Nymeria sequence folder (no body/ and no recording_head/; expected e.g. {body_file}, "
            f"{TRAJECTORY})"
        )
    needed = [body_file, TRAJECTORY] + ([DATA_VRS] if need_video else [])
    missing = [name for name in needed if not (folder / name).is_file()]
    if missing:
        raise NymeriaFormatError(f"{folder}: missing {', '.join(missing)}")

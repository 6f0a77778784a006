"""The on-disk clip format (documented in docs/clip_format.md): writing and checked reading of one clip folder.

    DIR/metadata.jsonl                 one JSON record per clip (the index)
    DIR/<split>/<clip_id>/video.mp4    41 frames at 8 fps, H.264 (yuv444p, crf 12)
    DIR/<split>/<clip_id>/motion.npz   SMPL-X parameters, AMASS layout (Motion.save_npz), 81 frames at 16 fps
    DIR/<split>/<clip_id>/cameras.npz  camera_to_world (41, 4, 4) OpenCV axes, intrinsics (3, 3), width, height,
                                       hand_visible (41, 2) bool (left, right)
    DIR/<split>/<clip_id>/caption.txt  the caption, one line
    DIR/<split>/<clip_id>/world.npz    optional, synthetic clips only: door_angles (41, D), door_names (D,)

This is also the format of user data: any source (real data included) that writes these files is readable by
`egotwin.data.dataset.ClipDataset`.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import cv2
import imageio.v3 as iio
import numpy as np

from egotwin.data.constants import MOTION_FPS, NUM_MOTION_FRAMES, NUM_VIDEO_FRAMES, SPLITS, VIDEO_FPS
from egotwin.motion.motion import Motion, MotionFileError

__all__ = [
    "NUM_MOTION_FRAMES",
    "NUM_VIDEO_FRAMES",
    "SPLITS",
    "VIDEO_FPS",
    "ClipFormatError",
    "read_clip",
    "read_video",
    "read_metadata",
    "write_clip",
    "write_video",
]
# fixed encoder settings: a single x264 thread makes the bitstream a pure function of the frames (deterministic)
FFMPEG_PARAMS = [
    "-crf",
    "12",
    "-preset",
    "fast",
    "-threads",
    "1",
    "-g",
    "41",
    "-bf",
    "0",
    "-fflags",
    "+bitexact",
    "-flags:v",
    "+bitexact",
    "-map_metadata",
    "-1",
]


def hash_split(key: str, val_fraction: float, test_fraction: float) -> str:
    """'train', 'val' or 'test' from a hash (SHA-256) of `key`: stable across runs and machines, so everything that
    shares a key (an EgoWorld apartment, a Nymeria participant) lands in one split."""
    u = int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) / 16**8
    if u < test_fraction:
        return "test"
    return "val" if u < test_fraction + val_fraction else "train"


class ClipFormatError(ValueError):
    """A clip folder that does not hold a valid clip; the message names the file and what is wrong."""


def write_video(path: str | Path, frames: np.ndarray, fps: int = VIDEO_FPS, pixelformat: str = "yuv444p") -> None:
    """frames (N, H, W, 3) uint8 -> H.264 mp4. yuv444p keeps full colour resolution at 64x64; pass "yuv420p"
    (even sizes only) for files that every browser and player shows."""
    iio.imwrite(
        path,
        frames,
        fps=fps,
        codec="libx264",
        pixelformat=pixelformat,
        macro_block_size=1,
        ffmpeg_params=FFMPEG_PARAMS,
        ffmpeg_log_level="error",
    )


def read_video(path: str | Path) -> np.ndarray:
    """(N, H, W, 3) uint8 RGB frames of an mp4.

    Decoded by OpenCV in-process: the same pixels as imageio's ffmpeg subprocess, ~15x faster for a 64x64 clip, which
    is what reading thousands of clips per epoch needs."""
    if not Path(path).is_file():
        raise ClipFormatError(f"{path}: cannot decode video (no such file)")
    capture = cv2.VideoCapture(str(path))
    frames = []
    try:
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    finally:
        capture.release()
    if not frames:
        raise ClipFormatError(f"{path}: cannot decode video (no frames could be read)")
    return np.stack(frames)


def write_clip(
    folder: Path,
    frames: np.ndarray,
    motion: Motion,
    camera_to_world: np.ndarray,
    intrinsics: np.ndarray,
    hand_visible: np.ndarray,
    caption: str,
    world: dict[str, np.ndarray] | None = None,
) -> None:
    """Write one clip folder (see the module docstring)."""
    folder.mkdir(parents=True, exist_ok=True)
    write_video(folder / "video.mp4", frames)
    motion.save_npz(folder / "motion.npz")
    np.savez(
        folder / "cameras.npz",
        camera_to_world=camera_to_world.astype(np.float64),
        intrinsics=intrinsics.astype(np.float64),
        width=np.int64(frames.shape[2]),
        height=np.int64(frames.shape[1]),
        hand_visible=hand_visible.astype(bool),
    )
    (folder / "caption.txt").write_text(caption.strip() + "\n")
    if world is not None:
        np.savez(folder / "world.npz", **world)


def read_metadata(root: str | Path) -> list[dict]:
    """Records of `root/metadata.jsonl`, in file order."""
    path = Path(root) / "metadata.jsonl"
    if not path.exists():
        raise ClipFormatError(f"{path}: missing (every clip set has a metadata.jsonl index)")
    records = []
    for line_no, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise ClipFormatError(f"{path}:{line_no}: not JSON ({error})") from error
        for key in ("clip_id", "split", "path"):
            if key not in record:
                raise ClipFormatError(f"{path}:{line_no}: record lacks '{key}'")
        records.append(record)
    return records


def read_cameras(path: Path) -> dict[str, np.ndarray]:
    """Checked contents of a cameras.npz."""
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except FileNotFoundError:
        raise ClipFormatError(f"{path}: missing")
    except Exception as error:
        raise ClipFormatError(f"{path}: not a readable .npz ({error})") from error
    shapes = {"camera_to_world": (NUM_VIDEO_FRAMES, 4, 4), "intrinsics": (3, 3), "hand_visible": (NUM_VIDEO_FRAMES, 2)}
    for key, shape in shapes.items():
        if key not in arrays:
            raise ClipFormatError(f"{path}: missing array '{key}'")
        if arrays[key].shape != shape:
            raise ClipFormatError(f"{path}: '{key}' must have shape {shape}, got {arrays[key].shape}")
    for key in ("camera_to_world", "intrinsics"):
        if not np.isfinite(arrays[key]).all():
            raise ClipFormatError(f"{path}: '{key}' contains NaN or infinite values")
    rot = arrays["camera_to_world"][:, :3, :3]
    if np.abs(rot @ rot.transpose(0, 2, 1) - np.eye(3)).max() > 1e-3:
        raise ClipFormatError(f"{path}: camera_to_world rotations are not orthonormal")
    return arrays


def read_clip(folder: str | Path, video: bool = True) -> dict:
    """Read and check one clip folder -> dict with frames (41, H, W, 3) uint8, motion (Motion, 81 frames),
    camera_to_world (41, 4, 4), intrinsics (3, 3), hand_visible (41, 2) bool, caption str.
    `video=False` reads a motion-only clip (motion.npz and caption.txt; its metadata record says `"video": false`):
    motion and caption only. Raises ClipFormatError naming the file at fault."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ClipFormatError(f"{folder}: clip folder missing")
    motion, caption = _read_motion_and_caption(folder)
    if not video:
        return {"motion": motion, "caption": caption}
    cameras = read_cameras(folder / "cameras.npz")
    video_path = folder / "video.mp4"
    if not video_path.exists():
        raise ClipFormatError(f"{video_path}: missing")
    frames = read_video(video_path)
    if frames.shape[0] != NUM_VIDEO_FRAMES:
        raise ClipFormatError(f"{video_path}: need {NUM_VIDEO_FRAMES} frames, got {frames.shape[0]}")
    if "width" in cameras and (int(cameras["width"]), int(cameras["height"])) != (frames.shape[2], frames.shape[1]):
        raise ClipFormatError(
            f"{video_path}: frames are {frames.shape[2]}x{frames.shape[1]} but cameras.npz says "
            f"{int(cameras['width'])}x{int(cameras['height'])}"
        )
    return {
        "frames": frames,
        "motion": motion,
        "camera_to_world": cameras["camera_to_world"],
        "intrinsics": cameras["intrinsics"],
        "hand_visible": cameras["hand_visible"].astype(bool),
        "caption": caption,
    }


def _read_motion_and_caption(folder: Path) -> tuple[Motion, str]:
    """The checked motion.npz (81 frames at 16 fps) and caption.txt (not empty) of a clip folder."""
    try:
        motion = Motion.load_npz(folder / "motion.npz")
    except FileNotFoundError:
        raise ClipFormatError(f"{folder / 'motion.npz'}: missing")
    except MotionFileError as error:
        raise ClipFormatError(str(error)) from error
    if motion.num_frames != NUM_MOTION_FRAMES or abs(motion.fps - MOTION_FPS) > 1e-6:
        raise ClipFormatError(
            f"{folder / 'motion.npz'}: need {NUM_MOTION_FRAMES} frames at {MOTION_FPS:g} fps, "
            f"got {motion.num_frames} at {motion.fps}"
        )
    caption_path = folder / "caption.txt"
    if not caption_path.exists():
        raise ClipFormatError(f"{caption_path}: missing")
    caption = caption_path.read_text().strip()
    if not caption:
        raise ClipFormatError(f"{caption_path}: empty caption")
    return motion, caption

"""Input handling for the demo: start frames, initial poses, motion and video uploads, prompts.

Everything a user can upload passes through here before it reaches the pipeline. Each loader checks size first
(bytes on disk, then pixels or uncompressed bytes, so that a small file cannot expand into gigabytes), then content,
and raises `InputError` with a message that names the file and says what to do; the UI shows it as it is.
"""

from __future__ import annotations

import math
import secrets
import warnings
import zipfile
from pathlib import Path

import cv2
import numpy as np
from diffusers.image_processor import VaeImageProcessor
from PIL import Image, ImageOps

from egotwin.data.constants import VIDEO_FPS
from egotwin.motion import Motion, MotionFileError, load_bvh

CLIP_SECONDS = 5.0
MB = 1 << 20

MAX_IMAGE_BYTES = 20 * MB
MAX_IMAGE_PIXELS = 40_000_000
"""About an 8K photo; larger images are refused before they are decoded (PIL's decompression-bomb guard is 89 MP)."""
MAX_MOTION_BYTES = 20 * MB
MAX_MOTION_UNCOMPRESSED_BYTES = 200 * MB
MAX_VIDEO_BYTES = 100 * MB
MAX_VIDEO_PIXELS = 3840 * 2160
MAX_UPLOAD_BYTES = MAX_VIDEO_BYTES
"""The server-wide upload limit (gradio's `max_file_size`): the largest of the per-kind limits."""
MAX_PROMPT_CHARS = 1000
"""Far beyond what a text encoder reads (MiniLM 32 tokens, T5 226); longer text is refused, not silently cut."""

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
MOTION_SUFFIXES = (".npz", ".bvh")
VIDEO_SUFFIXES = (".mp4", ".webm", ".mov", ".avi", ".mkv")

EXAMPLES_DIR = Path(__file__).resolve().parent.parent / "assets" / "examples"
POSES_DIR = EXAMPLES_DIR / "poses"
REST_POSE = "rest pose (T-pose)"
POSE_PRESETS = {
    "standing": POSES_DIR / "standing.npz",
    "crouching": POSES_DIR / "crouching.npz",
    REST_POSE: None,
}
"""Initial-pose presets: frame 0 of the file is the pose (EgoWorld poses, see demo/make_examples.py); None is the
pipeline's own rest pose."""


_RESIZER = VaeImageProcessor()


class InputError(ValueError):
    """An input the demo cannot use; the message is meant for the user."""


def file_size(num_bytes: int) -> str:
    """'3.7 KB', '12.0 MB': a size for messages."""
    return f"{num_bytes / MB:.1f} MB" if num_bytes >= MB else f"{num_bytes / 1024:.1f} KB"


def _existing_file(path: str | Path | None, what: str, suffixes: tuple[str, ...], max_bytes: int) -> Path:
    if path is None or str(path) == "":
        raise InputError(f"No {what} given.")
    path = Path(path)
    if not path.is_file():
        raise InputError(f"The {what} '{path.name}' cannot be found; please upload it again.")
    if path.suffix.lower() not in suffixes:
        raise InputError(
            f"The {what} '{path.name}' has an unsupported type '{path.suffix or '(none)'}'; "
            f"use one of {', '.join(suffixes)}."
        )
    size = path.stat().st_size
    if size > max_bytes:
        raise InputError(f"The {what} '{path.name}' is {file_size(size)}; the limit is {file_size(max_bytes)}.")
    if size == 0:
        raise InputError(f"The {what} '{path.name}' is empty.")
    return path


def _user_message(error: Exception, path: Path) -> str:
    """The message of a loader error with the server-side upload path replaced by the file's name."""
    return str(error).replace(f"'{path}'", str(path)).replace(str(path), f"'{path.name}'")


# ------------------------------------------------------------------------------------------------------ images
def center_crop_resize(image: Image.Image | np.ndarray, width: int, height: int) -> np.ndarray:
    """An RGB image of any size -> (height, width, 3) uint8: resized to cover the target and centre-cropped, as the
    pipeline does (diffusers' `VaeImageProcessor`, resize_mode "crop"), so the preview is what the model sees."""
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    return np.asarray(_RESIZER.resize(image.convert("RGB"), height, width, resize_mode="crop"))


def load_image(path: str | Path | None, width: int, height: int) -> np.ndarray:
    """A start frame of any size and format -> (height, width, 3) uint8 RGB (EXIF rotation applied, alpha composited
    on white, centre-cropped and resized)."""
    path = _existing_file(path, "start frame", IMAGE_SUFFIXES, MAX_IMAGE_BYTES)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                if image.width * image.height > MAX_IMAGE_PIXELS:
                    raise InputError(
                        f"The start frame '{path.name}' is {image.width}x{image.height} pixels; "
                        f"the limit is {MAX_IMAGE_PIXELS / 1e6:.0f} megapixels."
                    )
                image.load()
                image = ImageOps.exif_transpose(image)
                if image.mode in ("RGBA", "LA", "P"):
                    background = Image.new("RGBA", image.size, (255, 255, 255, 255))
                    image = Image.alpha_composite(background, image.convert("RGBA"))
                image = image.convert("RGB")
    except InputError:
        raise
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise InputError(
            f"The start frame '{path.name}' is not a readable image ({type(error).__name__}: "
            f"{_user_message(error, path)}). Upload a PNG, JPEG or WebP file."
        ) from error
    return center_crop_resize(image, width, height)


# ----------------------------------------------------------------------------------------------------- motion
def _check_npz_expansion(path: Path) -> None:
    """Refuse .npz archives whose arrays would decompress to more than MAX_MOTION_UNCOMPRESSED_BYTES."""
    try:
        with zipfile.ZipFile(path) as archive:
            total = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, OSError) as error:
        raise InputError(f"The motion file '{path.name}' is not a readable .npz archive ({error}).") from error
    if total > MAX_MOTION_UNCOMPRESSED_BYTES:
        raise InputError(
            f"The motion file '{path.name}' holds {file_size(total)} of arrays; "
            f"the limit is {file_size(MAX_MOTION_UNCOMPRESSED_BYTES)}."
        )


def load_motion(path: str | Path | None, what: str = "motion file") -> Motion:
    """A whole-body motion from an AMASS/SMPL-X `.npz` or a `.bvh` on EgoTwin's skeleton (see docs/clip_format.md)."""
    path = _existing_file(path, what, MOTION_SUFFIXES, MAX_MOTION_BYTES)
    try:
        if path.suffix.lower() == ".npz":
            _check_npz_expansion(path)
            return Motion.load_npz(path)
        return load_bvh(path)
    except (MotionFileError, ValueError) as error:
        if isinstance(error, InputError):
            raise
        raise InputError(f"The {what} '{path.name}' cannot be used: {_user_message(error, path)}") from error


def load_initial_pose(preset: str | None, path: str | Path | None = None) -> Motion | None:
    """The initial pose: frame 0 of an uploaded motion file when there is one, else the named preset
    (None = the pipeline's rest pose)."""
    if path is not None and str(path) != "":
        return load_motion(path, "initial-pose file").slice(0, 1)
    if preset is None or preset == "":
        preset = "standing"
    if preset not in POSE_PRESETS:
        raise InputError(f"Unknown initial-pose preset '{preset}'; choose one of {', '.join(POSE_PRESETS)}.")
    file = POSE_PRESETS[preset]
    return None if file is None else Motion.load_npz(file).slice(0, 1)


def load_driving_motion(path: str | Path | None) -> Motion:
    """The motion for TM2V, at least 5 s long, cut to its first 5 s (at its own frame rate)."""
    motion = load_motion(path, "motion file")
    if motion.duration + 1e-6 < CLIP_SECONDS:
        raise InputError(
            f"The motion '{Path(path).name}' lasts {motion.duration:.2f} s ({motion.num_frames} frames at "
            f"{motion.fps:g} fps); TM2V needs at least {CLIP_SECONDS:g} s."
        )
    # Only the first clip is used; the pipeline resamples it, so a long upload is cut first (frames covering [0, 5 s]).
    return motion.slice(0, math.ceil(CLIP_SECONDS * motion.fps - 1e-6) + 1)


# ------------------------------------------------------------------------------------------------------ video
def load_video(path: str | Path | None, width: int, height: int) -> np.ndarray:
    """The first 5 s of a video for TV2M -> (41, height, width, 3) uint8 at 8 fps: frame i is the source frame
    nearest to time i / 8 s, centre-cropped and resized. Frame 0 is the start frame I0."""
    path = _existing_file(path, "video", VIDEO_SUFFIXES, MAX_VIDEO_BYTES)
    capture = cv2.VideoCapture(str(path))
    try:
        if not capture.isOpened():
            raise InputError(f"The video '{path.name}' cannot be opened; upload an mp4 (H.264) or webm file.")
        fps = capture.get(cv2.CAP_PROP_FPS)
        src_w, src_h = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
        if not (math.isfinite(fps) and 1 <= fps <= 240):
            raise InputError(f"The video '{path.name}' has no usable frame rate ({fps}); re-encode it as mp4.")
        if src_w * src_h > MAX_VIDEO_PIXELS:
            raise InputError(
                f"The video '{path.name}' is {src_w}x{src_h}; the limit is {MAX_VIDEO_PIXELS} pixels per frame (4K)."
            )
        num_frames = int(round(CLIP_SECONDS * VIDEO_FPS)) + 1
        wanted = [int(round(i * fps / VIDEO_FPS)) for i in range(num_frames)]
        frames, index = [], 0
        while len(frames) < num_frames:
            ok, frame = capture.read()
            if not ok:
                break
            while len(frames) < num_frames and wanted[len(frames)] == index:
                frames.append(center_crop_resize(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB), width, height))
            index += 1
    finally:
        capture.release()
    if not frames:
        raise InputError(f"The video '{path.name}' holds no decodable frames; upload an mp4 (H.264) or webm file.")
    if len(frames) < num_frames:
        raise InputError(
            f"The video '{path.name}' is too short: {index} frames at {fps:g} fps ({index / fps:.2f} s); "
            f"TV2M needs {CLIP_SECONDS:g} s (frames up to t = {CLIP_SECONDS:g} s)."
        )
    return np.stack(frames)


# ----------------------------------------------------------------------------------------------------- prompt
def check_prompt(prompt: str | None) -> str:
    """The prompt with surrounding whitespace removed; empty or overlong prompts raise InputError."""
    prompt = (prompt or "").strip()
    if not prompt:
        raise InputError("Please enter a prompt describing what the person does, e.g. 'walk forward to the door'.")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise InputError(
            f"The prompt is {len(prompt)} characters long; keep it under {MAX_PROMPT_CHARS} "
            "(the model reads only the first few dozen words)."
        )
    return prompt


def check_seed(seed: float | int | None) -> int:
    """A seed as an int in [0, 2**32); None or a negative value raises InputError."""
    if seed is None or not math.isfinite(float(seed)) or float(seed) < 0 or float(seed) != int(seed):
        raise InputError(f"The seed must be a whole number >= 0, got {seed}.")
    if int(seed) >= 2**32:
        raise InputError(f"The seed must be below 2**32, got {int(seed)}.")
    return int(seed)


def random_seed() -> int:
    """A fresh seed from the OS (leaves torch's and numpy's global generators alone)."""
    return secrets.randbelow(2**31)

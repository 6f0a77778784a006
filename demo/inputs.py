"""Input handling for the demo: start frames, initial poses, motion and video uploads, prompts.

Everything a user can upload passes through here before it reaches the pipeline. Each loader checks size first
(bytes on disk, then pixels or uncompressed bytes, so that a small file cannot expand into gigabytes), then content,
and raises `InputError` with a message that names the file and says what to do; the UI shows it as it is.
"""

from __future__ import annotations

import math
import secrets
import unicodedata
import warnings
import zipfile
from functools import partial
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
MAX_IMAGE_ASPECT = 8.0
"""Longer side over shorter side; a start frame is a camera view (16:9 is 1.8, a phone panorama about 4)."""
MAX_MOTION_BYTES = 20 * MB
MAX_MOTION_UNCOMPRESSED_BYTES = 64 * MB
"""About 10 minutes of AMASS SMPL+H at 120 fps."""
MAX_MOTION_FRAMES = 100_000
"""Frames of a motion file (about 14 minutes at 120 fps); checked in the .npz headers and the BVH 'Frames:' line,
before any frame is read."""
MOTION_FPS_RANGE = (1.0, 1000.0)
"""Frame rates a driving motion may have (mocap is 30-480 fps); outside it the 5 s window is refused before it is
resampled to the model's 16 fps."""
MAX_JOINT_DISTANCE = 3.0
"""Metres: no rest-skeleton joint may be farther than this from the origin (a BVH in centimetres would be 100x)."""
MAX_TRANSLATION = 1000.0
"""Metres: no frame of a motion may be farther than this from the origin."""
MAX_VIDEO_BYTES = 100 * MB
MAX_VIDEO_PIXELS = 3840 * 2160
VIDEO_FPS_RANGE = (1.0, 240.0)
MAX_VIDEO_FRAMES_READ = int(CLIP_SECONDS * VIDEO_FPS_RANGE[1]) + 1
"""Decoded frames at most: the first 5 s at the highest accepted frame rate."""
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
    pipeline does (diffusers' `VaeImageProcessor`, resize_mode "crop"), so the preview is what the model sees.

    The centre region of the target's aspect ratio is cut out first, at the image's own resolution, so the work and
    memory scale with that region, never with an upscaled copy of a very long, thin image."""
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    scale = min(image.width / width, image.height / height)  # source pixels per target pixel of the covered crop
    crop_w, crop_h = max(1, round(width * scale)), max(1, round(height * scale))
    left, top = (image.width - crop_w) // 2, (image.height - crop_h) // 2
    image = image.crop((left, top, left + crop_w, top + crop_h))
    return np.asarray(_RESIZER.resize(image.convert("RGB"), height, width, resize_mode="crop"))


def _check_image_size(width: int, height: int, what: str) -> None:
    """InputError for an image too large or too long and thin to be a camera view."""
    if width * height > MAX_IMAGE_PIXELS:
        raise InputError(
            f"The {what} is {width}x{height} pixels; the limit is {MAX_IMAGE_PIXELS / 1e6:.0f} megapixels."
        )
    if max(width, height) > MAX_IMAGE_ASPECT * min(width, height):
        raise InputError(
            f"The {what} is {width}x{height} pixels, {max(width, height) / min(width, height):.0f} times longer "
            f"than wide; a start frame is a camera view, at most {MAX_IMAGE_ASPECT:g}:1 (16:9 photos are 1.8:1)."
        )


def load_image(path: str | Path | None, width: int, height: int) -> np.ndarray:
    """A start frame of any size and format -> (height, width, 3) uint8 RGB (EXIF rotation applied, alpha composited
    on white, centre-cropped and resized)."""
    path = _existing_file(path, "start frame", IMAGE_SUFFIXES, MAX_IMAGE_BYTES)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                _check_image_size(image.width, image.height, f"start frame '{path.name}'")
                image.load()
                image = ImageOps.exif_transpose(image)
                if image.mode in ("RGBA", "LA", "P"):
                    background = Image.new("RGBA", image.size, (255, 255, 255, 255))
                    image = Image.alpha_composite(background, image.convert("RGBA"))
                image = image.convert("RGB")
    except InputError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:  # PIL's own guard, at open
        raise InputError(
            f"The start frame '{path.name}' has too many pixels ({_user_message(error, path)}); "
            f"the limit is {MAX_IMAGE_PIXELS / 1e6:.0f} megapixels."
        ) from error
    except (OSError, SyntaxError, ValueError) as error:
        raise InputError(
            f"The start frame '{path.name}' is not a readable image ({_user_message(error, path)}). "
            "Upload a PNG, JPEG or WebP file."
        ) from error
    return center_crop_resize(image, width, height)


# ----------------------------------------------------------------------------------------------------- motion
def _check_npz_size(path: Path) -> None:
    """Refuse .npz archives whose arrays would decompress to more than MAX_MOTION_UNCOMPRESSED_BYTES or hold more
    than MAX_MOTION_FRAMES frames; only the zip directory and the .npy headers are read."""
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
            total = sum(info.file_size for info in members)
            # headers are read only from an archive within the size limit
            frames = (
                0
                if total > MAX_MOTION_UNCOMPRESSED_BYTES
                else max(map(partial(_npy_length, archive), members), default=0)
            )
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as error:
        raise InputError(
            f"The motion file '{path.name}' is not a readable .npz archive ({_user_message(error, path)})."
        ) from error
    if total > MAX_MOTION_UNCOMPRESSED_BYTES:
        raise InputError(
            f"The motion file '{path.name}' holds {file_size(total)} of arrays; "
            f"the limit is {file_size(MAX_MOTION_UNCOMPRESSED_BYTES)}."
        )
    if frames > MAX_MOTION_FRAMES:
        raise InputError(
            f"The motion file '{path.name}' has {frames} frames; the limit is {MAX_MOTION_FRAMES} "
            "(only the first 5 s are used: cut the file, e.g. to its first minute)."
        )


def _npy_length(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> int:
    """The first dimension of an .npy member of an archive, from its header alone (0 for other members)."""
    if not info.filename.endswith(".npy"):
        return 0
    with archive.open(info) as file:
        version = np.lib.format.read_magic(file)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _, _ = read_header(file)
    return shape[0] if shape else 0


def _check_motion_values(motion: Motion, what: str, path: Path) -> Motion:
    """InputError for a skeleton or path no human has (units wrong by 100x, or absurd numbers)."""
    reach = float(motion.rest_joints.abs().max())
    if not reach <= MAX_JOINT_DISTANCE:
        raise InputError(
            f"The {what} '{path.name}' has a rest skeleton with a joint {reach:.3g} m from the origin; accepted: a "
            f"human skeleton in metres, every joint within {MAX_JOINT_DISTANCE:g} m (a file in centimetres is 100x "
            "too large)."
        )
    travel = float(motion.trans.abs().max())
    if not travel <= MAX_TRANSLATION:
        raise InputError(
            f"The {what} '{path.name}' moves the body {travel:.3g} m from the origin; accepted: at most "
            f"{MAX_TRANSLATION:g} m, in metres."
        )
    return motion


def load_motion(path: str | Path | None, what: str = "motion file") -> Motion:
    """A whole-body motion from an AMASS/SMPL-X `.npz` or a `.bvh` on EgoTwin's skeleton (see docs/clip_format.md),
    at most MAX_MOTION_FRAMES frames with a human-sized skeleton in metres."""
    path = _existing_file(path, what, MOTION_SUFFIXES, MAX_MOTION_BYTES)
    try:
        if path.suffix.lower() == ".npz":
            _check_npz_size(path)
            motion = Motion.load_npz(path)
        else:
            motion = load_bvh(path, max_frames=MAX_MOTION_FRAMES)
    except (MotionFileError, ValueError) as error:
        if isinstance(error, InputError):
            raise
        raise InputError(f"The {what} '{path.name}' cannot be used: {_user_message(error, path)}") from error
    return _check_motion_values(motion, what, path)


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
    """The motion for TM2V, at least 5 s long at MOTION_FPS_RANGE fps, cut to its first 5 s (at its own frame rate)."""
    motion = load_motion(path, "motion file")
    low, high = MOTION_FPS_RANGE
    if not low <= motion.fps <= high:
        raise InputError(
            f"The motion '{Path(path).name}' has a frame rate of {motion.fps:g} fps; accepted: {low:g} to {high:g} "
            "fps (the 'mocap_frame_rate' of an .npz, 1 / 'Frame Time' of a .bvh)."
        )
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
        low, high = VIDEO_FPS_RANGE
        if not (math.isfinite(fps) and low <= fps <= high):
            raise InputError(
                f"The video '{path.name}' has a frame rate of {fps:g} fps; accepted: {low:g} to {high:g} fps. "
                "Re-encode it at a common rate, e.g. `ffmpeg -i in.mp4 -r 30 out.mp4`."
            )
        if src_w * src_h > MAX_VIDEO_PIXELS:
            raise InputError(
                f"The video '{path.name}' is {src_w}x{src_h}; the limit is {MAX_VIDEO_PIXELS} pixels per frame (4K)."
            )
        if src_w and src_h:
            _check_image_size(src_w, src_h, f"video '{path.name}'")
        num_frames = int(round(CLIP_SECONDS * VIDEO_FPS)) + 1
        # at most MAX_VIDEO_FRAMES_READ frames are decoded: the last one wanted is at 5 s
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
    """The prompt without control characters (NUL, escapes; line breaks become spaces) and surrounding whitespace;
    empty, overlong or non-text prompts raise InputError."""
    if prompt is not None and not isinstance(prompt, str):
        raise InputError(f"The prompt must be text, got {type(prompt).__name__}.")
    printable = (" " if ch.isspace() else ch for ch in prompt or "")
    prompt = "".join(ch for ch in printable if unicodedata.category(ch) not in ("Cc", "Cf", "Cs", "Co", "Cn")).strip()
    if not prompt:
        raise InputError("Please enter a prompt describing what the person does, e.g. 'walk forward to the door'.")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise InputError(
            f"The prompt is {len(prompt)} characters long; keep it under {MAX_PROMPT_CHARS} "
            "(the model reads only the first few dozen words)."
        )
    return prompt


def check_seed(seed: float | int | None) -> int:
    """A seed as an int in [0, 2**32); None, a non-number or a negative value raises InputError."""
    if isinstance(seed, bool) or not isinstance(seed, (int, float)):
        raise InputError(f"The seed must be a whole number >= 0, got {seed!r}.")
    if not math.isfinite(float(seed)) or float(seed) < 0 or float(seed) != int(seed):
        raise InputError(f"The seed must be a whole number >= 0, got {seed}.")
    if int(seed) >= 2**32:
        raise InputError(f"The seed must be below 2**32, got {int(seed)}.")
    return int(seed)


def random_seed() -> int:
    """A fresh seed from the OS (leaves torch's and numpy's global generators alone)."""
    return secrets.randbelow(2**31)

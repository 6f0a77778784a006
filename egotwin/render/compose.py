"""Videos for people: the generated egocentric video next to the third-person body view, frame-synchronised, with a
caption bar; and the egocentric video alone, upscaled so that a 64 x 64 clip is watchable.

Files are H.264 mp4 in yuv420p with even sizes (what every browser plays), written by moviepy's ffmpeg writer one
frame at a time, so frame k of the file is exactly the k-th array given (up to codec error) -- no resampling by time.
"""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
from moviepy.video.io.ffmpeg_writer import FFMPEG_VideoWriter
from PIL import Image, ImageDraw, ImageFont

from egotwin.data.constants import MOTION_FPS, VIDEO_FPS

CAPTION_HEIGHT = 44  # pixels: two lines of text
CRF = 18  # x264 quality: visually lossless for these flat renders
PRESET = "veryfast"  # x264 speed preset: the demo has about 4 s for all of rendering and encoding


class Mp4Writer:
    """An H.264 yuv420p mp4 (even sizes: what browsers play) written frame by frame through moviepy's ffmpeg writer.
    ffmpeg encodes in its own process while the caller makes the next frame. Use as a context manager."""

    def __init__(self, path: str | Path, size: tuple[int, int], fps: float) -> None:
        """size: (width, height), both even."""
        width, height = size
        if height % 2 or width % 2:
            raise ValueError(f"yuv420p needs even frame sizes, got {width} x {height}")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.size = (width, height)
        params = ["-crf", str(CRF), "-pix_fmt", "yuv420p", "-movflags", "+faststart"]
        self._writer = FFMPEG_VideoWriter(
            str(self.path), self.size, fps, codec="libx264", preset=PRESET, ffmpeg_params=params
        )

    def write(self, frame: np.ndarray) -> None:
        """Append one (H, W, 3) uint8 frame."""
        if frame.shape != (self.size[1], self.size[0], 3) or frame.dtype != np.uint8:
            raise ValueError(
                f"frames must be ({self.size[1]}, {self.size[0]}, 3) uint8, got {frame.shape} {frame.dtype}"
            )
        self._writer.write_frame(np.ascontiguousarray(frame))

    def close(self) -> None:
        self._writer.close()

    def __enter__(self) -> Mp4Writer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def write_mp4(path: str | Path, frames: np.ndarray, fps: float) -> Path:
    """Write (N, H, W, 3) uint8 frames (H and W even) as an H.264 yuv420p mp4 that browsers play."""
    frames = check_frames(frames, "frames")
    with Mp4Writer(path, (frames.shape[2], frames.shape[1]), fps) as writer:
        for frame in frames:
            writer.write(frame)
    return writer.path


def check_frames(frames: np.ndarray, name: str) -> np.ndarray:
    """`frames` as a (N, H, W, 3) uint8 array with N >= 1, or ValueError."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or len(frames) == 0:
        raise ValueError(f"{name} must be a non-empty (N, H, W, 3) uint8 array, got {frames.shape} {frames.dtype}")
    return frames


def upscale(frames: np.ndarray, height: int) -> np.ndarray:
    """(N, h, w, 3) -> (N, height, round(w * height / h), 3): pixel replication for whole factors (generated 64 x 64
    frames stay sharp), area-averaging when shrinking, bilinear otherwise."""
    n, h, w, _ = frames.shape
    width = max(1, round(w * height / h))
    if (height, width) == (h, w):
        return frames
    if height % h == 0 and width % w == 0:
        return frames.repeat(height // h, axis=1).repeat(width // w, axis=2)
    interpolation = cv2.INTER_AREA if height < h else cv2.INTER_LINEAR
    return np.stack([cv2.resize(f, (width, height), interpolation=interpolation) for f in frames])


def _font(size: int) -> ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _fit(draw: ImageDraw.ImageDraw, text: str, font: ImageFont.ImageFont, width: int) -> str:
    """`text` cut (with an ellipsis) to fit `width` pixels."""
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "...", font=font) > width:
        text = text[:-1]
    return text.rstrip() + "..."


def caption_bars(width: int, times: np.ndarray, caption: str, mode: str) -> np.ndarray:
    """(N, CAPTION_HEIGHT, width, 3) uint8 bars: the caption on the first line, the mode and the time on the second.

    Args:
        width: bar width in pixels.
        times: (N,) seconds shown on each bar ("t = 1.25 s").
        caption: the prompt; cut with an ellipsis if it does not fit.
        mode: generation mode ("t2vm", "tm2v", "tv2m"), shown in capitals; may be empty.
    """
    font = _font(14)
    base = Image.new("RGB", (width, CAPTION_HEIGHT), (24, 26, 30))
    draw = ImageDraw.Draw(base)
    draw.text((6, 4), _fit(draw, " ".join(caption.split()), font, width - 12), font=font, fill=(240, 240, 240))
    if mode:
        draw.text((6, 24), mode.upper(), font=font, fill=(250, 170, 80))
    bars = np.empty((len(times), CAPTION_HEIGHT, width, 3), np.uint8)
    for i, t in enumerate(times):
        bar = base.copy()
        label = f"t = {t:.2f} s"
        ImageDraw.Draw(bar).text(
            (width - 6 - draw.textlength(label, font=font), 24), label, font=font, fill=(200, 220, 255)
        )
        bars[i] = np.asarray(bar)
    return bars


class SideBySide:
    """Composes the frames of the side-by-side video one at a time, so that they can be written as the body view
    renders: frame j is video frame j // r (r = motion_fps / video_fps) scaled to the body view's height on the left,
    body-view frame j on the right, and the caption bar with the time below; sizes are padded to even numbers."""

    def __init__(
        self,
        video_frames: np.ndarray,
        body_size: tuple[int, int],
        num_body_frames: int,
        caption: str = "",
        mode: str = "",
        video_fps: float = VIDEO_FPS,
        motion_fps: float = MOTION_FPS,
    ) -> None:
        """body_size: (width, height) of the body-view frames; num_body_frames: how many there will be."""
        video_frames = check_frames(video_frames, "video_frames")
        ratio = motion_fps / video_fps
        if not (ratio >= 1 and abs(ratio - round(ratio)) < 1e-9):
            raise ValueError(f"motion_fps must be a whole multiple of video_fps, got {motion_fps} and {video_fps}")
        self.ratio = round(ratio)
        expected = (len(video_frames) - 1) * self.ratio + 1
        if num_body_frames != expected:
            raise ValueError(
                f"{len(video_frames)} video frames at {video_fps} fps need {expected} motion frames at {motion_fps} "
                f"fps (the same duration), got {num_body_frames}"
            )
        self.body_size = tuple(body_size)
        self.left = upscale(video_frames, body_size[1])
        width = self.left.shape[2] + body_size[0]
        self.bars = caption_bars(width, np.arange(num_body_frames) / motion_fps, caption, mode)
        self.size = (width + width % 2, body_size[1] + CAPTION_HEIGHT + (body_size[1] + CAPTION_HEIGHT) % 2)
        """(width, height) of the composed frames."""

    def frame(self, j: int, body_frame: np.ndarray) -> np.ndarray:
        """(H', W', 3) uint8 composed frame j from body-view frame j (H, W, 3)."""
        if body_frame.shape != (self.body_size[1], self.body_size[0], 3):
            raise ValueError(
                f"body frames must be {self.body_size[1]} x {self.body_size[0]} x 3, got {body_frame.shape}"
            )
        canvas = np.zeros((self.size[1], self.size[0], 3), np.uint8)
        height, left_width = self.left.shape[1:3]
        canvas[:height, :left_width] = self.left[j // self.ratio]
        canvas[:height, left_width : left_width + self.body_size[0]] = body_frame
        canvas[height : height + CAPTION_HEIGHT, : self.bars.shape[2]] = self.bars[j]
        return canvas


def side_by_side_frames(
    video_frames: np.ndarray,
    body_frames: np.ndarray,
    caption: str = "",
    mode: str = "",
    video_fps: float = VIDEO_FPS,
    motion_fps: float = MOTION_FPS,
) -> np.ndarray:
    """The frames of `compose_side_by_side`, (T, H', W', 3) uint8 (see `SideBySide`)."""
    body_frames = check_frames(body_frames, "body_frames")
    size = (body_frames.shape[2], body_frames.shape[1])
    composer = SideBySide(video_frames, size, len(body_frames), caption, mode, video_fps, motion_fps)
    return np.stack([composer.frame(j, f) for j, f in enumerate(body_frames)])


def compose_side_by_side(
    video_frames: np.ndarray,
    body_frames: np.ndarray,
    path: str | Path,
    caption: str = "",
    mode: str = "",
    video_fps: float = VIDEO_FPS,
    motion_fps: float = MOTION_FPS,
) -> Path:
    """Write the side-by-side mp4 at `motion_fps`: generated video left, body view right, caption bar below.

    Args:
        video_frames: (N, h, w, 3) uint8 egocentric frames at `video_fps`.
        body_frames: (T, H, W, 3) uint8 body-view frames at `motion_fps`, T = (N - 1) * motion_fps / video_fps + 1.
        path: the mp4 to write.
        caption: the prompt; mode: the generation mode; both shown in the caption bar with the time.

    Returns:
        `path`, as a Path.
    """
    body_frames = check_frames(body_frames, "body_frames")
    size = (body_frames.shape[2], body_frames.shape[1])
    composer = SideBySide(video_frames, size, len(body_frames), caption, mode, video_fps, motion_fps)
    with Mp4Writer(path, composer.size, motion_fps) as writer:
        for j, body_frame in enumerate(body_frames):
            writer.write(composer.frame(j, body_frame))
    return writer.path


def write_egocentric(frames: np.ndarray, path: str | Path, fps: float = VIDEO_FPS, min_size: int = 256) -> Path:
    """Write the egocentric video, upscaled by a whole factor (pixel replication) until its shorter side is at
    least `min_size` pixels, to an mp4 at `fps`."""
    frames = check_frames(frames, "frames")
    h, w = frames.shape[1:3]
    factor = max(1, math.ceil(min_size / min(h, w)))
    frames = frames.repeat(factor, axis=1).repeat(factor, axis=2)
    if frames.shape[1] % 2 or frames.shape[2] % 2:
        frames = np.pad(frames, ((0, 0), (0, frames.shape[1] % 2), (0, frames.shape[2] % 2), (0, 0)))
    return write_mp4(path, frames, fps)

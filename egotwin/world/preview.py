"""Preview of a clip set: a contact sheet PNG (a row of frames per clip, caption underneath) and an mp4 of the
clips side by side, for looking at what the generator made."""

from __future__ import annotations

from pathlib import Path

import cv2
import imageio.v3 as iio
import numpy as np

from egotwin.data.clip_format import read_clip, read_metadata, write_video
from egotwin.data.constants import VIDEO_FPS


def _caption_strip(text: str, width: int, scale: float) -> np.ndarray:
    """A white strip with the caption written in it (wrapped to the width)."""
    words, lines, line = text.split(), [], ""
    max_chars = max(10, int(width / (9 * scale)))
    for word in words:
        if len(line) + len(word) + 1 > max_chars:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    lines.append(line)
    height = int(16 * scale) * len(lines) + 6
    strip = np.full((height, width, 3), 255, np.uint8)
    for i, text_line in enumerate(lines):
        cv2.putText(
            strip,
            text_line,
            (4, int(16 * scale) * (i + 1)),
            cv2.FONT_HERSHEY_SIMPLEX,
            0.45 * scale,
            (0, 0, 0),
            1,
            cv2.LINE_AA,
        )
    return strip


def contact_sheet(
    root: str | Path, out: str | Path, num_clips: int = 8, frames_per_clip: int = 6, scale: int = 2
) -> Path:
    """Write a PNG: for each of the first `num_clips` clips a row of `frames_per_clip` evenly spaced frames (scaled up
    by `scale`, nearest neighbour), frames with a visible hand marked by a green (left) / red (right) corner dot."""
    root, out = Path(root), Path(out)
    records = read_metadata(root)[:num_clips]
    if not records:
        raise ValueError(f"{root}: no clips in metadata.jsonl")
    rows = []
    for record in records:
        clip = read_clip(root / record["path"])
        picks = np.linspace(0, len(clip["frames"]) - 1, frames_per_clip).round().astype(int)
        tiles = []
        for k in picks:
            tile = np.repeat(np.repeat(clip["frames"][k], scale, 0), scale, 1).copy()
            for side, color in ((0, (0, 200, 0)), (1, (220, 0, 0))):
                if clip["hand_visible"][k, side]:
                    cv2.circle(tile, (6 + 10 * side, 6), 4, color, -1)
            tiles.append(np.pad(tile, ((2, 2), (2, 2), (0, 0)), constant_values=255))
        row = np.concatenate(tiles, 1)
        rows.append(
            np.concatenate(
                (row, _caption_strip(f"{record['clip_id']}: {clip['caption']}", row.shape[1], max(1.0, scale / 2))), 0
            )
        )
    width = max(r.shape[1] for r in rows)
    sheet = np.concatenate([np.pad(r, ((0, 4), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows], 0)
    out.parent.mkdir(parents=True, exist_ok=True)
    iio.imwrite(out, sheet)
    return out


def preview_video(root: str | Path, out: str | Path, num_clips: int = 4, scale: int = 2) -> Path:
    """Write an mp4 with the first `num_clips` clips side by side, 8 fps."""
    root, out = Path(root), Path(out)
    records = read_metadata(root)[:num_clips]
    if not records:
        raise ValueError(f"{root}: no clips in metadata.jsonl")
    videos = [read_clip(root / r["path"])["frames"] for r in records]
    height = max(v.shape[1] for v in videos)
    videos = [np.pad(v, ((0, 0), (0, height - v.shape[1]), (0, 2), (0, 0))) for v in videos]
    frames = np.concatenate(videos, 2)
    frames = np.repeat(np.repeat(frames, scale, 1), scale, 2)
    frames = np.pad(frames, ((0, 0), (0, frames.shape[1] % 2), (0, frames.shape[2] % 2), (0, 0)))  # yuv420p: even sizes
    write_video(out, frames, fps=VIDEO_FPS, pixelformat="yuv420p")
    return out

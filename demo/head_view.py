"""The page's third view, "what this head would see": for a start frame that comes from an EgoWorld clip (the
examples), the clip's apartment rebuilt and rendered from the generated head cameras (docs/alignment.md).

A start frame is tied to its apartment by its pixels: the frame as the model sees it (after the crop and resize)
must equal an example's. Any other frame (an upload, a photograph) has no apartment to render, and the panel says so.
The render goes through the checkpoint's video VAE, like the generated video, and scores it with the exact alignment
on a coarse grid (views every 90 degrees: about 4 s on two CPU cores; the evaluation's 10-30 degree grids give nearly
the same figure, 0.66 against 0.69 on the turn-left example); it runs when the visitor asks for it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from demo.inputs import EXAMPLES_DIR, load_image, load_video
from egotwin.data.clip_format import write_video
from egotwin.data.constants import NUM_MOTION_FRAMES, NUM_VIDEO_FRAMES

GRID_DEG = 90.0
"""Degrees between the yaw offsets the figure compares the head's view with."""
NO_APARTMENT = (
    "No apartment to show: this start frame is not one of EgoWorld's (the examples are), so nothing knows what "
    "the generated head would see. The alignment figures above still measure the video against the head path."
)


def frame_key(frame: np.ndarray) -> str:
    """The identity of a start frame as the model sees it: a hash of its pixels."""
    return hashlib.sha256(np.ascontiguousarray(frame, dtype=np.uint8).tobytes()).hexdigest()


def example_sources(width: int, height: int, folder: Path = EXAMPLES_DIR) -> dict[str, dict]:
    """Frame key -> the example's `clip_id` and `apartment`, for every example that records them."""
    rows = json.loads((folder / "examples.json").read_text()) if (folder / "examples.json").is_file() else []
    sources = {}
    for row in rows:
        if not row.get("clip_id") or not row.get("apartment"):
            continue
        if row.get("image"):
            frame = load_image(folder / row["image"], width, height)
        else:
            frame = load_video(folder / row["video_file"], width, height)[0]
        sources[frame_key(frame)] = {"clip_id": row["clip_id"], "apartment": row["apartment"]}
    return sources


@dataclass
class HeadViewPanel:
    """What the page shows in the panel: a video file (None when there is nothing to render) and a line of text."""

    video: Path | None
    text: str


def head_view_panel(pipe, output, source: dict | None, folder: Path) -> HeadViewPanel:
    """Render the apartment of `source` from `output`'s head cameras (its first 5 s) and score the video against it."""
    if source is None:
        return HeadViewPanel(None, NO_APARTMENT)
    from egotwin.eval.alignment import AlignmentConfig, what_the_head_sees
    from egotwin.world.replay import ClipSource

    view = what_the_head_sees(
        ClipSource.from_ids(source["clip_id"], source["apartment"]),
        output.motion.slice(0, NUM_MOTION_FRAMES),
        np.asarray(output.camera_to_world)[:NUM_VIDEO_FRAMES],
        np.asarray(output.frames)[:NUM_VIDEO_FRAMES],
        pipe.vae,
        pipe.rig,
        AlignmentConfig(yaw_step_deg=GRID_DEG, pitch_offsets_deg=(0.0,)),
        vae_batch_size=1,  # one reference video per VAE pass: the app's peak memory stays that of a generation
    )
    path = folder / "head_view.mp4"
    write_video(path, view.frames, pixelformat="yuv420p" if view.frames.shape[1] % 2 == 0 else "yuv444p")
    return HeadViewPanel(path, describe(view, GRID_DEG))


def describe(view, yaw_step_deg: float) -> str:
    """The panel's figure in words."""
    title = "**What this head would see** (the EgoWorld apartment re-rendered from the generated head, first 5 s)."
    if view.view_dist is None:
        return f"{title} The head neither turned 20° nor moved 0.5 m, so there is no view to compare yet."
    return (
        f"{title} "
        f"View distance {view.view_dist:.2f} (0 = the video shows exactly this, about 1 = no better than a random "
        f"direction; EgoWorld's own videos score about 0.01 through this VAE); the video is closer to this view than "
        f"to a head held still in {view.head_beats_still:.0%} of {view.scored_frames} turned or moved frames "
        f"({yaw_step_deg:.0f}° grid)."
    )

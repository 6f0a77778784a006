"""Everything a generated clip is saved as, in one call: the side-by-side and egocentric videos, the motion as an
SMPL-X parameter file, a BVH and an animated glb, and the head-camera trajectory."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from egotwin.body.body_model import BodyModel
from egotwin.body.head_camera import HeadCameraRig
from egotwin.data.constants import VIDEO_FPS
from egotwin.motion.bvh import save_bvh
from egotwin.motion.motion import Motion
from egotwin.render.body_view import check_intrinsics, shared_renderer
from egotwin.render.compose import Mp4Writer, SideBySide, check_frames, write_egocentric
from egotwin.render.gltf import save_glb

FILE_NAMES = {
    "side_by_side": "side_by_side.mp4",
    "egocentric": "egocentric.mp4",
    "npz": "motion.npz",
    "bvh": "motion.bvh",
    "glb": "motion.glb",
    "cameras": "cameras.npz",
}


def check_clip(
    frames: np.ndarray, motion: Motion, camera_to_world: np.ndarray | torch.Tensor
) -> tuple[np.ndarray, int]:
    """Check that video, motion and cameras describe one clip; return the frames and the motion frames per video frame.

    The video is at 8 fps with N frames, the motion at a whole multiple r of that with (N - 1) r + 1 frames (the same
    duration), and there is one (4, 4) camera pose per video frame."""
    frames = check_frames(frames, "frames")
    if not isinstance(motion, Motion):
        raise ValueError(f"motion must be an egotwin Motion, got {type(motion).__name__}")
    ratio = motion.fps / VIDEO_FPS
    if not (ratio >= 1 and abs(ratio - round(ratio)) < 1e-6):
        raise ValueError(f"the motion's frame rate must be a whole multiple of {VIDEO_FPS} fps, got {motion.fps}")
    ratio = round(ratio)
    expected = (len(frames) - 1) * ratio + 1
    if motion.num_frames != expected:
        raise ValueError(
            f"{len(frames)} video frames at {VIDEO_FPS} fps need a motion of {expected} frames at {motion.fps:g} fps "
            f"(the same duration), got {motion.num_frames}"
        )
    cameras = np.asarray(
        camera_to_world.detach().cpu() if isinstance(camera_to_world, torch.Tensor) else camera_to_world
    )
    if cameras.shape != (len(frames), 4, 4) or not np.isfinite(cameras).all():
        raise ValueError(
            f"camera_to_world must be finite with shape ({len(frames)}, 4, 4), one pose per video frame; "
            f"got {cameras.shape}"
        )
    return frames, ratio


def export_all(
    frames: np.ndarray,
    motion: Motion,
    camera_to_world: np.ndarray | torch.Tensor,
    intrinsics: np.ndarray | torch.Tensor,
    folder: str | Path,
    caption: str = "",
    mode: str = "t2vm",
    body: BodyModel | None = None,
    size: int | tuple[int, int] = 320,
    rig: HeadCameraRig | None = None,
) -> dict[str, Path]:
    """Write a generated clip in every format into `folder` (created if needed).

    Args:
        frames: (N, h, w, 3) uint8 egocentric video at 8 fps, N = 41 + 40 k.
        motion: the motion, (N - 1) * 2 + 1 frames at 16 fps.
        camera_to_world: (N, 4, 4) OpenCV-axes head-camera poses at the video frames.
        intrinsics: (3, 3) K of the video frames.
        folder: output folder.
        caption, mode: shown in the side-by-side video's caption bar.
        body: the body mesh for the body view and the glb; None: the built-in mannequin.
        size: body-view frame size, one number (square) or (width, height).
        rig: the head camera on the head, for the frustum in the body view; None: `HeadCameraRig()`.

    Returns:
        Paths by kind: "side_by_side" (mp4, 16 fps), "egocentric" (mp4, 8 fps, upscaled), "npz" (SMPL-X / AMASS
        parameters, `Motion.save_npz`), "bvh", "glb" (animated, skinned), "cameras" (npz of camera_to_world and
        intrinsics).
    """
    frames, ratio = check_clip(frames, motion, camera_to_world)
    k = check_intrinsics(intrinsics)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {kind: folder / name for kind, name in FILE_NAMES.items()}
    size = (size, size) if isinstance(size, int) else size
    # The side-by-side frames go to the encoder as they render: ffmpeg works on one core while we draw on the other.
    composer = SideBySide(frames, size, motion.num_frames, caption, mode, VIDEO_FPS, VIDEO_FPS * ratio)
    with Mp4Writer(paths["side_by_side"], composer.size, VIDEO_FPS * ratio) as writer:
        shared_renderer(size).render(
            motion,
            k,
            body=body,
            rig=rig,
            image_size=(frames.shape[2], frames.shape[1]),
            on_frame=lambda j, body_frame: writer.write(composer.frame(j, body_frame)),
        )
    write_egocentric(frames, paths["egocentric"], fps=VIDEO_FPS)
    motion.save_npz(paths["npz"])
    save_bvh(motion, paths["bvh"])
    save_glb(motion, paths["glb"], body=body)
    cameras = camera_to_world.detach().cpu() if isinstance(camera_to_world, torch.Tensor) else camera_to_world
    np.savez(paths["cameras"], camera_to_world=np.asarray(cameras, dtype=np.float64), intrinsics=k)
    return paths

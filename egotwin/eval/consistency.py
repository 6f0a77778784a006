"""Per-clip video-motion consistency: viewpoint alignment (TransErr, RotErr) and HandScore of one generated clip."""

from __future__ import annotations

import numpy as np

from egotwin.eval.hands import hand_score, motion_hands_in_view
from egotwin.eval.trajectory import trajectory_errors
from egotwin.eval.visual_odometry import VOConfig, estimate_camera_path
from egotwin.motion.motion import Motion


def viewpoint_alignment(
    frames: np.ndarray, camera_to_world: np.ndarray, intrinsics: np.ndarray, config: VOConfig = VOConfig()
) -> dict:
    """How well a video's own camera path follows a head-camera path.

    Args:
        frames: (T, H, W, 3) uint8 video (the generated one).
        camera_to_world: (T, 4, 4) reference camera poses, OpenCV axes (the generated motion's head camera).
        intrinsics: (3, 3) pinhole matrix of the frames.

    Returns:
        dict with trans_err (metres, summed over frames), rot_err (radians, summed), their per-frame means
        trans_err_mean / rot_err_mean, scale (of the Sim(3) fit), num_frames, and estimated_positions (T, 3): the
        visual-odometry camera centres aligned into the reference frame (for plotting against the head path).
    """
    camera_to_world = np.asarray(camera_to_world, dtype=np.float64)
    if len(frames) != len(camera_to_world):
        raise ValueError(f"{len(frames)} frames but {len(camera_to_world)} camera poses")
    estimate = estimate_camera_path(frames, intrinsics, config)
    errors = trajectory_errors(estimate, camera_to_world)
    return {**errors.as_dict(), "estimated_positions": errors.alignment.apply(estimate[:, :3, 3])}


def still_camera_alignment(camera_to_world: np.ndarray) -> dict:
    """`viewpoint_alignment`'s errors for a camera that never moves (the identity path) against `camera_to_world`
    (T, 4, 4): what a video scores when it ignores the head entirely, so a generated clip's TransErr / RotErr say
    something about consistency only when they are below these. Large head movements raise both numbers."""
    reference = np.asarray(camera_to_world, dtype=np.float64)
    still = np.broadcast_to(np.eye(4), reference.shape).copy()
    return trajectory_errors(still, reference).as_dict()


def clip_consistency(
    frames: np.ndarray, motion: Motion, camera_to_world: np.ndarray, intrinsics: np.ndarray, hand_detector=None
) -> dict:
    """viewpoint_alignment plus, when a `HandDetector` is given, hand_score (F1) with the per-frame hand sequences
    video_hands / motion_hands (T, 2) bool. `motion` runs at twice the video frame rate (81 frames for 41)."""
    result = viewpoint_alignment(frames, camera_to_world, intrinsics)
    if hand_detector is not None:
        height, width = frames.shape[1:3]
        motion_hands = motion_hands_in_view(motion, camera_to_world, intrinsics, width, height)
        video_hands = hand_detector.detect(frames).numpy()
        result.update(
            hand_score=hand_score(video_hands, motion_hands), video_hands=video_hands, motion_hands=motion_hands
        )
    return result

"""Visual odometry on a pure rotation rendered by homography (known answer) and its input checks; the regression
test on EgoWorld clips is in test_eval_egoworld.py."""

import cv2
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from egotwin.eval.trajectory import rotation_angles, trajectory_errors
from egotwin.eval.visual_odometry import estimate_camera_path

K = np.array([[32.0, 0, 32], [0, 32.0, 32], [0, 0, 1]])


def rotating_camera_video(rotations: np.ndarray) -> np.ndarray:
    """Frames (T, 64, 64, 3) of a textured scene at infinity seen by a camera turning through `rotations`
    (T, 3, 3) camera-to-world: a wide source image warped by the homography K R^T K_src^-1."""
    rng = np.random.default_rng(0)
    source = cv2.resize(rng.uniform(0, 255, (48, 48, 3)).astype(np.float32), (384, 384), interpolation=cv2.INTER_CUBIC)
    source = np.clip(source, 0, 255).astype(np.uint8)
    k_source = np.array([[96.0, 0, 192], [0, 96.0, 192], [0, 0, 1]])  # 127 degree field of view
    frames = [
        cv2.warpPerspective(source, K @ r.T @ np.linalg.inv(k_source), (64, 64), flags=cv2.INTER_LINEAR)
        for r in rotations
    ]
    return np.stack(frames)


def test_pure_rotation_is_recovered():
    angles = np.linspace(0, 1, 41)
    rotations = Rotation.from_rotvec(np.stack([0.15 * np.sin(3 * angles), 0.6 * angles, 0.05 * angles], 1)).as_matrix()
    path = estimate_camera_path(rotating_camera_video(rotations), K)
    assert path.shape == (41, 4, 4)
    np.testing.assert_allclose(path[0], np.eye(4))
    # chained over 40 steps, every frame's orientation within half a degree; no translation is invented
    assert np.degrees(rotation_angles(path[:, :3, :3], rotations)).max() < 0.5
    assert np.abs(path[:, :3, 3]).max() < 1e-9
    reference = np.tile(np.eye(4), (41, 1, 1))
    reference[:, :3, :3] = rotations
    assert trajectory_errors(path, reference).rot_err < 41 * np.radians(0.5)


def test_bad_input_is_rejected():
    frames = np.zeros((5, 64, 64, 3), np.uint8)
    with pytest.raises(ValueError, match="uint8"):
        estimate_camera_path(frames.astype(np.float32), K)
    with pytest.raises(ValueError, match="at least 2"):
        estimate_camera_path(frames[:1], K)
    with pytest.raises(ValueError, match="intrinsics"):
        estimate_camera_path(frames, np.eye(2))


def test_a_blank_video_stays_at_the_start():
    path = estimate_camera_path(np.full((6, 64, 64, 3), 128, np.uint8), K)
    np.testing.assert_allclose(path, np.tile(np.eye(4), (6, 1, 1)))

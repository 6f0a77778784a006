"""The head-mounted camera: one fixed head-to-camera extrinsic and a pinhole intrinsic.

Camera poses are camera-to-world 4x4 matrices in the OpenCV convention (x right, y down, z forward), the
convention of visual odometry; `opencv_to_opengl` gives the pose pyrender wants (y up, looking down -z).
The head joint frame at rest is aligned with the world: x to the person's left, y up, z forward.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class HeadCameraRig:
    """Where the camera sits on the head and what it sees."""

    eye_offset: tuple[float, float, float] = (0.0, 0.08, 0.10)
    """Camera centre in the head joint frame, metres: between the eyes, above and in front of the skull base."""
    pitch_down_deg: float = 10.0
    """Downward tilt of the optical axis, as head-worn cameras are mounted (Aria, GoPro on a head strap)."""
    fov_deg: float = 90.0
    """Field of view across the longer image side."""

    def head_to_camera(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """(4, 4) pose of the camera in the head frame: camera_to_world = head_to_world @ this."""
        a = math.radians(self.pitch_down_deg)
        flip = torch.tensor([[-1.0, 0, 0], [0, -1.0, 0], [0, 0, 1.0]], dtype=torch.float64)  # OpenCV axes in head frame
        pitch = torch.tensor(
            [[1.0, 0, 0], [0, math.cos(a), math.sin(a)], [0, -math.sin(a), math.cos(a)]], dtype=torch.float64
        )
        pose = torch.eye(4, dtype=torch.float64)
        pose[:3, :3] = flip @ pitch
        pose[:3, 3] = torch.tensor(self.eye_offset, dtype=torch.float64)
        return pose.to(dtype)

    def camera_poses(self, head_rotation: torch.Tensor, head_position: torch.Tensor) -> torch.Tensor:
        """(..., 3, 3) head rotations and (..., 3) head positions -> (..., 4, 4) camera-to-world poses."""
        head = torch.zeros(*head_position.shape[:-1], 4, 4, dtype=head_position.dtype, device=head_position.device)
        head[..., :3, :3] = head_rotation
        head[..., :3, 3] = head_position
        head[..., 3, 3] = 1
        return head @ self.head_to_camera(head_position.dtype).to(head_position.device)

    def intrinsics(self, width: int, height: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """(3, 3) pinhole matrix K with square pixels and the principal point at the image centre."""
        focal = 0.5 * max(width, height) / math.tan(math.radians(self.fov_deg) / 2)
        return torch.tensor([[focal, 0, width / 2], [0, focal, height / 2], [0, 0, 1]], dtype=dtype)


def opencv_to_opengl(pose: torch.Tensor) -> torch.Tensor:
    """Camera-to-world pose with OpenCV axes -> the same camera with OpenGL axes (flip y and z)."""
    return pose @ torch.diag(torch.tensor([1.0, -1.0, -1.0, 1.0], dtype=pose.dtype, device=pose.device))


def project(
    points: torch.Tensor, camera_to_world: torch.Tensor, intrinsics: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pinhole projection of world points (..., N, 3) by cameras (..., 4, 4) -> pixels (..., N, 2) and depths (..., N).

    Pixel (0, 0) is the top-left corner of the top-left pixel; depth <= 0 means behind the camera."""
    rot = camera_to_world[..., :3, :3]
    centre = camera_to_world[..., None, :3, 3]
    in_camera = ((points - centre)[..., None, :] @ rot[..., None, :, :])[..., 0, :]  # R^T (p - c), row-vector form
    depth = in_camera[..., 2]
    pixels = (in_camera @ intrinsics.to(points).transpose(-1, -2))[..., :2] / depth[..., None].clamp_min(1e-9)
    return pixels, depth

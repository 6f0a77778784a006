"""Geometry of the third-person body view: the head camera's frustum, thin tubes for line drawings, the checker floor
and the smoothed follow camera.

Everything here is plain numpy on the CPU and independent of the GL renderer, so that it can be tested against
`egotwin.body.head_camera.project`. Camera poses are camera-to-world (4, 4) matrices in OpenCV axes (x right,
y down, z forward), like the head camera's; world: y up, floor at y = 0, metres.
"""

from __future__ import annotations

import numpy as np
import trimesh
from scipy.ndimage import gaussian_filter1d


def frustum_corners(
    camera_to_world: np.ndarray, intrinsics: np.ndarray, image_size: tuple[int, int], depth: float
) -> np.ndarray:
    """World positions of the four image corners back-projected to `depth` metres in front of the camera.

    Args:
        camera_to_world: (..., 4, 4) OpenCV-axes poses.
        intrinsics: (3, 3) pinhole matrix K of the image.
        image_size: (width, height) of the image in pixels; the corners are the outer corners of the corner pixels
            (0, 0), (W, 0), (W, H), (0, H), in that order (clockwise on screen, starting top left).
        depth: distance of the far rectangle along the optical axis (camera z), metres.

    Returns:
        (..., 4, 3) corner positions.
    """
    width, height = image_size
    pixels = np.array([[0.0, 0.0, 1.0], [width, 0.0, 1.0], [width, height, 1.0], [0.0, height, 1.0]])
    in_camera = depth * pixels @ np.linalg.inv(np.asarray(intrinsics, dtype=np.float64)).T  # (4, 3), z = depth
    rotation, centre = camera_to_world[..., None, :3, :3], camera_to_world[..., None, :3, 3]
    return (rotation @ in_camera[:, :, None])[..., 0] + centre


def frustum_segments(camera_to_world: np.ndarray, corners: np.ndarray) -> np.ndarray:
    """(..., 8, 2, 3) line segments of a frustum: apex (camera centre) to each corner, then the far rectangle.

    Args:
        camera_to_world: (..., 4, 4) poses (only the centre is used).
        corners: (..., 4, 3) from `frustum_corners`.
    """
    apex = np.broadcast_to(camera_to_world[..., None, :3, 3], corners.shape)
    edges = np.stack((apex, corners), axis=-2)  # (..., 4, 2, 3)
    rectangle = np.stack((corners, np.roll(corners, -1, axis=-2)), axis=-2)
    return np.concatenate((edges, rectangle), axis=-3)


TUBE_CORNERS = 24  # triangle corners per tube segment: 4 side faces of 2 triangles
# Cross-section of a tube: a square, as (cos, sin) of its four corner angles.
_SQUARE = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]])
# Each side face k joins corners k and k+1 at both ends: two triangles (start_k, start_k+1, end_k+1), (start_k,
# end_k+1, end_k), as (end, corner) index pairs, counter-clockwise seen from outside.
_SIDE_TRIANGLES = np.array(
    [[(0, k), (0, (k + 1) % 4), (1, (k + 1) % 4), (0, k), (1, (k + 1) % 4), (1, k)] for k in range(4)]
)


def tube_triangles(segments: np.ndarray, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """Square prisms around line segments, as flat-shaded triangle corners (no end caps: the tubes are thin).

    Zero-length segments give zero-area triangles, which rasterise to nothing.

    Args:
        segments: (S, 2, 3) start and end points.
        radius: distance of the prism's edges from the segment, metres.

    Returns:
        positions (S * TUBE_CORNERS, 3) and normals (S * TUBE_CORNERS, 3), float32: 8 triangles per segment.
    """
    start, end = segments[:, 0], segments[:, 1]
    axis = end - start
    length = np.linalg.norm(axis, axis=-1, keepdims=True)
    axis = np.where(length > 1e-9, axis / np.maximum(length, 1e-9), [0.0, 1.0, 0.0])
    # A perpendicular: cross with whichever world axis is least parallel to the segment.
    helper = np.where(np.abs(axis[:, 1:2]) < 0.9, [[0.0, 1.0, 0.0]], [[1.0, 0.0, 0.0]])
    u = np.cross(axis, helper)
    u /= np.linalg.norm(u, axis=-1, keepdims=True)
    v = np.cross(axis, u)
    directions = _SQUARE[:, 0, None] * u[:, None] + _SQUARE[:, 1, None] * v[:, None]  # (S, 4, 3) outward
    rings = segments[:, :, None] + radius * directions[:, None]  # (S, 2 ends, 4 corners, 3)
    ends, corners = _SIDE_TRIANGLES[..., 0], _SIDE_TRIANGLES[..., 1]  # (4 faces, 6)
    positions = rings[:, ends, corners]  # (S, 4, 6, 3)
    # Face k's outward normal bisects the directions of its two corners.
    face_normals = directions + np.roll(directions, -1, axis=1)
    face_normals /= np.linalg.norm(face_normals, axis=-1, keepdims=True)
    normals = np.broadcast_to(face_normals[:, :, None], positions.shape)
    return positions.reshape(-1, 3).astype(np.float32), normals.reshape(-1, 3).astype(np.float32)


def checker_floor(half_size: float, tile: float, colors: tuple[tuple[int, ...], tuple[int, ...]]) -> trimesh.Trimesh:
    """A square checkerboard on y = 0, centred on the origin, facing up, with RGBA face colours.

    Args:
        half_size: half the side length, metres (rounded to whole tiles).
        tile: side length of one tile, metres.
        colors: RGBA of the two kinds of tiles; tile (i, j) gets colors[(i + j) % 2].
    """
    count = int(round(half_size / tile))
    edges = (np.arange(-count, count + 1) * tile).astype(np.float64)
    xs, zs = np.meshgrid(edges, edges, indexing="ij")
    vertices = np.stack((xs, np.zeros_like(xs), zs), axis=-1).reshape(-1, 3)
    i, j = np.meshgrid(np.arange(2 * count), np.arange(2 * count), indexing="ij")
    a = (i * (2 * count + 1) + j).ravel()  # (x_i, z_j)
    b, c, d = a + 1, a + 2 * count + 2, a + 2 * count + 1  # (x_i, z_j+1), (x_i+1, z_j+1), (x_i+1, z_j)
    # (a, b, c) is counter-clockwise seen from above (+y): z_j -> z_j+1 -> x_i+1.
    faces = np.concatenate((np.stack((a, b, c), 1), np.stack((a, c, d), 1)))
    parity = np.tile(((i + j) % 2).ravel(), 2)
    face_colors = np.asarray(colors, dtype=np.uint8)[parity]
    return trimesh.Trimesh(vertices, faces, face_colors=face_colors, process=False)


def look_at(eye: np.ndarray, target: np.ndarray, up: np.ndarray = np.array([0.0, 1.0, 0.0])) -> np.ndarray:
    """(..., 4, 4) OpenCV-axes camera-to-world poses at `eye` (..., 3) looking at `target` (..., 3), image up
    towards world `up` (which must not be parallel to the viewing direction)."""
    forward = target - eye
    forward = forward / np.linalg.norm(forward, axis=-1, keepdims=True)
    right = np.cross(forward, up)  # OpenCV x: forward x up points right
    right = right / np.linalg.norm(right, axis=-1, keepdims=True)
    down = np.cross(forward, right)
    pose = np.zeros((*eye.shape[:-1], 4, 4))
    pose[..., :3, 0], pose[..., :3, 1], pose[..., :3, 2] = right, down, forward
    pose[..., :3, 3] = eye
    pose[..., 3, 3] = 1.0
    return pose


def follow_camera_poses(
    pelvis: np.ndarray,
    heading: np.ndarray,
    look_height: np.ndarray,
    fps: float,
    distance: float = 3.4,
    elevation_deg: float = 22.0,
    azimuth_deg: float = 30.0,
    smoothing_s: float = 0.6,
) -> np.ndarray:
    """Camera poses that follow a person from behind and above, smoothed in time so that the view does not shake
    with the gait (a zero-phase Gaussian filter over the whole clip, which is known in advance).

    Args:
        pelvis: (T, 3) world pelvis positions (only x and z are followed).
        heading: (T, 3) the body's forward direction (its y part is ignored); the camera sits behind it.
        look_height: (T,) height of the point looked at, metres (e.g. between the pelvis and the head).
        fps: frame rate, to express `smoothing_s` in frames.
        distance: horizontal distance from the looked-at point, metres.
        elevation_deg: how far above the horizon the camera sits, seen from the looked-at point.
        azimuth_deg: how far the camera swings from straight behind towards the person's right, so that the head
            camera's frustum in front of the person is not hidden behind the body.
        smoothing_s: standard deviation of the Gaussian smoothing, seconds.

    Returns:
        (T, 4, 4) OpenCV-axes camera-to-world poses.
    """
    sigma = max(smoothing_s * fps, 1e-3)
    smooth = lambda x: gaussian_filter1d(np.asarray(x, dtype=np.float64), sigma, axis=0, mode="nearest")  # noqa: E731
    target = np.stack((smooth(pelvis[:, 0]), smooth(look_height), smooth(pelvis[:, 2])), axis=-1)
    # Smooth the heading as a vector, not an angle: no wrap-around at +-pi. A heading that vanishes (looking straight
    # up or down) is left out of the average; if the whole clip has none, look along +z.
    flat = np.stack((heading[:, 0], heading[:, 2]), axis=-1)
    norm = np.linalg.norm(flat, axis=-1, keepdims=True)
    flat = np.where(norm > 1e-6, flat / np.maximum(norm, 1e-6), 0.0)
    flat = smooth(flat)
    norm = np.linalg.norm(flat, axis=-1, keepdims=True)
    flat = np.where(norm > 1e-6, flat / np.maximum(norm, 1e-6), [0.0, 1.0])
    azimuth = np.radians(azimuth_deg)
    # Rotate "behind" (-forward) about +y towards the person's right (-x for a person facing +z).
    fx, fz = flat[:, 0], flat[:, 1]
    back_x = -(fx * np.cos(azimuth) + fz * np.sin(azimuth))
    back_z = -(fz * np.cos(azimuth) - fx * np.sin(azimuth))
    elevation = np.radians(elevation_deg)
    offset = np.stack(
        (distance * back_x, np.full_like(back_x, distance * np.tan(elevation)), distance * back_z), axis=-1
    )
    return look_at(target + offset, target)

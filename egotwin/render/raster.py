"""A small z-buffer rasteriser in numpy: the body view's software path, for machines where OpenGL cannot be loaded
(no Mesa EGL on a bare Linux or a Space without `packages.txt`).

It draws what `egotwin.render.body_view` draws, as the OpenGL path does with pyrender's unlit FLAT shader: opaque
triangles with one colour each (the shading is computed by the caller, per face), a checker floor on y = 0 and a
plain background. The floor is not rasterised but ray-cast, one ray per pixel through the pixel centre, which is
exact and needs no clipping of the floor's triangles behind the camera. Triangles are rasterised all at once, with no
Python loop over them: each (triangle, row) pair gets the span of pixel centres inside the triangle's three edges,
each (triangle, pixel) pair of those spans a perspective-correct depth, and the nearest wins through
`np.minimum.at` on the depth buffer. Triangles reaching behind the near plane are dropped (the body and its frustum
are always in front of the follow camera); both sides of a triangle are drawn.

Pixel (x, y) has its centre at (x + 0.5, y + 0.5), like OpenGL's rasterisation and the OpenCV intrinsics used here;
camera poses are camera-to-world in OpenCV axes (x right, y down, z forward).
"""

from __future__ import annotations

import numpy as np

CANDIDATES_PER_BATCH = 1 << 21
"""Bounding-box pixels of the triangles drawn at once: bounds a batch's memory (~100 MB) whatever their sizes."""


class SoftwareRasterizer:
    """Draws frames of flat-coloured triangles over a checker floor into a (height, width, 3) uint8 image."""

    def __init__(
        self,
        width: int,
        height: int,
        intrinsics: np.ndarray,
        background: tuple[float, float, float],
        z_near: float,
        z_far: float,
    ) -> None:
        """intrinsics: (3, 3) OpenCV pinhole matrix; background: RGB in [0, 1]; z_near, z_far: clip depths, metres."""
        self.width, self.height = int(width), int(height)
        self.k = np.asarray(intrinsics, dtype=np.float64)
        self.background = np.round(np.asarray(background) * 255).astype(np.uint8)
        self.z_near, self.z_far = float(z_near), float(z_far)
        xs, ys = np.meshgrid(np.arange(self.width) + 0.5, np.arange(self.height) + 0.5)
        pixels = np.stack((xs, ys, np.ones_like(xs)), axis=-1).reshape(-1, 3)
        self.rays = pixels @ np.linalg.inv(self.k).T
        """(H * W, 3) camera-space ray of each pixel centre, with z = 1 (so a hit at ray * t is at depth t)."""

    def render(
        self,
        camera_to_world: np.ndarray,
        corners: np.ndarray,
        colors: np.ndarray,
        floor: tuple[np.ndarray, float, float, np.ndarray] | None = None,
    ) -> np.ndarray:
        """One frame.

        Args:
            camera_to_world: (4, 4) OpenCV-axes pose of the camera.
            corners: (N, 3, 3) world positions of the triangles' corners.
            colors: (N, 3) RGB in [0, 1] of the triangles.
            floor: (centre (x, z), half size, tile size, (2, 3) uint8 tile colours) of a checkerboard on y = 0, tile
                (i, j) from the world origin coloured colours[(i + j) % 2]; None for no floor.

        Returns:
            (H, W, 3) uint8 image.
        """
        image = np.broadcast_to(self.background, (self.height * self.width, 3)).copy()
        depth = np.full(self.height * self.width, np.inf)
        if floor is not None:
            self._draw_floor(image, depth, camera_to_world, *floor)
        self._draw_triangles(image, depth, camera_to_world, np.asarray(corners, np.float64), np.asarray(colors))
        return image.reshape(self.height, self.width, 3)

    def _draw_floor(
        self,
        image: np.ndarray,
        depth: np.ndarray,
        camera_to_world: np.ndarray,
        centre: np.ndarray,
        half_size: float,
        tile: float,
        tile_colors: np.ndarray,
    ) -> None:
        """Ray-cast the checkerboard into `image` and `depth` (flat (H * W, ...) buffers)."""
        rotation, eye = camera_to_world[:3, :3], camera_to_world[:3, 3]
        directions = self.rays @ rotation.T  # world direction of each pixel's ray, camera z = 1
        with np.errstate(divide="ignore", invalid="ignore"):
            t = -eye[1] / directions[:, 1]  # depth at which the ray meets y = 0
        hit = eye[None] + t[:, None] * directions
        inside = (
            (t > self.z_near)
            & (t < self.z_far)
            & (np.abs(hit[:, 0] - centre[0]) <= half_size)
            & (np.abs(hit[:, 2] - centre[1]) <= half_size)
        )
        parity = (np.floor(hit[inside, 0] / tile) + np.floor(hit[inside, 2] / tile)).astype(np.int64) % 2
        image[inside] = np.asarray(tile_colors, np.uint8)[parity, :3]
        depth[inside] = t[inside]

    def _draw_triangles(
        self, image: np.ndarray, depth: np.ndarray, camera_to_world: np.ndarray, corners: np.ndarray, colors: np.ndarray
    ) -> None:
        """Rasterise (N, 3, 3) world triangles with (N, 3) colours into `image` and `depth`."""
        rotation, eye = camera_to_world[:3, :3], camera_to_world[:3, 3]
        camera = (corners - eye) @ rotation  # world -> camera: R^T (p - eye), row vectors
        z = camera[..., 2]
        keep = (z > self.z_near).all(axis=1) & (z < self.z_far).any(axis=1)
        camera, z, colors = camera[keep], z[keep], colors[keep]
        screen = camera[..., :2] / z[..., None] * self.k[[0, 1], [0, 1]] + self.k[[0, 1], [2, 2]]  # (N, 3, 2)
        # pixels whose centres can fall inside: x + 0.5 in [min, max]
        low = np.clip(np.ceil(screen.min(axis=1) - 0.5), 0, None).astype(np.int64)
        high = np.minimum(np.floor(screen.max(axis=1) - 0.5), [self.width - 1, self.height - 1]).astype(np.int64)
        size = np.clip(high - low + 1, 0, None)
        area = size[:, 0] * size[:, 1]
        visible = np.flatnonzero(area > 0)
        colors8 = np.round(np.clip(colors, 0, 1) * 255).astype(np.uint8)
        # batches of whole triangles with at most CANDIDATES_PER_BATCH pixels (a bigger triangle is a batch alone)
        batch_of = np.cumsum(area[visible]) // CANDIDATES_PER_BATCH
        for batch in np.unique(batch_of):
            chosen = visible[batch_of == batch]
            self._fill(image, depth, screen[chosen], 1.0 / z[chosen], colors8[chosen], low[chosen], size[chosen])

    def _fill(
        self,
        image: np.ndarray,
        depth: np.ndarray,
        screen: np.ndarray,
        inverse_z: np.ndarray,
        colors: np.ndarray,
        low: np.ndarray,
        size: np.ndarray,
    ) -> None:
        """Draw triangles row by row, keeping the nearest: (M, 3, 2) screen corners, (M, 3) 1/z, (M, 3) uint8
        colours, (M, 2) first pixel and (M, 2) size of their bounding boxes."""
        # Edge functions as planes over the screen: w_i(x, y) = A_i x + B_i y + C_i, twice the signed area of the
        # triangle (pixel, corner i+1, corner i+2), divided by the whole triangle's so that the w_i are barycentrics.
        p, q = np.roll(screen, -1, axis=1), np.roll(screen, -2, axis=1)  # corners i+1 and i+2, (M, 3, 2)
        a = p[..., 1] - q[..., 1]
        b = q[..., 0] - p[..., 0]
        c = p[..., 0] * q[..., 1] - q[..., 0] * p[..., 1]
        total = c.sum(axis=1)  # twice the triangle's signed area
        with np.errstate(divide="ignore", invalid="ignore"):
            planes = np.stack((a, b, c), axis=-1) / total[:, None, None]  # (M, 3 edges, 3 coefficients)
        planes[total == 0] = (0.0, 0.0, -1.0)  # degenerate triangles cover nothing

        depth_plane = (planes * inverse_z[:, :, None]).sum(axis=1)  # 1/z is linear in screen space: (M, 3)

        # 1. Rows: each triangle's rows of its bounding box, with the span of pixel centres inside all three edges.
        row_triangle, row_y = _expand(np.arange(len(size)), low[:, 1], size[:, 1])
        a, b, c = (planes[row_triangle, :, k] for k in range(3))  # (R, 3) each
        rest = b * (row_y + 0.5)[:, None] + c  # w_i = a_i x + rest_i >= 0
        with np.errstate(divide="ignore", invalid="ignore"):
            bound = -rest / a
        left = np.where(a > 0, bound, -np.inf).max(axis=1)
        right = np.where(a < 0, bound, np.inf).min(axis=1)
        right[((a == 0) & (rest < 0)).any(axis=1)] = -np.inf  # an edge parallel to the row, with the row outside
        box_left, box_right = low[row_triangle, 0], low[row_triangle, 0] + size[row_triangle, 0] - 1
        first = np.maximum(np.ceil(np.clip(left, -1.0, self.width + 1.0) - 0.5), box_left).astype(np.int64)
        last = np.minimum(np.floor(np.clip(right, -1.0, self.width + 1.0) - 0.5), box_right).astype(np.int64)
        count = np.clip(last - first + 1, 0, None)

        # 2. Pixels of the spans, their depths, and the nearest per pixel.
        triangle, px = _expand(row_triangle, first, count)
        py = np.repeat(row_y, count)
        plane = depth_plane[triangle]
        z = 1.0 / (plane[:, 0] * (px + 0.5) + plane[:, 1] * (py + 0.5) + plane[:, 2])
        pixel = py * self.width + px
        np.minimum.at(depth, pixel, z)
        nearest = z <= depth[pixel]
        image[pixel[nearest]] = colors[triangle[nearest]]


def _expand(owner: np.ndarray, start: np.ndarray, count: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Runs of consecutive integers: `count[i]` values from `start[i]`, each tagged with `owner[i]`; flat (sum,)."""
    tags = np.repeat(owner, count)
    values = np.repeat(start - (np.cumsum(count) - count), count) + np.arange(len(tags))
    return tags, values

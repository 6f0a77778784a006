"""Third-person view of a generated motion: the posed body on a checker floor, seen by a smoothed follow camera,
with the head camera's frustum (from its real intrinsics) and the trail of past head-camera positions.

Two drawing paths give the same frames (tests/test_render.py compares them). OpenGL, when it can be loaded, renders
offscreen with pyrender (PYOPENGL_PLATFORM=egl on Linux, the native context on macOS) and follows EgoWorld's recipe
for speed
(`egotwin.world.render`): one renderer and one scene reused for every frame and every call; the floor is a static
primitive uploaded once and only moved (snapped to whole checker periods, so the pattern stays fixed in the world);
everything that moves -- body, frustum and trail -- is one primitive whose vertex buffer is rewritten each frame with
glBufferSubData. Body vertices come from `BodyModel.pose` for all frames at once, so the real SMPL-X body (with its
pose correctives) renders the same way as the built-in mannequin.

Shading is computed here, per face on the CPU (ambient + a fixed key light from above + a headlight on the follow
camera, Lambertian), and the frame is drawn with pyrender's unlit FLAT shader: on Mesa's software rasteriser the
physically based shader costs about three times as much CPU per frame, most of it on the floor's pixels.
Where OpenGL cannot be loaded (no system EGL / Mesa), a numpy z-buffer rasteriser draws the same triangles
(`egotwin.render.raster`); $EGOTWIN_RENDERER=software or =opengl forces one. pyrender and PyOpenGL are imported only
by the OpenGL path, so importing this module needs neither.
"""

from __future__ import annotations

import logging
import math
import os
import threading
from collections.abc import Callable

import numpy as np
import torch

from egotwin.body.body_model import BodyModel, load_body_model
from egotwin.body.head_camera import HeadCameraRig, opencv_to_opengl
from egotwin.body.skeleton import HEAD, PELVIS
from egotwin.motion.motion import Motion
from egotwin.render.geometry import (
    TUBE_CORNERS,
    checker_floor,
    follow_camera_poses,
    frustum_corners,
    frustum_segments,
    tube_triangles,
)
from egotwin.render.raster import SoftwareRasterizer

logger = logging.getLogger(__name__)

BACKGROUND = (0.86, 0.9, 0.95)
FLOOR_COLORS = ((214, 214, 208, 255), (172, 174, 180, 255))
FLOOR_TILE = 0.5  # metres
FLOOR_HALF_SIZE = 15.0  # metres around the followed person
FRUSTUM_COLOR = (0.96, 0.47, 0.08)
TRAIL_COLOR = (0.12, 0.43, 0.9)
FRUSTUM_DEPTH = 0.45  # metres from the eye to the far rectangle
FRUSTUM_WIDTH_PX = 1.6  # line widths on screen, at the distance of the followed person
TRAIL_WIDTH_PX = 2.2
AMBIENT, KEY, HEADLIGHT = 0.45, 0.35, 0.4  # light weights; a face lit by all three saturates a little
KEY_DIRECTION = np.array([0.3, 1.0, 0.45]) / np.linalg.norm([0.3, 1.0, 0.45])  # towards the key light
Z_NEAR, Z_FAR = 0.05, 60.0
FOLLOW_DISTANCE = 3.4  # metres behind the person, horizontally
FOLLOW_ELEVATION_DEG = 22.0
RENDERER_ENV = "EGOTWIN_RENDERER"
"""'opengl' or 'software' forces a drawing path; unset, OpenGL is tried and the software path used if it fails."""


def infer_image_size(intrinsics: np.ndarray) -> tuple[int, int]:
    """(width, height) of the image of a pinhole K whose principal point is the image centre, as in
    `HeadCameraRig.intrinsics`."""
    return int(round(2 * intrinsics[0, 2])), int(round(2 * intrinsics[1, 2]))


def check_intrinsics(intrinsics: torch.Tensor | np.ndarray) -> np.ndarray:
    """(3, 3) float64 numpy K, or ValueError."""
    k = np.asarray(intrinsics.detach().cpu() if isinstance(intrinsics, torch.Tensor) else intrinsics, dtype=np.float64)
    if k.shape != (3, 3) or not np.isfinite(k).all() or k[0, 0] <= 0 or k[1, 1] <= 0 or k[0, 2] <= 0 or k[1, 2] <= 0:
        raise ValueError(f"intrinsics must be a finite (3, 3) pinhole matrix with positive fx, fy, cx, cy; got\n{k}")
    return k


def shade(albedo: np.ndarray, normals: np.ndarray, view_forward: np.ndarray) -> np.ndarray:
    """Lit colours (N, 3) of surfaces with albedo (N, 3) in [0, 1] and unit normals (N, 3), seen by a camera looking
    along `view_forward` (3,) that carries the headlight."""
    light = (
        AMBIENT
        + KEY * np.clip(normals @ KEY_DIRECTION, 0, None)
        + HEADLIGHT * np.clip(-normals @ view_forward, 0, None)
    )
    return np.clip(albedo * light[:, None], 0.0, 1.0)


class _BodyCorners:
    """A body's mesh as flat-shaded triangle corners: which vertex each corner is, and the corners' albedo."""

    def __init__(self, body: BodyModel) -> None:
        self.source = body
        self.body = body if body.vertices.device.type == "cpu" else body.to("cpu")  # posed on the CPU, next to GL
        self.faces = body.faces.cpu().numpy()
        self.albedo = np.repeat(body.vertex_colors.cpu().numpy()[self.faces[:, 0], :3] / 255.0, 3, axis=0)

    def positions_normals(self, vertices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(V, 3) posed vertices -> corner positions and face normals, (3F, 3) each."""
        triangles = vertices[self.faces]
        normals = np.cross(triangles[:, 1] - triangles[:, 0], triangles[:, 2] - triangles[:, 0])
        normals /= np.maximum(np.sqrt((normals**2).sum(-1, keepdims=True)), 1e-12)
        return triangles.reshape(-1, 3), np.repeat(normals, 3, axis=0)


class _OpenGLCanvas:
    """pyrender's offscreen renderer with the floor and the follow camera in a reused scene; the moving primitive's
    vertex buffer is rewritten for each frame. Raises whatever pyrender raises when OpenGL cannot be loaded."""

    name = "opengl"

    def __init__(self, width: int, height: int, focal: float) -> None:
        import pyrender

        from egotwin.world.render import OrderedScene, pyrender_mesh

        self.renderer = pyrender.OffscreenRenderer(width, height)
        scene = OrderedScene(ambient_light=np.zeros(3), bg_color=np.array([*BACKGROUND, 1.0]))
        self.floor_node = scene.add(pyrender_mesh(checker_floor(FLOOR_HALF_SIZE, FLOOR_TILE, FLOOR_COLORS)))
        self.camera_node = scene.add(
            pyrender.IntrinsicsCamera(focal, focal, width / 2, height / 2, znear=Z_NEAR, zfar=Z_FAR)
        )
        self.scene = scene
        self._dynamic_node = None
        self._release_context()

    def close(self) -> None:
        """Free the GL context."""
        from egotwin.world.render import delete_offscreen_renderer

        self._acquire_context()
        delete_offscreen_renderer(self.renderer)

    def _acquire_context(self) -> None:
        """Make the GL context current in the calling thread. pyrender's EGL platform never releases its context
        and binds the OpenGL API (per-thread EGL state) only in the thread that created it, so a context used from
        a second thread (a Gradio worker) needs both done here."""
        platform = self.renderer._platform
        if hasattr(platform, "_egl_display"):
            from OpenGL.EGL import EGL_OPENGL_API, eglBindAPI

            eglBindAPI(EGL_OPENGL_API)
        platform.make_current()

    def _release_context(self) -> None:
        """Detach the GL context from the calling thread, so that another thread may make it current."""
        platform = self.renderer._platform
        if hasattr(platform, "_egl_display"):
            from OpenGL.EGL import EGL_NO_CONTEXT, EGL_NO_SURFACE, eglMakeCurrent

            eglMakeCurrent(platform._egl_display, EGL_NO_SURFACE, EGL_NO_SURFACE, EGL_NO_CONTEXT)
        else:
            platform.make_uncurrent()

    def draw(
        self,
        frames: np.ndarray,
        frame_data: Callable[[int], np.ndarray],
        floor_centres: np.ndarray,
        views: np.ndarray,
        on_frame: Callable[[int, np.ndarray], None] | None,
    ) -> None:
        """Fill `frames` (T, H, W, 3): frame i's triangles are `frame_data(i)` ((3N, 7) corners: position, RGBA), its
        floor centred at `floor_centres[i]` (x, z), its camera `views[i]` (camera-to-world, OpenCV axes)."""
        import pyrender

        first = frame_data(0)
        primitive = pyrender.Primitive(
            positions=first[:, :3],
            color_0=first[:, 3:],
            material=pyrender.MetallicRoughnessMaterial(baseColorFactor=[1.0, 1.0, 1.0, 1.0], alphaMode="OPAQUE"),
            mode=pyrender.constants.GLTF.TRIANGLES,
        )
        if self._dynamic_node is not None:
            self.scene.remove_node(self._dynamic_node)
        self._dynamic_node = self.scene.add(pyrender.Mesh([primitive]))
        gl_views = opencv_to_opengl(torch.from_numpy(views)).numpy()
        self._acquire_context()
        try:
            for i in range(len(frames)):
                if i > 0:
                    self._upload(primitive, frame_data(i))
                floor = np.eye(4)
                floor[[0, 2], 3] = floor_centres[i]
                self.scene.set_pose(self.floor_node, floor)
                self.scene.set_pose(self.camera_node, gl_views[i])
                frames[i] = self.renderer.render(self.scene, flags=pyrender.RenderFlags.FLAT)[0]
                if on_frame is not None:
                    on_frame(i, frames[i])
        finally:
            self._release_context()

    @staticmethod
    def _upload(primitive, data: np.ndarray) -> None:
        """Overwrite the primitive's vertex buffer."""
        from OpenGL.GL import GL_ARRAY_BUFFER, glBindBuffer, glBufferSubData

        glBindBuffer(GL_ARRAY_BUFFER, primitive._buffers[0])
        glBufferSubData(GL_ARRAY_BUFFER, 0, data.nbytes, np.ascontiguousarray(data))
        glBindBuffer(GL_ARRAY_BUFFER, 0)


class _SoftwareCanvas:
    """The same frames drawn by `SoftwareRasterizer`, with no system library."""

    name = "software"

    def __init__(self, width: int, height: int, focal: float) -> None:
        intrinsics = np.array([[focal, 0, width / 2], [0, focal, height / 2], [0, 0, 1.0]])
        self.rasterizer = SoftwareRasterizer(width, height, intrinsics, BACKGROUND, Z_NEAR, Z_FAR)
        self.floor_colors = np.asarray(FLOOR_COLORS, np.uint8)
        self.floor_half_size = round(FLOOR_HALF_SIZE / FLOOR_TILE) * FLOOR_TILE  # whole tiles, as checker_floor

    def close(self) -> None:
        """Nothing to free."""

    def draw(
        self,
        frames: np.ndarray,
        frame_data: Callable[[int], np.ndarray],
        floor_centres: np.ndarray,
        views: np.ndarray,
        on_frame: Callable[[int, np.ndarray], None] | None,
    ) -> None:
        """As `_OpenGLCanvas.draw`."""
        for i in range(len(frames)):
            data = frame_data(i)
            corners = data[:, :3].reshape(-1, 3, 3)
            colors = data[:, 3:6].reshape(-1, 3, 3).mean(axis=1)  # flat: the corners of a face share a colour
            floor = (floor_centres[i], self.floor_half_size, FLOOR_TILE, self.floor_colors)
            frames[i] = self.rasterizer.render(views[i], corners, colors, floor)
            if on_frame is not None:
                on_frame(i, frames[i])


def _open_canvas(width: int, height: int, focal: float, backend: str | None) -> _OpenGLCanvas | _SoftwareCanvas:
    """The drawing path: `backend` ('opengl', 'software'), else $EGOTWIN_RENDERER, else OpenGL when it loads."""
    backend = backend or os.environ.get(RENDERER_ENV) or None
    if backend not in (None, "opengl", "software"):
        raise ValueError(f"renderer must be 'opengl' or 'software' (${RENDERER_ENV}), got {backend!r}")
    if backend == "software":
        return _SoftwareCanvas(width, height, focal)
    try:
        return _OpenGLCanvas(width, height, focal)
    except Exception as error:  # ImportError, RuntimeError, ctypes errors...: whatever a missing libEGL / libGL raises
        if backend == "opengl":
            raise
        logger.warning("OpenGL is not available (%s); the body view uses the software renderer", error)
        return _SoftwareCanvas(width, height, focal)


class BodyViewRenderer:
    """Renders the third-person body view. Create once and call `render` for every motion, from any thread (calls are
    serialised, and each one takes the GL context and gives it back)."""

    def __init__(self, size: tuple[int, int] = (320, 320), fov_deg: float = 50.0, backend: str | None = None) -> None:
        """size: (width, height) of the frames; fov_deg: vertical field of view of the follow camera; backend:
        'opengl' or 'software' (None: $EGOTWIN_RENDERER, else OpenGL when it loads, else software)."""
        self.width, self.height = int(size[0]), int(size[1])
        if self.width < 16 or self.height < 16:
            raise ValueError(f"size must be at least 16 x 16 pixels, got {size}")
        focal = 0.5 * self.height / math.tan(math.radians(fov_deg) / 2)
        self.intrinsics = np.array([[focal, 0, self.width / 2], [0, focal, self.height / 2], [0, 0, 1.0]])
        """(3, 3) pinhole matrix of the follow camera (OpenCV convention, like `HeadCameraRig.intrinsics`)."""
        # Metres per pixel at the followed person, so that lines keep their width in pixels at any frame size.
        self.metres_per_pixel = FOLLOW_DISTANCE / math.cos(math.radians(FOLLOW_ELEVATION_DEG)) / focal
        self.canvas = _open_canvas(self.width, self.height, focal, backend)
        self._lock = threading.Lock()
        self._default_body: BodyModel | None = None
        self._corners: _BodyCorners | None = None

    @property
    def backend(self) -> str:
        """'opengl' or 'software': the path that draws the frames."""
        return self.canvas.name

    def close(self) -> None:
        """Free the GL context (if any)."""
        with self._lock:
            self.canvas.close()

    def follow_camera(self, motion: Motion) -> np.ndarray:
        """(T, 4, 4) OpenCV-axes poses of the follow camera for `motion` (see `geometry.follow_camera_poses`)."""
        rotations, joints = motion.forward_kinematics()
        rotations, joints = rotations.detach().cpu().double().numpy(), joints.detach().cpu().double().numpy()
        look_height = 0.5 * (joints[:, PELVIS, 1] + joints[:, HEAD, 1])
        return follow_camera_poses(
            joints[:, PELVIS],
            rotations[:, PELVIS, :, 2],
            look_height,
            motion.fps,
            distance=FOLLOW_DISTANCE,
            elevation_deg=FOLLOW_ELEVATION_DEG,
        )

    def render(
        self,
        motion: Motion,
        intrinsics: torch.Tensor | np.ndarray,
        body: BodyModel | None = None,
        rig: HeadCameraRig | None = None,
        image_size: tuple[int, int] | None = None,
        on_frame: Callable[[int, np.ndarray], None] | None = None,
    ) -> np.ndarray:
        """Render every frame of `motion`.

        Args:
            motion: T frames, any frame rate; the body is posed with its rotations and moved so that its pelvis is
                the motion's pelvis (the body's skeleton may differ slightly from `motion.rest_joints`).
            intrinsics: (3, 3) K of the head camera's images, for the frustum.
            body: the mesh to pose; None: the built-in mannequin.
            rig: the head camera on the head; None: `HeadCameraRig()`, the one the data and model use.
            image_size: (width, height) of the head camera's images; None: twice the principal point of `intrinsics`.
            on_frame: called with (index, frame) as each frame is done, e.g. to hand it to a video encoder while the
                next one renders.

        Returns:
            (T, H, W, 3) uint8 frames.
        """
        if not isinstance(motion, Motion):
            raise ValueError(f"motion must be an egotwin Motion, got {type(motion).__name__}")
        k = check_intrinsics(intrinsics)
        image_size = infer_image_size(k) if image_size is None else image_size
        rig = HeadCameraRig() if rig is None else rig
        with self._lock:
            body = self._body(body)
            motion = motion.to(device="cpu", dtype=torch.float64)
            num_frames = motion.num_frames

            # 1. Geometry of every frame: posed vertices, head cameras, frustum tubes, the whole trail, follow camera.
            with torch.no_grad():
                pelvis_shift = motion.rest_joints[0] - body.rest_joints[0].to(motion.trans)
                local = motion.local_rotations.to(body.vertices.dtype)
                vertices = body.pose(local, (motion.trans + pelvis_shift).to(local)).numpy()
                cameras = rig.camera_poses(*motion.head_pose()).numpy()
            segments = frustum_segments(cameras, frustum_corners(cameras, k, image_size, FRUSTUM_DEPTH))
            frustum_pos, frustum_nrm = tube_triangles(
                segments.reshape(-1, 2, 3), FRUSTUM_WIDTH_PX / 2 * self.metres_per_pixel
            )
            frustum_pos = frustum_pos.reshape(num_frames, -1, 3)
            frustum_nrm = frustum_nrm.reshape(num_frames, -1, 3)
            centres = cameras[:, :3, 3]
            trail_pos, trail_nrm = tube_triangles(
                np.stack((centres[:-1], centres[1:]), axis=1), TRAIL_WIDTH_PX / 2 * self.metres_per_pixel
            )
            views = self.follow_camera(motion)

            # 2. The moving geometry: body corners, then the frustum tubes, then the trail tubes.
            body_end = len(self._corners.albedo)
            frustum_end = body_end + frustum_pos.shape[1]
            albedo = np.concatenate(
                (
                    self._corners.albedo,
                    np.tile(FRUSTUM_COLOR, (frustum_pos.shape[1], 1)),
                    np.tile(TRAIL_COLOR, (len(trail_pos), 1)),
                )
            )
            data = np.ones((len(albedo), 7), np.float32)  # position, RGBA: pyrender's buffer layout for this primitive

            def frame_data(i: int) -> np.ndarray:
                body_pos, body_nrm = self._corners.positions_normals(vertices[i])
                data[:body_end, :3] = body_pos
                data[body_end:frustum_end, :3] = frustum_pos[i]
                # The trail so far: segments from frame i on collapse onto the current centre and draw nothing.
                data[frustum_end:, :3] = trail_pos
                data[frustum_end + TUBE_CORNERS * i :, :3] = centres[i]
                normals = np.concatenate((body_nrm, frustum_nrm[i], trail_nrm))
                data[:, 3:6] = shade(albedo, normals, views[i, :3, 2])
                return data

            # 3. Frames; the floor moves with the camera in whole checker periods, so its pattern stays put.
            frames = np.empty((num_frames, self.height, self.width, 3), np.uint8)
            period = 2 * FLOOR_TILE
            floor_centres = np.round(views[:, [0, 2], 3] / period) * period
            self.canvas.draw(frames, frame_data, floor_centres, views, on_frame)
            return frames

    def _body(self, body: BodyModel | None) -> BodyModel:
        """The body to draw, on the CPU (loading the default once), with its corner table prepared."""
        if body is None:
            if self._default_body is None:
                self._default_body = load_body_model()
            body = self._default_body
        if not isinstance(body, BodyModel):
            raise ValueError(f"body must be an egotwin BodyModel or None, got {type(body).__name__}")
        if self._corners is None or self._corners.source is not body:
            self._corners = _BodyCorners(body)
        return self._corners.body


_shared: dict[tuple[int, int], BodyViewRenderer] = {}
_shared_lock = threading.Lock()


def shared_renderer(size: tuple[int, int] = (320, 320)) -> BodyViewRenderer:
    """One `BodyViewRenderer` per frame size for the whole process (a GL context and its shaders cost ~0.1 s), on the
    path `_open_canvas` picks."""
    key = (int(size[0]), int(size[1]))
    with _shared_lock:
        if key not in _shared:
            _shared[key] = BodyViewRenderer(key)
        return _shared[key]


def render_body_view(
    motion: Motion,
    intrinsics: torch.Tensor | np.ndarray,
    body: BodyModel | None = None,
    size: tuple[int, int] | int = (320, 320),
    rig: HeadCameraRig | None = None,
    image_size: tuple[int, int] | None = None,
) -> np.ndarray:
    """(T, H, W, 3) uint8 third-person frames of `motion`, one per motion frame (16 fps for EgoTwin's motion).

    See `BodyViewRenderer.render` for the arguments; `size` is (width, height) or one number for a square.
    """
    size = (size, size) if isinstance(size, int) else size
    return shared_renderer(size).render(motion, intrinsics, body=body, rig=rig, image_size=image_size)

"""Offscreen egocentric rendering of EgoWorld with pyrender: one renderer and one scene per apartment.

Speed comes from drawing two primitives per frame, since pyrender's cost is per primitive (uniform and light
binding through PyOpenGL), not per triangle at 64x64:
- a static primitive: floors, walls, ceilings and fixed furniture of the apartment, uploaded once;
- a dynamic primitive: everything that moves (the body's parts, door panels, small objects that can be carried),
  kept as rigid pieces in their own frames; each frame the pieces' poses are applied on the CPU (one gather and
  one matrix product) and written into the primitive's vertex buffer with glBufferSubData.
The body is a rigid mannequin: the body model's mesh is split once into one piece per joint (by `vertex_joint`),
each in its joint's rest frame. The head and neck pieces are left out of the egocentric view so the camera is not
inside geometry; arms, hands and legs show whenever they come into view.

Hand visibility (the HandScore ground truth): a hand counts as visible in a frame when at least `MIN_HAND_PIXELS`
of its vertices project inside the image, in front of the camera, and are not occluded, i.e. the rendered depth at
their pixel is no nearer than the vertex itself (within `DEPTH_TOLERANCE`).
"""

from __future__ import annotations

import numpy as np
import pyrender
import torch
import trimesh

from egotwin.body.head_camera import HeadCameraRig, opencv_to_opengl, project
from egotwin.body.skeleton import JOINT_INDEX, LEFT_WRIST, RIGHT_WRIST
from egotwin.world import textures
from egotwin.world.apartment import Apartment

HIDDEN_IN_EGO_VIEW = (JOINT_INDEX["head"], JOINT_INDEX["neck"])
MIN_HAND_PIXELS = 2
DEPTH_TOLERANCE = 0.03
HAND_SAMPLES = 64  # hand vertices tested per frame
Z_NEAR, Z_FAR = 0.03, 30.0


def pyrender_mesh(mesh: trimesh.Trimesh) -> pyrender.Mesh:
    """Flat-shaded opaque pyrender mesh from a trimesh with face (or vertex) colours."""
    faces = mesh.faces
    positions = mesh.vertices[faces].reshape(-1, 3).astype(np.float32)
    normals = np.repeat(mesh.face_normals, 3, axis=0).astype(np.float32)
    if mesh.visual.kind == "vertex":
        colors = mesh.visual.vertex_colors[faces].reshape(-1, 4)
    else:
        colors = np.repeat(mesh.visual.face_colors, 3, axis=0)
    material = pyrender.MetallicRoughnessMaterial(
        baseColorFactor=[1.0, 1.0, 1.0, 1.0], metallicFactor=0.0, roughnessFactor=0.9, alphaMode="OPAQUE"
    )
    primitive = pyrender.Primitive(
        positions=positions,
        normals=normals,
        color_0=colors.astype(np.float32) / 255.0,
        material=material,
        mode=pyrender.constants.GLTF.TRIANGLES,
    )
    return pyrender.Mesh([primitive])


class OrderedScene(pyrender.Scene):
    """A pyrender Scene that hands its meshes and lights to the renderer in the order they were added.

    pyrender keeps nodes in sets of objects hashed by id, which iterate in an order set by memory addresses, i.e. by
    whatever the process allocated before. The shader sums the point lights in that order (float addition is not
    associative) and meshes at equal distance are drawn in that order, so the same scene could differ by one level
    in a few pixels depending on what the process rendered earlier -- and x264 spreads such a difference over the
    rest of the clip. Insertion order makes a frame a function of the scene alone.
    """

    def __init__(self, **kwargs) -> None:
        self._order: dict[pyrender.Node, int] = {}  # before Scene.__init__, which may add nodes
        super().__init__(**kwargs)

    def add_node(self, node: pyrender.Node, parent_node: pyrender.Node | None = None) -> None:
        self._order.setdefault(node, len(self._order))
        super().add_node(node, parent_node)

    @property
    def mesh_nodes(self) -> list[pyrender.Node]:
        return sorted(super().mesh_nodes, key=self._order.__getitem__)

    @property
    def light_nodes(self) -> list[pyrender.Node]:
        return sorted(super().light_nodes, key=self._order.__getitem__)


class BodyParts:
    """A body model's mesh split into rigid per-joint parts (vertices in each joint's rest frame)."""

    def __init__(self, body) -> None:
        vertices = np.asarray(body.vertices, dtype=np.float64)
        faces = np.asarray(body.faces)
        vertex_joint = np.asarray(body.vertex_joint)
        colors = np.asarray(body.vertex_colors)
        rest = np.asarray(body.rest_joints, dtype=np.float64)
        self.rest_joints = rest
        face_joint = vertex_joint[faces[:, 0]]
        self.meshes: dict[int, trimesh.Trimesh] = {}
        for joint in np.unique(face_joint):
            part_faces = faces[face_joint == joint]
            used, inverse = np.unique(part_faces, return_inverse=True)
            part = trimesh.Trimesh(vertices[used] - rest[joint], inverse.reshape(-1, 3), process=False)
            part.visual.vertex_colors = colors[used]
            self.meshes[int(joint)] = part
        rng = np.random.default_rng(0)
        self.hand_points: dict[int, np.ndarray] = {}
        for wrist in (LEFT_WRIST, RIGHT_WRIST):
            points = vertices[vertex_joint == wrist] - rest[wrist]
            if len(points) == 0:
                raise ValueError(f"body model has no vertices on joint {wrist}; cannot decide hand visibility")
            pick = rng.choice(len(points), size=min(HAND_SAMPLES, len(points)), replace=False)
            self.hand_points[wrist] = points[np.sort(pick)]


class _RigidPieces:
    """Rigid meshes packed into one vertex array: local positions, normals, (texture coordinates,) colours per face
    corner, and which piece each corner belongs to."""

    def __init__(
        self,
        meshes: list[trimesh.Trimesh],
        uvs: list[np.ndarray] | None = None,
        color_gain: float = 1.0,
        material: pyrender.Material | None = None,
    ) -> None:
        """`uvs`: (3F, 2) texture coordinates of each mesh's face corners, sampling `material`'s base colour texture;
        `color_gain` scales the colours (see egotwin/world/textures.py)."""
        local, colors, self.bounds = [], [], []
        start = 0
        for mesh in meshes:
            # positions and normals side by side, so that one matrix product per piece moves both
            local.append(np.hstack((mesh.vertices[mesh.faces].reshape(-1, 3), np.repeat(mesh.face_normals, 3, axis=0))))
            if mesh.visual.kind == "vertex":
                colors.append(mesh.visual.vertex_colors[mesh.faces].reshape(-1, 4))
            else:
                colors.append(np.repeat(mesh.visual.face_colors, 3, axis=0))
            self.bounds.append((start, start + 3 * len(mesh.faces)))
            start += 3 * len(mesh.faces)
        self.local = np.concatenate(local).astype(np.float32)
        # pyrender's VBO layout: position, normal, texture coordinates (when there are any), colour
        self.textured = uvs is not None
        self.data = np.empty((start, 12 if self.textured else 10), np.float32)
        self.data[:, -4:] = np.concatenate(colors).astype(np.float32) / 255.0
        self.data[:, -4:-1] *= color_gain
        if self.textured:
            self.data[:, 6:8] = np.concatenate(uvs)
        self.material = material

    def vertex_data(self, poses: np.ndarray) -> np.ndarray:
        """(P, 4, 4) piece poses -> (V, 10 or 12) float32 interleaved position, normal, (uv,) colour."""
        block = np.zeros((6, 6), np.float32)
        for (a, b), pose in zip(self.bounds, poses):
            block[:3, :3] = block[3:, 3:] = pose[:3, :3].T
            self.data[a:b, :6] = self.local[a:b] @ block
            self.data[a:b, :3] += pose[:3, 3]
        return self.data

    def primitive(self, poses: np.ndarray) -> pyrender.Primitive:
        data = self.vertex_data(poses)
        material = self.material or pyrender.MetallicRoughnessMaterial(
            baseColorFactor=[1.0, 1.0, 1.0, 1.0], metallicFactor=0.0, roughnessFactor=0.9, alphaMode="OPAQUE"
        )
        return pyrender.Primitive(
            positions=data[:, :3],
            normals=data[:, 3:6],
            texcoord_0=data[:, 6:8] if self.textured else None,
            color_0=data[:, -4:],
            material=material,
            mode=pyrender.constants.GLTF.TRIANGLES,
        )


def delete_offscreen_renderer(renderer: pyrender.OffscreenRenderer) -> None:
    """Free an offscreen renderer's GL objects and context, leaving the EGL display initialised.

    pyrender's own `delete()` calls eglTerminate on the display, which every EGL context of the process shares: it
    would silently kill the other live renderers (the demo's body view after an EgoWorld clip was rendered in the
    same process fails with EGL_BAD_CONTEXT). Other platforms (OSMesa, pyglet) keep pyrender's own `delete()`."""
    platform = renderer._platform
    if platform is None:
        return
    if not hasattr(platform, "_egl_display"):
        renderer.delete()
        return
    from OpenGL.EGL import EGL_NO_CONTEXT, EGL_NO_SURFACE, eglDestroyContext, eglMakeCurrent

    platform.make_current()
    renderer._renderer.delete()
    eglMakeCurrent(platform._egl_display, EGL_NO_SURFACE, EGL_NO_SURFACE, EGL_NO_CONTEXT)
    eglDestroyContext(platform._egl_display, platform._egl_context)
    # the platform's __del__ would terminate the display: leave it nothing to act on
    platform._egl_context = platform._egl_display = None
    renderer._renderer = renderer._platform = None


class EgoRenderer:
    """Renders egocentric frames of an apartment and a posed mannequin from the head camera."""

    def __init__(
        self, body, width: int = 64, height: int = 64, rig: HeadCameraRig = HeadCameraRig(), textured: bool = False
    ) -> None:
        """`textured`: draw the apartments with procedural textures and posters (egotwin/world/textures.py)."""
        self.width, self.height, self.rig, self.textured = width, height, rig, textured
        self.parts = BodyParts(body)
        self.body_joints = [j for j in sorted(self.parts.meshes) if j not in HIDDEN_IN_EGO_VIEW]
        self.intrinsics = rig.intrinsics(width, height, dtype=torch.float64)
        k = self.intrinsics.numpy()
        self.camera = pyrender.IntrinsicsCamera(k[0, 0], k[1, 1], k[0, 2], k[1, 2], znear=Z_NEAR, zfar=Z_FAR)
        self.renderer = pyrender.OffscreenRenderer(width, height)
        self.apartment: Apartment | None = None

    def close(self) -> None:
        delete_offscreen_renderer(self.renderer)

    def set_apartment(self, apartment: Apartment) -> None:
        """Build the scene of an apartment (once per apartment; clips in it only move things)."""
        ambient = next(light["ambient"] for light in apartment.lights if "ambient" in light)
        scene = OrderedScene(ambient_light=np.full(3, ambient), bg_color=np.zeros(4))
        fixed = [o for o in apartment.objects if not o.movable]
        if self.textured:
            scene.add(pyrender.Mesh(textures.static_primitives(apartment, fixed)))
        else:
            static = [apartment.shell] + [o.mesh.copy().apply_transform(o.pose) for o in fixed]
            scene.add(pyrender_mesh(trimesh.util.concatenate(static)))
        for light in apartment.lights:
            if "position" in light:
                pose = np.eye(4)
                pose[:3, 3] = light["position"]
                scene.add(pyrender.PointLight(color=light["color"], intensity=light["intensity"]), pose=pose)
        self.apartment = apartment
        self.movable = [o for o in apartment.objects if o.movable]
        meshes = (
            [self.parts.meshes[j] for j in self.body_joints]
            + [d.mesh for d in apartment.doors]
            + [o.mesh for o in self.movable]
        )
        if self.textured:
            door_cells, object_cells = textures.moving_cells(apartment, self.movable)
            cells = ["flat"] * len(self.body_joints) + door_cells + object_cells
            uvs = [textures.atlas_uv(mesh, cell) for mesh, cell in zip(meshes, cells)]
            self.pieces = _RigidPieces(meshes, uvs, textures.COLOR_GAIN, textures.dynamic_material(apartment))
        else:
            self.pieces = _RigidPieces(meshes)
        self.dynamic = self.pieces.primitive(
            self._poses(np.tile(np.eye(3), (22, 1, 1)), self.parts.rest_joints, np.zeros(len(apartment.doors)), {}, 0)
        )
        scene.add(pyrender.Mesh([self.dynamic]))
        self.camera_node = scene.add(self.camera)
        self.scene = scene

    def _poses(
        self,
        rotations: np.ndarray,
        joints: np.ndarray,
        door_angles: np.ndarray,
        object_poses: dict[str, np.ndarray],
        frame: int,
    ) -> np.ndarray:
        """(P, 4, 4) poses of the dynamic pieces at one frame: body parts, doors, movable objects."""
        poses = np.tile(np.eye(4), (len(self.body_joints) + len(self.apartment.doors) + len(self.movable), 1, 1))
        n = len(self.body_joints)
        poses[:n, :3, :3] = rotations[self.body_joints]
        poses[:n, :3, 3] = joints[self.body_joints]
        for i, (door, angle) in enumerate(zip(self.apartment.doors, door_angles)):
            poses[n + i] = door.panel_pose(float(angle))
        n += len(self.apartment.doors)
        for i, obj in enumerate(self.movable):
            poses[n + i] = object_poses[obj.name][frame] if obj.name in object_poses else obj.pose
        return poses

    def _upload(self, data: np.ndarray) -> None:
        """Write new vertex data into the dynamic primitive's buffer (created by pyrender at the first render)."""
        from OpenGL.GL import GL_ARRAY_BUFFER, glBindBuffer, glBufferSubData

        glBindBuffer(GL_ARRAY_BUFFER, self.dynamic._buffers[0])
        glBufferSubData(GL_ARRAY_BUFFER, 0, data.nbytes, np.ascontiguousarray(data))
        glBindBuffer(GL_ARRAY_BUFFER, 0)

    def render(
        self,
        global_rotations: np.ndarray,
        joints: np.ndarray,
        camera_to_world: np.ndarray,
        door_angles: np.ndarray,
        object_poses: dict[str, np.ndarray] | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Render N frames.

        Args:
            global_rotations: (N, 22, 3, 3) world joint rotations; joints: (N, 22, 3) world joint positions.
            camera_to_world: (N, 4, 4) OpenCV-axes camera poses.
            door_angles: (N, num_doors) opening angles in radians.
            object_poses: name -> (N, 4, 4) poses of movable objects that move (are carried); others stay put.

        Returns:
            frames (N, H, W, 3) uint8, depth (N, H, W) float32 (0 = background), hand_visible (N, 2) bool (left, right).
        """
        if self.apartment is None:
            raise RuntimeError("call set_apartment() before render()")
        n = len(camera_to_world)
        frames = np.empty((n, self.height, self.width, 3), np.uint8)
        depths = np.empty((n, self.height, self.width), np.float32)
        gl_poses = opencv_to_opengl(torch.as_tensor(camera_to_world, dtype=torch.float64)).numpy()
        object_poses = object_poses or {}
        for i in range(n):
            data = self.pieces.vertex_data(self._poses(global_rotations[i], joints[i], door_angles[i], object_poses, i))
            if self.dynamic._vaid is None:  # not yet in the GL context: pyrender uploads these arrays itself
                self.dynamic.positions, self.dynamic.normals = data[:, :3], data[:, 3:6]
            else:
                self.renderer._platform.make_current()
                self._upload(data)
            self.scene.set_pose(self.camera_node, gl_poses[i])
            frames[i], depths[i] = self.renderer.render(self.scene)
        hand_visible = self.hand_visibility(global_rotations, joints, camera_to_world, depths)
        return frames, depths, hand_visible

    def hand_visibility(
        self, global_rotations: np.ndarray, joints: np.ndarray, camera_to_world: np.ndarray, depths: np.ndarray
    ) -> np.ndarray:
        """(N, 2) bool: is each hand (left, right) seen in each frame (see the module docstring)."""
        n = len(camera_to_world)
        visible = np.zeros((n, 2), bool)
        cams = torch.as_tensor(camera_to_world, dtype=torch.float64)
        for side, wrist in enumerate((LEFT_WRIST, RIGHT_WRIST)):
            local = self.parts.hand_points[wrist]
            world = np.einsum("nij,pj->npi", global_rotations[:, wrist], local) + joints[:, wrist, None]
            pixels, depth = project(torch.as_tensor(world), cams, self.intrinsics)
            pixels, depth = pixels.numpy(), depth.numpy()
            col, row = np.floor(pixels[..., 0]).astype(int), np.floor(pixels[..., 1]).astype(int)
            inside = (depth > Z_NEAR) & (col >= 0) & (col < self.width) & (row >= 0) & (row < self.height)
            frame = np.broadcast_to(np.arange(n)[:, None], col.shape)
            rendered = depths[frame, row.clip(0, self.height - 1), col.clip(0, self.width - 1)]
            seen = inside & (rendered > 0) & (rendered >= depth - DEPTH_TOLERANCE)
            visible[:, side] = seen.sum(1) >= MIN_HAND_PIXELS
        return visible

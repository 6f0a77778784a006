"""Animated glTF 2.0 binary (.glb) of a motion: the body mesh skinned to the 22-joint skeleton, with one rotation
channel per joint and the pelvis translation, sampled at the motion's frame rate. It plays in web viewers
(gradio.Model3D, three.js, Babylon.js) and imports into Blender.

The file, in glTF terms (written with pygltflib; trimesh reads skinned meshes but cannot write animations):
- nodes 0..21 are the joints, named and nested as `egotwin.body.skeleton` (node index = joint index). A joint's
  translation is its rest bone vector `rest_joints[j] - rest_joints[parent]` (the pelvis's is the animated pelvis
  position `rest_joints[0] + trans`), and its rotation is the parent-relative rotation, so the node's global transform
  is exactly the motion's forward kinematics. The skeleton is the motion's (`motion.rest_joints`).
- node 22 holds the mesh and the skin. The mesh is at rest with the body's own skeleton `body.rest_joints`, whose
  joint frames are aligned with the world, so joint j's inverse bind matrix is a translation by -body.rest_joints[j].
  Vertices carry POSITION, NORMAL, COLOR_0 (the body's RGBA vertex colours) and the four largest skin weights
  (JOINTS_0 / WEIGHTS_0, renormalised to sum to 1). SMPL-X pose correctives are not stored (glTF has no pose-driven
  blend shapes), so an SMPL-X body is plain linear blend skinning here.
- one animation: per joint a LINEAR rotation sampler (unit quaternions, x y z w -- glTF's order, not ours), made
  sign-continuous so that every interpolation takes the short way; a LINEAR translation sampler for the pelvis.
  Key times are k / fps. Units are metres, y up, the person faces +z: glTF's own conventions.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pygltflib as gltf
import torch

from egotwin.body.body_model import BodyModel, load_body_model
from egotwin.body.rotations import matrix_to_quaternion
from egotwin.body.skeleton import JOINT_NAMES, NUM_JOINTS, PARENTS
from egotwin.motion.motion import Motion

MESH_NODE = NUM_JOINTS  # node index of the skinned mesh
INFLUENCES = 4  # joints per vertex in JOINTS_0 / WEIGHTS_0


class _Blob:
    """The binary buffer of a glb and the accessors that point into it."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.views: list[gltf.BufferView] = []
        self.accessors: list[gltf.Accessor] = []

    def add(
        self, array: np.ndarray, kind: str, target: int | None = None, normalized: bool = False, bounds: bool = False
    ) -> int:
        """Append `array` (N, ...) as one accessor of glTF type `kind` ("SCALAR", "VEC3", "MAT4", ...); return its
        index."""
        component = {
            np.dtype(np.float32): gltf.FLOAT,
            np.dtype(np.uint8): gltf.UNSIGNED_BYTE,
            np.dtype(np.uint16): gltf.UNSIGNED_SHORT,
            np.dtype(np.uint32): gltf.UNSIGNED_INT,
        }[array.dtype]
        array = np.ascontiguousarray(array)
        self.data += b"\0" * (-len(self.data) % 4)  # every view starts 4-byte aligned
        self.views.append(gltf.BufferView(buffer=0, byteOffset=len(self.data), byteLength=array.nbytes, target=target))
        self.data += array.tobytes()
        flat = array.reshape(len(array), -1)
        self.accessors.append(
            gltf.Accessor(
                bufferView=len(self.views) - 1,
                componentType=component,
                count=len(array),
                type=kind,
                normalized=normalized or None,
                min=flat.min(0).tolist() if bounds else None,
                max=flat.max(0).tolist() if bounds else None,
            )
        )
        return len(self.accessors) - 1


def continuous_quaternions(quaternions: np.ndarray) -> np.ndarray:
    """(T, ..., 4) unit quaternions with signs flipped so that consecutive ones have a non-negative dot product
    (q and -q are the same rotation, but an interpolator between q and -q turns the long way)."""
    dots = (quaternions[1:] * quaternions[:-1]).sum(-1)
    first = np.ones((1, *quaternions.shape[1:-1]))
    signs = np.concatenate((first, np.cumprod(np.where(dots < 0, -1.0, 1.0), axis=0)))
    return quaternions * signs[..., None]


def top_skin_weights(skin_weights: np.ndarray, count: int = INFLUENCES) -> tuple[np.ndarray, np.ndarray]:
    """(V, J) weights -> the `count` largest per vertex: joint indices (V, count) uint8 and weights (V, count) float32
    renormalised to sum to 1 (unused slots: joint 0 with weight 0)."""
    order = np.argsort(-skin_weights, axis=1, kind="stable")[:, :count]
    weights = np.take_along_axis(skin_weights, order, axis=1)
    weights = weights / weights.sum(1, keepdims=True)
    order = np.where(weights > 0, order, 0)
    return order.astype(np.uint8), weights.astype(np.float32)


def save_glb(motion: Motion, path: str | Path, body: BodyModel | None = None) -> Path:
    """Write `motion` performed by `body` (None: the built-in mannequin) as an animated, skinned .glb at `path`."""
    if not isinstance(motion, Motion):
        raise ValueError(f"motion must be an egotwin Motion, got {type(motion).__name__}")
    body = load_body_model() if body is None else body
    motion = motion.to(device="cpu", dtype=torch.float64)
    rest = motion.rest_joints.numpy()
    body_rest = body.rest_joints.detach().cpu().double().numpy()
    blob = _Blob()

    # 1. The mesh at rest.
    mesh = body.to_trimesh()
    joints, weights = top_skin_weights(body.skin_weights.detach().cpu().double().numpy())
    faces = mesh.faces.reshape(-1)
    index_type = np.uint16 if len(mesh.vertices) < 65536 else np.uint32
    attributes = gltf.Attributes(
        POSITION=blob.add(mesh.vertices.astype(np.float32), "VEC3", gltf.ARRAY_BUFFER, bounds=True),
        NORMAL=blob.add(mesh.vertex_normals.astype(np.float32), "VEC3", gltf.ARRAY_BUFFER),
        COLOR_0=blob.add(body.vertex_colors.cpu().numpy().astype(np.uint8), "VEC4", gltf.ARRAY_BUFFER, normalized=True),
        JOINTS_0=blob.add(joints, "VEC4", gltf.ARRAY_BUFFER),
        WEIGHTS_0=blob.add(weights, "VEC4", gltf.ARRAY_BUFFER),
    )
    indices = blob.add(faces.astype(index_type), "SCALAR", gltf.ELEMENT_ARRAY_BUFFER)

    # 2. The skin: joint frames at rest are the world frame shifted to the joint.
    inverse_bind = np.tile(np.eye(4, dtype=np.float32), (NUM_JOINTS, 1, 1))
    inverse_bind[:, :3, 3] = -body_rest
    inverse_bind = blob.add(inverse_bind.transpose(0, 2, 1).copy(), "MAT4")  # glTF matrices are column-major

    # 3. The animation.
    times = (np.arange(motion.num_frames) / motion.fps).astype(np.float32)
    quaternions = matrix_to_quaternion(motion.local_rotations).numpy()[..., [1, 2, 3, 0]]  # wxyz -> xyzw
    quaternions = continuous_quaternions(quaternions).astype(np.float32)  # (T, 22, 4)
    pelvis = (motion.trans.numpy() + rest[0]).astype(np.float32)
    time_accessor = blob.add(times, "SCALAR", bounds=True)
    samplers, channels = [], []
    for j in range(NUM_JOINTS):
        output = blob.add(quaternions[:, j], "VEC4")
        samplers.append(gltf.AnimationSampler(input=time_accessor, output=output, interpolation="LINEAR"))
        channels.append(gltf.AnimationChannel(sampler=j, target=gltf.AnimationChannelTarget(node=j, path="rotation")))
    samplers.append(gltf.AnimationSampler(input=time_accessor, output=blob.add(pelvis, "VEC3"), interpolation="LINEAR"))
    channels.append(
        gltf.AnimationChannel(sampler=NUM_JOINTS, target=gltf.AnimationChannelTarget(node=0, path="translation"))
    )

    # 4. Nodes: the joints posed at frame 0, then the mesh.
    nodes = []
    for j, name in enumerate(JOINT_NAMES):
        parent = PARENTS[j]
        offset = pelvis[0] if parent < 0 else rest[j] - rest[parent]
        nodes.append(
            gltf.Node(
                name=name,
                translation=np.asarray(offset, dtype=np.float64).tolist(),
                rotation=quaternions[0, j].astype(np.float64).tolist(),
                children=[c for c in range(NUM_JOINTS) if PARENTS[c] == j],
            )
        )
    nodes.append(gltf.Node(name=f"body_{body.name}", mesh=0, skin=0))

    blob.data += b"\0" * (-len(blob.data) % 4)
    document = gltf.GLTF2(
        asset=gltf.Asset(generator="EgoTwin egotwin.render.gltf", version="2.0"),
        scene=0,
        scenes=[gltf.Scene(name="egotwin", nodes=[0, MESH_NODE])],
        nodes=nodes,
        meshes=[
            gltf.Mesh(name="body", primitives=[gltf.Primitive(attributes=attributes, indices=indices, material=0)])
        ],
        materials=[
            gltf.Material(
                name="skin",
                pbrMetallicRoughness=gltf.PbrMetallicRoughness(
                    baseColorFactor=[1.0, 1.0, 1.0, 1.0], metallicFactor=0.0, roughnessFactor=0.8
                ),
            )
        ],
        skins=[
            gltf.Skin(name="skeleton", inverseBindMatrices=inverse_bind, joints=list(range(NUM_JOINTS)), skeleton=0)
        ],
        animations=[gltf.Animation(name="motion", samplers=samplers, channels=channels)],
        accessors=blob.accessors,
        bufferViews=blob.views,
        buffers=[gltf.Buffer(byteLength=len(blob.data))],
    )
    document.set_binary_blob(bytes(blob.data))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    document.save_binary(str(path))
    return path

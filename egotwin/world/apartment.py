"""Procedural apartments: rooms in a row joined by doorways with hinged doors, furnished with named, coloured objects.

Everything is generated from one integer seed. The world frame is the project's: y up, floor at y = 0, metres.
Rooms are axis-aligned rectangles side by side along +x; the wall between two rooms has one doorway, most of which
carry a door hinged on a vertical axis. Furniture stands on the floor (or against a wall); small objects stand on
tables. Each object has a colour name that is unique among the objects of its room, so a caption can name it.
Geometry is plain trimesh with per-face colours; the renderer turns it into pyrender meshes once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import trimesh

# Named colours objects may take (sRGB 0..255). Walls and floors use the muted palettes below so that a named
# object never shares its colour with the room around it.
OBJECT_COLORS: dict[str, tuple[int, int, int]] = {
    "red": (200, 30, 30),
    "green": (40, 160, 50),
    "blue": (35, 70, 200),
    "yellow": (235, 205, 30),
    "orange": (240, 120, 20),
    "purple": (130, 50, 170),
    "pink": (240, 120, 180),
    "teal": (20, 150, 150),
    "black": (25, 25, 25),
    "white": (240, 240, 240),
    "brown": (120, 70, 30),
    "gray": (120, 120, 120),
}
WALL_COLORS = [(225, 215, 195), (200, 215, 225), (215, 225, 200), (230, 200, 190), (210, 205, 225), (235, 230, 220)]
FLOOR_COLORS = [(150, 110, 70), (190, 160, 120), (110, 90, 80), (170, 170, 160), (130, 120, 100), (95, 75, 60)]
DOOR_COLORS = [(150, 95, 50), (90, 60, 40), (170, 120, 70), (110, 75, 45)]  # wood tones that stand out from the walls
ROOM_TYPES = ("kitchen", "living room", "bedroom", "study")

WALL_THICKNESS = 0.1
DOOR_WIDTH = 0.9
DOOR_HEIGHT = 2.05
HANDLE_HEIGHT = 1.0
HANDLE_INSET = 0.09  # handle distance from the free edge of the panel
TABLE_KINDS = ("table", "desk", "coffee table")
SMALL_KINDS = ("cup", "book", "ball", "bottle", "vase")


def _rotation_y(angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def _pose(position: np.ndarray, yaw: float) -> np.ndarray:
    pose = np.eye(4)
    pose[:3, :3] = _rotation_y(yaw)
    pose[:3, 3] = position
    return pose


def _box(
    size: tuple[float, float, float], center: tuple[float, float, float], rgb: tuple[int, int, int]
) -> trimesh.Trimesh:
    box = trimesh.creation.box(extents=size)
    box.apply_translation(center)
    box.visual.face_colors = (*rgb, 255)
    return box


def _cylinder(
    radius: float, height: float, base: tuple[float, float, float], rgb: tuple[int, int, int], sections: int = 10
) -> trimesh.Trimesh:
    cyl = trimesh.creation.cylinder(radius=radius, height=height, sections=sections)
    cyl.apply_transform(trimesh.transformations.rotation_matrix(-math.pi / 2, (1, 0, 0)))  # axis z -> y
    cyl.apply_translation((base[0], base[1] + height / 2, base[2]))
    cyl.visual.face_colors = (*rgb, 255)
    return cyl


def _shade(rgb: tuple[int, int, int], factor: float) -> tuple[int, int, int]:
    return tuple(int(min(255, max(0, c * factor))) for c in rgb)


@dataclass
class Room:
    """An axis-aligned rectangular room."""

    index: int
    name: str
    x0: float
    x1: float
    z0: float
    z1: float
    height: float

    @property
    def center(self) -> np.ndarray:
        return np.array([(self.x0 + self.x1) / 2, 0.0, (self.z0 + self.z1) / 2])

    def contains(self, x: float, z: float, margin: float = 0.0) -> bool:
        return self.x0 + margin <= x <= self.x1 - margin and self.z0 + margin <= z <= self.z1 - margin


@dataclass
class WorldObject:
    """A piece of furniture or a small object: a rigid mesh in its own frame placed by a yaw and a position."""

    name: str
    """Unique in the apartment (labels are unique per room, room types per apartment): 'red table in the kitchen'."""
    kind: str
    color: str
    room: int
    position: np.ndarray
    """(3,) floor point under the object's centre (or the table-top point it stands on)."""
    yaw: float
    size: tuple[float, float, float]
    """Footprint width (x), height (y), depth (z) in the object frame."""
    mesh: trimesh.Trimesh
    movable: bool = False

    @property
    def label(self) -> str:
        return f"{self.color} {self.kind}"

    @property
    def pose(self) -> np.ndarray:
        return _pose(self.position, self.yaw)

    @property
    def top(self) -> float:
        return float(self.position[1] + self.size[1])

    @property
    def center(self) -> np.ndarray:
        return self.position + np.array([0.0, self.size[1] / 2, 0.0])

    def footprint(self) -> tuple[float, float, float, float]:
        """World-axis-aligned (x0, x1, z0, z1); objects only take yaws that are multiples of 90 degrees."""
        w, _, d = self.size
        if round(self.yaw / (math.pi / 2)) % 2:
            w, d = d, w
        x, z = self.position[0], self.position[2]
        return x - w / 2, x + w / 2, z - d / 2, z + d / 2


@dataclass
class Door:
    """A hinged door in the doorway of the wall x = wall_x between rooms `room_a` (x < wall_x) and `room_b`.

    The panel's frame has its origin at the bottom of the hinge edge; the panel spans local x in [0, width].
    Closed, local x points along world +z (`closed_yaw` = -pi/2) or -z; opening turns it by `swing` * angle about
    the hinge so that the door swings into room `opens_into`. People open it by pushing from the other room.
    """

    name: str
    hinge: np.ndarray
    closed_yaw: float
    swing: float
    width: float
    height: float
    room_a: int
    room_b: int
    opens_into: int
    color: str
    mesh: trimesh.Trimesh
    angle: float = 0.0

    def panel_pose(self, angle: float | None = None) -> np.ndarray:
        """(4, 4) world pose of the panel at an opening angle (radians; 0 = closed)."""
        angle = self.angle if angle is None else angle
        return _pose(self.hinge, self.closed_yaw + self.swing * angle)

    def handle_position(self, angle: float = 0.0, side: float | None = None) -> np.ndarray:
        """(3,) world position of the handle on the push side (the side away from `opens_into`)."""
        push_side = self.push_side_sign() if side is None else side
        local = np.array([self.width - HANDLE_INSET, HANDLE_HEIGHT, 0.07 * push_side, 1.0])
        return (self.panel_pose(angle) @ local)[:3]

    def push_side_sign(self) -> float:
        """Sign of local z (closed panel) that faces the room the door is pushed from."""
        normal_x = (_rotation_y(self.closed_yaw) @ np.array([0.0, 0, 1]))[0]
        away = 1.0 if self.opens_into == self.room_b else -1.0  # world x direction the door swings to
        return -away * math.copysign(1.0, normal_x)

    @property
    def center(self) -> np.ndarray:
        return self.panel_pose(0.0)[:3, :3] @ np.array([self.width / 2, self.height / 2, 0]) + self.hinge

    @property
    def push_room(self) -> int:
        return self.room_a if self.opens_into == self.room_b else self.room_b


@dataclass
class Apartment:
    """A generated apartment: static shell, doors, objects, lights and the 2D obstacles people walk around."""

    seed: int
    rooms: list[Room]
    doors: list[Door]
    objects: list[WorldObject]
    shell: trimesh.Trimesh
    """Floors, walls and ceilings in one mesh with per-face colours."""
    lights: list[dict] = field(default_factory=list)
    """Point lights: {'position': (3,), 'color': (3,), 'intensity': float}; plus one 'ambient' entry."""
    walls: list[tuple[float, float, float, float]] = field(default_factory=list)
    """Wall footprints (x0, x1, z0, z1)."""
    shell_surfaces: np.ndarray = field(default_factory=lambda: np.zeros(0, str))
    """(F,) what each shell face belongs to: 'floor tiles', 'floor planks', 'floor plain', 'ceiling', 'wall N' (room
    N's walls) or 'trim' (skirting boards, door frames); the textured renderer picks patterns by it."""

    def room_at(self, x: float, z: float) -> Room | None:
        for room in self.rooms:
            if room.contains(x, z):
                return room
        return None

    def obstacles(self, include_doors: bool = True) -> list[tuple[float, float, float, float]]:
        """Axis-aligned 2D boxes (x0, x1, z0, z1) that block walking: walls, furniture, closed doors."""
        boxes = list(self.walls)
        boxes += [o.footprint() for o in self.objects if o.position[1] < 0.01]
        if include_doors:
            for door in self.doors:
                x, z = door.hinge[0], door.hinge[2]
                z_end = z + door.width * (1 if door.closed_yaw < 0 else -1)
                boxes.append((x - 0.03, x + 0.03, min(z, z_end), max(z, z_end)))
        return boxes

    def free_distance(self, start: np.ndarray, heading: float, radius: float = 0.3, limit: float = 10.0) -> float:
        """Distance a person of the given radius can walk from `start` (x, z) along `heading` (yaw: 0 = +z)."""
        direction = np.array([math.sin(heading), math.cos(heading)])
        best = limit
        for x0, x1, z0, z1 in self.obstacles():
            lo = np.array([x0 - radius, z0 - radius]) - start
            hi = np.array([x1 + radius, z1 + radius]) - start
            with np.errstate(divide="ignore", invalid="ignore"):
                t0, t1 = lo / direction, hi / direction
            t_near = np.nanmax(np.minimum(t0, t1))
            t_far = np.nanmin(np.maximum(t0, t1))
            if t_far >= max(t_near, 0.0):
                best = min(best, max(t_near, 0.0))
        return float(best)

    def is_free(self, x: float, z: float, radius: float = 0.3) -> bool:
        room = self.room_at(x, z)
        if room is None or not room.contains(x, z, radius + WALL_THICKNESS / 2):
            return False
        return all(
            not (x0 - radius < x < x1 + radius and z0 - radius < z < z1 + radius) for x0, x1, z0, z1 in self.obstacles()
        )


# --------------------------------------------------------------------------------------------- object meshes
def _furniture_mesh(kind: str, rgb: tuple[int, int, int], size: tuple[float, float, float]) -> trimesh.Trimesh:
    """Mesh in the object frame: origin at the floor (or support) under the centre, front towards +z."""
    w, h, d = size
    dark = _shade(rgb, 0.6)
    parts: list[trimesh.Trimesh] = []
    if kind in TABLE_KINDS:
        parts.append(_box((w, 0.05, d), (0, h - 0.025, 0), rgb))
        for sx in (-1, 1):
            for sz in (-1, 1):
                parts.append(
                    _box((0.05, h - 0.05, 0.05), (sx * (w / 2 - 0.05), (h - 0.05) / 2, sz * (d / 2 - 0.05)), dark)
                )
    elif kind == "chair":
        parts.append(_box((w, 0.05, d), (0, 0.45, 0), rgb))
        parts.append(_box((w, h - 0.45, 0.05), (0, 0.45 + (h - 0.45) / 2, -d / 2 + 0.025), rgb))
        for sx in (-1, 1):
            for sz in (-1, 1):
                parts.append(_box((0.04, 0.43, 0.04), (sx * (w / 2 - 0.04), 0.215, sz * (d / 2 - 0.04)), dark))
    elif kind == "shelf":
        parts.append(_box((w, h, 0.03), (0, h / 2, -d / 2 + 0.015), dark))
        for sx in (-1, 1):
            parts.append(_box((0.03, h, d), (sx * (w / 2 - 0.015), h / 2, 0), rgb))
        for level in np.linspace(0.05, h - 0.02, 5):
            parts.append(_box((w, 0.03, d), (0, level, 0), rgb))
    elif kind in ("cabinet", "box"):
        parts.append(_box((w, h, d), (0, h / 2, 0), rgb))
        parts.append(_box((w * 0.9, 0.03, 0.01), (0, h * 0.8, d / 2 + 0.005), dark))
    elif kind == "lamp":
        parts.append(_cylinder(0.15, 0.03, (0, 0, 0), dark))
        parts.append(_cylinder(0.02, h - 0.35, (0, 0.03, 0), dark))
        shade = trimesh.creation.cone(radius=0.22, height=0.35, sections=12)
        shade.apply_transform(trimesh.transformations.rotation_matrix(-math.pi / 2, (1, 0, 0)))
        shade.apply_translation((0, h - 0.4, 0))
        shade.visual.face_colors = (*rgb, 255)
        parts.append(shade)
    elif kind == "sofa":
        parts.append(_box((w, 0.42, d), (0, 0.21, 0), rgb))
        parts.append(_box((w, h - 0.42, 0.2), (0, 0.42 + (h - 0.42) / 2, -d / 2 + 0.1), rgb))
        for sx in (-1, 1):
            parts.append(_box((0.18, 0.22, d), (sx * (w / 2 - 0.09), 0.53, 0), dark))
    elif kind == "bed":
        parts.append(_box((w, 0.3, d), (0, 0.15, 0), dark))
        parts.append(_box((w - 0.06, 0.18, d - 0.06), (0, 0.39, 0), rgb))
        parts.append(_box((w * 0.7, 0.1, 0.3), (0, 0.53, -d / 2 + 0.25), (245, 245, 245)))
        parts.append(_box((w, h, 0.06), (0, h / 2, -d / 2 + 0.03), dark))
    elif kind == "cup":
        parts.append(_cylinder(w / 2, h, (0, 0, 0), rgb))
    elif kind == "bottle":
        parts.append(_cylinder(w / 2, h * 0.7, (0, 0, 0), rgb))
        parts.append(_cylinder(w / 4, h * 0.3, (0, h * 0.7, 0), dark))
    elif kind == "vase":
        parts.append(_cylinder(w / 2, h * 0.8, (0, 0, 0), rgb, sections=12))
        parts.append(_cylinder(w / 3, h * 0.2, (0, h * 0.8, 0), rgb))
    elif kind == "book":
        parts.append(_box((w, h, d), (0, h / 2, 0), rgb))
    elif kind == "ball":
        ball = trimesh.creation.icosphere(subdivisions=1, radius=w / 2)
        ball.apply_translation((0, w / 2, 0))
        ball.visual.face_colors = (*rgb, 255)
        parts.append(ball)
    else:
        raise ValueError(f"unknown object kind {kind!r}")
    return trimesh.util.concatenate(parts)


FURNITURE_SIZES: dict[str, tuple[tuple[float, float], tuple[float, float], tuple[float, float]]] = {
    # kind: (width range, height range, depth range)
    "table": ((1.0, 1.5), (0.72, 0.78), (0.7, 0.9)),
    "desk": ((1.0, 1.4), (0.72, 0.76), (0.55, 0.7)),
    "coffee table": ((0.9, 1.2), (0.42, 0.48), (0.5, 0.7)),
    "chair": ((0.42, 0.48), (0.85, 1.0), (0.42, 0.48)),
    "shelf": ((0.8, 1.2), (1.5, 1.9), (0.3, 0.38)),
    "cabinet": ((1.0, 1.8), (0.85, 0.95), (0.5, 0.6)),
    "box": ((0.3, 0.45), (0.25, 0.4), (0.3, 0.45)),
    "lamp": ((0.4, 0.4), (1.5, 1.75), (0.4, 0.4)),
    "sofa": ((1.6, 2.1), (0.8, 0.9), (0.8, 0.95)),
    "bed": ((1.4, 1.6), (0.9, 1.0), (1.9, 2.1)),
    "cup": ((0.1, 0.12), (0.12, 0.15), (0.1, 0.12)),
    "book": ((0.24, 0.3), (0.05, 0.07), (0.18, 0.22)),
    "ball": ((0.16, 0.2), (0.16, 0.2), (0.16, 0.2)),
    "bottle": ((0.08, 0.1), (0.26, 0.32), (0.08, 0.1)),
    "vase": ((0.12, 0.16), (0.25, 0.32), (0.12, 0.16)),
}
ROOM_FURNITURE: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    # room type: (against the walls, free-standing)
    "kitchen": (("cabinet", "shelf"), ("table", "chair", "chair", "box")),
    "living room": (("sofa", "shelf"), ("coffee table", "lamp", "box")),
    "bedroom": (("bed", "cabinet"), ("desk", "lamp", "box")),
    "study": (("shelf", "shelf"), ("desk", "chair", "lamp", "box")),
}
MOVABLE_KINDS = ("box",) + SMALL_KINDS


# ------------------------------------------------------------------------------------------------- generation
def generate_apartment(seed: int) -> Apartment:
    """Build the apartment of a seed (deterministic: same seed, same apartment)."""
    rng = np.random.default_rng(seed)
    num_rooms = int(rng.integers(2, 4))
    depth = float(rng.uniform(4.0, 5.5))
    height = float(rng.uniform(2.5, 2.8))
    types = list(rng.permutation(ROOM_TYPES)[:num_rooms])
    rooms: list[Room] = []
    x = 0.0
    for i in range(num_rooms):
        width = float(rng.uniform(3.8, 5.2))
        rooms.append(Room(i, str(types[i]), x, x + width, 0.0, depth, height))
        x += width

    shell_parts: list[trimesh.Trimesh] = []
    surfaces: list[str] = []  # the surface label of each shell part
    walls: list[tuple[float, float, float, float]] = []
    wall_colors = [WALL_COLORS[k] for k in rng.choice(len(WALL_COLORS), num_rooms)]
    for room, wall_rgb in zip(rooms, wall_colors):
        floor_parts, style = _floor_and_ceiling(room, rng)
        shell_parts += floor_parts
        surfaces += [f"floor {style}"] * (len(floor_parts) - 1) + ["ceiling"]
        # outer walls of this room (the shared walls are built with the doorways below)
        t = WALL_THICKNESS
        spans = [
            ((room.x0, room.x1), (room.z0 - t / 2, room.z0 + t / 2)),
            ((room.x0, room.x1), (room.z1 - t / 2, room.z1 + t / 2)),
        ]
        if room.index == 0:
            spans.append(((room.x0 - t / 2, room.x0 + t / 2), (room.z0, room.z1)))
        if room.index == num_rooms - 1:
            spans.append(((room.x1 - t / 2, room.x1 + t / 2), (room.z0, room.z1)))
        for (x0, x1), (z0, z1) in spans:
            shell_parts.append(
                _box((x1 - x0, room.height, z1 - z0), ((x0 + x1) / 2, room.height / 2, (z0 + z1) / 2), wall_rgb)
            )
            shell_parts.append(
                _box(
                    (x1 - x0 + 0.02, 0.1, z1 - z0 + 0.02), ((x0 + x1) / 2, 0.05, (z0 + z1) / 2), _shade(wall_rgb, 0.55)
                )
            )
            surfaces += [f"wall {room.index}", "trim"]
            walls.append((x0, x1, z0, z1))

    doors: list[Door] = []
    doorways: list[tuple[float, float]] = []  # (wall x, doorway centre z)
    for i in range(num_rooms - 1):
        wall_x = rooms[i].x1
        z_mid = float(rng.uniform(0.9, depth - 0.9))
        doorways.append((wall_x, z_mid))
        wall_rgb = wall_colors[i]
        t = WALL_THICKNESS
        for z0, z1 in ((0.0, z_mid - DOOR_WIDTH / 2), (z_mid + DOOR_WIDTH / 2, depth)):
            shell_parts.append(_box((t, height, z1 - z0), (wall_x, height / 2, (z0 + z1) / 2), wall_rgb))
            surfaces.append(f"wall {i}")
            walls.append((wall_x - t / 2, wall_x + t / 2, z0, z1))
        shell_parts.append(
            _box(
                (t, height - DOOR_HEIGHT, DOOR_WIDTH),
                (wall_x, (height + DOOR_HEIGHT) / 2, z_mid),
                _shade(wall_rgb, 0.9),
            )
        )
        surfaces.append(f"wall {i}")
        frame_rgb = (70, 60, 55)  # a dark frame makes the doorway readable at 64x64
        for side in (-1, 1):
            shell_parts.append(
                _box(
                    (t + 0.04, DOOR_HEIGHT, 0.06),
                    (wall_x, DOOR_HEIGHT / 2, z_mid + side * (DOOR_WIDTH / 2 + 0.03)),
                    frame_rgb,
                )
            )
        shell_parts.append(_box((t + 0.04, 0.06, DOOR_WIDTH + 0.12), (wall_x, DOOR_HEIGHT + 0.03, z_mid), frame_rgb))
        surfaces += ["trim"] * 3
        if rng.random() < 0.85:
            doors.append(_make_door(f"door {len(doors)}", wall_x, z_mid, i, rng))

    objects = _furnish(rooms, doorways, rng)
    lights = _lights(rooms, rng)
    shell = trimesh.util.concatenate(shell_parts)
    shell_surfaces = np.concatenate([np.full(len(p.faces), s) for p, s in zip(shell_parts, surfaces, strict=True)])
    return Apartment(
        seed=seed,
        rooms=rooms,
        doors=doors,
        objects=objects,
        shell=shell,
        lights=lights,
        walls=walls,
        shell_surfaces=shell_surfaces,
    )


def _floor_and_ceiling(room: Room, rng: np.random.Generator) -> tuple[list[trimesh.Trimesh], str]:
    """Floor with a tile, plank or plain pattern (per-face colours stand in for a texture) and a plain ceiling (the
    last part), and the floor's style."""
    base = FLOOR_COLORS[int(rng.integers(len(FLOOR_COLORS)))]
    style = rng.choice(["tiles", "planks", "plain"])
    parts = []
    tile = 0.5 if style == "tiles" else 0.25
    nx = max(1, int(math.ceil((room.x1 - room.x0) / (tile if style != "plain" else 10))))
    nz = max(1, int(math.ceil((room.z1 - room.z0) / (tile if style == "tiles" else 10))))
    xs = np.linspace(room.x0, room.x1, nx + 1)
    zs = np.linspace(room.z0, room.z1, nz + 1)
    for i in range(nx):
        for j in range(nz):
            shade = 1.0 if (i + j * (style == "tiles")) % 2 == 0 else 0.8
            rgb = _shade(base, shade)
            parts.append(
                _box(
                    (xs[i + 1] - xs[i], 0.02, zs[j + 1] - zs[j]),
                    ((xs[i] + xs[i + 1]) / 2, -0.01, (zs[j] + zs[j + 1]) / 2),
                    rgb,
                )
            )
    ceiling = (245, 245, 240)
    parts.append(
        _box(
            (room.x1 - room.x0, 0.02, room.z1 - room.z0),
            (*room.center[[0]], room.height + 0.01, room.center[2]),
            ceiling,
        )
    )
    return parts, str(style)


def _make_door(name: str, wall_x: float, z_mid: float, left_room: int, rng: np.random.Generator) -> Door:
    color_name, rgb = "wooden", DOOR_COLORS[int(rng.integers(len(DOOR_COLORS)))]
    width, height_ = DOOR_WIDTH - 0.04, DOOR_HEIGHT - 0.02
    parts = [_box((width, height_, 0.04), (width / 2, height_ / 2, 0), rgb)]
    for side in (-1, 1):  # handles on both faces
        parts.append(_box((0.12, 0.03, 0.05), (width - HANDLE_INSET, HANDLE_HEIGHT, side * 0.045), (200, 180, 60)))
    mesh = trimesh.util.concatenate(parts)
    hinge_at_low_z = bool(rng.random() < 0.5)
    hinge_z = z_mid - width / 2 if hinge_at_low_z else z_mid + width / 2
    closed_yaw = -math.pi / 2 if hinge_at_low_z else math.pi / 2  # local +x runs towards the other jamb
    opens_into = left_room + int(rng.integers(0, 2))
    # rotating the panel about +y by +a moves its free edge towards -x when closed_yaw = -pi/2 ... choose the sign that
    # swings it into `opens_into`
    probe = _rotation_y(closed_yaw + 0.3) @ np.array([1.0, 0, 0])
    towards_b = probe[0] > 0
    swing = 1.0 if towards_b == (opens_into == left_room + 1) else -1.0
    return Door(
        name,
        np.array([wall_x, 0.0, hinge_z]),
        closed_yaw,
        swing,
        width,
        height_,
        left_room,
        left_room + 1,
        opens_into,
        color_name,
        mesh,
    )


def _place(
    kind: str, room: Room, against_wall: bool, taken: list, doorways: list, rng: np.random.Generator, color: str
) -> WorldObject | None:
    (w0, w1), (h0, h1), (d0, d1) = FURNITURE_SIZES[kind]
    size = (float(rng.uniform(w0, w1)), float(rng.uniform(h0, h1)), float(rng.uniform(d0, d1)))
    for _ in range(40):
        if against_wall:
            wall = int(rng.integers(4))  # 0: z0 wall, 1: z1 wall, 2: x0 wall, 3: x1 wall
            yaw = (0.0, math.pi, math.pi / 2, -math.pi / 2)[wall]
            half_d = size[2] / 2 + WALL_THICKNESS / 2 + 0.02
            if wall < 2:
                x = float(rng.uniform(room.x0 + size[0] / 2 + 0.1, room.x1 - size[0] / 2 - 0.1))
                z = room.z0 + half_d if wall == 0 else room.z1 - half_d
            else:
                z = float(rng.uniform(room.z0 + size[0] / 2 + 0.1, room.z1 - size[0] / 2 - 0.1))
                x = room.x0 + half_d if wall == 2 else room.x1 - half_d
        else:
            yaw = float(rng.integers(4)) * math.pi / 2
            margin = max(size[0], size[2]) / 2 + 0.5
            if room.x1 - room.x0 < 2 * margin or room.z1 - room.z0 < 2 * margin:
                return None
            x = float(rng.uniform(room.x0 + margin, room.x1 - margin))
            z = float(rng.uniform(room.z0 + margin, room.z1 - margin))
        obj = WorldObject(
            f"{color} {kind} in the {room.name}",
            kind,
            color,
            room.index,
            np.array([x, 0.0, z]),
            yaw,
            size,
            _furniture_mesh(kind, OBJECT_COLORS[color], size),
            movable=kind in MOVABLE_KINDS,
        )
        fx0, fx1, fz0, fz1 = obj.footprint()
        clearance = 0.45 if not against_wall else 0.1
        if any(
            fx0 - clearance < b[1] and fx1 + clearance > b[0] and fz0 - clearance < b[3] and fz1 + clearance > b[2]
            for b in taken
        ):
            continue
        if any(abs(fx0 - dx) < 1.2 or abs(fx1 - dx) < 1.2 for dx, dz in doorways if fz0 < dz + 1.0 and fz1 > dz - 1.0):
            continue  # keep a walkway in front of each doorway
        taken.append((fx0, fx1, fz0, fz1))
        return obj
    return None


def _furnish(rooms: list[Room], doorways: list[tuple[float, float]], rng: np.random.Generator) -> list[WorldObject]:
    objects: list[WorldObject] = []
    for room in rooms:
        palette = list(rng.permutation(list(OBJECT_COLORS)))
        taken: list[tuple[float, float, float, float]] = []
        wall_kinds, free_kinds = ROOM_FURNITURE[room.name]
        for against, kinds in ((True, wall_kinds), (False, free_kinds)):
            for kind in kinds:
                obj = _place(kind, room, against, taken, doorways, rng, str(palette.pop()))
                if obj is not None:
                    objects.append(obj)
        # two or three small objects on the room's tables and cabinets
        supports = [o for o in objects if o.room == room.index and o.kind in TABLE_KINDS + ("cabinet",)]
        for _ in range(int(rng.integers(2, 4)) if supports else 0):
            support = supports[int(rng.integers(len(supports)))]
            kind = str(rng.choice(SMALL_KINDS))
            (w0, w1), (h0, h1), (d0, d1) = FURNITURE_SIZES[kind]
            size = (float(rng.uniform(w0, w1)), float(rng.uniform(h0, h1)), float(rng.uniform(d0, d1)))
            fx0, fx1, fz0, fz1 = support.footprint()
            x = float(rng.uniform(fx0 + 0.15, fx1 - 0.15))
            z = float(rng.uniform(fz0 + 0.15, fz1 - 0.15))
            if any(
                o.position[1] > 0 and abs(o.position[0] - x) < 0.22 and abs(o.position[2] - z) < 0.22 for o in objects
            ):
                continue
            color = str(palette.pop())
            objects.append(
                WorldObject(
                    f"{color} {kind} in the {room.name}",
                    kind,
                    color,
                    room.index,
                    np.array([x, support.top, z]),
                    0.0,
                    size,
                    _furniture_mesh(kind, OBJECT_COLORS[color], size),
                    movable=True,
                )
            )
    return objects


def _lights(rooms: list[Room], rng: np.random.Generator) -> list[dict]:
    """One ceiling light per room with a varied colour temperature and strength, plus an ambient term."""
    warmth = float(rng.uniform(0, 1))
    lights = [{"ambient": float(rng.uniform(0.25, 0.45))}]
    for room in rooms:
        color = np.array([1.0, 0.92 + 0.08 * (1 - warmth), 0.78 + 0.22 * (1 - warmth)])
        lights.append(
            {
                "position": room.center + np.array([0, room.height - 0.3, 0]),
                "color": color,
                "intensity": float(rng.uniform(6.0, 14.0)),
            }
        )
    return lights

"""Procedural surface textures for EgoWorld (the `textured` setting): wood grain, tiles with grout, brick, plaster,
wallpaper, stripes and checks, and posters of varied procedural images on the walls.

Flat-coloured rooms give a video model little to follow when the view turns; these textures add structure of
8-25 cm (a pixel or more at 64x64 a few metres away) that moves with the view.

How colour is kept: every pattern but the posters is grey, a brightness modulation of the surface's own colour.
pyrender multiplies the lit, linear base colour (the texture, decoded from sRGB) by the vertex colour and then
encodes with gamma 1/2.2, so a texel scales the output pixel by `srgb_to_linear(texel) ** (1 / 2.2)`. Every grey
pattern is normalised to the same output-space mean `MODULATION_MEAN`, and textured vertex colours are raised by
`COLOR_GAIN` = MODULATION_MEAN ** -2.2: the mean colour of a textured surface is its flat colour, so an object still
reads as the colour its caption names.

UVs are box projections in metres (world metres for the static scene, so texel density is the same everywhere;
the moving pieces' own frames for doors and movable objects, which sample cells of one atlas without repeating).
Everything is drawn from `np.random.default_rng([apartment seed, TEXTURE_STREAM])`, never from the apartment's own
generator: a textured apartment has exactly the geometry, furniture and episodes of the untextured one.
"""

from __future__ import annotations

import math

import numpy as np
import pyrender
import trimesh

from egotwin.world.apartment import TABLE_KINDS, WALL_THICKNESS, Apartment, WorldObject

TEXTURE_STREAM = 7919
"""Second word of the texture generator's seed (the first is the apartment seed)."""
TEXTURE_SIZE = 256
"""Pixels per side of one pattern tile."""
MODULATION_MEAN = 0.8
"""Output-space mean of every grey pattern (the flat cell of the atlas is this constant)."""
COLOR_GAIN = MODULATION_MEAN**-2.2
"""Vertex-colour gain that makes a textured surface's mean output colour its flat colour."""

# pattern -> metres one texture tile covers (the box projection's scale)
TILE_METRES = {
    "wood": 1.0,
    "planks": 1.0,
    "tiles": 1.0,
    "brick": 1.0,
    "plaster": 2.0,
    "wallpaper": 1.0,
    "stripes": 0.5,
    "checks": 0.6,
}
WALL_PATTERNS = {"brick": 0.4, "wallpaper": 0.4, "plaster": 0.2}
"""Wall patterns and their chances (plaster, the plainest, the rarest)."""
FLOOR_PATTERNS = {"floor tiles": "tiles", "floor planks": "planks", "floor plain": "wood"}
WOODEN_KINDS = TABLE_KINDS + ("chair", "shelf", "cabinet")
ATLAS_CELLS = ("flat", "wood", "stripes", "checks")
"""Cells of the moving pieces' atlas (2x2): the body samples the flat cell, doors wood, objects stripes or checks."""
ATLAS_PAD = 16
POSTERS_PER_ROOM = (1, 3)
POSTER_SIZE = 128
POSTER_GRID = 4  # the poster atlas holds up to POSTER_GRID ** 2 posters


# ------------------------------------------------------------------------------------------------ colour helpers
def _srgb_to_linear(s: np.ndarray) -> np.ndarray:
    return np.where(s <= 0.04045, s / 12.92, ((s + 0.055) / 1.055) ** 2.4)


def _linear_to_srgb(x: np.ndarray) -> np.ndarray:
    return np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.power(x, 1 / 2.4) - 0.055)


def output_modulation(texture: np.ndarray) -> np.ndarray:
    """(..., C) uint8 texture -> the factor each texel applies to the rendered pixel (see the module docstring)."""
    return _srgb_to_linear(texture / 255.0) ** (1 / 2.2)


def grey_texture(pattern: np.ndarray) -> np.ndarray:
    """(N, N) brightness pattern -> (N, N, 3) uint8 texture whose output-space mean is `MODULATION_MEAN`."""
    value = np.clip(pattern * (MODULATION_MEAN / pattern.mean()), 0.0, 1.0)
    for _ in range(3):  # clipping moves the mean: rescale the unclipped part until it is back
        value = np.clip(value * (MODULATION_MEAN / value.mean()), 0.0, 1.0)
    texel = np.round(_linear_to_srgb(value**2.2) * 255).astype(np.uint8)
    return np.repeat(texel[..., None], 3, axis=-1)


# ------------------------------------------------------------------------------------------------------ patterns
def periodic_noise(rng: np.random.Generator, n: int, feature: float) -> np.ndarray:
    """(n, n) smooth noise that tiles seamlessly (filtered white noise on the torus), zero mean, unit std; `feature`
    is the blob size in pixels."""
    freq = np.fft.fftfreq(n)
    radius2 = freq[:, None] ** 2 + freq[None, :] ** 2
    spectrum = np.fft.fft2(rng.standard_normal((n, n))) * np.exp(-radius2 * (math.pi * feature) ** 2 / 2)
    noise = np.fft.ifft2(spectrum).real
    return (noise - noise.mean()) / (noise.std() + 1e-12)


def _grid(n: int) -> tuple[np.ndarray, np.ndarray]:
    """(n, n) u (columns) and v (rows) in [0, 1)."""
    t = np.arange(n) / n
    return np.meshgrid(t, t, indexing="xy")


def _wood(rng: np.random.Generator, n: int, boards: int) -> np.ndarray:
    """Grain along v: rings bent by noise, a per-board shade, dark seams between `boards` boards across u and
    staggered end joints."""
    u, v = _grid(n)
    warp = periodic_noise(rng, n, n / 6)
    rings = np.sin(2 * math.pi * (int(rng.integers(20, 36)) * u + 1.2 * warp)) * 0.5 + 0.5
    board = np.floor(u * boards).astype(int) % boards
    shade = rng.uniform(0.7, 1.0, boards)[board]
    value = shade * (0.78 + 0.17 * rings**3 + 0.05 * periodic_noise(rng, n, 1.5))
    edge = np.minimum((u * boards) % 1, 1 - (u * boards) % 1) * n / boards
    value = np.where(edge < 3, 0.45, value)
    joint = (v + rng.uniform(0, 1, boards)[board]) % 0.5  # two board ends per tile, staggered per board
    return np.where(joint * n < 4, 0.45, value)


def _tiles(rng: np.random.Generator, n: int, per_side: int, grout: float) -> np.ndarray:
    u, v = _grid(n)
    i, j = np.floor(u * per_side).astype(int), np.floor(v * per_side).astype(int)
    shade = rng.uniform(0.75, 1.0, (per_side, per_side))[j, i]
    value = shade * (0.95 + 0.05 * periodic_noise(rng, n, 4))
    line = np.minimum.reduce([(u * per_side) % 1, 1 - (u * per_side) % 1, (v * per_side) % 1, 1 - (v * per_side) % 1])
    return np.where(line < grout, 0.5, value)


def _brick(rng: np.random.Generator, n: int) -> np.ndarray:
    """Bricks 25 x 12.5 cm on a 1 m tile, every other row shifted by half a brick, dark mortar about 4 cm wide (a
    pixel at 64x64 two metres away: thinner lines vanish in the mipmaps)."""
    rows, per_row = 8, 4
    u, v = _grid(n)
    row = np.floor(v * rows).astype(int)
    shifted = (u * per_row + 0.5 * (row % 2)) % per_row
    col = np.floor(shifted).astype(int)
    shade = rng.uniform(0.7, 1.0, (rows, per_row))[row, col]
    value = shade * (0.9 + 0.1 * periodic_noise(rng, n, 2))
    mortar = np.minimum.reduce([shifted % 1 * n / per_row, (1 - shifted % 1) * n / per_row, (v * rows) % 1 * n / rows])
    return np.where(mortar < 5, 0.5, value)


def _plaster(rng: np.random.Generator, n: int) -> np.ndarray:
    """Fractal noise: blotches and trowel marks of 3-12 cm (on a 2 m tile)."""
    value = sum(0.6**k * periodic_noise(rng, n, n / 16 / 2**k) for k in range(3))
    return 0.85 + 0.08 * value / value.std()


def _wallpaper(rng: np.random.Generator, n: int) -> np.ndarray:
    """Vertical stripes of two widths (five repeats a metre) with a faint print."""
    u, _ = _grid(n)
    phase = (u * 5) % 1
    wide = float(rng.uniform(0.45, 0.65))
    value = np.where(phase < wide, 1.0, np.where(phase < wide + 0.1, 0.6, 0.78))
    return value * (0.95 + 0.05 * periodic_noise(rng, n, 3))


def _stripes(rng: np.random.Generator, n: int) -> np.ndarray:
    """Two-tone bands along v (about 12 cm a pair on a 0.5 m tile)."""
    _, v = _grid(n)
    bands = int(rng.integers(3, 6))
    return np.where((v * bands) % 1 < 0.5, 1.0, 0.6) * (0.95 + 0.05 * periodic_noise(rng, n, 3))


def _checks(rng: np.random.Generator, n: int) -> np.ndarray:
    """Gingham: crossing bands make three tones."""
    u, v = _grid(n)
    cells = int(rng.integers(3, 6))
    dark = ((u * cells) % 1 < 0.5).astype(float) + ((v * cells) % 1 < 0.5)
    return (1.0 - 0.2 * dark) * (0.95 + 0.05 * periodic_noise(rng, n, 3))


def pattern_textures(rng: np.random.Generator, n: int = TEXTURE_SIZE) -> dict[str, np.ndarray]:
    """Every grey pattern of an apartment: name -> (n, n, 3) uint8 texture."""
    patterns = {
        "wood": _wood(rng, n, boards=8),
        "planks": _wood(rng, n, boards=4),
        "tiles": _tiles(rng, n, per_side=2, grout=0.04),
        "brick": _brick(rng, n),
        "plaster": _plaster(rng, n),
        "wallpaper": _wallpaper(rng, n),
        "stripes": _stripes(rng, n),
        "checks": _checks(rng, n),
    }
    return {name: grey_texture(p) for name, p in patterns.items()}


def poster_image(rng: np.random.Generator, n: int = POSTER_SIZE) -> np.ndarray:
    """(n, n, 3) uint8 picture: one of a landscape, overlapping shapes, colour blocks or concentric rings."""
    u, v = _grid(n)
    colors = rng.uniform(0, 1, (6, 3))
    style = int(rng.integers(4))
    if style == 0:  # landscape: sky gradient, a sun, layered hills
        image = colors[0] * (1 - v[..., None]) + colors[1] * v[..., None]
        sun = (u - rng.uniform(0.2, 0.8)) ** 2 + (v - rng.uniform(0.15, 0.4)) ** 2 < rng.uniform(0.005, 0.02)
        image[sun] = (1.0, 0.9, 0.4)
        for k in range(3):
            ridge = 0.45 + 0.15 * k + 0.08 * np.sin(2 * math.pi * (rng.uniform(1, 3) * u + rng.uniform(0, 1)))
            image[v > ridge] = colors[2 + k]
    elif style == 1:  # overlapping discs and bars on a plain ground
        image = np.broadcast_to(colors[0], (n, n, 3)).copy()
        for k in range(int(rng.integers(4, 9))):
            cx, cy, size = rng.uniform(0, 1), rng.uniform(0, 1), rng.uniform(0.08, 0.3)
            disc = (u - cx) ** 2 + (v - cy) ** 2 < size**2
            shape = disc if k % 2 else (abs(u - cx) < size) & (abs(v - cy) < size / 3)
            image[shape] = colors[1 + k % 5]
    elif style == 2:  # colour blocks with black rules
        xs, ys = np.sort(rng.uniform(0.1, 0.9, 3)), np.sort(rng.uniform(0.1, 0.9, 3))
        image = colors[(np.searchsorted(xs, u) + 2 * np.searchsorted(ys, v)) % 6]
        rules = (np.abs(u[..., None] - xs).min(-1) < 0.015) | (np.abs(v[..., None] - ys).min(-1) < 0.015)
        image[rules] = 0.05
    else:  # concentric rings
        r = np.hypot(u - rng.uniform(0.3, 0.7), v - rng.uniform(0.3, 0.7))
        image = colors[np.floor(r * rng.uniform(8, 16)).astype(int) % 4]
    image = np.asarray(image, dtype=float)
    image[:4], image[-4:], image[:, :4], image[:, -4:] = 0.95, 0.95, 0.95, 0.95  # a white mount
    return np.round(image * 255).astype(np.uint8)


# --------------------------------------------------------------------------------------- geometry and primitives
def box_uv(corners: np.ndarray, normals: np.ndarray) -> np.ndarray:
    """(V, 3) face-corner positions and their (V, 3) face normals -> (V, 2) coordinates in the plane the face is
    most nearly parallel to: (z, y) for x-facing faces, (x, z) for floors and ceilings, (x, y) for z-facing faces."""
    axis = np.abs(normals).argmax(1)
    plane = np.array([[2, 1], [0, 2], [0, 1]])[axis]
    return np.take_along_axis(corners, plane, axis=1)


def _corners(mesh: trimesh.Trimesh) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Positions, normals and colours (0..1) of every face corner, as the renderer draws them."""
    positions = mesh.vertices[mesh.faces].reshape(-1, 3)
    normals = np.repeat(mesh.face_normals, 3, axis=0)
    if mesh.visual.kind == "vertex":
        colors = mesh.visual.vertex_colors[mesh.faces].reshape(-1, 4)
    else:
        colors = np.repeat(mesh.visual.face_colors, 3, axis=0)
    return positions, normals, colors / 255.0


def _material(texture: np.ndarray) -> pyrender.MetallicRoughnessMaterial:
    # same surface as the untextured renderer's material, with the pattern as base colour
    return pyrender.MetallicRoughnessMaterial(
        baseColorFactor=[1.0, 1.0, 1.0, 1.0],
        baseColorTexture=pyrender.Texture(source=texture, source_channels="RGB"),
        metallicFactor=0.0,
        roughnessFactor=0.9,
        alphaMode="OPAQUE",
    )


def _primitive(positions, normals, uvs, colors, texture: np.ndarray) -> pyrender.Primitive:
    return pyrender.Primitive(
        positions=positions.astype(np.float32),
        normals=normals.astype(np.float32),
        texcoord_0=uvs.astype(np.float32),
        color_0=colors.astype(np.float32),
        material=_material(texture),
        mode=pyrender.constants.GLTF.TRIANGLES,
    )


def object_pattern(obj: WorldObject, rng: np.random.Generator) -> str:
    """Wood for tables, chairs, shelves and cabinets; stripes or checks for the rest."""
    choice = str(rng.choice(["stripes", "checks"]))  # drawn for every object, so later draws do not depend on kinds
    return "wood" if obj.kind in WOODEN_KINDS else choice


def shell_pattern(label: str, wall_patterns: list[str]) -> str:
    """Pattern of a shell face from its surface label (see `Apartment.shell_surfaces`)."""
    if label.startswith("wall "):
        return wall_patterns[int(label.split()[1])]
    if label == "ceiling":
        return "plaster"
    if label == "trim":
        return "wood"
    return FLOOR_PATTERNS[label]


def _posters(apartment: Apartment, rng: np.random.Generator) -> list[tuple[trimesh.Trimesh, np.ndarray]]:
    """Picture quads on the rooms' long walls (z0 and z1, which have no doorways), 1 cm in front of the plaster,
    with their images. Quads facing into the room; a shelf against the wall simply hides what is behind it."""
    posters = []
    for room in apartment.rooms:
        count = int(rng.integers(POSTERS_PER_ROOM[0], POSTERS_PER_ROOM[1] + 1))
        slots = np.linspace(room.x0, room.x1, 2 * count + 1)[1::2]  # spread along the wall, one per slot
        for x in slots:
            width, height = rng.uniform(0.6, 1.1), rng.uniform(0.5, 0.9)
            x = float(np.clip(x + rng.uniform(-0.3, 0.3), room.x0 + width / 2 + 0.2, room.x1 - width / 2 - 0.2))
            y = float(rng.uniform(1.3, min(1.7, room.height - height / 2 - 0.2)))
            on_far_wall = bool(rng.random() < 0.5)
            z = room.z1 - WALL_THICKNESS / 2 - 0.01 if on_far_wall else room.z0 + WALL_THICKNESS / 2 + 0.01
            quad = trimesh.Trimesh(
                [[x - width / 2, y - height / 2, z], [x + width / 2, y - height / 2, z],
                 [x + width / 2, y + height / 2, z], [x - width / 2, y + height / 2, z]],
                [[0, 2, 1], [0, 3, 2]] if on_far_wall else [[0, 1, 2], [0, 2, 3]],
                process=False,
            )  # fmt: skip
            quad.visual.face_colors = (255, 255, 255, 255)
            posters.append((quad, poster_image(rng)))
            if len(posters) == POSTER_GRID**2:
                return posters
    return posters


def _poster_primitive(posters: list[tuple[trimesh.Trimesh, np.ndarray]]) -> pyrender.Primitive:
    """All posters in one primitive sampling one atlas (a grid of padded images)."""
    cell = POSTER_SIZE + 2 * ATLAS_PAD
    atlas = np.zeros((POSTER_GRID * cell, POSTER_GRID * cell, 3), np.uint8)
    positions, normals, uvs, colors = [], [], [], []
    for k, (quad, image) in enumerate(posters):
        row, col = divmod(k, POSTER_GRID)
        atlas[row * cell : (row + 1) * cell, col * cell : (col + 1) * cell] = np.pad(
            image, ((ATLAS_PAD, ATLAS_PAD), (ATLAS_PAD, ATLAS_PAD), (0, 0)), mode="edge"
        )
        p, n, c = _corners(quad)
        local = box_uv(p, n)
        lo, hi = local.min(0), local.max(0)
        # the image's top row is v = 1 in OpenGL (pyrender flips rows on upload)
        rel = (local - lo) / (hi - lo)
        if n[0, 2] < 0:  # seen from the room, a far-wall poster's image runs towards -x
            rel[:, 0] = 1 - rel[:, 0]
        u0, v0 = (col * cell + ATLAS_PAD) / atlas.shape[1], 1 - ((row + 1) * cell - ATLAS_PAD) / atlas.shape[0]
        uvs.append(np.stack([u0, v0]) + rel * POSTER_SIZE / atlas.shape[0])
        positions.append(p), normals.append(n), colors.append(c)
    return _primitive(*(np.concatenate(a) for a in (positions, normals, uvs, colors)), atlas)


def static_primitives(apartment: Apartment, fixed: list[WorldObject]) -> list[pyrender.Primitive]:
    """The textured static scene: one primitive per pattern (shell faces and fixed furniture in world coordinates)
    and one for the posters."""
    rng = np.random.default_rng([apartment.seed, TEXTURE_STREAM])
    textures = pattern_textures(rng)
    names, chances = list(WALL_PATTERNS), list(WALL_PATTERNS.values())
    wall_patterns = [str(rng.choice(names, p=chances)) for _ in apartment.rooms]
    parts: list[tuple[trimesh.Trimesh, str]] = []
    labels = apartment.shell_surfaces
    for pattern in sorted(set(textures)):
        faces = np.flatnonzero([shell_pattern(label, wall_patterns) == pattern for label in labels])
        if len(faces):
            parts.append((apartment.shell.submesh([faces], append=True), pattern))
    for obj in fixed:
        parts.append((obj.mesh.copy().apply_transform(obj.pose), object_pattern(obj, rng)))
    primitives = []
    for pattern in sorted(set(textures)):
        group = [_corners(mesh) for mesh, name in parts if name == pattern]
        if not group:
            continue
        positions, normals, colors = (np.concatenate(a) for a in zip(*group))
        colors[:, :3] *= COLOR_GAIN
        uvs = box_uv(positions, normals) / TILE_METRES[pattern]
        primitives.append(_primitive(positions, normals, uvs, colors, textures[pattern]))
    return primitives + [_poster_primitive(_posters(apartment, rng))]


def dynamic_atlas(apartment: Apartment) -> np.ndarray:
    """(2C, 2C, 3) uint8 atlas of the moving pieces: the `ATLAS_CELLS` in a 2x2 grid, each padded by its edge."""
    rng = np.random.default_rng([apartment.seed, TEXTURE_STREAM, 1])
    textures = pattern_textures(rng)
    flat = grey_texture(np.ones((TEXTURE_SIZE, TEXTURE_SIZE)))
    cells = [np.pad(t, ((ATLAS_PAD, ATLAS_PAD), (ATLAS_PAD, ATLAS_PAD), (0, 0)), mode="wrap")
             for t in (flat, textures["wood"], textures["stripes"], textures["checks"])]  # fmt: skip
    return np.concatenate([np.concatenate(cells[:2], 1), np.concatenate(cells[2:], 1)], 0)


def atlas_uv(mesh: trimesh.Trimesh, cell: str) -> np.ndarray:
    """(3F, 2) UVs of a moving piece's face corners in an atlas cell: box projection in the piece's own frame,
    stretched over the cell (the piece's extent maps to the whole pattern, so the cell never repeats)."""
    positions, normals, _ = _corners(mesh)
    local = box_uv(positions, normals)
    extent = np.ptp(mesh.vertices, axis=0)
    lo = mesh.vertices.min(0)
    axis = np.abs(normals).argmax(1)
    plane = np.array([[2, 1], [0, 2], [0, 1]])[axis]
    rel = (local - np.take(lo, plane)) / np.maximum(np.take(extent, plane), 1e-6)
    index = ATLAS_CELLS.index(cell)
    size = TEXTURE_SIZE + 2 * ATLAS_PAD
    row, col = divmod(index, 2)
    u = (col * size + ATLAS_PAD + rel[:, 0].clip(0, 1) * TEXTURE_SIZE) / (2 * size)
    v = 1 - (row * size + ATLAS_PAD + (1 - rel[:, 1].clip(0, 1)) * TEXTURE_SIZE) / (2 * size)
    return np.stack([u, v], 1)


def moving_cells(apartment: Apartment, movable: list[WorldObject]) -> tuple[list[str], list[str]]:
    """Atlas cells of the doors and of the movable objects (stripes or checks, drawn from the texture stream)."""
    rng = np.random.default_rng([apartment.seed, TEXTURE_STREAM, 2])
    return ["wood"] * len(apartment.doors), [str(rng.choice(["stripes", "checks"])) for _ in movable]


def dynamic_material(apartment: Apartment) -> pyrender.MetallicRoughnessMaterial:
    return _material(dynamic_atlas(apartment))

"""EgoWorld's `textured` setting: the default stays as it was, textures add detail, keep the named colours, are
deterministic, and a generation folder does not mix settings."""

import hashlib
import json

import numpy as np
import pytest
import torch
from OpenGL.GL import GL_RENDERER, glGetString
from scipy import ndimage

import egotwin.world.generate as generate_module
from egotwin.data.clip_format import read_clip
from egotwin.world import textures
from egotwin.world.__main__ import main
from egotwin.world.apartment import OBJECT_COLORS, generate_apartment
from egotwin.world.generate import WorldConfig, apartment_seed, generate, make_clip
from egotwin.world.render import EgoRenderer

SEED = 11
CONFIG = WorldConfig(clips_per_apartment=2, textured=True)
# sha256 of the raw frames of clip 0 of seed 0 (default settings), rendered by the code before the textured setting
# existed, on llvmpipe (LLVM 15.0.6, 256 bits), Mesa 22.3.6; other rasterisers may differ in the last bit
DEFAULT_CLIP0_SHA256 = "96306606f4bffefa7c09fd635ce38aeabd77b932191e3eb33e0f0a3b778136f8"
REFERENCE_RASTERISER = "llvmpipe (LLVM 15.0.6, 256 bits)"


@pytest.fixture(scope="module")
def body():
    return generate_module.load_default_body()


@pytest.fixture(scope="module")
def renderers(body):
    flat, textured = EgoRenderer(body, 64, 64), EgoRenderer(body, 64, 64, textured=True)
    yield flat, textured
    flat.close()
    textured.close()


def _clip(renderer, body, seed: int, apartment_index: int, clip_index: int):
    apartment = generate_apartment(apartment_seed(seed, apartment_index))
    renderer.set_apartment(apartment)
    rest = torch.as_tensor(np.asarray(body.rest_joints), dtype=torch.float32)
    rng = np.random.default_rng(np.random.SeedSequence([seed, clip_index]))
    return make_clip("probe", apartment, rng, renderer, rest)


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_default_frames_are_those_of_the_code_before_textures(renderers, body):
    flat, _ = renderers
    frames = _clip(flat, body, 0, 0, 0).frames
    flat.renderer._platform.make_current()
    rasteriser = glGetString(GL_RENDERER).decode()
    if rasteriser != REFERENCE_RASTERISER:
        pytest.skip(f"the reference hash was recorded on {REFERENCE_RASTERISER}, this is {rasteriser}")
    assert hashlib.sha256(frames.tobytes()).hexdigest() == DEFAULT_CLIP0_SHA256


def test_every_grey_pattern_has_the_common_mean_and_fine_structure():
    patterns = textures.pattern_textures(np.random.default_rng(3))
    assert set(patterns) == set(textures.TILE_METRES)
    for name, texture in patterns.items():
        modulation = textures.output_modulation(texture[..., 0])
        assert abs(modulation.mean() - textures.MODULATION_MEAN) < 0.01, name
        assert (texture[..., 0] == texture[..., 1]).all(), f"{name} must be grey (a brightness modulation)"
        assert modulation.std() > 0.04, name
    # the gain undoes the mean darkening exactly: the output scales by gain ** (1 / 2.2) * mean
    assert textures.COLOR_GAIN ** (1 / 2.2) * textures.MODULATION_MEAN == pytest.approx(1.0)
    again = textures.pattern_textures(np.random.default_rng(3))
    assert all((again[name] == patterns[name]).all() for name in patterns)


def test_every_shell_face_has_its_surface():
    for seed in (0, 1, 2):
        apartment = generate_apartment(seed)
        labels = apartment.shell_surfaces
        assert len(labels) == len(apartment.shell.faces)
        walls = {f"wall {room.index}" for room in apartment.rooms}
        assert walls | {"ceiling", "trim"} <= set(labels) <= walls | {"ceiling", "trim"} | set(textures.FLOOR_PATTERNS)
        # walls stand, floors and ceilings lie: check by the faces' extent in y
        heights = np.ptp(apartment.shell.vertices[apartment.shell.faces][..., 1], axis=1)
        assert heights[labels == "wall 0"].max() > 2.0 and heights[labels == "ceiling"].max() < 0.03


def _laplacian_energy(frames: np.ndarray) -> float:
    grey = frames.astype(np.float64).mean(-1)
    return float(np.mean([np.abs(ndimage.laplace(frame)).mean() for frame in grey]))


def _object_pixels(clip, depth: np.ndarray, obj) -> np.ndarray:
    """(N, H, W) bool: pixels whose depth back-projects into the object's world box (1 cm wider; its lowest 4 cm
    left out, so that the floor or table top it stands on is not counted at 64x64's precision)."""
    n, h, w = depth.shape
    k = clip.intrinsics
    col, row = np.meshgrid(np.arange(w) + 0.5, np.arange(h) + 0.5)
    rays = np.stack([(col - k[0, 2]) / k[0, 0], (row - k[1, 2]) / k[1, 1], np.ones_like(col)], -1)
    points = np.einsum("nij,nhwj->nhwi", clip.camera_to_world[:, :3, :3], rays[None] * depth[..., None])
    points += clip.camera_to_world[:, None, None, :3, 3]
    x0, x1, z0, z1 = obj.footprint()
    lo, hi = np.array([x0 - 0.01, obj.position[1] + 0.04, z0 - 0.01]), np.array([x1, obj.top, z1]) + 0.01
    return (depth > 0) & ((points >= lo) & (points <= hi)).all(-1)


@pytest.mark.slow
def test_textured_frames_have_more_detail_and_keep_the_named_colours(renderers, body):
    """The same clips textured and flat: the textured frames have over twice the Laplacian energy; every visible
    fixed object's mean colour moves little, and among the objects seen in its apartment (the same lights) it is
    still nearest to its own flat colour."""
    flat, textured = renderers
    ratios, checked = [], []
    for apartment_index in (0, 1):
        a, b = (_clip(r, body, SEED, apartment_index, 2 * apartment_index) for r in (flat, textured))
        np.testing.assert_array_equal(a.camera_to_world, b.camera_to_world)  # the same story
        ratios.append(_laplacian_energy(b.frames) / _laplacian_energy(a.frames))
        rotations, joints = (x[::2].double().numpy() for x in a.motion.forward_kinematics())
        _, depth, _ = flat.render(rotations, joints, a.camera_to_world, a.door_angles)
        # the same views with the body 100 m under the floor: where the depth differs, the body is in front
        _, room_depth, _ = flat.render(rotations, joints - [0, 100, 0], a.camera_to_world, a.door_angles)
        body_free = depth == room_depth
        flat_means, textured_means, names = [], [], []
        for obj in a.apartment.objects:
            mask = _object_pixels(a, depth, obj) & body_free
            if obj.movable or mask.sum() < 40:
                continue
            flat_means.append(a.frames[mask].mean(0))
            textured_means.append(b.frames[mask].mean(0))
            names.append(obj.name)
        flat_means, textured_means = np.array(flat_means), np.array(textured_means)
        np.testing.assert_array_less(np.abs(textured_means - flat_means).mean(1), 10)
        nearest = np.linalg.norm(textured_means[:, None] - flat_means[None], axis=-1).argmin(1)
        assert (nearest == np.arange(len(names))).all(), [(names[i], names[j]) for i, j in enumerate(nearest) if i != j]
        checked += names
    assert min(ratios) > 2, ratios
    assert len(checked) >= 4, checked


def test_named_colours_survive_every_object_pattern():
    """Texel by texel through the shader's arithmetic: each named colour, modulated by each pattern an object can
    take and raised by the gain, averages to a colour whose nearest named colour is its own."""
    palette = np.array(list(OBJECT_COLORS.values()), float)
    patterns = textures.pattern_textures(np.random.default_rng(5))
    for pattern in ("wood", "stripes", "checks"):
        modulation = textures.output_modulation(patterns[pattern][..., 0]).reshape(-1, 1)
        for name, rgb in OBJECT_COLORS.items():
            pixels = np.clip(np.array(rgb) * textures.COLOR_GAIN ** (1 / 2.2) * modulation, 0, 255)
            mean = pixels.mean(0)
            nearest = list(OBJECT_COLORS)[int(np.linalg.norm(palette - mean, axis=1).argmin())]
            assert nearest == name, (pattern, name, mean)


def test_textured_generation_is_deterministic_and_tells_the_same_stories(tmp_path):
    flat = generate(tmp_path / "flat", 2, seed=SEED, config=WorldConfig(clips_per_apartment=2), progress=False)
    assert main(["generate", "--output_dir", str(tmp_path / "a"), "--clips", "2", "--seed", str(SEED),
                 "--clips_per_apartment", "2", "--textured"]) == 0  # fmt: skip
    assert json.loads((tmp_path / "a" / "config.json").read_text())["textured"] is True
    generate(tmp_path / "b", 2, seed=SEED, config=CONFIG, progress=False)
    for record in flat:
        a, b, f = (tmp_path / name / record["path"] for name in ("a", "b", "flat"))
        for name in ("motion.npz", "cameras.npz", "caption.txt", "video.mp4"):
            assert _digest(a / name) == _digest(b / name), name
        for name in ("motion.npz", "cameras.npz", "caption.txt"):
            assert _digest(a / name) == _digest(f / name), name
        assert _digest(a / "video.mp4") != _digest(f / "video.mp4")
        assert read_clip(a)["frames"].std() > 10


def test_a_folder_does_not_mix_textured_and_flat_clips(tmp_path):
    generate(tmp_path, 1, seed=SEED, config=WorldConfig(clips_per_apartment=1), progress=False)
    with pytest.raises(ValueError, match="other settings"):
        generate(tmp_path, 2, seed=SEED, config=WorldConfig(clips_per_apartment=1, textured=True), progress=False)
    # journals written before the setting existed read as flat
    journal = tmp_path / generate_module.JOURNAL_NAME
    header, *entries = journal.read_text().splitlines()
    old = json.loads(header)
    del old["config"]["textured"]
    journal.write_text("\n".join([json.dumps(old), *entries]) + "\n")
    assert generate_module._read_journal(journal, SEED, WorldConfig(clips_per_apartment=1)).keys() == {0}
    textured = WorldConfig(clips_per_apartment=1, textured=True)
    with pytest.raises(ValueError, match="other settings"):
        generate_module._read_journal(journal, SEED, textured)


def test_a_textured_run_resumes(tmp_path):
    config = WorldConfig(clips_per_apartment=1, textured=True)
    first = generate(tmp_path, 1, seed=SEED, config=config, progress=False)
    video = tmp_path / first[0]["path"] / "video.mp4"
    stamp = video.stat().st_mtime_ns
    records = generate(tmp_path, 2, seed=SEED, config=config, progress=False)
    assert video.stat().st_mtime_ns == stamp and len(records) == 2


@pytest.mark.slow
def test_textured_worker_count_does_not_change_the_data(tmp_path):
    config = WorldConfig(clips_per_apartment=1, textured=True)  # two apartments: one for each worker
    one = generate(tmp_path / "one", 2, seed=SEED, workers=1, config=config, progress=False)
    generate(tmp_path / "two", 2, seed=SEED, workers=2, config=config, progress=False)
    for record in one:
        a, b = tmp_path / "one" / record["path"], tmp_path / "two" / record["path"]
        for name in ("motion.npz", "video.mp4"):
            assert _digest(a / name) == _digest(b / name), name

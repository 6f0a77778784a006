"""The visualizer: frustum and tube geometry against the pinhole projection, the follow camera, what the body view
shows, frame sync of the side-by-side video, and every export read back (npz, BVH, glb through pygltflib + scipy +
trimesh, mp4 through imageio)."""

from __future__ import annotations

import threading

import imageio.v3 as iio
import numpy as np
import pygltflib
import pytest
import torch
import trimesh
from scipy.spatial.transform import Rotation

from egotwin.body.body_model import builtin_body_model, load_body_model
from egotwin.body.head_camera import HeadCameraRig, project
from egotwin.body.rotations import rotation_about_y
from egotwin.body.skeleton import HEAD, JOINT_NAMES, NUM_JOINTS, PARENTS, PELVIS
from egotwin.motion.bvh import load_bvh
from egotwin.motion.motion import Motion
from egotwin.motion.random_motion import smooth_random_motion, walking_motion
from egotwin.render import BodyViewRenderer, compose_side_by_side, export_all, render_body_view, save_glb
from egotwin.render.body_view import BACKGROUND, FLOOR_COLORS, FRUSTUM_COLOR
from egotwin.render.compose import CAPTION_HEIGHT, caption_bars, side_by_side_frames, upscale, write_egocentric
from egotwin.render.geometry import (
    checker_floor,
    follow_camera_poses,
    frustum_corners,
    frustum_segments,
    look_at,
    tube_triangles,
)
from egotwin.render.gltf import continuous_quaternions, top_skin_weights
from egotwin.render.raster import SoftwareRasterizer

RIG = HeadCameraRig()
K64 = RIG.intrinsics(64, 64, dtype=torch.float64).numpy()


@pytest.fixture(scope="module")
def walk() -> Motion:
    """5 s at 16 fps (81 frames), about 3 m of walking."""
    return walking_motion(duration=5.0, speed=0.62)


@pytest.fixture(scope="module")
def head_cameras(walk) -> np.ndarray:
    return RIG.camera_poses(*walk.to(dtype=torch.float64).head_pose()).numpy()


@pytest.fixture(scope="module", params=["opengl", "software"])
def small_view(walk, request):
    """The body view on each drawing path: every test of what it shows holds for both."""
    renderer = BodyViewRenderer((128, 128), backend=request.param)
    assert renderer.backend == request.param
    yield renderer, renderer.render(walk, K64)
    renderer.close()


def video_for(num_frames: int, size: int = 64) -> np.ndarray:
    """A video whose frame i is a smooth colour field that changes strongly from frame to frame (codec friendly)."""
    y, x = np.mgrid[0:size, 0:size] / size
    frames = np.empty((num_frames, size, size, 3), np.uint8)
    for i in range(num_frames):
        phase = 0.7 * i
        frames[i, ..., 0] = 128 + 100 * np.sin(2 * np.pi * x + phase)
        frames[i, ..., 1] = 128 + 100 * np.cos(2 * np.pi * y - phase)
        frames[i, ..., 2] = (40 * i) % 256
    return frames


# ----------------------------------------------------------------------------------------------------- geometry
def test_frustum_apex_is_camera_centre_and_corners_project_to_image_corners(head_cameras):
    depth = 0.45
    corners = frustum_corners(head_cameras, K64, (64, 64), depth)
    segments = frustum_segments(head_cameras, corners)
    assert corners.shape == (81, 4, 3) and segments.shape == (81, 8, 2, 3)
    np.testing.assert_allclose(segments[:, :4, 0], np.repeat(head_cameras[:, None, :3, 3], 4, 1), atol=1e-12)
    np.testing.assert_allclose(segments[:, :4, 1], corners, atol=1e-12)
    np.testing.assert_allclose(segments[:, 4:, 0], corners, atol=1e-12)
    np.testing.assert_allclose(segments[:, 4:, 1], np.roll(corners, -1, axis=1), atol=1e-12)
    pixels, depths = project(torch.from_numpy(corners), torch.from_numpy(head_cameras), torch.from_numpy(K64))
    expected = np.array([[0, 0], [64, 0], [64, 64], [0, 64]], dtype=np.float64)
    # (float32 motion: its rotations are orthonormal to ~1e-7, hence micro-pixel tolerances)
    np.testing.assert_allclose(pixels.numpy(), np.broadcast_to(expected, (81, 4, 2)), atol=1e-5)
    np.testing.assert_allclose(depths.numpy(), depth, atol=1e-6)
    # 90 degree field of view: the far rectangle is 2 * depth wide.
    np.testing.assert_allclose(np.linalg.norm(corners[:, 1] - corners[:, 0], axis=-1), 2 * depth, atol=1e-9)


def test_frustum_respects_non_square_intrinsics():
    camera = look_at(np.array([1.0, 1.6, -2.0]), np.array([0.3, 1.2, 1.0]))
    k = np.array([[200.0, 0, 150.0], [0, 180.0, 60.0], [0, 0, 1]])
    corners = frustum_corners(camera, k, (300, 120), 2.0)
    pixels, depths = project(torch.from_numpy(corners), torch.from_numpy(camera), torch.from_numpy(k))
    np.testing.assert_allclose(pixels.numpy(), [[0, 0], [300, 0], [300, 120], [0, 120]], atol=1e-9)
    np.testing.assert_allclose(depths.numpy(), 2.0, atol=1e-12)


def test_tube_triangles_surround_their_segments_and_face_outwards():
    rng = np.random.default_rng(0)
    segments = rng.normal(size=(20, 2, 3))
    segments[3, 1] = segments[3, 0]  # zero length
    segments[4, 1] = segments[4, 0] + [0, 2.0, 0]  # along the world up axis
    radius = 0.05
    positions, normals = tube_triangles(segments, radius)
    assert positions.shape == normals.shape == (20 * 24, 3)
    tri = positions.reshape(20, 8, 3, 3).astype(np.float64)
    cross = np.cross(tri[..., 1, :] - tri[..., 0, :], tri[..., 2, :] - tri[..., 0, :])
    area = np.linalg.norm(cross, axis=-1) / 2
    face_normal = normals.reshape(20, 8, 3, 3)[..., 0, :]
    np.testing.assert_allclose(np.linalg.norm(face_normal, axis=-1), 1, atol=1e-6)
    assert np.all(area[3] < 1e-12)
    live = np.delete(np.arange(20), 3)
    # counter-clockwise seen from outside: the winding's normal agrees with the stored normal
    cosine = (cross[live] * face_normal[live]).sum(-1) / np.linalg.norm(cross[live], axis=-1)
    np.testing.assert_allclose(cosine, 1, atol=1e-5)
    # every corner lies at `radius` from the segment's line, between its ends
    a, b = segments[live, 0][:, None, None], segments[live, 1][:, None, None]
    axis = (b - a) / np.linalg.norm(b - a, axis=-1, keepdims=True)
    rel = tri[live] - a
    along = (rel * axis).sum(-1)
    distance = np.linalg.norm(rel - along[..., None] * axis, axis=-1)
    np.testing.assert_allclose(distance, radius, atol=1e-5)
    assert along.min() > -1e-5 and np.all(along.max(axis=(1, 2)) <= np.linalg.norm(b - a, axis=-1)[:, 0, 0] + 1e-5)


def test_checker_floor_is_flat_faces_up_and_alternates():
    floor = checker_floor(2.0, 0.5, FLOOR_COLORS)
    assert np.all(floor.vertices[:, 1] == 0)
    np.testing.assert_allclose(floor.bounds[:, [0, 2]], [[-2, -2], [2, 2]])
    np.testing.assert_allclose(floor.face_normals, np.tile([0, 1.0, 0], (len(floor.faces), 1)), atol=1e-12)
    assert len(floor.faces) == 2 * 8 * 8
    centres = floor.triangles_center
    tiles = np.floor(centres[:, [0, 2]] / 0.5).astype(int)
    parity = tiles.sum(1) % 2
    colors = floor.visual.face_colors
    assert np.all(colors[parity == 0] == colors[parity == 0][0]) and np.all(
        colors[parity == 1] == colors[parity == 1][0]
    )
    assert not np.array_equal(colors[parity == 0][0], colors[parity == 1][0])


def test_look_at_is_a_rotation_that_points_at_the_target():
    eye, target = np.array([2.0, 3.0, -1.0]), np.array([0.0, 1.0, 2.0])
    pose = look_at(eye, target)
    rotation = pose[:3, :3]
    np.testing.assert_allclose(rotation.T @ rotation, np.eye(3), atol=1e-12)
    assert np.linalg.det(rotation) == pytest.approx(1.0)
    pixels, depth = project(torch.from_numpy(target[None]), torch.from_numpy(pose), torch.from_numpy(K64))
    np.testing.assert_allclose(pixels.numpy()[0], [32, 32], atol=1e-9)
    assert rotation[1, 1] < 0  # the image's down axis (camera +y) points down in the world (-y)


# ------------------------------------------------------------------------------------------------- follow camera
def test_follow_camera_keeps_the_walker_in_frame_and_moves_smoothly(walk, small_view):
    renderer, _ = small_view
    joints = walk.joints().double().numpy()
    path = np.linalg.norm(np.diff(joints[:, PELVIS, [0, 2]], axis=0), axis=-1).sum()
    assert path >= 3.0 and np.linalg.norm(joints[-1, PELVIS, [0, 2]] - joints[0, PELVIS, [0, 2]]) > 2.5
    views = renderer.follow_camera(walk)
    assert views.shape == (81, 4, 4)
    k = torch.from_numpy(renderer.intrinsics)
    pixels, depth = project(torch.from_numpy(joints[:, [PELVIS, HEAD]]), torch.from_numpy(views), k)
    pixels = pixels.numpy()
    assert np.all(depth.numpy() > 1.0)
    assert np.all((pixels > 0.15 * 128) & (pixels < 0.85 * 128)), "pelvis and head stay well inside the frame"
    # smooth: a gait wobble of the pelvis (+-10 degrees of yaw and 3 cm of sway at 2 Hz) does not shake the camera:
    # frame-to-frame turns and accelerations stay those of the plain walk (a slow offset of a few cm is fine)
    times = torch.arange(81, dtype=torch.float64) / 16
    wobble = 0.17 * torch.sin(4 * torch.pi * times)
    shaky = Motion(
        trans=walk.trans.double() + 0.03 * torch.stack((torch.sin(4 * torch.pi * times), 0 * times, 0 * times), -1),
        global_orient=rotation_about_y(wobble) @ walk.global_orient.double(),
        body_pose=walk.body_pose.double(),
        rest_joints=walk.rest_joints.double(),
    )
    shaky_joints = shaky.joints().numpy()

    def turns(poses):  # degrees the view direction turns from frame to frame
        return np.degrees(np.arccos(np.clip((poses[1:, :3, 2] * poses[:-1, :3, 2]).sum(-1), -1, 1)))

    def accelerations(poses):
        return np.linalg.norm(np.diff(poses[:, :3, 3], n=2, axis=0), axis=-1)

    shaky_views = renderer.follow_camera(shaky)
    assert np.abs(turns(shaky_views) - turns(views)).max() < 0.05
    assert np.abs(accelerations(shaky_views) - accelerations(views)).max() < 1e-3
    # while the same camera without smoothing shakes with the body
    look_height = 0.5 * (shaky_joints[:, PELVIS, 1] + shaky_joints[:, HEAD, 1])
    heading = shaky.global_orient.numpy()[:, :, 2]
    unsmoothed = follow_camera_poses(shaky_joints[:, PELVIS], heading, look_height, 16, smoothing_s=0)
    assert np.abs(turns(unsmoothed) - turns(views)).max() > 2


# --------------------------------------------------------------------------------------------------- body view
def _scene_mask(frames: np.ndarray) -> np.ndarray:
    """Pixels that are neither sky nor floor: body, frustum, trail. Anti-aliased pixels on tile borders and the
    horizon are blends of two plain colours, so a pixel counts as plain when it is near a segment between two."""
    plain = [np.round(np.array(BACKGROUND) * 255)] + [np.array(c[:3], dtype=float) for c in FLOOR_COLORS]
    pixels = frames.astype(float)
    distance = np.full(frames.shape[:-1], np.inf)
    for i, a in enumerate(plain):
        for b in plain[i + 1 :]:
            along = np.clip(((pixels - a) @ (b - a)) / ((b - a) @ (b - a)), 0, 1)
            distance = np.minimum(distance, np.abs(pixels - (a + along[..., None] * (b - a))).max(-1))
    return distance > 8


def test_body_view_shows_the_body_around_the_pelvis_and_the_frustum(walk, small_view, head_cameras):
    renderer, frames = small_view
    assert frames.shape == (81, 128, 128, 3) and frames.dtype == np.uint8
    mask = _scene_mask(frames)
    views = torch.from_numpy(renderer.follow_camera(walk))
    k = torch.from_numpy(renderer.intrinsics)
    joints = walk.joints().double()
    pelvis_px, _ = project(joints[:, [PELVIS, HEAD]], views, k)
    for i in range(81):
        for col, row in np.floor(pelvis_px[i].numpy()).astype(int):
            assert mask[i, row - 2 : row + 3, col - 2 : col + 3].any(), f"frame {i}: no body at ({col}, {row})"
    middle = mask[:, 20:108, 20:108].sum((1, 2))
    assert middle.min() > 300  # a body of ~100 px height, not a speck
    assert not mask[0, :, :10].any() and not mask[0, :, -10:].any()  # nothing but floor and sky at the sides
    # the frustum's far corners are drawn in its orange: always the two top ones (image corners (0, 0) and (W, 0),
    # above the head), the bottom ones unless the torso hides them
    corners = frustum_corners(head_cameras, K64, (64, 64), 0.45)
    corner_px, _ = project(torch.from_numpy(corners), views, k)
    red, green, blue = (frames[..., c].astype(int) for c in range(3))
    orange = (red - blue > 60) & (red > green) & (red > 90)
    assert FRUSTUM_COLOR[0] > FRUSTUM_COLOR[1] and FRUSTUM_COLOR[0] - FRUSTUM_COLOR[2] > 0.5  # orange, as tested
    hits = np.zeros((81, 4), bool)
    for i in range(81):
        for c, (col, row) in enumerate(np.floor(corner_px[i].numpy()).astype(int)):
            assert 2 <= col < 126 and 2 <= row < 126
            hits[i, c] = orange[i, row - 2 : row + 3, col - 2 : col + 3].any()
    assert hits[:, :2].all() and hits.mean() > 0.7


def _drawn(frames: np.ndarray) -> np.ndarray:
    """Pixels of anything but the sky and the floor (body, frustum, trail): colours more than 12 levels from every
    mix of two of the sky's and floor tiles' colours (pyrender's multisampling mixes them at the tiles' edges)."""
    plain = [np.round(np.array(BACKGROUND) * 255), *[np.array(c[:3], float) for c in FLOOR_COLORS]]
    pixels = frames.astype(float)
    distance = np.full(frames.shape[:-1], np.inf)
    for i in range(3):
        a, b = plain[i], plain[(i + 1) % 3]
        t = np.clip(((pixels - a) @ (b - a)) / ((b - a) @ (b - a)), 0, 1)
        distance = np.minimum(distance, np.linalg.norm(pixels - (a + t[..., None] * (b - a)), axis=-1))
    return distance > 12


def test_software_body_view_matches_pyrender(walk):
    """The software rasteriser against pyrender's OpenGL frames of the same motion, body and camera, at the demo's
    size. They differ at edges only: pyrender multisamples (an edge pixel mixes both sides, and a 1.6 px line is
    drawn wherever it touches a pixel), the rasteriser samples each pixel's centre (measured over the whole 5 s walk:
    IoU 0.90, mean difference 1.6 levels of 255; at 160 px the IoU is 0.85, the edges weighing more)."""
    clip = walk.slice(0, 17)
    renderers = [BodyViewRenderer((320, 320), backend=backend) for backend in ("opengl", "software")]
    opengl, software = (renderer.render(clip, K64) for renderer in renderers)
    for renderer in renderers:  # closed, not collected: pyrender's own clean-up would end every EGL context
        renderer.close()
    a, b = _drawn(opengl), _drawn(software)
    iou = (a & b).sum() / (a | b).sum()
    difference = np.abs(opengl.astype(int) - software.astype(int)).mean()
    assert iou > 0.88 and difference < 3.5, (iou, difference)
    both = a & b  # where both drew the body, the colours (the shading) agree, but for the mixed edge pixels
    assert np.median(np.abs(opengl[both].astype(int) - software[both].astype(int)).max(-1)) <= 2


def test_software_rasterizer_known_answers():
    k = np.array([[10.0, 0, 10], [0, 10.0, 10], [0, 0, 1]])
    raster = SoftwareRasterizer(20, 20, k, (0, 0, 0), 0.1, 100.0)
    # a square 2 m in front of the camera, 0.8 m wide: it covers pixel centres x in (6, 14), i.e. pixels 6..13
    square = np.array([[-0.8, -0.8, 2], [0.8, -0.8, 2], [0.8, 0.8, 2], [-0.8, 0.8, 2]])
    near = np.stack((square[[0, 1, 2]], square[[0, 2, 3]]))
    far = near * [3, 3, 1] + [0, 0, 1]  # a larger square behind it (3 m): hidden where the near one is
    colors = np.array([[0, 0, 1], [0, 0, 1], [1, 0, 0], [1, 0, 0]])
    image = raster.render(np.eye(4), np.concatenate((far, near)), colors)
    red, blue = image[..., 0] == 255, image[..., 2] == 255
    expected = np.zeros((20, 20), bool)
    expected[6:14, 6:14] = True
    np.testing.assert_array_equal(red, expected)
    assert blue.sum() == 16 * 16 - 64  # the far square covers pixel centres in (2, 18) around the near one
    # a checker floor seen from 1 m above, looking straight down: tile parity by world position
    down = np.eye(4)
    down[:3, :3] = [[1, 0, 0], [0, 0, -1], [0, 1, 0]]  # columns: camera x = world x, y (down) = +z, z (forward) = -y
    down[1, 3] = 1.0
    colors = np.array([[255, 255, 255], [0, 0, 0]], np.uint8)
    floor = raster.render(down, np.zeros((0, 3, 3)), np.zeros((0, 3)), (np.zeros(2), 10.0, 0.5, colors))
    # pixel (x, y) sees world (x + 0.5 - 10, 0, y + 0.5 - 10) / 10: x, z in [-1, 1], 0.5 m tiles -> 4 x 4 tiles
    xs = (np.arange(20) + 0.5 - 10) / 10
    parity = (np.floor(xs[None, :] / 0.5) + np.floor(xs[:, None] / 0.5)) % 2
    np.testing.assert_array_equal(floor[..., 0], np.where(parity == 0, 255, 0))


def test_body_view_is_deterministic_across_calls_and_threads(walk, small_view):
    renderer, frames = small_view
    clip = walk.slice(0, 9)
    first = renderer.render(clip, K64)
    result = {}
    worker = threading.Thread(target=lambda: result.update(frames=renderer.render(clip, K64)))
    worker.start()
    worker.join()
    np.testing.assert_array_equal(result["frames"], first)


def test_body_view_draws_the_trail_of_past_head_camera_positions(walk, small_view, head_cameras):
    renderer, frames = small_view
    views = torch.from_numpy(renderer.follow_camera(walk))
    k = torch.from_numpy(renderer.intrinsics)
    red, blue = frames[..., 0].astype(int), frames[..., 2].astype(int)
    trail = (blue - red > 60) & (blue > 150)  # TRAIL_COLOR, lit
    past = torch.from_numpy(head_cameras[10:70:5, :3, 3])  # 0.6 to 4.1 s: 0.5 to 2.6 m behind the person at 5 s
    pixels, _ = project(past, views[80], k)
    inside = [(c, r) for c, r in np.floor(pixels.numpy()).astype(int) if 2 <= c < 126 and 2 <= r < 126]
    assert len(inside) >= 6
    assert all(trail[80, r - 2 : r + 3, c - 2 : c + 3].any() for c, r in inside)
    # at frame 20 the same places are only partly walked: no trail yet where the person will be after 2 s
    future = torch.from_numpy(head_cameras[55:70:5, :3, 3])
    pixels, _ = project(future, views[20], k)
    assert not any(trail[20, r - 1 : r + 2, c - 1 : c + 2].any() for c, r in np.floor(pixels.numpy()).astype(int))


def test_body_view_draws_the_given_body_and_rejects_bad_inputs(walk):
    clip = walk.slice(0, 3)
    tall = builtin_body_model(height=2.1)
    default = render_body_view(clip, K64, size=96)
    tall_frames = render_body_view(clip, K64, body=tall, size=96)
    assert _scene_mask(tall_frames).sum() > _scene_mask(default).sum()
    still = render_body_view(Motion.rest(1), K64, None, 96)  # one frame (the demo's warm-up): no trail to draw
    assert still.shape == (1, 96, 96, 3) and _scene_mask(still).sum() > 100
    with pytest.raises(ValueError, match="intrinsics"):
        render_body_view(clip, np.eye(2), size=96)
    with pytest.raises(ValueError, match="Motion"):
        render_body_view(clip.trans, K64, size=96)
    with pytest.raises(ValueError, match="BodyModel"):
        render_body_view(clip, K64, body="smplx", size=96)


# ----------------------------------------------------------------------------------------------------- compose
def test_side_by_side_is_frame_synchronised(tmp_path):
    video = video_for(41)
    body = np.stack([np.full((128, 128, 3), (3 * j) % 256, np.uint8) for j in range(81)])
    path = compose_side_by_side(video, body, tmp_path / "sbs.mp4", caption="walk to the door", mode="t2vm")
    meta = iio.immeta(path)
    assert meta["fps"] == 16 and meta["pix_fmt"].startswith("yuv420p") and meta["codec"] == "h264"
    assert meta["duration"] == pytest.approx(81 / 16, abs=0.01)
    read = np.stack(list(iio.imiter(path, plugin="FFMPEG")))
    assert read.shape == (81, 128 + CAPTION_HEIGHT, 256, 3)
    expected = side_by_side_frames(video, body, "walk to the door", "t2vm")
    assert np.abs(read.astype(int) - expected).mean() < 2.5
    doubled = video.repeat(2, axis=1).repeat(2, axis=2).astype(int)  # 64 -> 128 by pixel replication
    for j in range(81):
        left = read[j, :128, :128].astype(int)
        error = np.abs(left - doubled[j // 2]).mean()
        assert error < 4, f"frame {j}"
        if j // 2 + 1 < 41:  # clearly closer to its own video frame than to the next one
            assert np.abs(left - doubled[j // 2 + 1]).mean() > 5 * error
        assert np.abs(read[j, :128, 128:].astype(int) - (3 * j) % 256).mean() < 3


def test_upscale_replicates_whole_factors_and_resizes_others():
    video = video_for(2, 16)
    np.testing.assert_array_equal(upscale(video, 48), video.repeat(3, 1).repeat(3, 2))
    assert upscale(video, 40).shape == (2, 40, 40, 3)
    assert upscale(video[:, :, :8], 40).shape == (2, 40, 20, 3)


def test_caption_bars_show_the_time_and_survive_long_prompts():
    bars = caption_bars(200, np.array([0.0, 1.25, 1.25]), "x" * 500, "tm2v")
    assert bars.shape == (3, CAPTION_HEIGHT, 200, 3)
    np.testing.assert_array_equal(bars[1], bars[2])
    changed = np.argwhere((bars[0] != bars[1]).any(-1))
    assert len(changed) > 0 and changed[:, 1].min() > 100  # only the time, at the right, differs
    assert np.array_equal(bars[0, :20], bars[1, :20])


def test_side_by_side_rejects_mismatched_lengths(tmp_path):
    with pytest.raises(ValueError, match="need 81 motion frames"):
        compose_side_by_side(video_for(41), np.zeros((100, 32, 32, 3), np.uint8), tmp_path / "x.mp4")
    with pytest.raises(ValueError, match="whole multiple"):
        side_by_side_frames(video_for(41), np.zeros((81, 32, 32, 3), np.uint8), video_fps=8, motion_fps=12)
    with pytest.raises(ValueError, match="uint8"):
        side_by_side_frames(video_for(41).astype(np.float32), np.zeros((81, 32, 32, 3), np.uint8))


def test_egocentric_video_is_upscaled_and_keeps_every_frame(tmp_path):
    video = video_for(41)
    path = write_egocentric(video, tmp_path / "ego.mp4")
    meta = iio.immeta(path)
    assert meta["fps"] == 8 and meta["size"] == (256, 256)
    read = np.stack(list(iio.imiter(path, plugin="FFMPEG")))
    assert read.shape == (41, 256, 256, 3)
    assert np.abs(read.astype(int) - video.repeat(4, 1).repeat(4, 2)).mean() < 2.5


# ---------------------------------------------------------------------------------------------------------- glb
def _accessor(document: pygltflib.GLTF2, blob: bytes, index: int) -> np.ndarray:
    accessor = document.accessors[index]
    view = document.bufferViews[accessor.bufferView]
    dtype = {5126: np.float32, 5121: np.uint8, 5123: np.uint16, 5125: np.uint32}[accessor.componentType]
    width = {"SCALAR": 1, "VEC3": 3, "VEC4": 4, "MAT4": 16}[accessor.type]
    start = view.byteOffset + (accessor.byteOffset or 0)
    assert view.byteStride in (None, 0)
    return np.frombuffer(blob, dtype, accessor.count * width, start).reshape(accessor.count, width)


def _glb_animation(path):
    document = pygltflib.GLTF2().load(str(path))
    blob = document.binary_blob()
    animation = document.animations[0]
    rotations, translation, times = {}, None, None
    for channel in animation.channels:
        sampler = animation.samplers[channel.sampler]
        assert sampler.interpolation == "LINEAR"
        times = _accessor(document, blob, sampler.input)[:, 0]
        values = _accessor(document, blob, sampler.output).astype(np.float64)
        if channel.target.path == "rotation":
            rotations[channel.target.node] = values
        else:
            assert channel.target.path == "translation" and channel.target.node == 0
            translation = values
    return document, blob, times, rotations, translation


def _glb_joints(document, rotations, translation):
    """Forward kinematics redone from the file's numbers with scipy: (T, 22, 3) world joints and rotations."""
    world_rot = [None] * NUM_JOINTS
    world_pos = [None] * NUM_JOINTS
    for j in range(NUM_JOINTS):  # parents precede children
        node = document.nodes[j]
        local = Rotation.from_quat(rotations[j].reshape(-1, 4)).as_matrix()  # scipy: x y z w, as glTF
        parent = PARENTS[j]
        if parent < 0:
            world_rot[j], world_pos[j] = local, translation
        else:
            world_rot[j] = world_rot[parent] @ local
            world_pos[j] = world_pos[parent] + world_rot[parent] @ np.asarray(node.translation)
    return np.stack(world_pos, 1), np.stack(world_rot, 1)


def test_glb_animation_reproduces_the_motion(walk, tmp_path):
    body = load_body_model()
    path = save_glb(walk, tmp_path / "walk.glb", body)
    document, blob, times, rotations, translation = _glb_animation(path)
    np.testing.assert_allclose(times, np.arange(81) / 16, atol=1e-6)
    assert [n.name for n in document.nodes[:NUM_JOINTS]] == list(JOINT_NAMES)
    for j in range(NUM_JOINTS):
        assert sorted(document.nodes[j].children) == [c for c in range(NUM_JOINTS) if PARENTS[c] == j]
        np.testing.assert_allclose(np.linalg.norm(rotations[j], axis=-1), 1, atol=1e-6)
        assert np.all((rotations[j][1:] * rotations[j][:-1]).sum(-1) >= 0)  # short-way interpolation
    joints, world_rot = _glb_joints(document, rotations, translation)
    expected_rot, expected = walk.to(dtype=torch.float64).forward_kinematics()
    np.testing.assert_allclose(joints, expected.numpy(), atol=1e-4)
    np.testing.assert_allclose(world_rot, expected_rot.numpy(), atol=1e-4)

    # skinning from the file's mesh, weights and inverse bind matrices = BodyModel.pose
    primitive = document.meshes[0].primitives[0]
    skin = document.skins[document.nodes[22].skin]
    assert skin.joints == list(range(NUM_JOINTS))
    vertices = _accessor(document, blob, primitive.attributes.POSITION).astype(np.float64)
    joint_ids = _accessor(document, blob, primitive.attributes.JOINTS_0).astype(int)
    weights = _accessor(document, blob, primitive.attributes.WEIGHTS_0).astype(np.float64)
    colors = _accessor(document, blob, primitive.attributes.COLOR_0)
    inverse_bind = _accessor(document, blob, skin.inverseBindMatrices).reshape(-1, 4, 4).transpose(0, 2, 1)
    np.testing.assert_array_equal(colors, body.vertex_colors.numpy())
    np.testing.assert_allclose(weights.sum(1), 1, atol=1e-6)
    faces = _accessor(document, blob, primitive.indices).reshape(-1, 3)
    np.testing.assert_array_equal(faces, body.faces.numpy())
    for frame in (0, 40, 80):
        world = np.tile(np.eye(4), (NUM_JOINTS, 1, 1))
        world[:, :3, :3], world[:, :3, 3] = world_rot[frame], joints[frame]
        skinning = world @ inverse_bind  # (22, 4, 4)
        blended = (weights[:, :, None, None] * skinning[joint_ids]).sum(1)
        posed = (blended[:, :3, :3] @ vertices[:, :, None])[..., 0] + blended[:, :3, 3]
        expected_vertices = body.pose(walk.local_rotations[frame].float(), walk.trans[frame].float())
        np.testing.assert_allclose(posed, expected_vertices.numpy(), atol=1e-4)

    scene = trimesh.load(path)  # a second, independent glTF reader
    (mesh,) = scene.geometry.values()
    assert len(mesh.vertices) == body.num_vertices and len(mesh.faces) == len(body.faces)
    # with a material, trimesh keeps COLOR_0 as a vertex attribute of the texture visuals
    np.testing.assert_array_equal(mesh.visual.vertex_attributes["color"], body.vertex_colors.numpy())


def test_glb_of_a_skinned_body_keeps_its_four_largest_weights(tmp_path):
    weights = np.array([[0.1, 0.5, 0.05, 0.2, 0.15, 0.0], [1.0, 0, 0, 0, 0, 0]])
    joints, top = top_skin_weights(weights)
    np.testing.assert_array_equal(joints, [[1, 3, 4, 0], [0, 0, 0, 0]])
    np.testing.assert_allclose(top, [[0.5 / 0.95, 0.2 / 0.95, 0.15 / 0.95, 0.1 / 0.95], [1, 0, 0, 0]], atol=1e-6)
    q = Rotation.random(50, random_state=1).as_quat()
    flipped = q * np.where(np.random.default_rng(0).random(50) < 0.5, -1, 1)[:, None]
    fixed = continuous_quaternions(flipped)
    np.testing.assert_allclose(np.abs((fixed * q).sum(-1)), 1, atol=1e-12)
    np.testing.assert_array_equal(continuous_quaternions(flipped[:1]), flipped[:1])  # one frame: nothing to flip
    # a body with real (non one-hot) skinning goes through the file unchanged in weights
    local, trans = smooth_random_motion(1, 9, generator=torch.Generator().manual_seed(0))
    motion = Motion(trans=trans[0], global_orient=local[0, :, 0], body_pose=local[0, :, 1:])
    body = load_body_model()
    soft = torch.softmax(torch.randn(body.num_vertices, NUM_JOINTS, generator=torch.Generator().manual_seed(1)) * 3, -1)
    body = type(body)(**{**body.__dict__, "skin_weights": soft})
    document, blob, *_ = _glb_animation(save_glb(motion, tmp_path / "soft.glb", body))
    primitive = document.meshes[0].primitives[0]
    stored = _accessor(document, blob, primitive.attributes.WEIGHTS_0)
    expected_joints, expected_weights = top_skin_weights(soft.double().numpy())
    np.testing.assert_allclose(stored, expected_weights, atol=1e-7)
    np.testing.assert_array_equal(_accessor(document, blob, primitive.attributes.JOINTS_0), expected_joints)


# ------------------------------------------------------------------------------------------------------ exports
def _check_exports(paths, frames, motion, cameras, body_size):
    assert set(paths) == {"side_by_side", "egocentric", "npz", "bvh", "glb", "cameras"}
    n = len(frames)
    loaded = Motion.load_npz(paths["npz"], dtype=torch.float64)
    assert loaded.num_frames == motion.num_frames and loaded.fps == motion.fps
    for name in ("trans", "global_orient", "body_pose", "rest_joints"):
        torch.testing.assert_close(getattr(loaded, name), getattr(motion, name).double(), atol=1e-6, rtol=0)
    bvh_motion = load_bvh(paths["bvh"], dtype=torch.float64)
    assert bvh_motion.num_frames == motion.num_frames and bvh_motion.fps == motion.fps
    torch.testing.assert_close(bvh_motion.joints(), motion.joints().double(), atol=1e-5, rtol=0)
    torch.testing.assert_close(bvh_motion.local_rotations, motion.local_rotations.double(), atol=1e-5, rtol=0)
    document, _, times, rotations, translation = _glb_animation(paths["glb"])
    joints, _ = _glb_joints(document, rotations, translation)
    np.testing.assert_allclose(joints, motion.joints().double().numpy(), atol=1e-4)
    side = np.stack(list(iio.imiter(paths["side_by_side"], plugin="FFMPEG")))
    assert side.shape == (motion.num_frames, body_size + CAPTION_HEIGHT, 2 * body_size, 3)
    assert iio.immeta(paths["side_by_side"])["fps"] == 16
    ego = np.stack(list(iio.imiter(paths["egocentric"], plugin="FFMPEG")))
    assert ego.shape == (n, 256, 256, 3) and iio.immeta(paths["egocentric"])["fps"] == 8
    with np.load(paths["cameras"]) as stored:
        np.testing.assert_allclose(stored["camera_to_world"], np.asarray(cameras), atol=1e-12)
    return side


@pytest.mark.slow
def test_export_all_writes_files_that_read_back(walk, head_cameras, tmp_path):
    frames = video_for(41)
    cameras = head_cameras[::2]
    paths = export_all(frames, walk, cameras, K64, tmp_path / "clip", caption="walk to the door", body=None, size=128)
    side = _check_exports(paths, frames, walk, cameras, 128)
    body_view = render_body_view(walk, K64, size=128)
    # the right half is the body view, frame for frame (up to x264 at yuv420p on a fine checker pattern)
    right = side[:, :128, 128:].astype(int)
    error = np.abs(right - body_view).mean((1, 2, 3))
    assert error.max() < 8 and np.all(np.abs(right[:-8] - body_view[8:]).mean((1, 2, 3)) > error[:-8])


@pytest.mark.slow
def test_export_all_handles_a_continued_clip(tmp_path):
    motion = walking_motion(duration=10.0, speed=0.8)  # 161 frames: one clip continued once
    assert motion.num_frames == 161
    cameras = RIG.camera_poses(*motion.head_pose())[::2]
    frames = video_for(81)
    paths = export_all(frames, motion, cameras, K64, tmp_path / "long", caption="keep walking", mode="t2vm", size=64)
    _check_exports(paths, frames, motion, cameras, 64)
    assert iio.immeta(paths["side_by_side"])["duration"] == pytest.approx(161 / 16, abs=0.01)


def test_export_all_rejects_mismatched_inputs(walk, head_cameras, tmp_path):
    frames = video_for(41)
    cameras = head_cameras[::2]
    long_motion = walking_motion(duration=99 / 16)
    assert long_motion.num_frames == 100
    with pytest.raises(ValueError, match="41 video frames at 8 fps need a motion of 81 frames"):
        export_all(frames, long_motion, RIG.camera_poses(*long_motion.head_pose())[::2][:41], K64, tmp_path)
    with pytest.raises(ValueError, match=r"camera_to_world must be finite with shape \(41, 4, 4\)"):
        export_all(frames, walk, head_cameras, K64, tmp_path)
    with pytest.raises(ValueError, match="whole multiple of 8 fps"):
        export_all(frames, walk.resample(12.0), cameras, K64, tmp_path)
    with pytest.raises(ValueError, match="intrinsics"):
        export_all(frames, walk, cameras, np.zeros((3, 3)), tmp_path)
    with pytest.raises(ValueError, match="uint8"):
        export_all(frames.astype(np.float32) / 255, walk, cameras, K64, tmp_path)
    assert not any(tmp_path.iterdir())  # nothing written for bad input


def test_closing_another_renderer_leaves_the_body_view_working(walk):
    # pyrender's own delete() terminates the EGL display that every context shares; ours must not
    from egotwin.world.render import EgoRenderer

    clip = walk.slice(0, 2)
    before = render_body_view(clip, K64, size=64)
    other = EgoRenderer(builtin_body_model(), 32, 32, HeadCameraRig())
    other.close()
    spare = BodyViewRenderer((32, 32))
    spare.close()
    np.testing.assert_array_equal(render_body_view(clip, K64, size=64), before)

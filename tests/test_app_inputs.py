"""The demo's input handling (demo/inputs.py): every loader on good files (known answers, round trips) and on bad
ones (corrupt, wrong type, oversized, wrong shapes, too short), which must give an InputError naming the file."""

import json
import zipfile

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from demo import inputs
from demo.inputs import (
    POSE_PRESETS,
    REST_POSE,
    InputError,
    center_crop_resize,
    check_prompt,
    check_seed,
    load_driving_motion,
    load_image,
    load_initial_pose,
    load_motion,
    load_video,
)
from egotwin.data.clip_format import write_video
from egotwin.motion import Motion, save_bvh
from egotwin.motion.random_motion import walking_motion


def three_band_image(width: int, height: int) -> np.ndarray:
    """Blue outer bands and a red centre square (side = the shorter image side)."""
    image = np.zeros((height, width, 3), np.uint8)
    image[..., 2] = 255
    side = min(width, height)
    x0, y0 = (width - side) // 2, (height - side) // 2
    image[y0 : y0 + side, x0 : x0 + side] = (255, 0, 0)
    return image


@pytest.mark.parametrize("width, height", [(300, 100), (90, 270), (64, 64)])
def test_center_crop_keeps_exactly_the_centre_square(width, height):
    out = center_crop_resize(three_band_image(width, height), 32, 32)
    assert out.shape == (32, 32, 3) and out.dtype == np.uint8
    # Lanczos rings a little at the crop border only when the crop is not exact; the centre must be pure red.
    np.testing.assert_allclose(out[2:-2, 2:-2].reshape(-1, 3).mean(0), (255, 0, 0), atol=2)


def test_non_square_target_crops_to_its_aspect_ratio():
    image = np.zeros((100, 200, 3), np.uint8)
    image[:, :25] = 255  # a white left eighth is cropped away for a 1:1 target (up to filter ringing)...
    assert center_crop_resize(image, 16, 16).max() <= 3
    # ...but kept for a 2:1 target (left eighth of the output white)
    out = center_crop_resize(image, 32, 16)
    assert out[:, :3].min() >= 240 and out[:, 6:].max() <= 5


def save_png(path, array):
    Image.fromarray(array).save(path)
    return path


def test_load_image_crops_resizes_and_composites_alpha_on_white(tmp_path):
    rgb = three_band_image(120, 60)
    out = load_image(save_png(tmp_path / "frame.png", rgb), 32, 32)
    np.testing.assert_array_equal(out, center_crop_resize(rgb, 32, 32))
    rgba = np.zeros((40, 40, 4), np.uint8)  # fully transparent: white after compositing
    out = load_image(save_png(tmp_path / "clear.png", rgba), 16, 16)
    assert out.min() == 255


def test_load_image_applies_the_exif_rotation(tmp_path):
    rgb = np.zeros((20, 40, 3), np.uint8)
    rgb[:, :20] = 255  # white left half of a landscape image
    image = Image.fromarray(rgb)
    exif = image.getexif()
    exif[274] = 6  # "rotate 90 degrees clockwise to display"
    image.save(tmp_path / "phone.jpg", exif=exif, quality=95)
    out = load_image(tmp_path / "phone.jpg", 20, 40)  # displayed portrait: white on top
    assert out[:18].mean() > 240 and out[22:].mean() < 15


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("noise.png", bytes(range(256)) * 8, "not a readable image"),
        ("empty.png", b"", "is empty"),
        ("notes.txt", b"hello", "unsupported type '.txt'"),
    ],
)
def test_bad_images_give_clear_errors(tmp_path, name, content, message):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(InputError, match=message) as error:
        load_image(tmp_path / name, 32, 32)
    assert str(tmp_path) not in str(error.value)  # the user sees the file name, not the server path


def test_truncated_png_is_refused(tmp_path):
    save_png(tmp_path / "full.png", (np.random.default_rng(0).random((64, 64, 3)) * 255).astype(np.uint8))
    data = (tmp_path / "full.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="'cut.png' is not a readable image"):
        load_image(tmp_path / "cut.png", 32, 32)


def test_oversized_images_are_refused_before_decoding(tmp_path, monkeypatch):
    path = save_png(tmp_path / "big.png", np.zeros((50, 50, 3), np.uint8))
    monkeypatch.setattr(inputs, "MAX_IMAGE_PIXELS", 2000)
    with pytest.raises(InputError, match="50x50 pixels; the limit is"):
        load_image(path, 32, 32)
    monkeypatch.setattr(inputs, "MAX_IMAGE_BYTES", 10)
    with pytest.raises(InputError, match=r"'big.png' is \d+\.\d KB; the limit is 0.0 KB"):
        load_image(path, 32, 32)


def test_missing_inputs_are_named():
    with pytest.raises(InputError, match="No start frame given"):
        load_image(None, 32, 32)
    with pytest.raises(InputError, match="cannot be found"):
        load_image("/nonexistent/frame.png", 32, 32)


# ----------------------------------------------------------------------------------------------------- motion
@pytest.fixture
def walk() -> Motion:
    return walking_motion(duration=6.0)  # 97 frames at 16 fps


def test_motion_files_round_trip_through_npz_and_bvh(tmp_path, walk):
    walk.save_npz(tmp_path / "walk.npz")
    save_bvh(walk, tmp_path / "walk.bvh")
    for name in ("walk.npz", "walk.bvh"):
        loaded = load_motion(tmp_path / name)
        assert loaded.num_frames == walk.num_frames
        torch.testing.assert_close(loaded.joints(), walk.joints(), atol=1e-4, rtol=0)


def test_wrong_motion_shapes_and_corrupt_archives_are_refused(tmp_path, walk):
    np.savez(tmp_path / "short_pose.npz", trans=np.zeros((10, 3)), root_orient=np.zeros((10, 3)),
             pose_body=np.zeros((10, 10)), mocap_frame_rate=16.0)  # fmt: skip
    with pytest.raises(InputError, match=r"'short_pose.npz' cannot be used: .*pose_body.*\(10, 63\)"):
        load_motion(tmp_path / "short_pose.npz")
    np.savez(tmp_path / "nan.npz", trans=np.full((5, 3), np.nan), root_orient=np.zeros((5, 3)),
             pose_body=np.zeros((5, 63)), mocap_frame_rate=16.0)  # fmt: skip
    with pytest.raises(InputError, match="NaN"):
        load_motion(tmp_path / "nan.npz")
    (tmp_path / "junk.npz").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(InputError, match="'junk.npz' is not a readable .npz archive"):
        load_motion(tmp_path / "junk.npz")
    (tmp_path / "junk.bvh").write_text("HIERARCHY\nROOT nonsense {\n")
    with pytest.raises(InputError, match="'junk.bvh' cannot be used"):
        load_motion(tmp_path / "junk.bvh")
    (tmp_path / "motion.json").write_text(json.dumps({"trans": []}))
    with pytest.raises(InputError, match="unsupported type '.json'"):
        load_motion(tmp_path / "motion.json")


def test_npz_that_would_expand_past_the_limit_is_refused(tmp_path, monkeypatch):
    np.savez_compressed(tmp_path / "bomb.npz", trans=np.zeros((200_000, 3)))  # 4.8 MB of zeros, ~5 KB on disk
    assert (tmp_path / "bomb.npz").stat().st_size < 50_000
    monkeypatch.setattr(inputs, "MAX_MOTION_UNCOMPRESSED_BYTES", 1 << 20)
    with pytest.raises(InputError, match="holds 4.6 MB of arrays; the limit is 1.0 MB"):
        load_motion(tmp_path / "bomb.npz")
    with zipfile.ZipFile(tmp_path / "bomb.npz") as archive:  # the limit is on the real expanded size
        assert sum(info.file_size for info in archive.infolist()) > 1 << 20


def test_driving_motion_is_cut_to_its_first_five_seconds(tmp_path, walk):
    at_30 = walk.resample(30.0)
    at_30.save_npz(tmp_path / "walk30.npz")
    motion = load_driving_motion(tmp_path / "walk30.npz")
    assert motion.fps == 30.0 and motion.num_frames == 151 and motion.duration == pytest.approx(5.0)
    torch.testing.assert_close(motion.trans, at_30.trans[:151].float(), atol=1e-6, rtol=0)
    walk.slice(0, 49).save_npz(tmp_path / "three_seconds.npz")
    with pytest.raises(InputError, match=r"lasts 3.00 s \(49 frames at 16 fps\); TM2V needs at least 5 s"):
        load_driving_motion(tmp_path / "three_seconds.npz")


def test_initial_pose_presets_and_files(tmp_path, walk):
    assert set(POSE_PRESETS) >= {"standing", "crouching", REST_POSE}
    assert load_initial_pose(REST_POSE) is None
    standing = load_initial_pose("standing")
    crouching = load_initial_pose("crouching")
    assert standing.num_frames == crouching.num_frames == 1
    # the crouch preset really is lower: pelvis at least 15 cm below the standing one
    assert crouching.joints()[0, 0, 1] < standing.joints()[0, 0, 1] - 0.15
    walk.save_npz(tmp_path / "walk.npz")
    from_file = load_initial_pose("crouching", tmp_path / "walk.npz")  # the file overrides the preset
    torch.testing.assert_close(from_file.joints()[0], walk.joints()[0].float(), atol=1e-5, rtol=0)
    with pytest.raises(InputError, match="Unknown initial-pose preset 'flying'"):
        load_initial_pose("flying")


# ------------------------------------------------------------------------------------------------------ video
def numbered_frames(count: int, size: int = 48) -> np.ndarray:
    """Frames whose brightness encodes their index (index * 4), robust to compression."""
    return np.stack([np.full((size, size + 16, 3), 4 * i, np.uint8) for i in range(count)])


def test_video_is_resampled_to_8_fps_by_time(tmp_path):
    write_video(tmp_path / "short.mp4", numbered_frames(60), fps=24, pixelformat="yuv420p")  # 2.5 s
    with pytest.raises(InputError, match=r"'short.mp4' is too short: 60 frames at 24 fps \(2.50 s\)"):
        load_video(tmp_path / "short.mp4", 32, 32)
    # 60 frames at 12 fps: the last one is at t = 4.92 s, one frame short of t = 5 s
    write_video(tmp_path / "almost.mp4", numbered_frames(60), fps=12, pixelformat="yuv420p")
    with pytest.raises(InputError, match="too short"):
        load_video(tmp_path / "almost.mp4", 32, 32)
    write_video(tmp_path / "ok.mp4", numbered_frames(61), fps=12, pixelformat="yuv420p")
    video = load_video(tmp_path / "ok.mp4", 32, 32)
    assert video.shape == (41, 32, 32, 3) and video.dtype == np.uint8
    # frame i is source frame round(i * 12 / 8)
    expected = 4 * np.round(np.arange(41) * 1.5)
    np.testing.assert_allclose(video.reshape(41, -1).mean(1), expected, atol=3)


def test_corrupt_videos_are_refused(tmp_path):
    (tmp_path / "noise.mp4").write_bytes(np.random.default_rng(0).bytes(5000))
    with pytest.raises(InputError, match="'noise.mp4'"):
        load_video(tmp_path / "noise.mp4", 32, 32)
    cv2.imwrite(str(tmp_path / "image.png"), np.zeros((8, 8, 3), np.uint8))
    (tmp_path / "image.mov").write_bytes((tmp_path / "image.png").read_bytes())
    with pytest.raises(InputError, match="'image.mov'"):
        load_video(tmp_path / "image.mov", 32, 32)


# ----------------------------------------------------------------------------------------------------- prompt
def test_prompts_and_seeds():
    assert check_prompt("  walk to the door \n") == "walk to the door"
    for empty in ("", "   ", None):
        with pytest.raises(InputError, match="Please enter a prompt"):
            check_prompt(empty)
    with pytest.raises(InputError, match="1001 characters long"):
        check_prompt("a" * 1001)
    assert check_seed(12.0) == 12
    for bad in (-1, 1.5, None, 2**32):
        with pytest.raises(InputError, match="seed"):
            check_seed(bad)


# ------------------------------------------------------------------------------- issue 24: bounded before work
def test_driving_motion_frame_rate_is_bounded_before_resampling(tmp_path):
    # 2 frames at 1e-6 fps "last" 1e6 s: the server resampled that to 16 million frames and was killed (issue 24)
    slow = Motion.rest(2, fps=1e-6)
    slow.save_npz(tmp_path / "slow.npz")
    with pytest.raises(InputError, match=r"'slow.npz' has a frame rate of 1e-06 fps; accepted: 1 to 1000 fps"):
        load_driving_motion(tmp_path / "slow.npz")
    save_bvh(slow, tmp_path / "slow.bvh")  # Frame Time: 1000000
    assert "Frame Time: 1000000" in (tmp_path / "slow.bvh").read_text()
    with pytest.raises(InputError, match=r"'slow.bvh' has a frame rate of 1e-06 fps"):
        load_driving_motion(tmp_path / "slow.bvh")
    Motion.rest(6000, fps=1200.0).save_npz(tmp_path / "fast.npz")
    with pytest.raises(InputError, match="'fast.npz' has a frame rate of 1200 fps"):
        load_driving_motion(tmp_path / "fast.npz")


def test_motion_frame_counts_are_read_from_the_headers_before_loading(tmp_path, monkeypatch):
    monkeypatch.setattr(inputs, "MAX_MOTION_FRAMES", 50)
    Motion.rest(51).save_npz(tmp_path / "long.npz")
    with pytest.raises(InputError, match="'long.npz' has 51 frames; the limit is 50"):
        load_motion(tmp_path / "long.npz")
    save_bvh(Motion.rest(51), tmp_path / "long.bvh")
    with pytest.raises(InputError, match="'long.bvh' cannot be used: 'long.bvh': 51 frames; at most 50"):
        load_motion(tmp_path / "long.bvh")


@pytest.mark.parametrize("key, value, message", [
    ("rest_joints", 1e30, "rest skeleton with a joint 1e\\+30 m from the origin; accepted: a human skeleton"),
    ("rest_joints", 100.0, "joint 100 m from the origin"),
    ("trans", 1e12, "moves the body 1e\\+12 m from the origin"),
])  # fmt: skip
def test_motion_values_no_human_has_are_refused_naming_the_file(tmp_path, key, value, message):
    motion = Motion.rest(90)
    motion.save_npz(tmp_path / "huge.npz")
    arrays = dict(np.load(tmp_path / "huge.npz"))
    arrays[key] = np.full_like(arrays[key], value)
    np.savez(tmp_path / "huge.npz", **arrays)
    with pytest.raises(InputError, match=f"The motion file 'huge.npz' .*{message}"):
        load_driving_motion(tmp_path / "huge.npz")


@pytest.mark.parametrize("width, height", [(130_000, 1), (1, 1_000_000), (900, 100)])
def test_long_thin_images_are_refused_before_decoding(tmp_path, width, height):
    # a 589-byte 1x130,000 PNG cost 2.6 GB: the short side was scaled up to 64 px first (issue 24)
    Image.new("RGB", (width, height), (10, 20, 30)).save(tmp_path / "thin.png")
    with pytest.raises(InputError, match=rf"'thin.png' is {width}x{height} pixels, .* at most 8:1"):
        load_image(tmp_path / "thin.png", 64, 64)


def test_center_crop_resize_crops_before_resizing():
    # 8:1 (accepted) crops to 1:1 at the source resolution; the result equals cropping by hand then resizing
    image = (np.random.default_rng(0).random((10, 80, 3)) * 255).astype(np.uint8)
    np.testing.assert_array_equal(center_crop_resize(image, 32, 32), center_crop_resize(image[:, 35:45], 32, 32))


def test_video_frame_rates_out_of_range_are_named(tmp_path):
    write_video(tmp_path / "fast.mp4", numbered_frames(20), fps=1000, pixelformat="yuv420p")
    with pytest.raises(InputError, match=r"'fast.mp4' has a frame rate of 1000 fps; accepted: 1 to 240 fps"):
        load_video(tmp_path / "fast.mp4", 32, 32)


def test_prompts_of_control_characters_only_are_empty():
    for bad in ("\x00\x00\x00", "\x00 \u200b\x1b", "\u202e"):
        with pytest.raises(InputError, match="Please enter a prompt"):
            check_prompt(bad)
    assert check_prompt("walk\x00 to\nthe door\x07") == "walk to the door"
    with pytest.raises(InputError, match="The prompt must be text, got int"):
        check_prompt(5)
    for bad in ("abc", None, True, [1]):
        with pytest.raises(InputError, match="The seed must be a whole number"):
            check_seed(bad)

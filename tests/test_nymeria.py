"""Nymeria -> clips: readers, retargeting round trip on format-faithful fixtures (a known motion written in Nymeria's
layout and converted back), clip times, captions, splits, resume, bad input, the fisheye -> pinhole chain, and the
training stages on a converted folder."""

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from egotwin.body.rotations import geodesic_angle
from egotwin.data.clip_format import ClipFormatError
from egotwin.data.dataset import ClipDataset
from egotwin.data.nymeria import NymeriaConfig, convert
from egotwin.data.nymeria.convert import caption_of, overlapping, split_of
from egotwin.data.nymeria.files import (
    NymeriaFormatError,
    read_narrations,
    read_trajectory,
    read_xdata,
)
from egotwin.data.nymeria.fixtures import FixtureSpec, fixture_motion, write_fixture_sequence
from egotwin.motion.motion import Motion

REPO = Path(__file__).resolve().parents[1]
SPEC = FixtureSpec(
    narrations={
        "atomic_action": [(6.5, 9.0, "I walk forward"), (9.5, 14.0, "i look around"), (20.0, 33.0, "I keep walking.")],
        "motion_narration": [(5.0, 12.0, "I stand upright")],
        "activity_summarization": [(5.0, 35.0, "Walking around the house")],
    }
)


def offset_config(tmp_path, **kwargs) -> NymeriaConfig:
    return NymeriaConfig(
        output_dir=str(tmp_path / "clips"), motion_only=True, timecode_offset_us=SPEC.timecode_offset_us, **kwargs
    )


@pytest.fixture(scope="module")
def walk() -> Motion:
    """The known motion: 30 s of walking while looking around, 16 fps, Aria world (Y-up, floor at 0)."""
    return fixture_motion(30.0)


@pytest.fixture(scope="module")
def converted(tmp_path_factory, walk):
    root = tmp_path_factory.mktemp("nymeria")
    folder = write_fixture_sequence(root / "raw", walk, SPEC)
    config = replace(offset_config(root), sequences=(str(folder),))
    report = convert(config, progress=False)
    records = [json.loads(line) for line in (root / "clips" / "metadata.jsonl").read_text().splitlines()]
    return root, report, records


def truth_slice(motion, record):
    """The known motion's 81 frames at the clip's start (device time 5 s = frame 0, 16 fps)."""
    k = (record["start_device_us"] - SPEC.device_start_us) / 62_500
    assert k == int(k)
    return motion.slice(int(k), int(k) + 81)


# ------------------------------------------------------------------------------------------- round trip
def test_clips_are_cut_back_to_back_at_the_right_times(converted):
    _, report, records = converted
    # body and trajectory cover 5-35 s of device time; 1 s trimmed at each end -> clips at 6, 11, 16, 21, 26 s
    assert [r["start_device_us"] for r in records] == [6_000_000, 11_000_000, 16_000_000, 21_000_000, 26_000_000]
    assert report["clips_written"] == 5 and report["clips_dropped"] == {} and report["errors"] == {}
    for r in records:
        assert r["start_timecode_us"] == r["start_device_us"] + SPEC.timecode_offset_us
        assert r["first_body_frame"] == (r["start_device_us"] - SPEC.device_start_us) * 240 // 1_000_000
        assert r["body_frame_stride"] == 15 and r["sequence_uid"] == "e72nhq" and r["participant"] == "james_johnson"
        assert (
            r["location"] == "loc1" and r["video"] is False and r["split"] == split_of("james_johnson", NymeriaConfig())
        )


def test_retargeted_motion_matches_the_known_motion(converted, walk):
    root, _, records = converted
    dataset = ClipDataset(root / "clips", split=records[0]["split"], need_video=False)
    assert len(dataset) == 5
    for index, record in enumerate(records):
        item = dataset[index]
        got = Motion(
            item["trans"].double(),
            item["global_orient"].double(),
            item["body_pose"].double(),
            item["rest_joints"].double(),
        )
        truth = truth_slice(walk, record)
        # the converter puts the floor where the feet stand (floor_height_m below the SLAM world's 0)
        joints = got.joints() + torch.tensor([0.0, record["floor_height_m"], 0.0], dtype=torch.float64)
        assert (joints - truth.joints()).norm(dim=-1).max() < 2e-4  # metres (float32 clip files)
        head_angle = geodesic_angle(got.head_pose()[0], truth.head_pose()[0].double())
        assert torch.rad2deg(head_angle).max() < 0.05
        assert abs(record["floor_height_m"]) < 0.03  # the walk's pelvis bobs and knees bend: planted feet sit ~1 cm up
        assert record["residual_head_max_m"] < 1e-3 and record["min_quality_score"] == 1.0


def test_captions_come_from_the_overlapping_rows(converted):
    _, _, records = converted
    captions = [r["caption"] for r in records]
    assert captions == [
        "I walk forward. I look around.",
        "I look around.",
        "I keep walking.",
        "I keep walking.",
        "I keep walking.",
    ]
    assert records[0]["caption_level"] == "atomic_action"
    assert records[0]["narrations"]["motion_narration"] == ["I stand upright."]
    assert records[1]["narrations"]["motion_narration"] == ["I stand upright."]  # 11-12 s: overlaps 1 s
    assert records[2]["narrations"]["motion_narration"] == []
    assert all(r["narrations"]["activity_summarization"] == ["Walking around the house."] for r in records)


def test_overlap_rule_and_joining():
    from egotwin.data.nymeria.files import Narration

    rows = [
        Narration(0.0, 1.2, {"a": "a"}),
        Narration(1.0, 3.0, {"a": "b"}),
        Narration(2.0, 2.2, {"a": "short"}),
        Narration(5.8, 9.0, {"a": "c"}),
    ]
    # 1-6 s: "a" overlaps 0.2 s (< 0.5: out), "b" 2 s, "short" lies wholly inside, "c" overlaps 0.2 s (out)
    assert [r.text for r in overlapping(rows, 1.0, 6.0, 0.5)] == ["B.", "Short."]
    rows.append(Narration(8.0, 9.0, {"a": "b"}))
    assert caption_of(overlapping(rows, 0.0, 10.0, 0.5)) == "A. B. Short. C."  # a repeated sentence once


@pytest.mark.slow
def test_residual_with_xsens_drift_and_slam_noise(tmp_path, walk):
    """The residual measures what per-clip re-anchoring cannot absorb: XSens drifting 2 cm/s against SLAM (a rigid
    per-clip fit removes the mean, leaving up to ~5 cm at the clip ends) and 3 mm SLAM noise."""
    spec = replace(SPEC, xsens_drift_m_per_s=0.02, slam_noise_m=0.003)
    folder = write_fixture_sequence(tmp_path / "raw", walk, spec)
    report = convert(replace(offset_config(tmp_path), sequences=(str(folder),)), progress=False)
    records = [json.loads(line) for line in (tmp_path / "clips" / "metadata.jsonl").read_text().splitlines()]
    residual = np.array([r["residual_head_max_m"] for r in records])
    mean = np.array([r["residual_head_mean_m"] for r in records])
    assert report["clips_written"] == 5
    assert (residual > 0.02).all() and (residual < 0.08).all() and (mean < 0.04).all()
    print(f"residual with drift + noise: max {residual.round(4).tolist()} m, mean {mean.round(4).tolist()} m")


# ------------------------------------------------------------------------------------------------ splits
def test_split_is_a_function_of_the_participant():
    config = NymeriaConfig(val_fraction=0.3, test_fraction=0.3)
    splits = {name: split_of(name, config) for name in (f"person_{i}" for i in range(40))}
    assert set(splits.values()) == {"train", "val", "test"}
    assert splits == {name: split_of(name, config) for name in splits}


@pytest.mark.slow
def test_participants_are_never_split_and_runs_resume(tmp_path):
    motion = fixture_motion(12.0)
    names = [
        f"20230607_s{s}_{person}_act{act}_u{s}{act}"
        for s, person in enumerate(("ann_lee", "bo_chen", "cy_diaz"))
        for act in (0, 1)
    ]
    folders = [write_fixture_sequence(tmp_path / "raw", motion, replace(SPEC, name=name)) for name in names]
    config = replace(
        offset_config(tmp_path, val_fraction=0.3, test_fraction=0.3), sequences=tuple(map(str, folders[:4]))
    )
    first = convert(config, progress=False)
    assert first["sequences_converted"] == 4
    written = tmp_path / "clips" / "metadata.jsonl"
    stamp = {p: p.stat().st_mtime_ns for p in (tmp_path / "clips").rglob("motion.npz")}
    report = convert(replace(config, sequences=tuple(map(str, folders)), workers=2), progress=False)
    assert report["sequences_converted"] == 6 and report["clips_written"] == 12
    assert all(p.stat().st_mtime_ns == t for p, t in stamp.items())  # the first four were not converted again
    records = [json.loads(line) for line in written.read_text().splitlines()]
    by_participant = {}
    for r in records:
        by_participant.setdefault(r["participant"], set()).add(r["split"])
        assert (tmp_path / "clips" / r["path"] / "motion.npz").is_file()
    assert set(by_participant) == {"ann_lee", "bo_chen", "cy_diaz"}
    assert all(len(splits) == 1 for splits in by_participant.values())
    with pytest.raises(ValueError, match="other settings"):
        convert(replace(config, size=256), progress=False)


# --------------------------------------------------------------------------------------------- bad input
@pytest.mark.slow
def test_bad_sequences_are_reported_and_the_others_convert(tmp_path):
    motion = fixture_motion(12.0)
    raw = tmp_path / "raw"

    def sequence(name, **changes):
        return write_fixture_sequence(
            raw, motion, replace(SPEC, name=f"20230607_s0_{name}_act0_{name.replace('_', '')[:6]}", **changes)
        )

    good = sequence("good_one")
    broken = sequence("nanq_two", broken_frames=tuple(range(240 * 2, 240 * 2 + 5)))  # device 7 s: the first clip
    late = sequence("late_clock", timecode_offset_us=SPEC.timecode_offset_us + 3_600_000_000)
    shaky = sequence("shaky_slam", quality_score=0.2)
    offset = sequence("badnarr", narrations={"atomic_action": [(600.0, 605.0, "far away")]})
    empty = raw / "not_a_sequence"
    empty.mkdir()
    no_traj = sequence("no_traj")
    (no_traj / "recording_head/mps/slam/closed_loop_trajectory.csv").unlink()
    bad_npz = sequence("bad_npz")
    (bad_npz / "body/xdata.npz").write_bytes(b"PK\x03\x04 this is not a zip archive")
    bad_csv = sequence("bad_csv")
    (bad_csv / "recording_head/mps/slam/closed_loop_trajectory.csv").write_text("tracking_timestamp_us,tx\n1,2\n")
    inputs = (good, broken, late, shaky, offset, empty, no_traj, bad_npz, bad_csv)
    report = convert(replace(offset_config(tmp_path), sequences=tuple(map(str, inputs))), progress=False)

    assert report["clips_per_sequence"][good.name] == 2
    assert report["clips_per_sequence"][broken.name] == 1 and report["clips_dropped"]["broken_body_frames"] == 1
    assert report["clips_dropped"]["low_quality_score"] == 2 and report["clips_per_sequence"][shaky.name] == 0
    assert report["sequences_skipped"] == {"clocks_do_not_overlap": 1, "narration_clock_offset": 1, "unreadable": 4}
    errors = report["errors"]
    assert "share less than one clip" in errors[late.name]
    assert "600" not in errors[offset.name] and "outside the head recording" in errors[offset.name]
    assert "not a Nymeria sequence folder" in errors[empty.name]
    assert "closed_loop_trajectory.csv" in errors[no_traj.name] and "missing" in errors[no_traj.name]
    assert "xdata.npz: not a readable .npz" in errors[bad_npz.name]
    assert "closed_loop_trajectory.csv: missing columns" in errors[bad_csv.name]
    assert report["clips_written"] == 3 == len((tmp_path / "clips" / "metadata.jsonl").read_text().splitlines())


def test_xdata_reader_repairs_and_marks_broken_frames(tmp_path, walk):
    folder = write_fixture_sequence(tmp_path, walk.slice(0, 33), replace(SPEC, broken_frames=(3,)))
    path = folder / "body/xdata.npz"
    arrays = dict(np.load(path))
    stamps = arrays["timestamps_us"].copy()
    stamps[10] += 600  # jitter within 1 ms: kept, put back on the grid
    stamps[20] += 50_000  # a corrupt stamp
    np.savez(path, **{**arrays, "timestamps_us": stamps})
    xsens = read_xdata(path)
    assert np.flatnonzero(xsens.broken).tolist() == [3, 20]
    assert np.array_equal(np.diff(xsens.timestamps_us) > 4100, np.ones(xsens.num_frames - 1, bool))
    assert np.allclose(xsens.rotations(np.array([3])), xsens.rotations(np.array([2])))  # NaN: the previous frame
    stamps[5:200] += 30_000  # a run of shifted stamps (dropped frames): no longer one regular grid
    np.savez(path, **{**arrays, "timestamps_us": stamps})
    with pytest.raises(NymeriaFormatError, match=r"xdata.npz: .* off a regular 240 Hz grid"):
        read_xdata(path)
    np.savez(path, **{k: v for k, v in arrays.items() if k != "tpose_segment_qWXYZ"})
    with pytest.raises(NymeriaFormatError, match="missing array 'tpose_segment_qWXYZ'"):
        read_xdata(path)


def test_csv_readers_name_the_file(tmp_path):
    path = tmp_path / "atomic_action.csv"
    path.write_text("start_time,end_time,Describe my atomic actions\n1.0,2.0,hello\nx,3,bye\n")
    with pytest.raises(NymeriaFormatError, match=r"atomic_action.csv:3: start_time/end_time must be numbers"):
        read_narrations(path)
    path.write_text("start,end,text\n1,2,a\n")
    with pytest.raises(NymeriaFormatError, match="atomic_action.csv: needs 'start_time'"):
        read_narrations(path)
    path.write_text("start_time,end_time,Describe my activity\n3.0,4.0,b\n1.0,2.0,a\n5,6,\n")
    assert [r.text for r in read_narrations(path)] == ["A.", "B."]
    with pytest.raises(NymeriaFormatError, match="trajectory.csv: missing"):
        read_trajectory(tmp_path / "trajectory.csv")


def test_motion_only_clips_need_need_video_false(converted):
    root, _, records = converted
    with pytest.raises(ClipFormatError, match="motion-only clips"):
        ClipDataset(root / "clips", split=records[0]["split"])
    item = ClipDataset(root / "clips", split=records[0]["split"], need_video=False, on_error="skip")[0]
    assert "video" not in item and item["caption"] == records[0]["caption"]


def test_video_conversion_without_the_extra_names_it(tmp_path, walk, monkeypatch):
    folder = write_fixture_sequence(tmp_path / "raw", walk.slice(0, 161), SPEC)
    (folder / "recording_head/data").mkdir(parents=True)
    (folder / "recording_head/data/data.vrs").write_bytes(b"")
    monkeypatch.setitem(sys.modules, "projectaria_tools", None)
    config = NymeriaConfig(sequences=(str(folder),), output_dir=str(tmp_path / "clips"))
    with pytest.raises(ImportError, match=r"egotwin\[nymeria\]"):
        convert(config, progress=False)


# -------------------------------------------------------------------------------- fisheye -> pinhole chain
def synthetic_fisheye():
    """A Fisheye624 `camera-rgb` like Aria's (1408 px, f = 610) with a rotated, shifted mount."""
    calibration = pytest.importorskip("projectaria_tools.core.calibration")
    from projectaria_tools.core.sophus import SE3

    params = np.array([610.0, 703.2, 709.8, 0.39, -0.38, -0.08, 1.6, -1.5, 0.3, 3e-4, -2e-4, 1e-3, -5e-4, 2e-4, 1e-4])
    rotation = torch.tensor([0.1, -0.6, 0.2], dtype=torch.float64)
    from egotwin.body.rotations import axis_angle_to_matrix

    pose = np.eye(4)
    pose[:3, :3] = axis_angle_to_matrix(rotation).numpy()
    pose[:3, 3] = [-0.004, -0.012, -0.005]
    return calibration.CameraCalibration(
        "camera-rgb",
        calibration.CameraModelType.FISHEYE624,
        params,
        SE3.from_matrix(pose),
        1408,
        1408,
        None,
        np.pi,
        "fixture",
    )


def test_pinhole_chain_projects_points_where_the_fisheye_image_shows_them():
    from egotwin.body.head_camera import project
    from egotwin.data.nymeria.aria import pinhole_camera, undistort

    fisheye = synthetic_fisheye()
    camera = pinhole_camera(fisheye, 480)
    to_fisheye = np.linalg.inv(np.asarray(fisheye.get_transform_device_camera().to_matrix()))
    # points in front of the pinhole camera (device frame), drawn as bright dots into the stored fisheye image
    rng = np.random.default_rng(0)
    in_camera = np.column_stack((rng.uniform(-0.5, 0.5, 6), rng.uniform(-0.5, 0.5, 6), np.ones(6))) * 2.0
    points = (camera.device_to_camera @ np.column_stack((in_camera, np.ones(6))).T).T[:, :3]
    image = np.zeros((1408, 1408, 3), np.uint8)
    rows, cols = np.mgrid[0:1408, 0:1408]
    for p in points:
        u, v = fisheye.project((to_fisheye @ np.append(p, 1.0))[:3])
        blob = np.exp(-((cols - u) ** 2 + (rows - v) ** 2) / (2 * 6.0**2))
        image = np.maximum(image, (255 * blob[..., None]).astype(np.uint8))
    upright = undistort(camera, image).astype(np.float64)[..., 0]
    pixels, depth = project(
        torch.from_numpy(points), torch.from_numpy(camera.device_to_camera), torch.from_numpy(camera.intrinsics)
    )
    assert (depth > 0).all()
    ys, xs = np.mgrid[0:480, 0:480] + 0.5  # pixel centres, clip-format convention
    for u, v in pixels.numpy():
        window = (np.abs(xs - u) < 8) & (np.abs(ys - v) < 8)
        weights = upright * window
        found = np.array([(weights * xs).sum(), (weights * ys).sum()]) / weights.sum()
        assert np.abs(found - [u, v]).max() < 0.35, (found, u, v)


def test_pinhole_intrinsics_match_projectaria_rotated_linear_camera():
    calibration = pytest.importorskip("projectaria_tools.core.calibration")
    from egotwin.data.nymeria.aria import pinhole_camera

    fisheye = synthetic_fisheye()
    camera = pinhole_camera(fisheye, 480)
    linear = calibration.get_linear_camera_calibration(1408, 1408, 610.0, "p", fisheye.get_transform_device_camera())
    upright = calibration.rotate_camera_calib_cw90deg(linear)
    assert np.allclose(camera.device_to_camera, np.asarray(upright.get_transform_device_camera().to_matrix()))
    point = np.array([0.3, -0.2, 1.5])
    u, v = upright.project(point)  # pixel centres at integers, 1408 px
    ours = camera.intrinsics @ point
    assert np.allclose(ours[:2] / ours[2], (np.array([u, v]) + 0.5) * 480 / 1408)
    # one remap per frame gives projectaria's own resampling, to rounding
    import cv2

    from egotwin.data.nymeria.aria import undistort

    image = cv2.GaussianBlur((np.random.default_rng(0).random((1408, 1408, 3)) * 255).astype(np.uint8), (0, 0), 3)
    reference = np.rot90(calibration.distort_by_calibration(image, linear, fisheye), k=3)
    reference = cv2.resize(np.ascontiguousarray(reference), (480, 480), interpolation=cv2.INTER_AREA)
    difference = np.abs(undistort(camera, image).astype(int) - reference)
    assert difference.max() <= 2 and difference.mean() < 0.6  # rounding, before and after the area resize


# ----------------------------------------------------------------------------------- training on the output
@pytest.mark.slow
def test_cli_then_stages_1_and_2_train_on_the_converted_folder(tmp_path, walk):
    folder = write_fixture_sequence(tmp_path / "raw", walk, SPEC)
    clips, env = tmp_path / "clips", {**os.environ, "OMP_NUM_THREADS": "1"}

    def run(*args):
        done = subprocess.run(
            [sys.executable, "-m", *map(str, args)], cwd=REPO, env=env, capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, done.stderr[-3000:]
        return done.stdout

    out = run(
        "egotwin.data.nymeria",
        folder,
        "--output_dir",
        clips,
        "--motion_only",
        "true",
        "--timecode_offset_us",
        SPEC.timecode_offset_us,
    )
    assert json.loads(out.splitlines()[0])["clips_written"] == 5
    run(
        "training.stage1_motion_vae",
        "--data_root",
        clips,
        "--output_dir",
        tmp_path / "s1",
        "--max_steps",
        2,
        "--block_out_channels",
        "32,32",
        "--layers_per_block",
        1,
        "--latent_channels",
        8,
        "--batch_size",
        4,
        "--val_split",
        "",
    )
    run(
        "training.cache_latents",
        "--data_root",
        clips,
        "--split",
        "train",
        "--output_dir",
        tmp_path / "latents/train",
        "--video_vae",
        "none",
        "--motion_vae",
        tmp_path / "s1/motion_vae",
        "--text_encoder",
        "minilm",
    )
    run(
        "training.stage2_t2m",
        "--config",
        "training/configs/stage2_t2m.json",
        "--latents",
        tmp_path / "latents",
        "--output_dir",
        tmp_path / "s2",
        "--max_steps",
        2,
        "--val_split",
        "",
        "--batch_size",
        4,
    )
    assert (tmp_path / "s2" / "transformer").is_dir()
    log = [json.loads(line) for line in (tmp_path / "s2" / "log.jsonl").read_text().splitlines()]
    assert log[-1]["step"] == 2 and np.isfinite(log[-1]["loss"])


@pytest.mark.slow
def test_video_clips_take_each_frame_pose_at_its_own_capture_time(tmp_path, walk):
    """The video path end to end, with `SyntheticRecording` standing in for data.vrs: RGB at 30 fps captured 12.3 ms
    after the 16 fps grid's phase; each video frame is the closest capture, its camera the SLAM pose at that capture."""
    from egotwin.data.clip_format import read_clip
    from egotwin.data.nymeria.convert import convert_sequence
    from egotwin.data.nymeria.fixtures import SyntheticRecording

    motion = walk.slice(0, 193)  # 12 s: clips at 6 and 11 s device time
    folder = write_fixture_sequence(tmp_path / "raw", motion, SPEC)
    recording = SyntheticRecording(synthetic_fisheye(), SPEC, first_capture_us=SPEC.device_start_us + 12_300)
    config = NymeriaConfig(output_dir=str(tmp_path / "clips"), size=64)
    result = convert_sequence(folder, tmp_path / "clips", config, recording=recording)
    assert result.error is None and len(result.records) == 2
    (tmp_path / "clips" / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in result.records))

    truth = motion.resample(1000.0)  # the trajectory's own samples: device time 5 s + k ms
    head_rot, head_pos = truth.head_pose()
    from egotwin.data.nymeria.aria import pinhole_camera

    device_to_camera = pinhole_camera(recording.calibration, 64).device_to_camera
    for record in result.records:
        clip = read_clip(tmp_path / "clips" / record["path"])
        times = record["start_device_us"] + np.arange(41) * 125_000
        captured = np.abs(recording.captures_us[None] - times[:, None]).argmin(1)
        grey = clip["frames"][:, 32, 32, 0].astype(int)
        assert np.abs(grey - captured % 256).max() <= 2  # the closest capture, frame by frame
        assert 0 < record["max_capture_offset_ms"] <= 1000 / 60
        sample = np.round((recording.captures_us[captured] - SPEC.device_start_us) / 1000).astype(int)
        head = np.tile(np.eye(4), (41, 1, 1))
        head[:, :3, :3], head[:, :3, 3] = head_rot[sample].numpy(), head_pos[sample].numpy()
        expected = head @ SPEC.head_to_device @ device_to_camera
        expected[:, 1, 3] -= record["floor_height_m"]
        assert np.abs(clip["camera_to_world"][:, :3, 3] - expected[:, :3, 3]).max() < 2e-3  # metres
        assert np.abs(clip["camera_to_world"][:, :3, :3] - expected[:, :3, :3]).max() < 2e-3
    item = ClipDataset(tmp_path / "clips", split=None)[0]
    assert item["video"].shape == (3, 41, 64, 64) and item["camera_to_world"].shape == (41, 4, 4)


def write_synthetic_smpl(path: Path, rng: np.random.Generator) -> None:
    """A random SMPL-shaped model file (6890 vertices, 24 joints, 10 shape directions): what smplx.SMPL reads."""
    from egotwin.body.builtin import builtin_rest_joints
    from egotwin.body.skeleton import PARENTS

    v, joints = 6890, 24
    rest = builtin_rest_joints(1.7, dtype=torch.float64).numpy()
    rest = np.concatenate((rest, rest[20:22] + [[0.08, 0, 0], [-0.08, 0, 0]]))  # SMPL's hand joints past the wrists
    owner = rng.integers(0, joints, size=v)
    regressor = np.zeros((joints, v))
    for joint in range(joints):
        members = np.flatnonzero(owner == joint)
        regressor[joint, members] = 1.0 / len(members)
    weights = np.eye(joints)[owner]
    np.savez(
        path,
        v_template=rest[owner] + rng.normal(scale=0.04, size=(v, 3)) - [0, 0.9, 0],
        f=rng.integers(0, v, size=(1000, 3)).astype(np.uint32),
        shapedirs=rng.normal(scale=0.01, size=(v, 3, 10)),
        posedirs=np.zeros((v, 3, 207)),
        J_regressor=regressor,
        weights=weights,
        kintree_table=np.stack((np.array(list(PARENTS) + [20, 21]), np.arange(joints))),
    )


def test_smpl_body_route(tmp_path, walk):
    """--body smpl: NymeriaPlus fits (48 Hz, Y-up) of a known motion, the rest joints from a (synthetic) SMPL model."""
    from egotwin.data.nymeria.convert import convert_sequence
    from egotwin.data.nymeria.fixtures import write_smpl_fits
    from egotwin.data.nymeria.smpl import smpl_rest

    write_synthetic_smpl(tmp_path / "SMPL_NEUTRAL.npz", np.random.default_rng(0))
    betas = np.random.default_rng(1).normal(size=10)
    rest, lift, _ = smpl_rest(tmp_path / "SMPL_NEUTRAL.npz", betas)
    # the rest joints are smplx's own (smplx reads SMPL from .pkl)
    import pickle

    import smplx

    with np.load(tmp_path / "SMPL_NEUTRAL.npz") as data, open(tmp_path / "SMPL_NEUTRAL.pkl", "wb") as file:
        pickle.dump({key: data[key] for key in data.files}, file)
    model = smplx.create(str(tmp_path / "SMPL_NEUTRAL.pkl"), model_type="smpl", num_betas=10)
    reference = model(betas=torch.as_tensor(betas, dtype=torch.float32)[None]).joints[0, :22].detach().double().numpy()
    assert np.abs(rest - [0, lift, 0] - reference).max() < 1e-5
    motion = walk.slice(0, 193)
    motion = Motion(motion.trans, motion.global_orient, motion.body_pose, torch.from_numpy(rest - [0, lift, 0]), 16.0)
    folder = write_fixture_sequence(tmp_path / "raw", motion, SPEC)
    (folder / "body/xdata.npz").unlink()  # the SMPL route reads only the fits
    write_smpl_fits(folder, motion, SPEC, betas)
    config = replace(offset_config(tmp_path), body="smpl", smpl_model=str(tmp_path / "SMPL_NEUTRAL.npz"))
    result = convert_sequence(folder, tmp_path / "clips", config)
    assert result.error is None and len(result.records) == 2
    for record in result.records:
        got = Motion.load_npz(tmp_path / "clips" / record["path"] / "motion.npz", dtype=torch.float64)
        assert np.allclose(got.rest_joints.numpy(), rest) and got.rest_joints[:, 1].min() > 0
        joints = got.joints() + torch.tensor([0.0, record["floor_height_m"], 0.0], dtype=torch.float64)
        assert (joints - truth_slice(motion, record).joints()).norm(dim=-1).max() < 2e-4
        assert record["body"] == "smpl" and record["residual_head_max_m"] < 1e-3
    config = replace(config, smpl_model="")
    assert "needs --smpl_model" in convert_sequence(folder, tmp_path / "clips2", config).error


def test_hand_eye_and_clip_alignment_recover_known_transforms():
    from scipy.spatial.transform import Rotation

    from egotwin.data.nymeria.alignment import align_clip, rigid, solve_hand_eye

    rng = np.random.default_rng(0)
    heads = np.stack(
        [rigid(r, t) for r, t in zip(Rotation.random(200, random_state=1).as_matrix(), rng.normal(size=(200, 3)))]
    )
    hand_eye = rigid(Rotation.random(random_state=2).as_matrix(), np.array([0.01, 0.09, 0.08]))
    world = rigid(Rotation.from_euler("y", 1.1).as_matrix(), np.array([3.0, -1.0, 0.5]))
    devices = world @ heads @ hand_eye
    assert np.abs(solve_hand_eye(heads, devices, gap=3) - hand_eye).max() < 1e-9
    fit = align_clip(heads @ hand_eye, devices)
    assert np.abs(fit.transform - world).max() < 1e-9 and fit.residual_m.max() < 1e-9
    # a head that only ever turns about one axis cannot fix the rotation about the others
    yaw_only = heads.copy()
    yaw_only[:, :3, :3] = Rotation.from_euler("z", rng.uniform(-2, 2, (200, 1))).as_matrix()
    with pytest.raises(ValueError, match="too few axes"):
        solve_hand_eye(yaw_only, world @ yaw_only @ hand_eye, gap=3)


def test_the_xsens_tpose_retargets_to_the_rest_pose(tmp_path, walk):
    from egotwin.data.nymeria.retarget import retarget_xsens

    folder = write_fixture_sequence(tmp_path, walk.slice(0, 17), SPEC)
    xsens = read_xdata(folder / "body/xdata.npz")
    xsens.quaternions[0] = np.load(folder / "body/xdata.npz")["tpose_segment_qWXYZ"].reshape(23, 4)
    xsens.positions[0] = np.load(folder / "body/xdata.npz")["tpose_segment_tXYZ"].reshape(23, 3)
    motion = retarget_xsens(xsens, np.array([0]), 16.0)
    assert np.abs(motion.body_pose[0].numpy() - np.eye(3)).max() < 1e-9  # every joint at rest
    from scipy.spatial.transform import Rotation

    heading = Rotation.from_euler("y", SPEC.tpose_yaw_deg, degrees=True).as_matrix()
    assert np.abs(motion.global_orient[0].numpy() - heading).max() < 1e-9  # facing the T-pose's way
    assert np.allclose(motion.rest_joints.numpy(), walk.rest_joints.double().numpy(), atol=1e-6)

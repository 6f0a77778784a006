"""The direction probe's measures on known answers: a camera turned left / right about the vertical, walked forward,
a turn across +-180 degrees, the same turn seen by visual odometry in a rendered video, and the probe's clip choice
and agreement."""

from types import SimpleNamespace

import numpy as np
import pytest
from scipy.spatial.transform import Rotation
from test_eval_visual_odometry import K, rotating_camera_video

from egotwin.eval.directions import (
    PROBES,
    forward_m,
    head_yaw_deg,
    parse_args,
    probe_clips,
    summarize,
    turns_summary,
    video_yaw_deg,
)

# OpenCV camera (x right, y down, z forward) of a person facing world +z with world +y up: +x is on the person's left
FACING_Z = np.array([[-1.0, 0, 0], [0, -1, 0], [0, 0, 1]])


def path(yaws_deg: np.ndarray, positions: np.ndarray | None = None, start=FACING_Z) -> np.ndarray:
    poses = np.tile(np.eye(4), (len(yaws_deg), 1, 1))
    poses[:, :3, :3] = Rotation.from_euler("y", np.asarray(yaws_deg)[:, None], degrees=True).as_matrix() @ start
    if positions is not None:
        poses[:, :3, 3] = positions
    return poses


def test_head_yaw_is_positive_to_the_left_and_wraps():
    assert np.isclose(head_yaw_deg(path(np.linspace(0, 90, 41))), 90)  # +z turns towards +x: the left
    assert np.isclose(head_yaw_deg(path(np.linspace(0, -60, 41))), -60)
    assert np.isclose(head_yaw_deg(path(np.array([170.0, 190.0]))), 20)  # across +-180
    # a camera pitched down 30 degrees keeps its heading
    pitched = Rotation.from_euler("x", 30, degrees=True).as_matrix()
    assert np.isclose(head_yaw_deg(path(np.array([0.0, 45.0]), start=FACING_Z @ pitched)), 45)


def test_forward_is_along_the_first_heading():
    steps = np.linspace(0, 1.5, 41)
    ahead = path(np.zeros(41), np.stack([np.zeros(41), np.zeros(41), steps], 1))
    assert np.isclose(forward_m(ahead), 1.5)
    # facing +x (turned left 90 degrees first), walking towards -x is walking backwards
    back = path(np.full(41, 90.0), np.stack([-steps, np.zeros(41), np.zeros(41)], 1))
    assert np.isclose(forward_m(back), -1.5)


def test_video_yaw_sees_the_turn_in_the_frames():
    yaws = np.linspace(0, 15, 21)
    world = path(yaws)
    relative = np.swapaxes(world[:1, :3, :3], 1, 2) @ world[:, :3, :3]  # frame 0 at the identity, as rendered
    frames = rotating_camera_video(relative)
    assert abs(video_yaw_deg(frames, K, world[0]) - 15) < 1.0
    mirrored = path(-yaws)
    frames = rotating_camera_video(np.swapaxes(mirrored[:1, :3, :3], 1, 2) @ mirrored[:, :3, :3])
    assert abs(video_yaw_deg(frames, K, mirrored[0]) + 15) < 1.0


def test_probe_clips_and_agreement():
    records = [
        {"actions": ["turn"], "caption": "turn to the left"},
        {"actions": ["turn", "walk_forward"], "caption": "turn left and walk"},
        {"actions": ["turn"], "caption": "turn to the right"},
        {"actions": ["walk_forward"], "caption": "the person walks forward"},
        {"actions": ["turn"], "caption": "turn around to the left"},
        {"actions": ["turn_to"], "caption": "the person turns right and looks at the lamp"},
        {"actions": ["walk_forward", "turn"], "caption": "walk forward, then turn left"},
    ]
    dataset = SimpleNamespace(records=records)
    left, right, forward, backward = PROBES
    assert probe_clips(dataset, left, 5) == [0, 1, 4] and probe_clips(dataset, left, 1) == [0]
    assert probe_clips(dataset, right, 5) == [2, 5] and probe_clips(dataset, forward, 5) == [3]
    assert probe_clips(dataset, backward, 5) == []
    measures = [
        {"head_yaw_deg": 80.0, "video_yaw_deg": 70.0, "forward_m": 0.0},
        {"head_yaw_deg": -10.0, "video_yaw_deg": 5.0, "forward_m": 0.1},
    ]
    rows = [{"ground_truth": measures[0], "generated": m} for m in measures]
    summary = summarize(left, rows)
    assert summary["clips"] == 2 and summary["ground_truth_agreement"] == 1.0
    assert summary["generated_agreement"] == 0.5 and summary["generated_video_agreement"] == 1.0
    # the second clip's video turns left while its head turns right
    assert summary["generated_video_follows_head"] == 0.5
    assert np.isclose(summary["generated_head_yaw_deg"], 35.0)


def test_turns_summary_signs_the_video_by_the_head_and_tests_it():
    def clip(head, video):
        return {"generated": {"head_yaw_deg": head, "video_yaw_deg": video, "forward_m": 0.0}}

    # six turns whose video goes the head's way by 10..60 degrees (left and right), and a walk that must not count
    following = {
        "turn left": [clip(90.0, v) for v in (10.0, 20.0, 30.0)],
        "turn right": [clip(-90.0, -v) for v in (40.0, 50.0, 60.0)],
        "walk forward": [clip(0.0, -100.0)],
    }
    turns = turns_summary(following)
    assert (turns["clips"], turns["video_follows_head"]) == (6, 6)
    assert np.isclose(turns["median_video_yaw_along_head_deg"], 35.0)
    assert np.isclose(turns["wilcoxon_p"], 1 / 64)  # all six ranks positive: the smallest exact one-sided p
    # the same clips with every video turned the other way: no evidence at all
    against = {
        name: [clip(r["generated"]["head_yaw_deg"], -r["generated"]["video_yaw_deg"]) for r in rows]
        for name, rows in following.items()
    }
    turns = turns_summary(against)
    assert turns["video_follows_head"] == 0 and np.isclose(turns["median_video_yaw_along_head_deg"], -35.0)
    assert turns["wilcoxon_p"] == 1.0
    assert turns_summary({"walk forward": [clip(0.0, 5.0)]}) == {"clips": 0}


def test_command_line_speaks_the_shared_vocabulary():
    config = parse_args(["--checkpoint", "pipe", "--data_root", "clips", "--output_dir", "out", "--motion_lead", "0.5"])
    assert (config.checkpoint, config.data_root, config.output_dir, config.motion_lead) == ("pipe", "clips", "out", 0.5)
    assert config.mode == "t2vm" and config.device == ""
    missing = "--checkpoint is required; --output_dir is required; --mode must be t2vm or tm2v, got 'v2m'"
    with pytest.raises(SystemExit, match=missing):
        parse_args(["--data_root", "clips", "--mode", "v2m"])
    with pytest.raises(SystemExit):
        parse_args(["--data", "clips"])  # the old flag is gone, not ignored

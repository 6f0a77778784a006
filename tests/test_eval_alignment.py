"""Exact viewpoint alignment (egotwin.eval.alignment) on real EgoWorld clips generated here, checked on known answers:
the clip's own video scores near 0 (also through the shipped VAE), a still camera ~1, another clip's video near
chance, a path turned by a known yaw or pitch is read out as that offset, a delayed path loses to the still camera
in head-beats-still. Small grids (30 deg yaw steps) and 9 of the 41 frames wherever the answer allows."""

import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from egotwin.data.clip_format import read_clip, read_metadata
from egotwin.eval.__main__ import main as eval_main
from egotwin.eval.alignment import (
    AlignmentConfig,
    AlignmentRenderer,
    ClipSetAlignment,
    align_to_clip,
    frame_scores,
    frames_by_seen_share,
    make_references,
    offset_cameras,
    scored_frames,
    start_frame_reprojection,
    start_frame_warp,
    summarize_frames,
    view_dist_by_second,
    view_dist_by_seen_share,
    what_the_head_sees,
)
from egotwin.models.video_vae import load_pretrained_video_vae, round_trip_frames
from egotwin.motion.motion import Motion
from egotwin.world.generate import WorldConfig, generate, load_default_body
from egotwin.world.replay import ClipSource, NotEgoWorldError, clip_source, rebuild_clip_world

SHIPPED = "assets/egotwin-tiny"
FRAMES = np.arange(9)  # video frames 0..8 (1 s): enough for a turn, and 4k + 1 for the VAE
GRID = AlignmentConfig(yaw_step_deg=30.0, pitch_offsets_deg=(-20.0, 0.0, 20.0))


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """Three clips in three apartments (seed 4242: a look down, two walks)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("egoworld")
    generate(root, 3, seed=4242, workers=1, config=WorldConfig(clips_per_apartment=1), progress=False)
    yield root
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def body():
    return load_default_body()


@pytest.fixture(scope="module")
def renderer(body):
    renderer = AlignmentRenderer(body)
    yield renderer
    renderer.close()


def rebuild(root, index, body):
    record = read_metadata(root)[index]
    world = rebuild_clip_world(clip_source(root, record), torch.as_tensor(np.asarray(body.rest_joints)))
    return world, read_clip(root / record["path"])


def turning_path(camera: np.ndarray, degrees_per_frame: float = 15.0) -> np.ndarray:
    """(9, 4, 4): a camera turning left on the spot at a constant speed (120 deg over 8 frames)."""
    return offset_cameras(camera[None], degrees_per_frame * FRAMES, np.zeros(1))[0, :, 0]


def test_rebuilt_world_renders_the_clip_again(clips, body, renderer):
    world, clip = rebuild(clips, 2, body)
    assert world.apartment.seed == ClipSource(4242, 2, 2).apartment_seed
    renders = renderer.render_paths(world, world.motion, clip["camera_to_world"][None])[0]
    # the recorded frames went through H.264 (crf 12); the world itself is the same, arms and hands included
    assert np.abs(renders.astype(int) - clip["frames"]).mean() < 2.0
    assert clip["hand_visible"].any()


def test_sources_that_are_not_egoworld_are_refused(clips, tmp_path):
    with pytest.raises(NotEgoWorldError, match="not an EgoWorld clip"):
        ClipSource.from_ids("my_clip", "kitchen")
    with pytest.raises(NotEgoWorldError, match="different seeds"):
        ClipSource.from_ids("s1_000004", "s2_apt00001")
    record = read_metadata(clips)[0]
    shutil.copy(clips / "metadata.jsonl", tmp_path / "metadata.jsonl")
    with pytest.raises(NotEgoWorldError, match="no EgoWorld config.json"):
        clip_source(tmp_path, record)


def test_offset_cameras_turn_left_and_look_up():
    facing_z = np.diag([-1.0, -1.0, 1.0, 1.0])  # OpenCV axes of a camera looking along world +z, y up
    views = offset_cameras(facing_z[None], np.array([0.0, 90.0]), np.array([0.0, 20.0]))
    forward = views[..., 0, :3, 2]  # (pitch, yaw, 3)
    np.testing.assert_allclose(forward[0, 0], [0, 0, 1], atol=1e-12)
    np.testing.assert_allclose(forward[0, 1], [1, 0, 0], atol=1e-12)  # +x is the wearer's left
    np.testing.assert_allclose(forward[1, 0], [0, np.sin(np.radians(20)), np.cos(np.radians(20))], atol=1e-12)
    np.testing.assert_allclose(views[..., :3, 3], np.zeros((2, 2, 1, 3)))  # turned on the spot
    assert AlignmentConfig(yaw_step_deg=90).yaws.tolist() == [-180.0, -90.0, 0.0, 90.0]
    with pytest.raises(ValueError, match="must hold 0"):
        AlignmentConfig(pitch_offsets_deg=(10.0,))


def test_generated_motion_is_moved_into_the_clip_world(clips):
    """Generated motion lives in the canonical frame of its start pose: align_to_clip puts it back in the apartment."""
    clip = read_clip(clips / read_metadata(clips)[1]["path"])
    canonical, transform = clip["motion"].canonicalize()
    cameras = transform.double().numpy() @ clip["camera_to_world"]
    motion, back = align_to_clip(canonical, cameras, clip["motion"])
    np.testing.assert_allclose(back, clip["camera_to_world"], atol=1e-4)
    torch.testing.assert_close(motion.joints(), clip["motion"].joints(), atol=1e-4, rtol=0)


def test_scored_frames_thresholds():
    still = np.tile(np.eye(4), (5, 1, 1))
    path = still.copy()
    path[1, :3, 3] = [0.4, 0, 0]  # moved less than 0.5 m
    path[2, :3, 3] = [0.6, 0, 0]
    path[3:] = offset_cameras(still[:1], np.array([25.0]), np.zeros(1))[0, 0]  # turned 25 deg
    assert scored_frames(path).tolist() == [False, False, True, True, True]
    assert not scored_frames(still).any()


K64 = np.array([[32.0, 0.0, 32.0], [0.0, 32.0, 32.0], [0.0, 0.0, 1.0]])  # f = 32 px, 64x64: a 90 deg view
FACING_Z = np.diag([-1.0, -1.0, 1.0, 1.0])  # a level camera looking along world z


def test_start_frame_reprojection_of_a_level_turn():
    """A level camera turning left on the spot by 30 deg inside a sphere (every surface 3 m away): what is now ahead
    was 30 deg left in frame 0, so on the horizon the columns from tan(15 deg) left of the centre rightwards show
    surface frame 0 saw, each at the column frame 0 saw it in; after 100 deg nothing is."""
    path = offset_cameras(FACING_Z[None], np.array([0.0, 30.0, 100.0]), np.zeros(1))[0, :, 0]
    u, v = np.meshgrid(np.arange(64.0), np.arange(64.0))
    depth = np.broadcast_to(3.0 / np.sqrt(((u - 32) / 32) ** 2 + ((v - 32) / 32) ** 2 + 1), (3, 64, 64))
    x, y, seen = start_frame_reprojection(depth, path, K64)
    np.testing.assert_allclose(x[0], u, atol=1e-4)
    assert seen[0].all() and not seen[2].any()
    assert np.flatnonzero(seen[1, 32]).tolist() == list(range(24, 64))  # (u - 32) / 32 >= -tan(15 deg)
    c = np.arange(24.0, 64.0)  # camera 1's ray at column c is atan((c - 32) / 32) - 30 deg off camera 0's axis
    np.testing.assert_allclose(x[1, 32, 24:], 32 + 32 * np.tan(np.arctan((c - 32) / 32) - np.radians(30)), atol=1e-3)
    np.testing.assert_allclose(y[1, 32, 24:], 32.0, atol=1e-3)  # the horizon stays the horizon
    assert not seen[1, 0, 24] and seen[1, 0, 63]  # nearer the edge a ray leaves frame 0's view at the top


def test_start_frame_reprojection_of_a_walk_up_to_a_wall():
    """Walking 1 m straight at a wall 4 m ahead is a zoom into frame 0 about its centre by 3/4; a wall that was
    behind something nearer (frame 0's depth 2 m everywhere) was not seen; where frame 0 had no surface, nothing."""
    path = np.stack([FACING_Z, FACING_Z])
    path[1, 2, 3] = 1.0
    depth = np.stack([np.full((64, 64), 4.0), np.full((64, 64), 3.0)])
    x, y, seen = start_frame_reprojection(depth, path, K64)
    u, v = np.meshgrid(np.arange(64.0), np.arange(64.0))
    np.testing.assert_allclose(x[1], 32 + (u - 32) * 0.75, atol=1e-4)
    np.testing.assert_allclose(y[1], 32 + (v - 32) * 0.75, atol=1e-4)
    assert seen.all()
    occluded = depth.copy()
    occluded[0] = 2.0
    assert not start_frame_reprojection(occluded, path, K64)[2][1].any()
    assert start_frame_reprojection(occluded, path, K64)[2][0].all()  # frame 0 sees its own surface
    empty = depth.copy()
    empty[0, :, :40] = 0.0  # frame 0 saw no surface in its 40 left columns: frame 1's columns u with 32 + 0.75 (u - 32)
    seen = start_frame_reprojection(empty, path, K64)[2]  # nearest to one of them (u < 42) show nothing it saw
    assert not seen[:, :, :40].any() and not seen[1, :, :42].any() and seen[1, :, 42:].all() and seen[0, :, 40:].all()


def test_view_dist_by_second_pools_each_seconds_scored_frames():
    view_dist = np.zeros(41)
    view_dist[1:9], view_dist[9:17], view_dist[33:41] = 0.2, 0.5, 0.9
    scored = np.ones(41, bool)
    scored[[0, 9, 10]] = False
    scored[17:33] = False
    two_clips = [{"view_dist": view_dist}, {"view_dist": view_dist + 0.1}]
    by_second = view_dist_by_second(two_clips, [scored, scored])
    assert by_second == pytest.approx([0.25, 0.55, None, None, 0.95])


def test_view_dist_by_seen_share_pools_each_third():
    view_dist, share = np.linspace(0.0, 0.8, 41), np.linspace(1.0, 0.0, 41)  # frame t: ViewDist t/50, share 1 - t/40
    scored = np.ones(41, bool)
    scored[0] = False
    scored[14:27] = False  # shares 0.65..0.35: the middle third is left with none
    by_share = view_dist_by_seen_share([{"view_dist": view_dist}], [scored], [share])
    # under 1/3: frames 27..40; at least 2/3: frames 1..13 (frame 13's share is 0.675)
    assert by_share == pytest.approx([view_dist[27:].mean(), None, view_dist[1:14].mean()])
    assert frames_by_seen_share([scored], [share]) == [14, 0, 13]


@pytest.mark.slow
def test_known_answers_on_a_turning_path(clips, body, renderer):
    world, clip = rebuild(clips, 1, body)
    head = turning_path(clip["camera_to_world"][0])
    references = make_references(renderer, world, world.motion, head, None, GRID, FRAMES)
    assert references.scored.sum() == 7  # frames 2..8 have turned >= 20 deg

    def read_out(video):
        return summarize_frames([frame_scores(video, references)], [references.scored], GRID.hit_deg)

    on_time = read_out(references.head_frames)
    assert on_time["ViewDist"] == 0.0 and on_time["Head>Still"] == 1.0 and on_time["YawHit"] == 1.0
    still = read_out(references.still_frames)
    assert 0.6 < still["ViewDist"] < 1.4 and still["Head>Still"] == 0.0

    def rendered(yaw, pitch=0.0):
        return renderer.render_paths(world, world.motion, offset_cameras(head, [yaw], [pitch])[0], FRAMES)[0]

    turned = frame_scores(rendered(60.0), references)
    assert (turned["best_yaw"][references.scored] == 60.0).all()
    assert (turned["best_pitch"][references.scored] == 0.0).all()
    looking_up = frame_scores(rendered(0.0, 20.0), references)
    assert (looking_up["best_pitch"][references.scored] == 20.0).all()
    assert (looking_up["best_yaw"][references.scored] == 0.0).all()
    # three frames late (45 deg behind): closer to the still view than to the head until the turn is well on
    delayed = read_out(references.head_frames[np.maximum(FRAMES - 3, 0)])
    assert on_time["Head>Still"] - delayed["Head>Still"] > 0.4 and delayed["Head>Still"] > still["Head>Still"]
    assert delayed["ViewDist"] > 0.3


@pytest.mark.slow
def test_start_frame_warp_turns_frame_zero_with_the_head(clips, body, renderer):
    """The start-frame level: frame 0 turned with the head shows the head render wherever frame 0 saw that surface,
    and nothing (frame 0's mean colour) once the head has turned past the field of view (90 deg)."""
    world, clip = rebuild(clips, 1, body)
    head = turning_path(clip["camera_to_world"][0])  # 15 deg per frame, on the spot
    references = make_references(renderer, world, world.motion, head, None, GRID, FRAMES)
    k = renderer.renderer.intrinsics.numpy()
    reprojection = start_frame_reprojection(references.head_depth, head, k)
    warp = start_frame_warp(references, reprojection)
    seen = reprojection[2]
    assert seen[0].all() and not seen[7:].any()  # 105 and 120 deg: frame 0 saw none of it
    # a 30 deg turn on the spot sees again what frame 0 saw in ~60% of the view (the level turn's closed form), less
    # where the body's arms move
    assert 0.5 < seen[2].mean() < 0.7
    assert np.abs(warp[0].astype(int) - references.head_frames[0]).max() <= 1
    for t in (1, 2, 3):
        seen_t = seen[t]
        warp_error = np.abs(warp[t].astype(int) - references.head_frames[t])[seen_t].mean()
        still_error = np.abs(references.still_frames[t].astype(int) - references.head_frames[t])[seen_t].mean()
        assert warp_error < 0.5 * still_error, (t, warp_error, still_error)
    assert (warp[7:] == warp[7, 0, 0]).all()  # one colour: frame 0's mean

    def read_out(video):
        return summarize_frames([frame_scores(video, references)], [references.scored], GRID.hit_deg)

    assert read_out(warp)["ViewDist"] < read_out(references.still_frames)["ViewDist"]


@pytest.mark.slow
def test_round_trip_through_the_shipped_vae_keeps_the_head(clips, body, renderer):
    """Renders and video through the same VAE: the clip's own frames score near 0, a still camera ~1."""
    vae, grid = load_pretrained_video_vae(SHIPPED), AlignmentConfig(yaw_step_deg=30.0, pitch_offsets_deg=(0.0,))
    world, clip = rebuild(clips, 1, body)
    head = turning_path(clip["camera_to_world"][0])
    references = make_references(renderer, world, world.motion, head, vae, grid, FRAMES)
    raw = renderer.render_paths(world, world.motion, head[None], FRAMES)
    np.testing.assert_array_equal(references.head_frames, round_trip_frames(vae, raw)[0])
    assert np.abs(references.head_frames.astype(int) - raw[0]).mean() > 3  # the VAE changes the frames
    scores = summarize_frames([frame_scores(references.head_frames, references)], [references.scored], 15.0)
    assert scores["ViewDist"] == 0.0
    # the video is the clip's rendered frames after the round trip, scored against renders of the same path
    video = round_trip_frames(vae, clip["frames"][None, FRAMES])[0]
    own = make_references(renderer, world, world.motion, clip["camera_to_world"][FRAMES], vae, grid, FRAMES)
    assert own.scored.sum() >= 3
    assert summarize_frames([frame_scores(video, own)], [own.scored], 15.0)["ViewDist"] < 0.35
    still = summarize_frames([frame_scores(references.still_frames, references)], [references.scored], 15.0)
    assert 0.6 < still["ViewDist"] < 1.4


@pytest.mark.slow
def test_clip_set_levels_ground_truth_unrelated_still(clips):
    """The clips' own videos against their own head paths: near 0; each other's: near chance; a still camera ~1."""
    records = read_metadata(clips)
    samples = []
    for record in records:
        clip = read_clip(clips / record["path"])
        samples.append({k: clip[k] for k in ("frames", "motion", "camera_to_world", "intrinsics")})
    scorer = ClipSetAlignment(clips, records, AlignmentConfig(yaw_step_deg=30.0, pitch_offsets_deg=(0.0,)))
    try:
        metrics = scorer(samples)
    finally:
        scorer.close()
    assert metrics["alignment frames"] == 18 + 35 + 26
    by_second = metrics["ViewDist by second"]  # the clips' own videos: near 0 in every second that has scored frames
    assert len(by_second) == 5 and all(v is None or v < 0.1 for v in by_second) and by_second[-1] is not None
    assert sum(metrics["alignment frames by seen share"]) == metrics["alignment frames"]
    assert all(v is None or v < 0.1 for v in metrics["ViewDist by seen share"])
    # the start frame carried along the head explains a frame better the more of it frame 0 saw
    warp = metrics["ViewDist by seen share (start-frame warp)"]
    assert warp[0] is not None and warp[-1] is not None and warp[-1] < 0.5 * warp[0]
    assert metrics["ViewDist"] < 0.1 and metrics["Head>Still"] == 1.0 and metrics["YawHit"] == 1.0
    assert 0.7 < metrics["ViewDist (unrelated)"] < 1.3 and metrics["Head>Still (unrelated)"] < 0.8
    assert 0.6 < metrics["ViewDist (still camera)"] < 1.3 and metrics["Head>Still (still camera)"] == 0.0


@pytest.mark.slow
def test_eval_cli_reports_alignment_and_skips_user_data(clips, tmp_path, capsys):
    args = [
        "--ground_truth",
        "--data_root",
        str(clips),
        "--split",
        "train",
        "--alignment_yaw_step",
        "90",
        "--alignment_pitches=0",
    ]
    results = eval_main([*args, "--output_dir", str(tmp_path / "gt")])
    summary = results["summary"]
    assert summary["ViewDist"]["mean"] < 0.1 and summary["Head>Still"]["mean"] == 1.0
    assert {"ViewDist (unrelated)", "ViewDist (still camera)", "PitchErr"} <= set(summary)
    assert results["settings"]["alignment"]["yaw_step_deg"] == 90.0
    assert json.loads((tmp_path / "gt" / "results.json").read_text())["summary"] == summary
    table = (tmp_path / "gt" / "results.md").read_text()
    assert "| | ViewDist | Head>Still | YawHit | YawErr | PitchErr |" in table and "unrelated" in table
    # user data: the same clips without the generation run's config.json cannot be re-rendered
    user = tmp_path / "user"
    shutil.copytree(clips, user)
    (user / "config.json").unlink()
    results = eval_main(
        ["--ground_truth", "--data_root", str(user), "--split", "train", "--output_dir", str(tmp_path / "u")]
    )
    assert "exact viewpoint alignment skipped" in capsys.readouterr().out
    assert "ViewDist" not in results["summary"] and results["settings"]["alignment"] is None


@pytest.mark.slow
def test_what_the_head_sees_of_a_generated_motion(clips, body):
    """The demo's back end: generated motion arrives in its canonical frame; the re-render is the clip itself."""
    record = read_metadata(clips)[1]
    clip = read_clip(clips / record["path"])
    canonical, transform = clip["motion"].canonicalize()
    cameras = transform.double().numpy() @ clip["camera_to_world"]
    view = what_the_head_sees(clip_source(clips, record), canonical, cameras, video=clip["frames"])
    assert np.abs(view.frames.astype(int) - clip["frames"]).mean() < 2.0
    assert view.view_dist < 0.1 and view.head_beats_still == 1.0 and view.scored_frames == 35
    alone = what_the_head_sees(clip_source(clips, record), canonical, cameras)
    np.testing.assert_array_equal(alone.frames, view.frames)
    assert alone.view_dist is None


def test_examples_are_tied_to_their_clips(body, renderer):
    """Every demo example names its EgoWorld clip; rebuilt, its start pose and start frame come back."""
    from demo.inputs import EXAMPLES_DIR

    rows = json.loads((EXAMPLES_DIR / "examples.json").read_text())
    for row in rows:
        source = ClipSource.from_ids(row["clip_id"], row["apartment"])
        world = rebuild_clip_world(source, torch.as_tensor(np.asarray(body.rest_joints)))
        start = world.motion.slice(0, 1)
        if row["pose_file"]:
            pose = Motion.load_npz(EXAMPLES_DIR / row["pose_file"])
            torch.testing.assert_close(pose.joints().float(), start.joints().float(), atol=1e-4, rtol=0)
        if row["image"]:
            camera = renderer.renderer.rig.camera_poses(*(x[:1].double() for x in world.motion.head_pose())).numpy()
            render = renderer.render_paths(world, world.motion, camera[None], np.arange(1))[0, 0]
            image = np.asarray(Image.open(EXAMPLES_DIR / row["image"]).convert("RGB"))
            assert np.abs(render.astype(int) - image).mean() < 1.0


def test_tables_show_chance_beside_each_result():
    from egotwin.eval.__main__ import summarize
    from egotwin.eval.table import alignment_table, comparison_markdown

    replications = [
        {"TransErr": 1.0, "ViewDist": 0.8, "ViewDist (unrelated)": 1.0, "ViewDist (still camera)": 1.02},
        {"TransErr": 1.0, "ViewDist": 0.6, "ViewDist (unrelated)": 1.0, "ViewDist (still camera)": 1.02},
    ]
    summary = summarize(replications)
    assert summary["ViewDist"] == pytest.approx({"mean": 0.7, "std": 0.1})
    lines = alignment_table({"T2VM": summary, "user data": {"TransErr": summary["TransErr"]}})
    assert len(lines) == 3  # the header, its rule, and T2VM only
    assert lines[2].startswith("| T2VM | 0.700 ± 0.100<br>unrelated 1.000, still camera 1.020 | n/a |")
    runs = {"T2VM": {"summary": summary, "settings": {}}}
    assert lines[2] in comparison_markdown(runs)


def test_a_textured_clip_set_is_re_rendered_textured(tmp_path, body):
    """A `--textured` run's clips come back from their ids with their textures: the rebuilt render equals the clip's
    video, where a flat render of the same path does not."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        generate(
            tmp_path, 1, seed=4242, workers=1, config=WorldConfig(clips_per_apartment=1, textured=True), progress=False
        )
    finally:
        torch.set_num_threads(threads)
    record = read_metadata(tmp_path)[0]
    source = clip_source(tmp_path, record)
    assert source.textured and source.as_dict()["textured"] is True
    world = rebuild_clip_world(source, torch.as_tensor(np.asarray(body.rest_joints)))
    clip = read_clip(tmp_path / record["path"])
    errors = {}
    for textured in (True, False):
        renderer = AlignmentRenderer(body, textured=textured)
        try:
            renders = renderer.render_paths(world, world.motion, clip["camera_to_world"][None])[0]
        finally:
            renderer.close()
        errors[textured] = np.abs(renders.astype(float) - clip["frames"].astype(float)).mean()
    assert errors[True] < 2.0 < errors[False]

"""EgoWorld rendering and clip generation: cameras, hand visibility, determinism, the door, the CLI."""

import hashlib
import json

import numpy as np
import pytest
import torch

import egotwin.world.generate as generate_module
from egotwin.body.head_camera import HeadCameraRig, project
from egotwin.body.skeleton import HEAD, LEFT_WRIST, RIGHT_WRIST
from egotwin.data.clip_format import read_clip, read_metadata
from egotwin.motion.motion import Motion
from egotwin.world.__main__ import main
from egotwin.world.apartment import generate_apartment
from egotwin.world.body_motion import BodyControls, synthesize_motion
from egotwin.world.generate import WorldConfig, generate
from egotwin.world.render import EgoRenderer

SEED = 11
CONFIG = WorldConfig(clips_per_apartment=2)


@pytest.fixture(scope="module")
def body():
    return generate_module.load_default_body()


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    root = tmp_path_factory.mktemp("world")
    records = generate(root, 4, seed=SEED, workers=1, config=CONFIG, progress=False)
    return root, records


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_clip_files_and_index(clips):
    root, records = clips
    assert [r["clip_id"] for r in read_metadata(root)] == [r["clip_id"] for r in records]
    assert len({r["apartment"] for r in records}) == 2
    for record in records:
        clip = read_clip(root / record["path"])
        assert clip["frames"].shape == (41, 64, 64, 3)
        assert clip["motion"].num_frames == 81 and clip["motion"].fps == 16
        assert clip["caption"] == record["caption"]
        assert record["hands_visible_frames"] == clip["hand_visible"].sum(0).tolist()
        # frames are not blank: a room is in view
        assert clip["frames"].std() > 10


def test_same_seed_gives_identical_clips(clips, tmp_path):
    root, records = clips
    again = generate(tmp_path, 2, seed=SEED, workers=1, config=CONFIG, progress=False)
    for record in again:
        for name in ("motion.npz", "cameras.npz", "caption.txt", "world.npz", "video.mp4"):
            assert _digest(tmp_path / record["path"] / name) == _digest(root / record["path"] / name), name
    first = [json.loads(line) for line in (root / "metadata.jsonl").read_text().splitlines()][:2]
    assert first == [json.loads(line) for line in (tmp_path / "metadata.jsonl").read_text().splitlines()]


def test_frames_do_not_depend_on_what_the_renderer_drew_before(body):
    """A clip rendered by a fresh renderer and by one that has drawn another apartment first has identical raw
    frames (a worker draws several apartments in turn, and the worker count must not change the data)."""
    from egotwin.world.generate import apartment_seed, make_clip

    rest = torch.as_tensor(np.asarray(body.rest_joints), dtype=torch.float32)
    apartments = [generate_apartment(apartment_seed(SEED, a)) for a in (0, 1)]

    def render(renderer, apartment, clip_index):
        renderer.set_apartment(apartment)
        rng = np.random.default_rng(np.random.SeedSequence([SEED, clip_index]))
        return make_clip("probe", apartment, rng, renderer, rest).frames

    fresh = EgoRenderer(body, 64, 64)
    try:
        expected = render(fresh, apartments[1], 2)
        # the shader sums the point lights in the order the scene lists them: it must be the apartment's order
        lights = [light["position"] for light in apartments[1].lights if "position" in light]
        listed = [fresh.scene.get_pose(node)[:3, 3] for node in fresh.scene.light_nodes]
        np.testing.assert_array_equal(listed, lights)
    finally:
        fresh.close()
    used = EgoRenderer(body, 64, 64)
    try:
        render(used, apartments[0], 0)
        again = render(used, apartments[1], 2)
    finally:
        used.close()
    assert expected.std() > 10
    np.testing.assert_array_equal(again, expected)


def test_stored_cameras_are_the_head_camera_of_the_stored_motion(clips):
    root, records = clips
    rig = HeadCameraRig()
    for record in records:
        motion = Motion.load_npz(root / record["path"] / "motion.npz", dtype=torch.float64)
        with np.load(root / record["path"] / "cameras.npz") as cameras:
            stored, intrinsics = cameras["camera_to_world"], cameras["intrinsics"]
        expected = rig.camera_poses(*motion.head_pose())[::2].numpy()
        np.testing.assert_allclose(stored, expected, atol=1e-5)
        np.testing.assert_allclose(intrinsics, rig.intrinsics(64, 64).numpy())


def test_visible_hands_project_inside_the_image(clips, body):
    root, records = clips
    hand_vertices = {
        w: np.asarray(body.vertices, dtype=np.float64)[np.asarray(body.vertex_joint) == w]
        - np.asarray(body.rest_joints, dtype=np.float64)[w]
        for w in (LEFT_WRIST, RIGHT_WRIST)
    }
    checked = 0
    for record in records:
        clip = read_clip(root / record["path"])
        rotations, joints = clip["motion"].forward_kinematics()
        cams = torch.as_tensor(clip["camera_to_world"])
        k = torch.as_tensor(clip["intrinsics"])
        for side, wrist in enumerate((LEFT_WRIST, RIGHT_WRIST)):
            world = (
                torch.einsum("nij,pj->npi", rotations[::2, wrist].double(), torch.as_tensor(hand_vertices[wrist]))
                + joints[::2, wrist, None].double()
            )
            pixels, depth = project(world, cams, k)
            inside = ((depth > 0) & (pixels >= 0).all(-1) & (pixels[..., 0] < 64) & (pixels[..., 1] < 64)).any(-1)
            visible = torch.as_tensor(clip["hand_visible"][:, side])
            assert not (visible & ~inside).any(), "a hand marked visible must project inside the image"
            checked += int(visible.sum())
    assert checked > 0, "the fixture clips must include frames with a hand in view"


def test_hand_visibility_probe(body):
    """A hand held in front of the eyes is visible; hands hanging at the sides while looking ahead are not."""
    apartment = generate_apartment(2)
    renderer = EgoRenderer(body, 64, 64)
    try:
        renderer.set_apartment(apartment)
        room = apartment.rooms[0]
        c = BodyControls.standing(9, (room.center[0], room.center[2]), 0.0)
        c.hand_target[:, 1] = (room.center[0] - 0.1, 1.35, room.center[2] + 0.45)
        c.hand_weight[5:, 1] = 1.0
        motion = synthesize_motion(c, torch.as_tensor(np.asarray(body.rest_joints), dtype=torch.float32))
        rotations, joints = motion.forward_kinematics()
        cams = HeadCameraRig().camera_poses(rotations[:, HEAD].double(), joints[:, HEAD].double()).numpy()
        frames, depth, visible = renderer.render(
            rotations.double().numpy(), joints.double().numpy(), cams, np.zeros((9, len(apartment.doors)))
        )
    finally:
        renderer.close()
    assert not visible[0].any()
    assert visible[8, 1] and not visible[8, 0]
    # the raised hand changes the picture where it appears, nearer than the room behind it
    assert np.abs(frames[8].astype(int) - frames[0].astype(int)).sum(-1).max() > 60
    assert depth[8].min() < 0.7 and depth[8][depth[8] > 0].min() < depth[0][depth[0] > 0].min()


def test_open_door_clip_shows_the_door_opening(body):
    """A door episode ends with the door open in the stored world state, the pushing hand is seen, the view changes."""
    from egotwin.world.episodes import _start_pose, plan_open_door
    from egotwin.world.generate import make_clip

    episode = None
    for seed in range(20):
        apartment = generate_apartment(seed)
        rng = np.random.default_rng(seed)
        position, heading = _start_pose(apartment, rng, "open_door")
        episode = None if position is None else plan_open_door(apartment, rng, position, heading)
        if episode is not None:
            break
    assert episode is not None
    renderer = EgoRenderer(body, 64, 64)
    try:
        renderer.set_apartment(apartment)
        rest = torch.as_tensor(np.asarray(body.rest_joints), dtype=torch.float32)
        clip = make_clip("door", apartment, np.random.default_rng(0), renderer, rest, episode=episode)
    finally:
        renderer.close()
    d = int(np.argmax(clip.door_angles[-1]))
    assert clip.door_angles[0, d] == 0 and clip.door_angles[-1, d] > 1.2
    assert clip.hand_visible.any(), "the pushing hand is seen"
    assert np.abs(clip.frames[-1].astype(int) - clip.frames[0].astype(int)).mean() > 10


def test_cli_generate_and_preview(tmp_path, capsys):
    assert main(["generate", "--output_dir", str(tmp_path), "--clips", "2", "--seed", "4", "--workers", "1"]) == 0
    assert len(read_metadata(tmp_path)) == 2
    assert main(["preview", str(tmp_path), "--clips", "2"]) == 0
    import imageio.v3 as iio

    sheet = iio.imread(tmp_path / "preview.png")
    assert sheet.shape[0] > 2 * 64 and sheet.shape[1] >= 6 * 128
    assert (tmp_path / "preview.mp4").stat().st_size > 1000
    with pytest.raises(SystemExit):
        main(["generate", "--output_dir", str(tmp_path), "--clips", "2", "--width", "4"])


@pytest.mark.slow
def test_worker_count_does_not_change_the_data(clips, tmp_path):
    root, records = clips
    again = generate(tmp_path, 4, seed=SEED, workers=2, config=CONFIG, progress=False)
    assert [r["clip_id"] for r in again] == [r["clip_id"] for r in records]
    for record in again:
        for name in ("motion.npz", "cameras.npz", "video.mp4"):
            assert _digest(tmp_path / record["path"] / name) == _digest(root / record["path"] / name), name


def test_an_interrupted_run_resumes_from_its_journal(clips, tmp_path):
    root, records = clips
    # a run of 2 clips (apartment 0), then the same run asked for 4: apartment 0 is not made again
    generate(tmp_path, 2, seed=SEED, workers=1, config=CONFIG, progress=False)
    first_video = tmp_path / records[0]["path"] / "video.mp4"
    stamp = first_video.stat().st_mtime_ns
    # a run killed while writing leaves a cut-off last journal line: that apartment is simply redone
    with open(tmp_path / generate_module.JOURNAL_NAME, "a") as journal:
        journal.write('{"apartment": 1, "reco')
    resumed = generate(tmp_path, 4, seed=SEED, workers=1, config=CONFIG, progress=False)
    assert first_video.stat().st_mtime_ns == stamp
    assert [r["clip_id"] for r in resumed] == [r["clip_id"] for r in records]
    assert (tmp_path / "metadata.jsonl").read_text() == (root / "metadata.jsonl").read_text()
    assert generate_module._read_journal(tmp_path / generate_module.JOURNAL_NAME, SEED, CONFIG).keys() == {0, 1}
    with pytest.raises(ValueError, match="other settings"):
        generate(tmp_path, 4, seed=SEED + 1, workers=1, config=CONFIG, progress=False)


def test_a_journal_from_before_a_setting_existed_reads_as_its_default(tmp_path):
    generate(tmp_path, 2, seed=SEED, workers=1, config=CONFIG, progress=False)
    journal = tmp_path / generate_module.JOURNAL_NAME
    header, *entries = journal.read_text().splitlines()
    old = json.loads(header)
    del old["config"]["turn_speed_deg"]  # journals written before the turn speed was a setting
    journal.write_text("\n".join([json.dumps(old), *entries]) + "\n")
    assert generate_module._read_journal(journal, SEED, CONFIG).keys() == {0}
    slower = WorldConfig(clips_per_apartment=2, turn_speed_deg=45.0)
    with pytest.raises(ValueError, match="other settings"):
        generate_module._read_journal(journal, SEED, slower)
    with pytest.raises(SystemExit, match="--turn_speed must be positive"):
        main(["generate", "--output_dir", str(tmp_path / "x"), "--clips", "1", "--turn_speed", "0"])
    assert not (tmp_path / "x").exists()

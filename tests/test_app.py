"""The demo's runner and page handlers on a tiny random pipeline (tests/test_pipeline.py's components), in process:
each mode end to end with the shipped example files, the seed shown back reproduces the clip, Continue joins clips,
session files are cleaned up, and every bad input gives a clear gr.Error while the app keeps working.
The real server in a real browser is tests/test_app_browser.py."""

import json
import re

import gradio as gr
import numpy as np
import pytest
import torch
from test_pipeline import get_dummy_components

import app
from demo import inputs
from demo.inputs import EXAMPLES_DIR, InputError, load_driving_motion, load_image, load_initial_pose, load_video
from demo.runner import DemoResult, DemoRunner, GenerationRequest, SamplingSettings, measure_alignment
from demo.session import Session, close_session
from demo.ui import build_demo, load_examples, mode_visibility
from egotwin.models.transformer import EgoTwinTransformer3DModel
from egotwin.motion import Motion
from egotwin.pipelines import EgoTwinPipelineOutput
from training.build_pipeline import random_pipeline

STEPS = 2
EXAMPLE = {name: str(EXAMPLES_DIR / name) for name in ("door.png", "door_pose.npz", "crouch.png", "crouch_motion.npz")}
EXAMPLE["turn_left.mp4"] = str(EXAMPLES_DIR / "turn_left.mp4")


@pytest.fixture(scope="module")
def runner() -> DemoRunner:
    components = get_dummy_components()
    torch.manual_seed(0)
    transformer = EgoTwinTransformer3DModel(**components["transformer"])
    pipe = random_pipeline(transformer, components["video_vae"], components["motion_vae"])
    return DemoRunner(pipe, render_size=96)


@pytest.fixture(scope="module")
def page(runner) -> dict:
    """The page's event handlers by API name (the functions Gradio calls), and the Blocks."""
    demo = build_demo(runner, default_steps=STEPS)
    handlers = {fn.api_name: fn.fn for fn in demo.fns.values()}
    return {"demo": demo, **handlers}


def settings(seed=None, motion_lead=None) -> SamplingSettings:
    return SamplingSettings(seed=seed, num_inference_steps=STEPS, motion_lead=motion_lead)


@pytest.mark.slow
def test_t2vm_uses_the_start_frame_and_pose_and_its_seed_reproduces_it(runner, tmp_path):
    session = Session(root=tmp_path)
    request = GenerationRequest(
        "t2vm", "go to the door and open it", image=EXAMPLE["door.png"], pose_file=EXAMPLE["door_pose.npz"],
        settings=settings(),
    )  # fmt: skip
    progress = []
    first = runner.generate(session, request, progress=lambda f, desc="": progress.append((f, desc)))
    out = first.output
    assert out.frames.shape == (41, runner.pipe.height, runner.pipe.width, 3) and out.motion.num_frames == 81
    assert session.last is out
    # P0 is the example's pose (canonicalised): the wiring from the pose file to the pipeline
    pose = load_initial_pose("standing", EXAMPLE["door_pose.npz"]).canonicalize()[0]
    torch.testing.assert_close(out.motion.joints()[0], pose.joints()[0], atol=1e-4, rtol=0)
    # every export is there and the motion file holds the generated motion
    assert set(first.files) >= {"side_by_side", "egocentric", "npz", "bvh", "glb"}
    assert all(path.is_file() and path.stat().st_size > 0 for path in first.files.values())
    saved = Motion.load_npz(first.files["npz"])
    torch.testing.assert_close(saved.joints(), out.motion.joints(), atol=1e-5, rtol=0)
    # progress: non-decreasing, one update per sampling step, ends at 1
    fractions = [f for f, _ in progress]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert sum(desc.startswith("Sampling: step") for _, desc in progress) == STEPS
    # the random seed shown back gives the same clip again; the old run's files are gone
    again = runner.generate(session, GenerationRequest(**{**request.__dict__, "settings": settings(first.seed)}))
    np.testing.assert_array_equal(again.output.frames, out.frames)
    torch.testing.assert_close(again.output.motion.trans, out.motion.trans)
    assert not first.files["npz"].exists() and again.files["npz"].exists()
    session.close()
    assert not any(tmp_path.iterdir())


@pytest.mark.slow
def test_tm2v_and_tv2m_use_the_uploaded_motion_and_video(runner, tmp_path):
    session = Session(root=tmp_path)
    long_prompt = "the person crouches and rises again, " * 12
    tm2v = runner.generate(session, GenerationRequest(
        "tm2v", long_prompt, image=EXAMPLE["crouch.png"], motion_file=EXAMPLE["crouch_motion.npz"],
        settings=settings(1, motion_lead=0.5),  # a T2VM setting: the other modes leave it out
    ))  # fmt: skip
    given = load_driving_motion(EXAMPLE["crouch_motion.npz"]).canonicalize()[0]
    torch.testing.assert_close(tm2v.output.motion.joints(), given.joints(), atol=1e-4, rtol=0)
    assert any("tokens" in note for note in tm2v.notes)  # the prompt was longer than the text encoder reads

    tv2m = runner.generate(session, GenerationRequest(
        "tv2m", "turn left", video_file=EXAMPLE["turn_left.mp4"], settings=settings(2),
    ))  # fmt: skip
    video = load_video(EXAMPLE["turn_left.mp4"], runner.pipe.width, runner.pipe.height)
    np.testing.assert_allclose(tv2m.output.frames.astype(int), video.astype(int), atol=1)
    assert tv2m.output.motion.num_frames == 81
    session.close()


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"prompt": "   "}, "Please enter a prompt"),
        ({"prompt": "x" * 1001}, "1001 characters long"),
        ({"image": "corrupt.png"}, "'corrupt.png' is not a readable image"),
        ({"image": None}, "T2VM needs a start frame"),
        ({"pose_file": "wrong_shape.npz"}, r"'wrong_shape.npz' cannot be used: .*pose_body"),
        ({"pose_preset": "flying"}, "Unknown initial-pose preset"),
        ({"mode": "tm2v"}, "TM2V needs a motion"),
        ({"mode": "tm2v", "motion_file": "short.npz"}, "lasts 1.00 s"),
        ({"mode": "tv2m", "video_file": "corrupt.mp4"}, "'corrupt.mp4'"),
        ({"mode": "fly"}, "Unknown mode 'fly'"),
        ({"steps": 0}, "number of steps must be a whole number from 1 to 200"),
        ({"motion_lead": 1.0}, "motion lead must be at least 0 and below 1"),
        ({"image": "huge.png"}, "'huge.png' is 3.7 KB; the limit is 1.0 KB"),
    ],
)
def test_bad_inputs_give_a_clear_error_in_the_page(page, tmp_path, monkeypatch, overrides, message):
    rng = np.random.default_rng(0)
    (tmp_path / "corrupt.png").write_bytes(rng.bytes(3000))
    (tmp_path / "corrupt.mp4").write_bytes(rng.bytes(3000))
    np.savez(tmp_path / "wrong_shape.npz", trans=np.zeros((3, 3)), root_orient=np.zeros((3, 3)),
             pose_body=np.zeros((3, 21)), mocap_frame_rate=16.0)  # fmt: skip
    Motion.rest(17).save_npz(tmp_path / "short.npz")
    (tmp_path / "huge.png").write_bytes((EXAMPLES_DIR / "door.png").read_bytes())
    if overrides.get("image") == "huge.png":
        monkeypatch.setattr(inputs, "MAX_IMAGE_BYTES", 1000)  # door.png is 3.7 KB: "huge" for this test
    args = {
        "session": None, "mode": "t2vm", "prompt": "go to the door", "image": EXAMPLE["door.png"],
        "pose_preset": "standing", "pose_file": None, "motion_file": None, "video_file": None, "seed": 0,
        "randomize": True, "steps": STEPS, "guidance": 6.0, "motion_guidance": 1.5, "video_guidance": 1.5,
        "motion_lead": 0.0,
    }  # fmt: skip
    files = ("image", "pose_file", "motion_file", "video_file")
    args.update({key: str(tmp_path / v) if key in files and v else v for key, v in overrides.items()})
    with pytest.raises(gr.Error, match=message):
        page["generate"](*args.values())


@pytest.mark.slow
def test_continue_needs_a_clip_then_joins_the_next_five_seconds(page):
    advanced = [0, True, STEPS, 6.0, 1.5, 1.5, 0.5]
    with pytest.raises(gr.Error, match="Nothing to continue yet"):
        page["continue"](None, "turn left", *advanced)
    outputs = page["generate"](
        None, "t2vm", "go to the door", EXAMPLE["door.png"], "standing", None, None, None, *advanced
    )
    session, video, glb, head_view, head_note, downloads, alignment, status, seed = outputs
    first = session.last
    assert head_view is None and "press the button" in head_note
    assert video.endswith("side_by_side.mp4") and glb.endswith(".glb") and len(downloads) >= 5
    assert f"seed **{seed}**" in status and "5.0 s (1 clip)" in status
    with pytest.raises(gr.Error, match="Please enter a prompt"):  # a bad Continue leaves the clip as it was
        page["continue"](session, "", *advanced)
    assert session.last is first
    session, *_, status, _ = page["continue"](session, "turn left", *advanced)
    joined = session.last
    assert joined.frames.shape[0] == 81 and joined.motion.num_frames == 161 and "10.0 s (2 clips)" in status
    np.testing.assert_array_equal(joined.frames[:41], first.frames)
    torch.testing.assert_close(joined.motion.trans[:81], first.motion.trans)
    close_session(session)
    assert not session.folder.exists()


def test_session_state_is_deleted_with_its_files(page, tmp_path):
    session = Session(root=tmp_path)
    first = session.new_run_folder()
    (first / "a.mp4").write_bytes(b"x")
    second = session.new_run_folder()
    assert not first.exists() and second.is_dir() and second.parent == session.folder
    close_session(session)
    assert not session.folder.exists() and session.last is None
    close_session(None)  # a tab that never generated
    states = [block for block in page["demo"].blocks.values() if isinstance(block, gr.State)]
    assert len(states) == 1 and states[0].delete_callback is close_session and states[0].time_to_live > 0


def test_each_mode_shows_only_its_inputs():
    visible = lambda mode: [update["visible"] for update in mode_visibility(mode)]  # noqa: E731
    # start frame, initial pose, motion upload, video upload, motion guidance, video guidance, motion lead
    assert visible("t2vm") == [True, True, False, False, True, True, True]
    assert visible("tm2v") == [True, False, True, False, True, False, False]
    assert visible("tv2m") == [False, True, False, True, False, True, False]


def test_examples_load_out_of_the_box_and_stay_small(runner):
    rows = load_examples()
    assert {row["mode"] for row in rows} == {"t2vm", "tm2v", "tv2m"}
    for row in rows:
        request = GenerationRequest(row["mode"], row["prompt"], row["image"], "standing", row["pose_file"],
                                    row["motion_file"], row["video_file"])  # fmt: skip
        kwargs = runner.pipeline_inputs(request)  # every example file passes every check
        assert kwargs["prompt"] == row["prompt"]
        if row["image"]:
            assert load_image(row["image"], 64, 64).shape == (64, 64, 3)
    total = sum(path.stat().st_size for path in EXAMPLES_DIR.rglob("*") if path.is_file())
    assert total < 1_000_000


def test_alignment_figures_never_break_a_run(monkeypatch):
    from demo import runner as runner_module

    cameras = np.tile(np.eye(4, dtype=np.float32), (41, 1, 1))
    intrinsics = np.array([[16, 0, 16], [0, 16, 16], [0, 0, 1]], np.float32)
    clip = EgoTwinPipelineOutput(np.zeros((41, 32, 32, 3), np.uint8), Motion.rest(81), cameras, intrinsics, "", "t2vm")

    def failing(*args):
        raise np.linalg.LinAlgError("SVD did not converge")

    monkeypatch.setattr(runner_module, "viewpoint_alignment", failing)
    figures, note = measure_alignment(clip)
    assert figures is None and "(SVD did not converge)" in note and "LinAlgError" not in note
    monkeypatch.setattr(runner_module, "viewpoint_alignment", None)
    figures, note = measure_alignment(clip)
    assert figures is None and "unavailable" in note


def test_command_line(tmp_path, monkeypatch):
    monkeypatch.delenv(app.CHECKPOINT_ENV, raising=False)
    args = app.parse_args([])
    assert args.checkpoint == app.DEFAULT_CHECKPOINT and args.port is None and not args.share
    monkeypatch.setenv(app.CHECKPOINT_ENV, str(tmp_path))
    assert app.parse_args([]).checkpoint == tmp_path
    assert app.parse_args(["--checkpoint", "elsewhere", "--port", "7999"]).port == 7999
    assert args.dtype == "fp32" and app.parse_args(["--dtype", "bf16"]).dtype == "bf16"
    with pytest.raises(SystemExit, match="No EgoTwin pipeline at"):
        app.main(["--checkpoint", str(tmp_path)])


# ------------------------------------------------------------------------------------------------- issue 24
class FalsyProgress:
    """Like gr.Progress: callable, and falsy because it defines __len__."""

    def __init__(self):
        self.calls = []

    def __len__(self):
        return 0

    def __call__(self, fraction, desc=""):
        self.calls.append((fraction, desc))


@pytest.mark.slow
def test_progress_reaches_a_falsy_tracker_with_an_honest_expected_wait(runner, tmp_path):
    session = Session(root=tmp_path)
    request = GenerationRequest("t2vm", "go to the door", image=EXAMPLE["door.png"], settings=settings(seed=1))
    first, second = FalsyProgress(), FalsyProgress()
    done = runner.generate(session, request, progress=first)
    assert not first and sum(desc.startswith("Sampling: step") for _, desc in first.calls) == STEPS
    # the second run states up front how long the first one took, and counts down while it samples
    runner.generate(session, request, progress=second)
    expected = float(re.search(r"about (\d+) s left", second.calls[0][1]).group(1))
    assert expected == pytest.approx(max(1, round(done.timings["total"])), abs=max(2, 0.5 * done.timings["total"]))
    assert "s left)" in second.calls[-2][1] and second.calls[-1] == (1.0, "Done")
    session.close()


def test_tm2v_resamples_only_the_first_five_seconds(runner):
    # a 2-frame motion at 1e-6 fps passes the pipeline's own checks; it grew the process to 20.5 GB (issue 24)
    slow = Motion.rest(2, fps=1e-6)
    image = load_image(EXAMPLE["door.png"], runner.pipe.width, runner.pipe.height)
    out = runner.pipe("crouch", image=image, mode="tm2v", motion=slow, num_inference_steps=1)
    assert out.motion.num_frames == 81


def test_continue_is_capped_and_named_by_the_modes_it_joins(runner, page):
    from demo.runner import MAX_CLIPS
    from demo.ui import format_status

    cameras = np.tile(np.eye(4, dtype=np.float32), (41, 1, 1))
    intrinsics = np.array([[16, 0, 16], [0, 16, 16], [0, 0, 1]], np.float32)
    session = Session()
    session.last = EgoTwinPipelineOutput(np.zeros((41, 32, 32, 3), np.uint8), Motion.rest(81), cameras, intrinsics,
                                         "", "t2vm")  # fmt: skip
    session.modes = ["tm2v"] + ["t2vm"] * (MAX_CLIPS - 1)
    with pytest.raises(InputError, match=f"already {MAX_CLIPS} clips \\(30 s\\) long, the demo's limit"):
        runner.extend(session, "turn left", settings())
    result = DemoResult(session.last, {}, 3, None, None, {"sample": 1.0, "render": 1.0}, ["tm2v", "t2vm"])
    assert format_status(result).startswith("**TM2V, then T2VM (Continue)**")


@pytest.mark.parametrize("index, value, message", [
    (8, "abc", "Seed must be a number from 0 to 4.29497e\\+09, got 'abc'"),
    (10, None, "Sampling steps must be a number from 1 to 100, got None"),
    (11, float("nan"), "text guidance w_t\\) must be a number from 0 to 15, got nan"),
])  # fmt: skip
def test_api_values_of_the_wrong_type_get_a_clear_message(page, index, value, message):
    generate = next(fn for fn in page["demo"].fns.values() if fn.api_name == "generate")
    with pytest.raises(gr.Error, match=message):
        generate.inputs[index].preprocess(value)


def test_the_page_explains_itself(runner):
    from demo.ui import DATA_OWN, PAPER_URL, format_alignment, intro, pregenerated_result

    text = intro(runner.pipe, "cpu")  # a random pipeline: not the shipped model
    assert PAPER_URL in text and f"makes {runner.pipe.width}x{runner.pipe.height} frames at 8 fps on a CPU." in text
    assert "shipped" not in text
    table = format_alignment({"trans_err": 6.4, "rot_err": 25.1, "still_trans_err": 10.5, "still_rot_err": 16.7})
    assert "| TransErr (m) | **6.4** | 10.5 | 1.74 |" in table and "| RotErr (rad) | **25.1** | 16.7 | 3.18 |" in table
    assert DATA_OWN == {"trans_err": 1.74, "rot_err": 3.18}
    video, status, alignment = pregenerated_result()  # shipped with the examples: shown before the first click
    assert video.endswith("side_by_side.mp4") and "Example result, made in advance" in status and "seed 0" in status
    assert "a motionless camera" in alignment


def test_a_failing_preview_gives_words_not_an_error_badge(page, monkeypatch):
    from demo import ui

    preview = next(fn.fn for fn in page["demo"].fns.values() if fn.fn.__name__ == "preview")

    def out_of_memory(*args):
        raise MemoryError

    monkeypatch.setattr(ui, "load_image", out_of_memory)
    with pytest.warns(
        UserWarning, match="The start frame 'door.png' cannot be shown because of a problem on the server"
    ):
        assert preview(EXAMPLE["door.png"]) is None


# ------------------------------------------------------------------------------------------------- issue 26
@pytest.mark.slow
def test_what_this_head_would_see_for_an_example_and_why_not_for_an_upload(runner, tmp_path):
    from demo.head_view import NO_APARTMENT, example_sources, frame_key

    rows = {row["image"]: row for row in json.loads((EXAMPLES_DIR / "examples.json").read_text()) if row["image"]}
    sources = example_sources(runner.pipe.width, runner.pipe.height)
    door = load_image(EXAMPLE["door.png"], runner.pipe.width, runner.pipe.height)
    assert sources[frame_key(door)] == {
        "clip_id": rows["door.png"]["clip_id"],
        "apartment": rows["door.png"]["apartment"],
    }
    photo = np.random.default_rng(0).integers(0, 256, door.shape, dtype=np.uint8)
    assert frame_key(photo) not in sources

    session = Session(root=tmp_path)
    request = GenerationRequest(
        "t2vm", "go to the door and open it", image=EXAMPLE["door.png"], pose_file=EXAMPLE["door_pose.npz"],
        settings=settings(seed=0),
    )  # fmt: skip
    runner.generate(session, request)
    panel = runner.head_view(session)
    frames = load_video(panel.video, runner.pipe.width, runner.pipe.height)
    assert frames.shape == (41, runner.pipe.height, runner.pipe.width, 3) and frames.std() > 5  # a scene, not a blank
    assert panel.text.startswith("**What this head would see**")

    photo_path = tmp_path / "photo.png"
    from PIL import Image

    Image.fromarray(np.kron(photo, np.ones((4, 4, 1), dtype=np.uint8))).save(photo_path)
    runner.generate(
        session, GenerationRequest("t2vm", "walk forward", image=str(photo_path), settings=settings(seed=0))
    )
    panel = runner.head_view(session)
    assert panel.video is None and panel.text == NO_APARTMENT

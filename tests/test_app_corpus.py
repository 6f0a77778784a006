"""A corpus of broken uploads and API values against one live `python app.py` (issue 24), through gradio_client: dozens
of generated files of every accepted kind (png/jpg start frames, npz and bvh motions, mp4 videos), each broken in
its own way. Each must get one clear message that names the file (no Python class name, no traceback), the server
must answer a good request afterwards, its peak memory must stay under 2 GB, and Gradio's cache must stay within
its budget over a run of generations.
"""

from __future__ import annotations

import re
import struct
import zipfile
import zlib
from functools import partial
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from benchmarks.bench_demo import AppServer
from demo.inputs import EXAMPLES_DIR
from demo.session import APP_PREFIX, folder_bytes
from egotwin.data.clip_format import write_video
from egotwin.motion import Motion
from egotwin.motion.bvh import motion_to_bvh

pytestmark = pytest.mark.slow
STEPS = 2
ADVANCED = (7, False, STEPS, 6.0, 1.5, 1.5, 0.0)  # seed, random seed, steps, w_t, w_m, w_v, motion lead
CACHE_MB = 2.0
"""Gradio's cache budget for this app (EGOTWIN_DEMO_CACHE_MB): a handful of runs, so that pruning is exercised."""
PEAK_BYTES = 2 << 30
CLASS_NAME = re.compile(r"\b[A-Z][A-Za-z]*(Error|Exception|Warning)\b|Traceback")


# ----------------------------------------------------------------------------------------------- the corpus
def png_with_header(width: int, height: int) -> bytes:
    """A PNG whose header says width x height and whose (tiny) image data is cut short: a decompression bomb's shape."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
    )


def image_bytes(array: np.ndarray, fmt: str) -> bytes:
    from io import BytesIO

    buffer = BytesIO()
    Image.fromarray(array).save(buffer, format=fmt)
    return buffer.getvalue()


def npz_bytes(**arrays) -> bytes:
    from io import BytesIO

    buffer = BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def motion_arrays(num_frames: int = 90, fps: float = 16.0) -> dict:
    """A valid AMASS-layout motion's arrays, to break one at a time."""
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        Motion.rest(num_frames, fps=fps).save_npz(Path(folder) / "motion.npz")
        return dict(np.load(Path(folder) / "motion.npz"))


def with_changes(**changes) -> bytes:
    arrays = motion_arrays()
    arrays.update(changes)
    return npz_bytes(**{k: v for k, v in arrays.items() if v is not None})


BVH = motion_to_bvh(Motion.rest(90))
NESTED = (
    "HIERARCHY\nROOT pelvis\n{\nOFFSET 0 0 0\nCHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation\n"
    + "".join(f"JOINT j{i}\n{{\nOFFSET 0 0.1 0\nCHANNELS 3 Zrotation Xrotation Yrotation\n" for i in range(20_000))
    + "}\n" * 20_001
    + "MOTION\nFrames: 1\nFrame Time: 0.1\n0\n"
)


def zip_bytes(name: str, data: bytes, compress: bool = True) -> bytes:
    from io import BytesIO

    buffer = BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED) as archive:
        archive.writestr(name, data)
    return buffer.getvalue()


def big_npz() -> bytes:
    """An .npz whose header declares 200,000 frames: 5 KB compressed, refused from its headers alone."""
    from io import BytesIO

    buffer = BytesIO()
    np.savez_compressed(buffer, trans=np.zeros((200_000, 3)), mocap_frame_rate=np.float64(60))
    return buffer.getvalue()


NOISE = np.random.default_rng(0).bytes(4000)
PHOTO = (np.random.default_rng(1).random((48, 64, 3)) * 255).astype(np.uint8)
IMAGES = {  # start frames (t2vm)
    "noise.png": (NOISE, "not a readable image"),
    "empty.png": (b"", "is empty"),
    "header_only.png": (b"\x89PNG\r\n\x1a\n", "not a readable image"),
    "truncated.png": (image_bytes(PHOTO, "PNG")[:300], "not a readable image"),
    "truncated.jpg": (image_bytes(PHOTO, "JPEG")[:200], "not a readable image"),
    "thin.png": (image_bytes(np.zeros((1, 130_000, 3), np.uint8), "PNG"), "1 times longer|at most 8:1"),
    "tall.jpg": (image_bytes(np.zeros((2000, 10, 3), np.uint8), "JPEG"), "at most 8:1"),
    "bomb.png": (png_with_header(20_000, 20_000), "too many pixels .*; the limit is 40 megapixels"),
    "big.png": (png_with_header(9_000, 9_000), "9000x9000 pixels; the limit is 40 megapixels"),
    "gif_inside.png": (image_bytes(PHOTO, "GIF")[:40], "not a readable image"),
    "text.jpg": (b"this is not a picture\n" * 50, "not a readable image"),
    "notes.txt": (b"hello", "unsupported type '.txt'|Invalid file type"),
}
MOTIONS = {  # driving motions (tm2v); each is also sent as an initial pose (t2vm) unless only TM2V refuses it
    "noise.npz": (NOISE, "not a readable .npz archive", True),
    "empty.npz": (b"", "is empty", True),
    "truncated.npz": (npz_bytes(**motion_arrays())[:500], "not a readable .npz archive", True),
    "text_in_zip.npz": (zip_bytes("readme.txt", b"hello"), "missing array 'trans'", True),
    "single_array.npz": (zip_bytes("x.npy", b"\x93NUMPY garbage"), "not a readable .npz archive|cannot be used", True),
    "no_rotations.npz": (npz_bytes(trans=np.zeros((90, 3)), mocap_frame_rate=16.0), "needs 'root_orient'", True),
    "wrong_shape.npz": (with_changes(pose_body=np.zeros((90, 10))), r"'pose_body' must have shape \(90, 63\)", True),
    "nan.npz": (with_changes(trans=np.full((90, 3), np.nan)), "NaN or infinite", True),
    "strings.npz": (with_changes(trans=np.array(["a"] * 90)), "must be numeric", True),
    "object.npz": (with_changes(trans=np.array([None] * 90, dtype=object)), "cannot be used|not a readable", True),
    "no_fps.npz": (with_changes(mocap_frame_rate=None), "missing the frame rate", True),
    "zero_fps.npz": (with_changes(mocap_frame_rate=np.float64(0)), "must be one positive number", True),
    "negative_fps.npz": (with_changes(mocap_frame_rate=np.float64(-30)), "must be one positive number", True),
    "slow.npz": (
        with_changes(mocap_frame_rate=np.float64(1e-6)),
        "frame rate of 1e-06 fps; accepted: 1 to 1000",
        False,
    ),
    "fast.npz": (with_changes(mocap_frame_rate=np.float64(1e6)), "frame rate of 1e\\+06 fps", False),
    "short.npz": (npz_bytes(**motion_arrays(17)), "lasts 1.00 s", False),
    "long.npz": (big_npz(), "has 200000 frames; the limit is 100000", True),
    "bomb.npz": (zip_bytes("trans.npy", b"\0" * (80 << 20)), "holds 80.0 MB of arrays; the limit is 64.0 MB", True),
    "giant_skeleton.npz": (
        with_changes(rest_joints=np.full((22, 3), 1e30)),
        "rest skeleton with a joint 1e\\+30 m",
        True,
    ),
    "far_away.npz": (with_changes(trans=np.full((90, 3), 1e12)), "moves the body 1e\\+12 m", True),
    "bad_betas.npz": (with_changes(betas=np.zeros((3, 10))), "'betas' must have shape", True),
    "noise.bvh": (NOISE, "not a text BVH file|cannot be used", True),
    "empty.bvh": (b"", "is empty", True),
    "no_motion.bvh": (BVH.split("MOTION")[0].encode(), "no MOTION section", True),
    "deep.bvh": (NESTED.encode(), "nested more than 64 levels deep", True),
    "huge_frames.bvh": (BVH.replace("Frames: 90", "Frames: 1000000000").encode(), "1000000000 frames; at most", True),
    "slow.bvh": (BVH.replace("Frame Time: 0.0625", "Frame Time: 1000000").encode(), "frame rate of 1e-06 fps", False),
    "zero_time.bvh": (BVH.replace("Frame Time: 0.0625", "Frame Time: 0").encode(), "'Frame Time:' must be", True),
    "nan_time.bvh": (BVH.replace("Frame Time: 0.0625", "Frame Time: nan").encode(), "'Frame Time:' must be", True),
    "other_skeleton.bvh": (BVH.replace("left_knee", "LeftKnee").encode(), "not EgoTwin's 22-joint", True),
    "letters.bvh": (BVH[: BVH.rindex("\n", 0, -1)].encode() + b"\nabc\n", "non-numeric value|expected 69 values", True),
    "cut.bvh": (BVH[: len(BVH) - 200].encode(), "MOTION section has|expected 69 values", True),
    "centimetres.bvh": (
        motion_to_bvh(Motion.rest(90), scale=100).encode(),
        "joint \\d+(\\.\\d+)? m from the origin",
        True,
    ),
    "short.bvh": (motion_to_bvh(Motion.rest(17)).encode(), "lasts 1.00 s", False),
}


def video_files(folder: Path) -> dict[str, tuple[Path, str]]:
    """Broken and unusable videos (tv2m)."""
    frames = np.stack([np.full((48, 64, 3), 4 * i, np.uint8) for i in range(24)])
    write_video(folder / "fast.mp4", frames, fps=1000, pixelformat="yuv420p")
    write_video(folder / "short.mp4", frames, fps=8, pixelformat="yuv420p")
    write_video(folder / "thin.mp4", np.zeros((48, 16, 800, 3), np.uint8), fps=8, pixelformat="yuv420p")
    good = (folder / "short.mp4").read_bytes()
    (folder / "noise.mp4").write_bytes(NOISE)
    (folder / "empty.mp4").write_bytes(b"")
    (folder / "cut.mp4").write_bytes(good[: len(good) // 3])
    (folder / "picture.mp4").write_bytes(image_bytes(PHOTO, "PNG"))
    (folder / "text.mp4").write_bytes(b"not a video\n" * 100)
    return {
        "fast.mp4": "frame rate of 1000 fps; accepted: 1 to 240 fps",
        "short.mp4": "too short",
        "thin.mp4": "at most 8:1",
        "noise.mp4": "cannot be opened|no decodable frames",
        "empty.mp4": "is empty",
        "cut.mp4": "cannot be opened|no decodable frames|too short",
        "picture.mp4": "cannot be opened|no decodable frames|too short",
        "text.mp4": "cannot be opened|no decodable frames",
    }


# --------------------------------------------------------------------------------------------------- the app
@pytest.fixture(scope="module")
def app(tiny_pipeline_dir, tmp_path_factory):
    """One app for the whole module, with its own temp directory and a small cache budget."""
    temp = tmp_path_factory.mktemp("app_tmp")
    env = {"TMPDIR": str(temp), "EGOTWIN_DEMO_CACHE_MB": str(CACHE_MB)}
    with AppServer(tiny_pipeline_dir, steps=STEPS, env=env) as server:
        yield server, temp / f"{APP_PREFIX}{server.process.pid}"


@pytest.fixture(scope="module")
def client(app):
    from gradio_client import Client

    return Client(app[0].url, verbose=False)


def generate(client, mode="t2vm", prompt="go to the door", image=None, pose=None, motion=None, video=None, **overrides):
    from gradio_client import handle_file

    image = EXAMPLES_DIR / "door.png" if image is None and mode != "tv2m" else image
    files = [handle_file(str(f)) if f else None for f in (image, pose, motion, video)]
    advanced = dict(zip(("seed", "randomize", "steps", "w_t", "w_m", "w_v", "lead"), ADVANCED))
    advanced.update(overrides)
    return client.predict(mode, prompt, files[0], "standing", *files[1:], *advanced.values(), api_name="/generate")


def assert_clear_refusal(call, name: str | None, expected: str) -> str:
    """`call()` must fail with one message that says `expected`, names the file, and shows no Python internals."""
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError) as error:
        call()
    message = str(error.value)
    assert re.search(expected, message), f"{name}: {message}"
    assert name is None or f"'{name}'" in message or "Invalid file type" in message, message
    assert not CLASS_NAME.search(message), message
    return message


def test_broken_start_frames(client, tmp_path):
    for name, (data, expected) in IMAGES.items():
        (tmp_path / name).write_bytes(data)
        assert_clear_refusal(partial(generate, client, image=tmp_path / name), name, expected)


def test_broken_motions_as_driving_motion_and_as_initial_pose(client, tmp_path):
    for name, (data, expected, also_pose) in MOTIONS.items():
        (tmp_path / name).write_bytes(data)
        path = tmp_path / name
        assert_clear_refusal(partial(generate, client, "tm2v", "crouch", motion=path), name, expected)
        if also_pose:
            assert_clear_refusal(partial(generate, client, pose=path), name, expected)


def test_broken_videos(client, tmp_path):
    for name, expected in video_files(tmp_path).items():
        assert_clear_refusal(partial(generate, client, "tv2m", "turn left", video=tmp_path / name), name, expected)


def test_bad_api_values(client):
    cases = [
        ({"seed": "abc"}, "Seed must be a number from 0"),
        ({"steps": None}, "Sampling steps must be a number from 1 to 100, got None"),
        ({"steps": 1e9}, "Sampling steps must be a number from 1 to 100"),
        ({"w_t": "high"}, "text guidance w_t.* got .high."),
    ]
    for overrides, expected in cases:
        assert_clear_refusal(partial(generate, client, **overrides), None, expected)
    assert_clear_refusal(lambda: generate(client, prompt="\x00" * 50), None, "Please enter a prompt")
    assert_clear_refusal(lambda: generate(client, mode="fly"), None, "fly")
    assert_clear_refusal(lambda: client.predict("turn", *ADVANCED, api_name="/continue"), None, "Nothing to continue")


def test_still_serving_bounded_memory_and_bounded_cache(app, client):
    """After the whole corpus: good requests are served, the process stayed under 2 GB, and over a run of
    generations Gradio's cache stays within its budget (plus the run being served)."""
    server, root = app
    sizes = []
    for i in range(8):
        *_, status, seed = generate(client, prompt=f"go to the door, take {i}")
        assert seed == 7 and "T2VM" in status
        sizes.append(folder_bytes(root / "gradio"))
    one_run = max(np.diff([0, *sizes]).max(), 1)
    assert max(sizes) <= CACHE_MB * (1 << 20) + 2 * one_run, sizes
    assert server.alive() and server.peak_rss_bytes() < PEAK_BYTES, server.peak_rss_bytes() / 2**30


def test_progress_messages_reach_the_client(client):
    """gr.Progress is falsy (it defines __len__): the runner once dropped it, and no step message left the server."""
    from gradio_client import handle_file

    advanced = list(ADVANCED)
    advanced[2] = 12  # steps: long enough for a few status polls
    image = handle_file(str(EXAMPLES_DIR / "door.png"))
    messages = set()
    for _ in range(2):  # the second run also knows how long a step took on the first: "about N s left" from step 1
        job = client.submit("t2vm", "go to the door", image, "standing", None, None, None, *advanced,
                            api_name="/generate")  # fmt: skip
        while not job.done():
            for unit in job.status().progress_data or []:
                messages.add(unit.desc or "")
        job.result()
    steps = [m for m in messages if m.startswith("Sampling: step")]
    assert steps and any(re.search(r"of 12 \(about \d+ s left\)", m) for m in steps), messages

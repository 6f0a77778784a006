"""Rebuild `assets/examples/`: the demo's example start frames, prompts, poses, motion and video.

    PYOPENGL_PLATFORM=egl python -m demo.make_examples     # about a minute on one core

They come from EgoWorld clips that no model was trained on: the shipped model trains on seed 0's data, and the first
apartment of seed 7 falls in the test split. Its four clips (a turn, a look down, walking to and opening a door, a
crouch) have captions that make good prompts. The files written:

    examples.json             one row per example: mode, prompt and file names (see demo/ui.py), and the EgoWorld
                              clip_id and apartment it came from (its world: egotwin.world.replay)
    <name>.png                the clip's frame 0 (start frame I0)
    <name>_pose.npz           the clip's frame-0 pose (initial pose P0), AMASS layout (T2VM and TV2M examples)
    crouch_motion.npz         the whole 5 s crouch, the TM2V example's motion
    turn_left.mp4             the whole 5 s turn, the TV2M example's video (H.264 yuv420p, which browsers play)
    poses/standing.npz        initial-pose presets (demo/inputs.py POSE_PRESETS)
    poses/crouching.npz
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from PIL import Image

from demo.inputs import EXAMPLES_DIR, POSES_DIR
from egotwin.data.clip_format import read_clip, read_metadata, write_video
from egotwin.world.generate import generate

SEED = 7
CLIPS = {"turn_left": 0, "look_down": 1, "door": 2, "crouch": 3}
"""Example name -> clip index in seed 7's run (all four in test apartment 0)."""
ROWS = [
    {"mode": "t2vm", "name": "door"},
    {"mode": "t2vm", "name": "turn_left"},
    {"mode": "t2vm", "name": "look_down"},
    {"mode": "tm2v", "name": "crouch"},
    {"mode": "tv2m", "name": "turn_left"},
]


def make_examples(out: Path = EXAMPLES_DIR) -> list[dict]:
    """Generate the clips into a temporary folder and write the example files into `out`; returns the rows."""
    with tempfile.TemporaryDirectory() as tmp:
        records = generate(tmp, len(CLIPS), seed=SEED, workers=1, progress=False)
        splits = {r["clip_id"]: r["split"] for r in read_metadata(tmp)}
        clips, ids = {}, {}
        for name, index in CLIPS.items():
            record = records[index]
            if splits[record["clip_id"]] != "test":
                raise RuntimeError(f"clip {record['clip_id']} is in the {splits[record['clip_id']]} split, not test")
            clips[name] = read_clip(Path(tmp) / record["path"])
            # what ties the example to its apartment (egotwin.world.replay.ClipSource.from_ids)
            ids[name] = {"clip_id": record["clip_id"], "apartment": record["apartment"]}
    out.mkdir(parents=True, exist_ok=True)
    POSES_DIR.mkdir(parents=True, exist_ok=True)
    for name, clip in clips.items():
        Image.fromarray(clip["frames"][0]).save(out / f"{name}.png", optimize=True)
    clips["crouch"]["motion"].save_npz(out / "crouch_motion.npz")
    write_video(out / "turn_left.mp4", clips["turn_left"]["frames"], pixelformat="yuv420p")
    clips["door"]["motion"].slice(0, 1).save_npz(POSES_DIR / "standing.npz")
    crouch = clips["crouch"]["motion"]
    deepest = int(crouch.joints()[:, 0, 1].argmin())  # lowest pelvis
    crouch.slice(deepest, deepest + 1).save_npz(POSES_DIR / "crouching.npz")

    rows = []
    for row in ROWS:
        name, mode = row["name"], row["mode"]
        entry = {"mode": mode, "prompt": clips[name]["caption"], "image": None, "pose_file": None}
        entry.update({"motion_file": None, "video_file": None, **ids[name]})
        if mode in ("t2vm", "tm2v"):
            entry["image"] = f"{name}.png"
        if mode in ("t2vm", "tv2m"):
            entry["pose_file"] = f"{name}_pose.npz"
            clips[name]["motion"].slice(0, 1).save_npz(out / entry["pose_file"])
        if mode == "tm2v":
            entry["motion_file"] = f"{name}_motion.npz"
        if mode == "tv2m":
            entry["video_file"] = f"{name}.mp4"
        rows.append(entry)
    (out / "examples.json").write_text(json.dumps(rows, indent=2) + "\n")
    return rows


if __name__ == "__main__":
    for row in make_examples():
        print(row)
    print(f"{sum(f.stat().st_size for f in EXAMPLES_DIR.rglob('*') if f.is_file()) / 1024:.0f} KiB in {EXAMPLES_DIR}")

"""ClipDataset: the loader round trip on generated clips, canonicalisation, and rejection of broken clips."""

import json
import shutil

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from egotwin.body.head_camera import HeadCameraRig
from egotwin.data.clip_format import ClipFormatError, read_video
from egotwin.data.dataset import ClipDataset
from egotwin.motion.motion import Motion
from egotwin.world.generate import WorldConfig, generate


@pytest.fixture(scope="module")
def clip_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("clips")
    generate(root, 3, seed=21, workers=1, config=WorldConfig(clips_per_apartment=3), progress=False)
    return root


def _splits(root):
    """Split of each clip (all three clips share one apartment, hence one split)."""
    lines = [json.loads(line) for line in (root / "metadata.jsonl").read_text().splitlines()]
    return [r["split"] for r in lines]


def test_item_layout_and_round_trip(clip_root):
    split = _splits(clip_root)[0]
    dataset = ClipDataset(clip_root, split=split)
    assert len(dataset) == 3
    item = dataset[1]
    assert item["video"].shape == (3, 41, 64, 64) and item["video"].dtype == torch.float32
    assert item["video"].min() >= -1 and item["video"].max() <= 1
    assert item["trans"].shape == (81, 3) and item["global_orient"].shape == (81, 3, 3)
    assert item["body_pose"].shape == (81, 21, 3, 3) and item["rest_joints"].shape == (22, 3)
    assert item["camera_to_world"].shape == (41, 4, 4) and item["intrinsics"].shape == (3, 3)
    assert item["hand_visible"].shape == (41, 2) and item["hand_visible"].dtype == torch.bool
    folder = clip_root / dataset.records[1]["path"]
    assert item["caption"] == (folder / "caption.txt").read_text().strip()
    assert item["clip_id"] == dataset.records[1]["clip_id"]
    motion = Motion.load_npz(folder / "motion.npz")
    torch.testing.assert_close(item["trans"], motion.trans)
    torch.testing.assert_close(item["body_pose"], motion.body_pose)
    frames = read_video(folder / "video.mp4")
    torch.testing.assert_close(item["video"], torch.from_numpy(frames).permute(3, 0, 1, 2).float() / 127.5 - 1)
    with np.load(folder / "cameras.npz") as cameras:
        torch.testing.assert_close(
            item["camera_to_world"], torch.as_tensor(cameras["camera_to_world"], dtype=torch.float32)
        )
        assert torch.equal(item["hand_visible"], torch.as_tensor(cameras["hand_visible"]))
    batch = next(iter(DataLoader(dataset, batch_size=2)))
    assert batch["video"].shape == (2, 3, 41, 64, 64) and len(batch["caption"]) == 2


def test_canonicalize_moves_motion_and_cameras_together(clip_root):
    split = _splits(clip_root)[0]
    item = ClipDataset(clip_root, split=split, canonicalize=True)[0]
    motion = Motion(item["trans"], item["global_orient"], item["body_pose"], item["rest_joints"])
    head_rot, head_pos = motion.head_pose()
    # frame-0 head above the origin, facing +z
    torch.testing.assert_close(head_pos[0, [0, 2]], torch.zeros(2), atol=1e-5, rtol=0)
    forward = head_rot[0, :, 2]
    assert abs(float(torch.atan2(forward[0], forward[2]))) < 1e-5
    # the cameras are still the head camera of the (moved) motion
    expected = HeadCameraRig().camera_poses(head_rot[::2], head_pos[::2])
    torch.testing.assert_close(item["camera_to_world"], expected, atol=1e-4, rtol=0)


def _broken_copy(clip_root, tmp_path, damage):
    root = tmp_path / "broken"
    shutil.copytree(clip_root, root)
    first = json.loads((root / "metadata.jsonl").read_text().splitlines()[0])
    damage(root / first["path"])
    return root, first


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda f: (f / "cameras.npz").unlink(), "lacks cameras.npz"),
        (lambda f: (f / "video.mp4").write_bytes((f / "video.mp4").read_bytes()[:300]), "video"),
        (
            lambda f: np.savez(
                f / "cameras.npz",
                camera_to_world=np.full((41, 4, 4), np.nan),
                intrinsics=np.eye(3),
                hand_visible=np.zeros((41, 2), bool),
            ),
            "NaN",
        ),
        (lambda f: Motion.rest(50).save_npz(f / "motion.npz"), "81 frames"),
        (lambda f: (f / "caption.txt").write_text("  \n"), "empty caption"),
    ],
)
def test_broken_clips_are_rejected_with_a_clear_message(clip_root, tmp_path, damage, message):
    root, first = _broken_copy(clip_root, tmp_path, damage)
    split = first["split"]
    with pytest.raises(ClipFormatError, match=message):
        dataset = ClipDataset(root, split=split)
        for i in range(len(dataset)):
            dataset[i]
    with pytest.warns(UserWarning, match=first["clip_id"]):
        skipping = ClipDataset(root, split=split, on_error="skip")
    assert first["clip_id"] not in [r["clip_id"] for r in skipping.records]
    assert len(skipping) == 2 and skipping[0]["video"].shape == (3, 41, 64, 64)


def test_bad_arguments(clip_root, tmp_path):
    with pytest.raises(ValueError, match="split"):
        ClipDataset(clip_root, split="training")
    with pytest.raises(ClipFormatError, match="metadata.jsonl"):
        ClipDataset(tmp_path)

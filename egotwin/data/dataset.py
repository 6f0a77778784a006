"""`ClipDataset`: the torch Dataset over the clip format (docs/clip_format.md), in the tensor layout of design
"Time layout".

Each item is a dict:
    video            float32 (3, 41, H, W) in [-1, 1]   channel first, time second (CogVideoX VAE input without batch)
    trans            float32 (81, 3)                    SMPL-X trans, 16 fps
    global_orient    float32 (81, 3, 3)
    body_pose        float32 (81, 21, 3, 3)
    rest_joints      float32 (22, 3)
    camera_to_world  float32 (41, 4, 4)                 OpenCV axes, 8 fps (video frame i = motion frame 2i)
    intrinsics       float32 (3, 3)
    hand_visible     bool    (41, 2)                    left, right
    caption          str
    clip_id          str
Motion-only clips (metadata record `"video": false`, e.g. `python -m egotwin.data.nymeria --motion_only true`) have no
video.mp4 / cameras.npz; their items hold the motion keys, caption and clip_id only. They are read only with
`need_video=False` (the motion VAE and the text-to-motion latent cache); a set that needs video raises on them.
With `canonicalize=True` motion and cameras are moved into the motion's canonical frame (frame-0 head above the
origin, facing +z). Broken clips are never returned as data: they raise `ClipFormatError` naming the file, or with
`on_error="skip"` they are found when the dataset is opened and left out with a warning that names each one.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from egotwin.data.clip_format import SPLITS, ClipFormatError, read_clip, read_metadata

CLIP_FILES = ("video.mp4", "motion.npz", "cameras.npz", "caption.txt")
MOTION_CLIP_FILES = ("motion.npz", "caption.txt")


def has_video(record: dict) -> bool:
    """Whether a metadata record is a full clip (records say `"video": false` for motion-only clips)."""
    return record.get("video", True) is not False


class ClipDataset(Dataset):
    """Clips of one split (or all) of a clip folder."""

    def __init__(
        self,
        root: str | Path,
        split: str | None = "train",
        canonicalize: bool = False,
        on_error: str = "raise",
        need_video: bool = True,
    ) -> None:
        if split is not None and split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS} or None, got {split!r}")
        if on_error not in ("raise", "skip"):
            raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
        self.root = Path(root)
        self.canonicalize = canonicalize
        records = [r for r in read_metadata(self.root) if split is None or r["split"] == split]
        motion_only = [r["clip_id"] for r in records if not has_video(r)]
        if need_video and motion_only:
            raise ClipFormatError(
                f"{self.root / 'metadata.jsonl'}: {len(motion_only)} motion-only clips "
                f"(e.g. {motion_only[0]}, no video); "
                "this stage needs video: convert them with video, or use a stage that reads motion and text only"
            )
        if on_error == "raise":
            for record in records:
                folder = self.root / record["path"]
                needed = CLIP_FILES if has_video(record) else MOTION_CLIP_FILES
                missing = [name for name in needed if not (folder / name).exists()]
                if missing:
                    raise ClipFormatError(f"{folder}: clip {record['clip_id']} lacks {', '.join(missing)}")
            self.records = records
        else:
            self.records = []
            for record in records:
                try:
                    read_clip(self.root / record["path"], video=has_video(record))
                except ClipFormatError as error:
                    warnings.warn(f"skipping broken clip {record['clip_id']}: {error}", stacklevel=2)
                    continue
                self.records.append(record)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict:
        record = self.records[index]
        clip = read_clip(self.root / record["path"], video=has_video(record))
        motion = clip["motion"]
        if not has_video(record):
            motion = motion.canonicalize()[0] if self.canonicalize else motion
            return {
                "trans": motion.trans.float(),
                "global_orient": motion.global_orient.float(),
                "body_pose": motion.body_pose.float(),
                "rest_joints": motion.rest_joints.float(),
                "caption": clip["caption"],
                "clip_id": record["clip_id"],
            }
        cameras = torch.as_tensor(clip["camera_to_world"], dtype=torch.float64)
        if self.canonicalize:
            motion, transform = motion.canonicalize()
            cameras = transform.double() @ cameras
        video = torch.from_numpy(np.ascontiguousarray(clip["frames"])).permute(3, 0, 1, 2).float() / 127.5 - 1.0
        return {
            "video": video,
            "trans": motion.trans.float(),
            "global_orient": motion.global_orient.float(),
            "body_pose": motion.body_pose.float(),
            "rest_joints": motion.rest_joints.float(),
            "camera_to_world": cameras.float(),
            "intrinsics": torch.as_tensor(clip["intrinsics"], dtype=torch.float32),
            "hand_visible": torch.as_tensor(clip["hand_visible"], dtype=torch.bool),
            "caption": clip["caption"],
            "clip_id": record["clip_id"],
        }

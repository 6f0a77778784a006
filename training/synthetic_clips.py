"""Procedural clips in the EgoWorld item layout, for smoke runs, tests and benchmarks of the training stages.

Each item is a deterministic function of (seed, index): a smooth random whole-body motion (81 frames at 16 fps, from
`egotwin.motion.random_motion`) and a 41-frame video of two coloured squares gliding over a colour gradient, with a
caption. It checks the plumbing and that losses fall; real training uses EgoWorld (`data_root` = a clip folder).
Select it on the command line with `--data_root synthetic:N` (N clips).
"""

from __future__ import annotations

import torch
from torch.utils.data import Dataset

from egotwin.body.builtin import builtin_rest_joints
from egotwin.motion.random_motion import smooth_random_motion

CAPTIONS = ("walk to the red table", "turn left and open the door", "look around the kitchen", "sit down on the sofa")


class SyntheticClips(Dataset):
    """`num_clips` items: "video" (3, num_video_frames, size, size) in [-1, 1], "trans" (T, 3), "global_orient"
    (T, 3, 3), "body_pose" (T, 21, 3, 3), "rest_joints" (22, 3), "caption", "clip_id", with
    T = 2 * num_video_frames - 1."""

    def __init__(self, num_clips: int, size: int = 64, num_video_frames: int = 41, seed: int = 0):
        self.num_clips, self.size, self.num_video_frames, self.seed = num_clips, size, num_video_frames, seed

    def __len__(self) -> int:
        return self.num_clips

    def _video(self, generator: torch.Generator) -> torch.Tensor:
        t = torch.linspace(0, 1, self.num_video_frames).view(-1, 1, 1)
        coords = torch.linspace(0, 1, self.size)
        y, x = coords.view(1, -1, 1), coords.view(1, 1, -1)
        colors = 2 * torch.rand(4, 3, generator=generator) - 1
        background = colors[0].view(3, 1, 1, 1) * (1 - x) + colors[1].view(3, 1, 1, 1) * y  # (3, 1, S, S)
        video = background.expand(3, self.num_video_frames, self.size, self.size).clone()
        for color in colors[2:]:
            start, velocity = torch.rand(2, generator=generator), torch.rand(2, generator=generator) - 0.5
            cy, cx = (start[0] + velocity[0] * t) % 1, (start[1] + velocity[1] * t) % 1  # (T', 1, 1)
            inside = ((y - cy).abs() < 0.15) & ((x - cx).abs() < 0.15)  # (T', S, S)
            video = torch.where(inside.unsqueeze(0), color.view(3, 1, 1, 1), video)
        return video.clamp(-1, 1)

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < self.num_clips:
            raise IndexError(index)
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + index)
        local, trans = smooth_random_motion(1, 2 * self.num_video_frames - 1, generator=generator)
        return {
            "video": self._video(generator),
            "trans": trans[0],
            "global_orient": local[0, :, 0],
            "body_pose": local[0, :, 1:],
            "rest_joints": builtin_rest_joints(),
            "caption": CAPTIONS[index % len(CAPTIONS)],
            "clip_id": f"synthetic_{self.seed}_{index:05d}",
        }

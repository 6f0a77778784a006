"""Rebuild the world of a recorded EgoWorld clip from its ids: the apartment, the episode and the clip's own motion.

A generation run with seed S makes clip i (`clip_id` "sS_iiiiii") in apartment a = i // clips_per_apartment
(`apartment` "sS_aptaaaaa" in metadata.jsonl), whose seed is `apartment_seed(S, a)`; the episode is planned from
`SeedSequence([S, i])` with the run's turn speed (DIR/config.json). Everything is deterministic, so these ids and the
run's settings rebuild the clip exactly: `rebuild_clip_world` returns the apartment and the episode, and re-rendering
the clip's own motion in them gives the clip's frames back (up to the video codec). User data has no such ids.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from egotwin.data.constants import NUM_MOTION_FRAMES
from egotwin.motion.motion import Motion
from egotwin.world.apartment import Apartment, generate_apartment
from egotwin.world.body_motion import synthesize_motion
from egotwin.world.episodes import TURN_SPEED_DEG, Episode, plan_episode
from egotwin.world.generate import WorldConfig, apartment_seed, object_trajectories

CLIP_ID = re.compile(r"s(\d+)_(\d+)")
APARTMENT_ID = re.compile(r"s(\d+)_apt(\d+)")


class NotEgoWorldError(ValueError):
    """A clip (or a clip set) that cannot be tied to an EgoWorld apartment; the message says what is missing."""


@dataclass(frozen=True)
class ClipSource:
    """What ties a clip to its world: the run's seed, the clip's index in the run, its apartment's index and the run's
    settings that shape the episode and the body."""

    seed: int
    clip_index: int
    apartment_index: int
    turn_speed_deg: float = TURN_SPEED_DEG
    body_height: float = WorldConfig.body_height
    textured: bool = False
    """Whether the run drew its apartments with textures (`--textured`): renders of its clips must too."""

    @property
    def apartment_seed(self) -> int:
        return apartment_seed(self.seed, self.apartment_index)

    @classmethod
    def from_ids(cls, clip_id: str, apartment: str, settings: dict | None = None) -> ClipSource:
        """From a clip record's `clip_id` and `apartment` fields and the run's config.json (`settings`; None = the
        defaults of `python -m egotwin.world generate`)."""
        clip, flat = CLIP_ID.fullmatch(str(clip_id)), APARTMENT_ID.fullmatch(str(apartment))
        if clip is None or flat is None:
            raise NotEgoWorldError(
                f"clip {clip_id!r} (apartment {apartment!r}) is not an EgoWorld clip: EgoWorld ids read 'sS_iiiiii' "
                "and 'sS_aptaaaaa'"
            )
        if clip.group(1) != flat.group(1):
            raise NotEgoWorldError(f"clip {clip_id!r} and apartment {apartment!r} name different seeds")
        defaults = {"turn_speed_deg": TURN_SPEED_DEG, "body_height": WorldConfig.body_height, "textured": False}
        settings = {**defaults, **(settings or {})}
        if "seed" in settings and int(settings["seed"]) != int(clip.group(1)):
            raise NotEgoWorldError(f"clip {clip_id!r} is not from the run of seed {settings['seed']}")
        return cls(
            int(clip.group(1)),
            int(clip.group(2)),
            int(flat.group(2)),
            float(settings["turn_speed_deg"]),
            float(settings["body_height"]),
            bool(settings["textured"]),
        )

    def as_dict(self) -> dict:
        return {
            "seed": self.seed,
            "clip_index": self.clip_index,
            "apartment_index": self.apartment_index,
            "turn_speed_deg": self.turn_speed_deg,
            "body_height": self.body_height,
            "textured": self.textured,
        }


def run_settings(root: str | Path) -> dict:
    """DIR/config.json of a generation run; NotEgoWorldError if the folder has none (user data)."""
    path = Path(root) / "config.json"
    if not path.is_file():
        raise NotEgoWorldError(f"{root} has no EgoWorld config.json (seed and settings of a generation run)")
    settings = json.loads(path.read_text())
    if "seed" not in settings:
        raise NotEgoWorldError(f"{path} names no generation seed")
    return settings


def clip_source(root: str | Path, record: dict) -> ClipSource:
    """The source of a metadata.jsonl record of the clip set at `root`."""
    if record.get("source") != "egoworld" or "apartment" not in record:
        raise NotEgoWorldError(f"{root}: clip {record.get('clip_id')!r} is not an EgoWorld clip (no apartment id)")
    return ClipSource.from_ids(record["clip_id"], record["apartment"], run_settings(root))


@dataclass
class ClipWorld:
    """A clip's world rebuilt: the apartment, the planned episode and the clip's own motion (81 frames, world frame)."""

    source: ClipSource
    apartment: Apartment
    episode: Episode
    motion: Motion

    @property
    def door_angles(self) -> np.ndarray:
        """(41, D) door opening angles at the video frames, radians."""
        return self.episode.door_angles[::2]

    def object_poses(self, motion: Motion) -> dict[str, np.ndarray]:
        """Carried objects' poses (41, 4, 4) at the video frames when `motion` (world frame, 81 frames) carries them:
        each stays put until its grasp frame, then moves rigidly with the grasping wrist (as EgoWorld renders it)."""
        rotations, joints = motion.forward_kinematics()
        poses = object_trajectories(self.episode, self.apartment, rotations, joints)
        return {name: trajectory[::2] for name, trajectory in poses.items()}


def rebuild_clip_world(source: ClipSource, rest_joints: torch.Tensor) -> ClipWorld:
    """The apartment and episode of `source`, and its motion synthesised on `rest_joints` (22, 3) (the generator's
    body: `egotwin.world.generate.load_default_body(source.body_height).rest_joints`)."""
    apartment = generate_apartment(source.apartment_seed)
    rng = np.random.default_rng(np.random.SeedSequence([source.seed, source.clip_index]))
    episode = plan_episode(apartment, rng, turn_speed=math.radians(source.turn_speed_deg))
    motion = synthesize_motion(episode.controls, torch.as_tensor(rest_joints, dtype=torch.float32))
    if motion.num_frames != NUM_MOTION_FRAMES:
        raise RuntimeError(f"the rebuilt episode of {source} has {motion.num_frames} motion frames")
    return ClipWorld(source, apartment, episode, motion)


def check_rebuilt(world: ClipWorld, folder: str | Path) -> None:
    """Raise NotEgoWorldError unless the rebuilt episode's doors move as the clip's world.npz recorded (a clip set
    made by another version of EgoWorld would be rebuilt wrongly, and every score against it would be meaningless)."""
    path = Path(folder) / "world.npz"
    if not path.is_file():
        raise NotEgoWorldError(f"{path}: missing (EgoWorld clips record their door angles there)")
    with np.load(path) as recorded:
        angles, names = recorded["door_angles"], [str(n) for n in recorded["door_names"]]
    if names != [d.name for d in world.apartment.doors] or not np.allclose(angles, world.door_angles, atol=1e-6):
        raise NotEgoWorldError(
            f"{path}: the rebuilt apartment {world.source.apartment_seed} and episode do not match the recorded doors; "
            "the clip set was made by another EgoWorld version"
        )

"""Clip generation: apartment -> episode -> motion -> cameras -> rendered video -> clip folder, in parallel workers.

Determinism: clip i of a run with seed S draws everything from `SeedSequence([S, i])` and lives in apartment
i // clips_per_apartment, whose seed is drawn from `SeedSequence([S, apartment index])`; so the same (S, i) gives
the same clip whatever the number of workers. Splits go by a hash of the apartment seed, so train, val and test
never share an apartment.
"""

from __future__ import annotations

import json
import math
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from egotwin.body.head_camera import HeadCameraRig
from egotwin.body.skeleton import HEAD, LEFT_WRIST, RIGHT_WRIST
from egotwin.data.clip_format import NUM_VIDEO_FRAMES, hash_split, write_clip
from egotwin.motion.motion import Motion
from egotwin.world.apartment import Apartment, generate_apartment
from egotwin.world.body_motion import synthesize_motion
from egotwin.world.episodes import TURN_SPEED, TURN_SPEED_DEG, Episode, plan_episode
from egotwin.world.render import EgoRenderer


@dataclass(frozen=True)
class WorldConfig:
    """Settings of a generation run (saved as DIR/config.json)."""

    width: int = 64
    """Video width in pixels; 64x64 is the small model's resolution (8x8 latents after the 8x video VAE)."""
    height: int = 64
    clips_per_apartment: int = 4
    """Clips recorded in one apartment before a new one is generated (amortises building the scene)."""
    val_fraction: float = 0.05
    test_fraction: float = 0.05
    body_height: float = 1.70
    turn_speed_deg: float = TURN_SPEED_DEG
    """Mean speed of whole-body turns, degrees per second (120 made the shipped model's data set)."""
    textured: bool = False
    """Procedural textures on walls, floors, doors and furniture, and posters on the walls (egotwin/world/textures.py);
    the apartments, episodes and motions are those of the untextured data set of the same seed."""


@dataclass
class Clip:
    """One generated clip in memory."""

    clip_id: str
    apartment: Apartment
    episode: Episode
    motion: Motion
    frames: np.ndarray
    """(41, H, W, 3) uint8."""
    camera_to_world: np.ndarray
    """(41, 4, 4) OpenCV-axes camera poses."""
    intrinsics: np.ndarray
    hand_visible: np.ndarray
    """(41, 2) bool (left, right)."""
    door_angles: np.ndarray
    """(41, D) radians."""


def apartment_seed(seed: int, apartment_index: int) -> int:
    return int(np.random.SeedSequence([seed, apartment_index, 1]).generate_state(1)[0])


def split_of(apartment_seed_: int, config: WorldConfig) -> str:
    """Split from a hash of the apartment seed (stable across runs and machines)."""
    return hash_split(str(apartment_seed_), config.val_fraction, config.test_fraction)


def load_default_body(height: float = 1.70):
    """The built-in mannequin (or SMPL-X when EGOTWIN_SMPLX_DIR is set), through the body-model factory."""
    from egotwin.body.body_model import load_body_model

    return load_body_model(height=height)


def object_trajectories(
    episode: Episode, apartment: Apartment, rotations: torch.Tensor, joints: torch.Tensor
) -> dict[str, np.ndarray]:
    """(T, 4, 4) poses of carried objects: rigidly attached to the grasping wrist from the grasp frame on."""
    out = {}
    by_name = {o.name: o for o in apartment.objects}
    for name, side, grasp in episode.attachments:
        wrist = (LEFT_WRIST, RIGHT_WRIST)[side]
        hand = np.tile(np.eye(4), (len(joints), 1, 1))
        hand[:, :3, :3] = rotations[:, wrist].double().numpy()
        hand[:, :3, 3] = joints[:, wrist].double().numpy()
        grasp = min(grasp, len(joints) - 1)
        relative = np.linalg.inv(hand[grasp]) @ by_name[name].pose
        poses = np.tile(by_name[name].pose, (len(joints), 1, 1))
        poses[grasp:] = hand[grasp:] @ relative
        out[name] = poses
    return out


def make_clip(
    clip_id: str,
    apartment: Apartment,
    rng: np.random.Generator,
    renderer: EgoRenderer,
    rest_joints: torch.Tensor,
    episode: Episode | None = None,
    turn_speed: float = TURN_SPEED,
) -> Clip:
    """Plan (unless an episode is given), synthesise and render one clip in an apartment (the renderer must hold this
    apartment's scene); planned whole-body turns take `turn_speed` (rad/s)."""
    episode = plan_episode(apartment, rng, turn_speed=turn_speed) if episode is None else episode
    motion = synthesize_motion(episode.controls, rest_joints)
    rotations, joints = motion.forward_kinematics()
    video = slice(0, None, 2)  # video frame i = motion frame 2i
    head_rot, head_pos = rotations[video, HEAD], joints[video, HEAD]
    cameras = renderer.rig.camera_poses(head_rot.double(), head_pos.double()).numpy()
    objects = {name: poses[video] for name, poses in object_trajectories(episode, apartment, rotations, joints).items()}
    door_angles = episode.door_angles[video]
    frames, _, hand_visible = renderer.render(
        rotations[video].double().numpy(), joints[video].double().numpy(), cameras, door_angles, objects
    )
    return Clip(
        clip_id, apartment, episode, motion, frames, cameras, renderer.intrinsics.numpy(), hand_visible, door_angles
    )


def clip_record(clip: Clip, split: str, apartment_id: str) -> dict:
    """The metadata.jsonl record of a clip."""
    episode = clip.episode
    return {
        "clip_id": clip.clip_id,
        "split": split,
        "path": f"{split}/{clip.clip_id}",
        "apartment": apartment_id,
        "room": episode.room,
        "caption": episode.caption,
        "actions": episode.actions,
        "target": episode.target,
        "num_frames": NUM_VIDEO_FRAMES,
        "width": int(clip.frames.shape[2]),
        "height": int(clip.frames.shape[1]),
        "hands_visible_frames": [int(n) for n in clip.hand_visible.sum(0)],
        "source": "egoworld",
    }


def save_clip(root: Path, clip: Clip, split: str, apartment_id: str) -> dict:
    folder = root / split / clip.clip_id
    world = {
        "door_angles": clip.door_angles.astype(np.float64),
        "door_names": np.array([d.name for d in clip.apartment.doors], dtype=str),
    }
    write_clip(
        folder,
        clip.frames,
        clip.motion,
        clip.camera_to_world,
        clip.intrinsics,
        clip.hand_visible,
        clip.episode.caption,
        world,
    )
    return clip_record(clip, split, apartment_id)


_WORKER: dict = {}


def _init_worker(config: WorldConfig, pool_worker: bool = True) -> None:
    # one rasteriser thread per worker: at 64x64 llvmpipe's thread pool costs more than it gains, and pool workers
    # already fill the cores
    os.environ.setdefault("LP_NUM_THREADS", "1")
    if pool_worker:
        torch.set_num_threads(1)
    body = load_default_body(config.body_height)
    _WORKER["renderer"] = EgoRenderer(body, config.width, config.height, HeadCameraRig(), config.textured)
    _WORKER["rest_joints"] = torch.as_tensor(np.asarray(body.rest_joints), dtype=torch.float32)
    _WORKER["config"] = config


def _generate_apartment_clips(job: tuple[Path, int, int, list[int]]) -> list[dict]:
    root, seed, apartment_index, clip_indices = job
    config: WorldConfig = _WORKER["config"]
    renderer: EgoRenderer = _WORKER["renderer"]
    a_seed = apartment_seed(seed, apartment_index)
    apartment = generate_apartment(a_seed)
    renderer.set_apartment(apartment)
    split = split_of(a_seed, config)
    records = []
    for i in clip_indices:
        rng = np.random.default_rng(np.random.SeedSequence([seed, i]))
        clip = make_clip(
            f"s{seed}_{i:06d}",
            apartment,
            rng,
            renderer,
            _WORKER["rest_joints"],
            turn_speed=math.radians(config.turn_speed_deg),
        )
        records.append(save_clip(root, clip, split, f"s{seed}_apt{apartment_index:05d}"))
    return records


JOURNAL_NAME = "progress.jsonl"
"""Journal of finished apartments in a generation folder: a killed run restarts where it stopped."""


def _read_journal(path: Path, seed: int, config: WorldConfig) -> dict[int, list[dict]]:
    """Finished apartments (index -> clip records) of an interrupted run with the same seed and settings."""
    if not path.exists():
        return {}
    lines = path.read_text().splitlines()
    if not lines:
        return {}
    header = json.loads(lines[0])
    # settings added since a journal was written read as their defaults, the values that run used
    header["config"] = {**asdict(WorldConfig()), **header.get("config", {})}
    if header != {"seed": seed, "config": json.loads(json.dumps(asdict(config)))}:
        raise ValueError(
            f"{path.parent} holds a run with other settings ({lines[0]}); use another --out folder or delete it"
        )
    done = {}
    for line in lines[1:]:
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:  # the last line of a killed run may be cut short: that apartment is redone
            continue
        done[entry["apartment"]] = entry["records"]
    return done


def generate(
    out: str | Path,
    num_clips: int,
    seed: int = 0,
    workers: int = 1,
    config: WorldConfig = WorldConfig(),
    progress: bool = True,
) -> list[dict]:
    """Generate `num_clips` clips into `out` (see egotwin/data/clip_format.py) and write `out/metadata.jsonl`; returns
    the records."""
    if num_clips < 1:
        raise ValueError(f"need at least one clip, got {num_clips}")
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)
    per = config.clips_per_apartment
    jobs = [
        (root, seed, a, list(range(a * per, min(num_clips, (a + 1) * per))))
        for a in range((num_clips + per - 1) // per)
    ]
    # Resume: every finished apartment is appended to a journal; a rerun with the same settings skips those.
    journal_path = root / JOURNAL_NAME
    done = _read_journal(journal_path, seed, config)
    # (an apartment journaled by a smaller run has fewer clips than this run wants: it is made again, identically)
    todo = [job for job in jobs if len(done.get(job[2], ())) < len(job[3])]
    bar = tqdm(total=num_clips, desc="clips", unit="clip", disable=not progress)
    bar.update(num_clips - sum(len(job[3]) for job in todo))
    with open(journal_path, "a") as journal:
        if journal.tell() == 0:
            journal.write(json.dumps({"seed": seed, "config": asdict(config)}, sort_keys=True) + "\n")
        elif not journal_path.read_bytes().endswith(b"\n"):
            journal.write("\n")  # end the cut-off line of a killed run, so the next entry stays readable

        def finish(apartment_index: int, batch: list[dict]) -> None:
            done[apartment_index] = batch
            journal.write(json.dumps({"apartment": apartment_index, "records": batch}, sort_keys=True) + "\n")
            journal.flush()
            bar.update(len(batch))

        if workers == 1:
            _init_worker(config, pool_worker=False)
            try:
                for job in todo:
                    finish(job[2], _generate_apartment_clips(job))
            finally:
                _WORKER.pop("renderer").close()
        elif todo:
            # spawn: every worker opens its own EGL context; a worker that fails to start breaks the pool (an error
            # here) instead of being restarted forever
            context = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker, initargs=(config,)) as pool:
                for job, batch in zip(todo, pool.map(_generate_apartment_clips, todo)):
                    finish(job[2], batch)
    bar.close()
    wanted = {f"s{seed}_{i:06d}" for job in jobs for i in job[3]}
    records = [record for job in jobs for record in done[job[2]] if record["clip_id"] in wanted]
    (root / "config.json").write_text(
        json.dumps({"seed": seed, "num_clips": num_clips, **asdict(config)}, indent=2) + "\n"
    )
    with open(root / "metadata.jsonl", "w") as f:
        for record in records:
            f.write(json.dumps(record, sort_keys=True) + "\n")
    return records

"""Direction probe: does a checkpoint turn and move the way its prompt says, in the motion and in the video?

    python -m egotwin.eval.directions --checkpoint assets/egotwin-tiny --data_root data/egoworld --split test \\
        --clips_per_probe 6 --seed 0 --output_dir runs/directions

For each probe (turn left, turn right, walk forward, walk backward) it takes the first clips of the split whose
actions and caption match, generates from each clip's own caption, start frame and start pose (T2VM; with `--mode
tm2v`, from the clip's own motion: the video alone is generated) and measures on both the generated clip and the
ground-truth clip:
- head yaw: the turn of the head camera's optical axis about the world's vertical between the first and the last
  frame, in degrees, positive to the person's left (world +y up, the body facing +z with +x on its left);
- video yaw: the same turn as visual odometry (`egotwin.eval.visual_odometry`) sees it in the frames; the estimated
  relative rotations are expressed in the world through the head camera's first pose, so both yaws are comparable;
- forward: the head's displacement along its initial horizontal facing direction, in metres.
Agreement is the fraction of generated clips whose sign matches the probe's direction (left/right for yaw,
forward/backward for displacement); for the turns also the fraction whose video turns the way their own generated head
does, and over all turn clips how far the video turns along the head (median, with a signed-rank test). Writes
directions.json and directions.md into `--output_dir`; `--help` lists every setting.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import torch
from scipy.stats import wilcoxon

from egotwin.config import parse_config
from egotwin.data.dataset import ClipDataset
from egotwin.diffusion.guidance import GuidanceScales
from egotwin.eval.visual_odometry import estimate_camera_path


@dataclasses.dataclass(frozen=True)
class Probe:
    name: str
    actions: tuple[tuple[str, ...], ...]
    """The clip's action sequences that count (a turn may be followed by a walk)."""
    word: str
    """A word the caption must contain ('' for none)."""
    measure: str
    """'yaw' or 'forward': the quantity whose sign the probe predicts."""
    sign: int


TURNS = (("turn",), ("turn", "walk_forward"), ("turn_to",))
"""Whole-body turns: in place, then a walk, or to face a piece of furniture (every caption names the side)."""

PROBES = (
    Probe("turn left", TURNS, "left", "yaw", +1),
    Probe("turn right", TURNS, "right", "yaw", -1),
    Probe("walk forward", (("walk_forward",),), "", "forward", +1),
    Probe("walk backward", (("walk_backward",),), "", "forward", -1),
)


def _heading(rotation: np.ndarray) -> float:
    """Heading (radians) of a camera's optical axis (OpenCV +z) about world +y: atan2(x, z), positive towards +x."""
    axis = rotation[:, 2]
    return float(np.arctan2(axis[0], axis[2]))


def _wrap(angle: float) -> float:
    return float((angle + np.pi) % (2 * np.pi) - np.pi)


def head_yaw_deg(camera_to_world: np.ndarray) -> float:
    """Turn of the camera's heading from the first to the last pose of (T, 4, 4), degrees, positive to the left."""
    return float(np.degrees(_wrap(_heading(camera_to_world[-1, :3, :3]) - _heading(camera_to_world[0, :3, :3]))))


def forward_m(camera_to_world: np.ndarray) -> float:
    """Displacement of the camera centre along its first horizontal heading, metres."""
    heading = _heading(camera_to_world[0, :3, :3])
    direction = np.array([np.sin(heading), 0.0, np.cos(heading)])
    return float((camera_to_world[-1, :3, 3] - camera_to_world[0, :3, 3]) @ direction)


def video_yaw_deg(frames: np.ndarray, intrinsics: np.ndarray, first_camera_to_world: np.ndarray) -> float:
    """Head yaw as visual odometry sees it in `frames` (T, H, W, 3): its relative rotations (frame 0 = identity) put
    into the world through the first head-camera pose (4, 4)."""
    relative = estimate_camera_path(frames, intrinsics)
    world = first_camera_to_world[None, :3, :3] @ relative[:, :3, :3]
    return float(np.degrees(_wrap(_heading(world[-1]) - _heading(world[0]))))


def probe_clips(dataset: ClipDataset, probe: Probe, count: int) -> list[int]:
    """Indices of the first `count` clips of `dataset` that match `probe`."""
    found = []
    for index, record in enumerate(dataset.records):
        caption = record["caption"].lower()
        if tuple(record["actions"]) in probe.actions and (not probe.word or probe.word in caption.split()):
            found.append(index)
            if len(found) == count:
                break
    return found


def measure(frames: np.ndarray, camera_to_world: np.ndarray, intrinsics: np.ndarray) -> dict[str, float]:
    camera_to_world = np.asarray(camera_to_world, dtype=np.float64)
    return {
        "head_yaw_deg": head_yaw_deg(camera_to_world),
        "video_yaw_deg": video_yaw_deg(frames, np.asarray(intrinsics, dtype=np.float64), camera_to_world[0]),
        "forward_m": forward_m(camera_to_world),
    }


def summarize(probe: Probe, rows: list[dict]) -> dict:
    key = "head_yaw_deg" if probe.measure == "yaw" else "forward_m"
    out = {"clips": len(rows)}
    for source in ("ground_truth", "generated"):
        for quantity in ("head_yaw_deg", "video_yaw_deg", "forward_m"):
            values = [row[source][quantity] for row in rows]
            out[f"{source}_{quantity}"] = float(np.mean(values)) if rows else float("nan")
        out[f"{source}_agreement"] = (
            float(np.mean([np.sign(row[source][key]) == probe.sign for row in rows])) if rows else float("nan")
        )
    if probe.measure == "yaw":
        generated = [row["generated"] for row in rows]
        out["generated_video_agreement"] = (
            float(np.mean([np.sign(g["video_yaw_deg"]) == probe.sign for g in generated])) if rows else float("nan")
        )
        out["generated_video_follows_head"] = (
            float(np.mean([np.sign(g["video_yaw_deg"]) == np.sign(g["head_yaw_deg"]) for g in generated]))
            if rows
            else float("nan")
        )
    return out


def turns_summary(clips: dict[str, list[dict]]) -> dict:
    """Whether the generated video turns with the generated head, over every turn clip of the probe: the video's yaw
    signed by the head's turn (positive: the same way), its median, and a one-sided Wilcoxon signed-rank test against
    a video that turns either way at random (the sign of a dozen clips alone tells little)."""
    names = {probe.name for probe in PROBES if probe.measure == "yaw"}
    along = np.array(
        [
            np.sign(row["generated"]["head_yaw_deg"]) * row["generated"]["video_yaw_deg"]
            for name, rows in clips.items()
            if name in names
            for row in rows
        ]
    )
    if len(along) == 0:
        return {"clips": 0}
    return {
        "clips": len(along),
        "video_follows_head": int((along > 0).sum()),
        "median_video_yaw_along_head_deg": float(np.median(along)),
        "wilcoxon_p": float(wilcoxon(along, alternative="greater").pvalue) if np.any(along != 0) else 1.0,
    }


def markdown(summary: dict[str, dict], settings: dict, turns: dict | None = None) -> str:
    lines = [
        "| probe | clips | head yaw GT / gen (deg) | video yaw GT / gen (deg) | forward GT / gen (m) "
        "| agreement gen motion | agreement gen video | gen video turns with gen head |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, s in summary.items():
        video_agreement = f"{s['generated_video_agreement']:.0%}" if "generated_video_agreement" in s else "n/a"
        follows = f"{s['generated_video_follows_head']:.0%}" if "generated_video_follows_head" in s else "n/a"
        lines.append(
            f"| {name} | {s['clips']} | {s['ground_truth_head_yaw_deg']:+.1f} / {s['generated_head_yaw_deg']:+.1f} | "
            f"{s['ground_truth_video_yaw_deg']:+.1f} / {s['generated_video_yaw_deg']:+.1f} | "
            f"{s['ground_truth_forward_m']:+.2f} / {s['generated_forward_m']:+.2f} | {s['generated_agreement']:.0%} | "
            f"{video_agreement} | {follows} |"
        )
    if turns and turns["clips"]:
        lines += [
            "",
            f"All turns: the generated video turns with the generated head in {turns['video_follows_head']} of "
            f"{turns['clips']} clips; median video yaw along the head's turn "
            f"{turns['median_video_yaw_along_head_deg']:+.1f} deg (one-sided Wilcoxon signed-rank p = "
            f"{turns['wilcoxon_p']:.3f}).",
        ]
    lines += ["", ", ".join(f"{k}: {v}" for k, v in settings.items()) + "."]
    return "\n".join(lines) + "\n"


@dataclasses.dataclass(frozen=True)
class DirectionsConfig:
    """Direction probe: does a checkpoint turn and move the way its prompt says, in the motion and in the video?"""

    checkpoint: str = ""
    """Pipeline folder saved by EgoTwinPipeline.save_pretrained (required)."""
    data_root: str = ""
    """EgoWorld clip folder the probe clips come from (required)."""
    output_dir: str = ""
    """Folder directions.json and directions.md are written to (required)."""
    split: str = "test"
    """Split of the clip folder to take the probe clips from."""
    clips_per_probe: int = 6
    """Clips per probe (turn left, turn right, walk forward, walk backward): the first that match."""
    seed: int = 0
    """Seed of the sampling noise (clip i samples with seed * 1000003 + i)."""
    mode: str = "t2vm"
    """'t2vm' (video and motion generated) or 'tm2v' (the clip's own motion is given; the video is generated)."""
    num_inference_steps: int = 50
    """Denoising steps per sample."""
    motion_guidance_scale: float = GuidanceScales.motion
    """w_m: how strongly the video follows the motion."""
    motion_lead: float | None = None
    """t2vm: how far the motion's denoising runs ahead of the video's (0 = joint, as the paper; default: the
    checkpoint's)."""
    device: str = ""
    """Torch device ('': cuda when available, else cpu)."""


PROG = "python -m egotwin.eval.directions"


def parse_args(argv: list[str] | None = None) -> DirectionsConfig:
    """The probe's config from the command line; a missing folder or an unknown mode is an error that names it."""
    config = parse_config(DirectionsConfig, argv, prog=PROG)
    errors = [
        f"--{name} is required" for name in ("checkpoint", "data_root", "output_dir") if not getattr(config, name)
    ]
    if config.mode not in ("t2vm", "tm2v"):
        errors.append(f"--mode must be t2vm or tm2v, got '{config.mode}'")
    if config.clips_per_probe < 1:
        errors.append("--clips_per_probe must be at least 1")
    if errors:
        raise SystemExit(f"{PROG}: error: " + "; ".join(errors))
    return config


def main(argv: list[str] | None = None) -> dict:
    config = parse_args(argv)
    device = config.device or ("cuda" if torch.cuda.is_available() else "cpu")

    from egotwin.eval.__main__ import generate_sample, ground_truth_sample
    from egotwin.pipelines import EgoTwinPipeline

    dataset = ClipDataset(config.data_root, split=config.split)
    pipe = EgoTwinPipeline.from_pretrained(config.checkpoint).to(device)
    pipe.set_progress_bar_config(disable=True)
    summary, clips = {}, {}
    for probe in PROBES:
        rows = []
        for number, index in enumerate(probe_clips(dataset, probe, config.clips_per_probe)):
            item = dataset[index]
            truth = ground_truth_sample(item)
            generator = torch.Generator().manual_seed(config.seed * 1_000_003 + index)
            sample = generate_sample(
                pipe,
                item,
                config.mode,
                generator,
                config.num_inference_steps,
                GuidanceScales(motion=config.motion_guidance_scale),
                config.motion_lead,
            )
            rows.append(
                {
                    "clip_id": item["clip_id"],
                    "caption": item["caption"],
                    "ground_truth": measure(truth["frames"], truth["camera_to_world"], truth["intrinsics"]),
                    "generated": measure(sample["frames"], sample["camera_to_world"], sample["intrinsics"]),
                }
            )
        summary[probe.name], clips[probe.name] = summarize(probe, rows), rows
        print(probe.name, json.dumps(summary[probe.name]), flush=True)
    shown = ("checkpoint", "data_root", "split", "seed", "num_inference_steps", "mode", "motion_guidance_scale")
    settings = {name: getattr(config, name) for name in shown}
    if config.mode == "t2vm":
        settings["motion_lead"] = pipe.motion_lead_for("t2vm", config.motion_lead)
    out = Path(config.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    turns = turns_summary(clips)
    results = {"settings": settings, "summary": summary, "turns": turns, "clips": clips}
    (out / "directions.json").write_text(json.dumps(results, indent=2) + "\n")
    (out / "directions.md").write_text(markdown(summary, settings, turns))
    print((out / "directions.md").read_text())
    return results


if __name__ == "__main__":
    main()

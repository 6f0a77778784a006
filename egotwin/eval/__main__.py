"""Score a checkpoint (or the data set itself) on the EgoWorld test split with the paper's metrics; writes
results.json and results.md.

    python -m egotwin.eval --checkpoint assets/egotwin-tiny --mode t2vm --data_root data/egoworld --split test \\
        --num_samples 64 --replications 3 --seed 0 --evaluators runs/evaluators --output_dir runs/eval_t2vm
    python -m egotwin.eval --ground_truth --data_root data/egoworld --split test \\
        --evaluators runs/evaluators --output_dir runs/eval_gt

Each replication generates one sample per test clip (the first `num_samples` clips, in metadata order) with the
clip's caption, first frame and first pose (plus its motion in tm2v, its video in tv2m), the generator of clip i in
replication r seeded with `seed * 1_000_003 + r * 10_007 + i`. Metrics per replication, then mean +- std:
- I-FID / FVD: Frechet distances between generated and reference frame features / clip features of the EgoWorld
  video evaluator (reference: the ground-truth clips of `--reference_split`, default the evaluated split).
- CLIP-SIM: 100 x the cosine between the video and caption embeddings of the same evaluator (replaces CLIP).
- M-FID, R-Precision top-1/2/3 (batches of 32), MM-Dist: the EgoWorld text-motion evaluator (HumanML3D protocol).
- TransErr / RotErr: visual odometry on the generated video against the generated motion's head camera, summed over
  the 41 frames (metres / radians, `egotwin.eval.trajectory`), averaged over clips.
- HandScore: F1 (pooled over clips, frames and hands) between hands detected in the video and hands in view.
- ViewDist, Head>Still, YawHit, YawErr, PitchErr (not the paper's; EgoWorld data only): exact viewpoint alignment,
  each clip's apartment rebuilt from its seed and rendered from the generated head cameras, through the same video
  VAE (`egotwin.eval.alignment`, docs/alignment.md), pooled over the frames where the head turned or moved; beside
  each, an unrelated clip's video scored the same way (chance), a still camera and the start frame carried along the
  head path; results.json also has ViewDist by second and by the share of each frame the start frame saw. Skipped,
  with a message, for data without apartment seeds (user data) or with `--no_alignment`.
`--ground_truth` scores the data set's own clips as if generated: the estimators' own error and the upper bound
(its FIDs use `--reference_split`, default 'val', since a set against itself scores 0). With `--video_vae` the clips'
videos go through that VAE first (encode, posterior mean, decode): the best a generated video decoded by it can score,
which separates what the VAE loses (detail and motion the visual odometry needs) from what the transformer gets wrong.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from egotwin.body.head_camera import HeadCameraRig
from egotwin.config import parse_config
from egotwin.data.constants import MODES
from egotwin.data.dataset import ClipDataset
from egotwin.diffusion.guidance import GuidanceScales
from egotwin.eval.consistency import clip_consistency, still_camera_alignment
from egotwin.eval.evaluators import load_evaluators
from egotwin.eval.metrics import binary_f1, fid, mm_dist, r_precision
from egotwin.eval.table import ALIGNMENT_KEYS, ALIGNMENT_NOTE, COLUMNS, alignment_table, metrics_table
from egotwin.models.text_encoder import TextEncoder
from egotwin.models.video_vae import load_pretrained_video_vae, round_trip_frames
from egotwin.motion.motion import Motion

os.environ.setdefault("PYOPENGL_PLATFORM", "egl")  # the alignment renders headless; set before pyrender is imported


@dataclasses.dataclass(frozen=True)
class EvalConfig:
    """Score a checkpoint (or the data set itself) on an EgoWorld split with the paper's metrics."""

    checkpoint: str = ""
    """Pipeline folder saved by EgoTwinPipeline.save_pretrained (or give --ground_truth)."""
    ground_truth: bool = False
    """Score the data set's own clips instead of a checkpoint's samples."""
    video_vae: str = ""
    """With --ground_truth: a video VAE folder (stage 0's export or a pipeline's vae/); the clips' videos are scored
    after its encode-decode round trip."""
    mode: str = "t2vm"
    """Generation mode: t2vm, tm2v or tv2m."""
    data_root: str = ""
    """EgoWorld clip folder (required)."""
    split: str = "test"
    """Split to score."""
    reference_split: str = ""
    """Ground truth for the FIDs (default: --split; 'val' with --ground_truth)."""
    num_samples: int | None = None
    """First N clips of the split (default: all)."""
    replications: int = 1
    """Samples per clip, each with its own seed; metrics are mean +- std over replications."""
    seed: int = 0
    """Seed of every sample's generator."""
    evaluators: str = ""
    """Folder of training/train_evaluators.py (without it only TransErr/RotErr and the alignment)."""
    num_inference_steps: int = 50
    """Sampler steps."""
    guidance_scale: float | None = None
    """w_t, text guidance (default: the checkpoint's)."""
    motion_guidance_scale: float = GuidanceScales.motion
    """w_m: how strongly the video follows the motion."""
    video_guidance_scale: float = GuidanceScales.video
    """w_v: how strongly the motion follows the video."""
    video_text_guidance_scale: float | None = None
    """w_t of the video alone (t2vm, tm2v; default: the checkpoint's, else --guidance_scale)."""
    motion_lead: float | None = None
    """t2vm: how far the motion's denoising runs ahead (0 = the paper's joint sampling; default: the checkpoint's)."""
    no_alignment: bool = False
    """Skip the exact viewpoint alignment (EgoWorld)."""
    alignment_yaw_step: float = 10.0
    """Degrees between the yaw offsets of the alignment views."""
    alignment_pitches: tuple[float, ...] = (-20.0, 0.0, 20.0)
    """Pitch offsets of the alignment views, degrees, comma-separated, holding 0 (--alignment_pitches=-20,0,20)."""
    batch_size: int = 16
    """Clips per evaluator forward pass."""
    device: str = ""
    """Torch device (default: cuda when present)."""
    output_dir: str = ""
    """Folder results.json and results.md are written to (required)."""


def parse_args(argv: list[str] | None = None) -> EvalConfig:
    """The evaluation's settings, checked, with the defaults that depend on others filled in."""
    config = parse_config(EvalConfig, argv, prog="python -m egotwin.eval")
    problems = [f"--{name} is required" for name in ("data_root", "output_dir") if not getattr(config, name)]
    if config.ground_truth == bool(config.checkpoint):
        problems.append("give exactly one of --checkpoint and --ground_truth")
    if config.video_vae and not config.ground_truth:
        problems.append("--video_vae goes with --ground_truth (a checkpoint decodes with its own VAE)")
    if config.replications < 1:
        problems.append("--replications must be >= 1")
    if config.mode not in MODES:
        problems.append(f"--mode must be one of {', '.join(MODES)}")
    try:
        alignment_config(config)
    except ValueError as error:
        problems.append(f"--alignment_yaw_step / --alignment_pitches: {error}")
    if problems:
        raise SystemExit("python -m egotwin.eval: error: " + "; ".join(problems))
    return dataclasses.replace(
        config,
        reference_split=config.reference_split or ("val" if config.ground_truth else config.split),
        device=config.device or ("cuda" if torch.cuda.is_available() else "cpu"),
    )


def alignment_config(config: EvalConfig):
    """The alignment's view grid from the command line (`egotwin.eval.alignment.AlignmentConfig`)."""
    from egotwin.eval.alignment import AlignmentConfig

    return AlignmentConfig(yaw_step_deg=config.alignment_yaw_step, pitch_offsets_deg=config.alignment_pitches)


def clip_subset(dataset: ClipDataset, num: int | None) -> list[int]:
    if num is not None and (num < 1 or num > len(dataset)):
        raise ValueError(f"--num_samples must be in 1..{len(dataset)} for this split, got {num}")
    return list(range(len(dataset) if num is None else num))


def item_motion(item: dict) -> Motion:
    return Motion(
        trans=item["trans"],
        global_orient=item["global_orient"],
        body_pose=item["body_pose"],
        rest_joints=item["rest_joints"],
    )


def item_frames(item: dict) -> np.ndarray:
    """(41, H, W, 3) uint8 of a ClipDataset item."""
    return ((item["video"].permute(1, 2, 3, 0) + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8).numpy()


def generate_sample(
    pipe,
    item: dict,
    mode: str,
    generator: torch.Generator,
    steps: int,
    scales: GuidanceScales = GuidanceScales(),
    motion_lead: float | None = None,
) -> dict:
    """One generated clip for a test item: frames, motion, camera_to_world, intrinsics."""
    frames, motion = item_frames(item), item_motion(item)
    # The given modality carries its own start: tm2v's motion its first pose, tv2m's video its first frame.
    inputs = {
        "t2vm": {"image": frames[0], "initial_pose": motion},
        "tm2v": {"image": frames[0], "motion": motion},
        "tv2m": {"initial_pose": motion, "video": frames},
    }[mode]
    out = pipe(
        prompt=item["caption"],
        mode=mode,
        num_inference_steps=steps,
        generator=generator,
        guidance_scale=scales.text,
        motion_guidance_scale=scales.motion,
        video_guidance_scale=scales.video,
        video_text_guidance_scale=scales.text_for_video,
        motion_lead=motion_lead,
        **inputs,
    )
    return {
        "frames": out.frames,
        "motion": out.motion,
        "camera_to_world": out.camera_to_world,
        "intrinsics": out.intrinsics,
    }


def ground_truth_sample(item: dict, video_vae=None) -> dict:
    """A data set clip as a sample; with `video_vae` its video is replaced by the VAE's reconstruction."""
    frames = item_frames(item)
    if video_vae is not None:
        frames = round_trip_frames(video_vae, frames[None])[0]
    return {
        "frames": frames,
        "motion": item_motion(item),
        "camera_to_world": item["camera_to_world"].double().numpy(),
        "intrinsics": item["intrinsics"].double().numpy(),
    }


class FeatureExtractor:
    """Evaluator features of clips, in batches."""

    def __init__(self, evaluators: dict, text_encoder: TextEncoder, device: str, batch_size: int):
        self.evaluators, self.text_encoder, self.device, self.batch_size = evaluators, text_encoder, device, batch_size

    @torch.no_grad()
    def __call__(self, samples: list[dict], captions: list[str]) -> dict[str, np.ndarray]:
        out: dict[str, list] = {}
        if not self.evaluators:
            return {}
        for start in range(0, len(samples), self.batch_size):
            batch, words = samples[start : start + self.batch_size], captions[start : start + self.batch_size]
            embeddings, mask = (t.to(self.device) for t in self.text_encoder.encode(words))
            if "video_text" in self.evaluators:
                model = self.evaluators["video_text"]
                video = torch.stack([torch.from_numpy(np.ascontiguousarray(s["frames"])) for s in batch]).to(
                    self.device
                )
                video = video.permute(0, 4, 1, 2, 3).float() / 127.5 - 1.0
                frame_features = model.frame_features(video)
                clip_features = model.video_features(video, frame_features)
                out.setdefault("frame_features", []).append(frame_features.flatten(0, 1).cpu())
                out.setdefault("video_features", []).append(clip_features.cpu())
                out.setdefault("video_embeddings", []).append(model.encode_video(video, clip_features).cpu())
                out.setdefault("video_text_embeddings", []).append(model.encode_text(embeddings, mask).cpu())
            if "text_motion" in self.evaluators:
                model = self.evaluators["text_motion"]
                out.setdefault("motion_embeddings", []).append(model.embed_motions([s["motion"] for s in batch]).cpu())
                out.setdefault("motion_text_embeddings", []).append(model.encode_text(embeddings, mask).cpu())
        return {key: torch.cat(value).double().numpy() for key, value in out.items()}


STILL_CAMERA = ("TransErr (still camera)", "RotErr (still camera)")
"""Not the paper's columns: the TransErr / RotErr a motionless camera scores against the same head paths, the level
below which a video shows that it follows the head (`still_camera_alignment`)."""


def replication_metrics(samples: list[dict], features: dict, reference: dict, hand_detector) -> dict[str, float]:
    """The table's metrics for one replication's samples (module docstring)."""
    metrics: dict[str, float] = {}
    if "video_features" in features:
        metrics["I-FID"] = fid(features["frame_features"], reference["frame_features"])
        metrics["FVD"] = fid(features["video_features"], reference["video_features"])
        metrics["CLIP-SIM"] = float(
            100 * (features["video_embeddings"] * features["video_text_embeddings"]).sum(-1).mean()
        )
    if "motion_embeddings" in features:
        metrics["M-FID"] = fid(features["motion_embeddings"], reference["motion_embeddings"])
        if len(samples) >= 32:
            top = r_precision(features["motion_embeddings"], features["motion_text_embeddings"])
            metrics.update({f"R-Prec@{k + 1}": float(v) for k, v in enumerate(top)})
        metrics["MM-Dist"] = mm_dist(features["motion_embeddings"], features["motion_text_embeddings"])
    consistency = [
        clip_consistency(s["frames"], s["motion"], s["camera_to_world"], s["intrinsics"], hand_detector)
        for s in samples
    ]
    metrics["TransErr"] = float(np.mean([c["trans_err"] for c in consistency]))
    metrics["RotErr"] = float(np.mean([c["rot_err"] for c in consistency]))
    still = [still_camera_alignment(s["camera_to_world"]) for s in samples]
    metrics[STILL_CAMERA[0]] = float(np.mean([c["trans_err"] for c in still]))
    metrics[STILL_CAMERA[1]] = float(np.mean([c["rot_err"] for c in still]))
    if hand_detector is not None:
        metrics["HandScore"] = binary_f1(
            np.concatenate([c["video_hands"] for c in consistency]),
            np.concatenate([c["motion_hands"] for c in consistency]),
        )
    return metrics


def summarize(replications: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    """Mean and standard deviation (ddof 0) of each metric over replications."""
    keys = [k for k in (*COLUMNS, *STILL_CAMERA, *ALIGNMENT_KEYS) if k in replications[0]]
    return {
        k: {"mean": float(np.mean([r[k] for r in replications])), "std": float(np.std([r[k] for r in replications]))}
        for k in keys
    }


def results_markdown(name: str, summary: dict, settings: dict) -> str:
    alignment = alignment_table({name: summary})
    lines = [
        f"# EgoTwin evaluation: {name}",
        "",
        *metrics_table({name: summary}),
        "",
        "mean ± std over replications. " + ", ".join(f"{k}: {v}" for k, v in settings.items()) + ".",
        "",
        *(
            [
                f"A camera that does not move, against the same head paths: TransErr "
                f"{summary[STILL_CAMERA[0]]['mean']:.3f}, RotErr {summary[STILL_CAMERA[1]]['mean']:.3f} (a video "
                "follows the head only where its own errors are below these).",
                "",
            ]
            if STILL_CAMERA[0] in summary
            else []
        ),
        *([*alignment, "", ALIGNMENT_NOTE, ""] if alignment else []),
        "I-FID / FVD: Frechet distances in the feature space of the EgoWorld-trained video evaluator (frame / clip "
        "features), not Inception / I3D. CLIP-SIM: 100 x cosine of the EgoWorld video-text evaluator's embeddings "
        "(replaces CLIP). M-FID, R-Precision (32-pair batches), MM-Dist: EgoWorld text-motion evaluator, L2-normalised "
        "embeddings. TransErr (m) / RotErr (rad): summed over the clip's frames after Sim(3) alignment of the "
        "visual-odometry path to the motion's head camera, averaged over clips. "
        "HandScore: F1 of detected vs. in-view hands.",
    ]
    return "\n".join(lines) + "\n"


def exact_alignment(data: str, records: list[dict], args: EvalConfig):
    """A `ClipSetAlignment` of the evaluated clips, or None (with a message) for data without apartment seeds."""
    from egotwin.eval.alignment import ClipSetAlignment
    from egotwin.world.replay import NotEgoWorldError

    try:
        return ClipSetAlignment(data, records, alignment_config(args))
    except NotEgoWorldError as error:
        print(f"exact viewpoint alignment skipped: {error}. It needs EgoWorld clips, whose apartments can be rebuilt.")
        return None


def format_value(value) -> str:
    """A metric for the log line: numbers to 4 decimals, lists (per-second read-outs) element by element."""
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join("-" if v is None else f"{v:.4f}" for v in value) + "]"
    return f"{value:.4f}"


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    out_dir = Path(args.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    dataset = ClipDataset(args.data_root, split=args.split)
    indices = clip_subset(dataset, args.num_samples)
    items = [dataset[i] for i in indices]
    captions = [item["caption"] for item in items]

    evaluators = load_evaluators(args.evaluators, args.device) if args.evaluators else {}
    hand_detector = evaluators.pop("hands", None)
    text_encoder = (
        TextEncoder.load(next(iter(evaluators.values())).config.text_encoder).to(args.device) if evaluators else None
    )
    extract = FeatureExtractor(evaluators, text_encoder, args.device, args.batch_size)
    reference: dict = {}
    if evaluators:
        reference_set = ClipDataset(args.data_root, split=args.reference_split)
        reference_items = [reference_set[i] for i in range(len(reference_set))]
        reference = extract([ground_truth_sample(i) for i in reference_items], [i["caption"] for i in reference_items])

    pipe = None
    video_vae = load_pretrained_video_vae(args.video_vae).to(args.device) if args.video_vae else None
    if not args.ground_truth:
        from egotwin.pipelines import EgoTwinPipeline

        pipe = EgoTwinPipeline.from_pretrained(args.checkpoint).to(args.device)
        pipe.set_progress_bar_config(disable=True)

    def checkpoints(value, name):  # a flag left unset takes the checkpoint's value
        return value if pipe is None or value is not None else pipe.config[name]

    scales = GuidanceScales(
        text=checkpoints(args.guidance_scale, "guidance_scale"),
        motion=args.motion_guidance_scale,
        video=args.video_guidance_scale,
        video_text=checkpoints(args.video_text_guidance_scale, "video_text_guidance_scale"),
    )
    alignment = (
        None if args.no_alignment else exact_alignment(args.data_root, [dataset.records[i] for i in indices], args)
    )
    # renders of the scored head paths go through the VAE that decoded the video (none for the clips' own videos)
    alignment_vae = pipe.vae if pipe is not None else video_vae
    rig = pipe.rig if pipe is not None else HeadCameraRig()
    replications, started = [], time.perf_counter()
    for r in range(args.replications if not args.ground_truth else 1):
        if args.ground_truth:
            samples = [ground_truth_sample(item, video_vae) for item in items]
        else:
            samples = [
                generate_sample(
                    pipe,
                    item,
                    args.mode,
                    torch.Generator().manual_seed(args.seed * 1_000_003 + r * 10_007 + i),
                    args.num_inference_steps,
                    scales,
                    args.motion_lead,
                )
                for i, item in zip(indices, items)
            ]
        metrics = replication_metrics(samples, extract(samples, captions), reference, hand_detector)
        if alignment is not None:
            metrics.update(alignment(samples, alignment_vae, rig))
        replications.append(metrics)
        print(f"replication {r}: " + ", ".join(f"{k} {format_value(v)}" for k, v in metrics.items()), flush=True)

    name = f"{Path(args.checkpoint).name} ({args.mode})" if not args.ground_truth else "ground truth"
    if args.video_vae:
        name += f" through the video VAE {args.video_vae}"
    settings = {
        "data_root": str(args.data_root),
        "split": args.split,
        "reference_split": args.reference_split,
        "num_samples": len(items),
        "replications": len(replications),
        "seed": args.seed,
        "batch_size": args.batch_size,
        "num_inference_steps": None if args.ground_truth else args.num_inference_steps,
        "mode": None if args.ground_truth else args.mode,
        "guidance (text, motion, video)": None if args.ground_truth else [scales.text, scales.motion, scales.video],
        "video text guidance": None if args.ground_truth or args.mode == "tv2m" else scales.text_for_video,
        "motion_lead": None
        if args.ground_truth or args.mode != "t2vm"
        else pipe.motion_lead_for("t2vm", args.motion_lead),
        "checkpoint": args.checkpoint,
        "video_vae": args.video_vae,
        "evaluators": args.evaluators,
        "device": args.device,
        "alignment": (
            None if alignment is None else {**asdict(alignment_config(args)), "video_vae": alignment_vae is not None}
        ),
        "seconds": round(time.perf_counter() - started, 1),
    }
    if alignment is not None:
        alignment.close()
    summary = summarize(replications)
    results = {"name": name, "settings": settings, "summary": summary, "replications": replications}
    (out_dir / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    (out_dir / "results.md").write_text(results_markdown(name, summary, settings))
    print((out_dir / "results.md").read_text())
    return results


if __name__ == "__main__":
    main()

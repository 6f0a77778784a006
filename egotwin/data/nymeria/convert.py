"""Nymeria sequences -> EgoTwin clips (docs/clip_format.md; how and why in docs/nymeria.md).

Per sequence: read the body (XSens, retargeted; or NymeriaPlus SMPL), the head trajectory, the narrations and the
clock; take the body every 15th 240 Hz frame (16 fps) over the time both the body and the trajectory cover (less 1 s
at each end); calibrate head -> device once; cut 5 s clips one after another; place each clip's body on the SLAM
head; check it; write it. Every clip not written is counted under its reason in `report.json`, every sequence that
cannot be converted is listed there with the error, and the other sequences go on.
"""

from __future__ import annotations

import json
import multiprocessing
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from egotwin.body.skeleton import FOOT_JOINTS, HEAD
from egotwin.config import positional
from egotwin.data.clip_format import hash_split, write_video
from egotwin.data.constants import CLIP_SECONDS, MOTION_FPS, NUM_MOTION_FRAMES, NUM_VIDEO_FRAMES
from egotwin.data.nymeria import alignment, files
from egotwin.data.nymeria.files import NARRATION_LEVELS, Narration, NymeriaFormatError, sentence
from egotwin.data.nymeria.retarget import retarget_xsens
from egotwin.motion.motion import Motion

JOURNAL_NAME = "progress.jsonl"
REPORT_NAME = "report.json"
STRIDE = 15
"""XSens frames per motion frame: 240 Hz / 16 fps."""


@dataclass(frozen=True)
class NymeriaConfig:
    """Convert Nymeria sequence folders into EgoTwin clips (docs/nymeria.md)."""

    sequences: tuple[str, ...] = positional(default=())
    """Sequence folders (<date>_<session>_<name>_<act>_<uid>), as Nymeria's download.py lays them out."""
    output_dir: str = ""
    """Clip folder to write (metadata.jsonl, train/ val/ test/, report.json); a rerun resumes it."""
    workers: int = 1
    """Sequences converted in parallel processes."""
    size: int = 480
    """Side of the square pinhole video, pixels."""
    motion_only: bool = False
    """Motion + caption clips without video.mp4 / cameras.npz (stages 1 and 2); needs no data.vrs."""
    timecode_offset_us: int | None = None
    """TIME_CODE minus head device time, microseconds, when known; otherwise the clock comes from the head VRS
    (data.vrs, or motion.vrs), which needs the 'nymeria' extra."""
    body: str = "xsens"
    """'xsens' (body/xdata.npz, retargeted) or 'smpl' (NymeriaPlus body/xdata_smpl_neutral.npz; needs smpl_model)."""
    smpl_model: str = ""
    """SMPL model file (SMPL_NEUTRAL.pkl or .npz; licensed, not shipped) for --body smpl: the rest joints of the fits'
    betas."""
    caption_level: str = "atomic_action"
    """Narration file the caption comes from: atomic_action, motion_narration or activity_summarization."""
    min_caption_overlap_s: float = 0.5
    """A narration row goes into a clip's caption when it overlaps the clip by at least this long."""
    clip_stride_s: float = 5.0
    """Start-to-start distance of consecutive clips (5: back to back)."""
    trim_s: float = 1.0
    """Left out at both ends of the time the body and the trajectory cover (as Nymeria's own loader does)."""
    min_quality_score: float = 0.5
    """Clips where the trajectory's quality_score falls below this are dropped."""
    max_trajectory_gap_ms: float = 50.0
    """A clip frame between two trajectory samples further apart than this has no trajectory."""
    narration_tolerance_s: float = 30.0
    """Narrations starting further than this outside the head recording mean a wrong narration clock: the sequence is
    skipped."""
    max_residual_m: float = 0.10
    """Clips whose retargeted head, carried to the device by the calibrated offset, misses the SLAM device by more
    than this (at any frame) are dropped."""
    min_rgb_fps: float = 25.0
    """Sequences with a slower RGB stream (32 Nymeria sequences record 15 fps) are skipped for video clips."""
    val_fraction: float = 0.05
    test_fraction: float = 0.05

    def __post_init__(self) -> None:
        if self.body not in ("xsens", "smpl"):
            raise ValueError(f"body must be 'xsens' or 'smpl', got {self.body!r}")
        if self.caption_level not in NARRATION_LEVELS:
            raise ValueError(f"caption_level must be one of {NARRATION_LEVELS}, got {self.caption_level!r}")
        if self.size < 16 or self.workers < 1 or self.clip_stride_s <= 0:
            raise ValueError("size must be >= 16, workers >= 1 and clip_stride_s > 0")

    def settings(self) -> dict:
        """What decides the clips' contents (a resumed run must use the same): all fields but the inputs and
        the number of workers."""
        return {k: v for k, v in asdict(self).items() if k not in ("sequences", "output_dir", "workers")}


class SequenceSkip(Exception):
    """A sequence that is readable but cannot give clips; `reason` is its key in the report."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


def split_of(participant: str, config: NymeriaConfig) -> str:
    """train / val / test from a hash of the participant: a participant's clips all land in one split."""
    return hash_split(participant, config.val_fraction, config.test_fraction)


def overlapping(rows: list[Narration], start_s: float, end_s: float, min_overlap_s: float) -> list[Narration]:
    """Rows overlapping [start, end] by at least `min_overlap_s` (or covering all of a shorter row), in time order."""
    return [
        r
        for r in rows
        if min(r.end_s, end_s) - max(r.start_s, start_s) >= min(min_overlap_s, r.end_s - r.start_s)
        and r.end_s > start_s
        and r.start_s < end_s
    ]


def caption_of(rows: list[Narration]) -> str:
    """Texts of the rows in time order, each a sentence, repeated sentences once, joined by spaces."""
    out: list[str] = []
    for text in (sentence(r.text) for r in rows):
        if text and text not in out:
            out.append(text)
    return " ".join(out)


# ---------------------------------------------------------------------------------------------- bodies
@dataclass
class Body:
    """The body at 16 fps over the whole sequence: motion in its own Y-up world, TIME_CODE stamps, broken frames."""

    motion: Motion
    timecode_us: np.ndarray
    """(K,) TIME_CODE of each motion frame."""
    source_frame: np.ndarray
    """(K,) index of each motion frame in the body file."""
    broken: np.ndarray
    """(K,) bool: a broken body-file frame lies in (frame k - 1, frame k]."""
    rest_clearance: float
    """Height of the lowest foot joint above the floor in the rest pose."""


def xsens_body(folder: Path) -> Body:
    """The XSens body (body/xdata.npz) retargeted at every 15th frame (16 fps)."""
    xsens = files.read_xdata(folder / files.XDATA)
    step = round(xsens.fps / MOTION_FPS)
    if abs(xsens.fps / step - MOTION_FPS) > 1e-6:
        raise NymeriaFormatError(f"{folder / files.XDATA}: frame rate {xsens.fps} Hz is not a multiple of {MOTION_FPS}")
    frames = np.arange(0, xsens.num_frames, step)
    motion = retarget_xsens(xsens, frames, MOTION_FPS)
    # motion frame k is broken when a broken 240 Hz frame lies in (frames[k - 1], frames[k]]
    broken = np.add.reduceat(xsens.broken.astype(int), np.maximum(frames - step + 1, 0)) > 0
    clearance = float(motion.rest_joints[list(FOOT_JOINTS), 1].min())
    return Body(motion, xsens.timestamps_us[frames], frames, broken, clearance)


def smpl_body(folder: Path, smpl_model: str) -> Body:
    """NymeriaPlus SMPL fits resampled to 16 fps; the rest joints from the SMPL model at the fits' betas."""
    from egotwin.data.nymeria.smpl import smpl_rest

    fits = files.read_smpl(folder / files.SMPL_NPZ)
    if not smpl_model:
        raise ValueError("--body smpl needs --smpl_model (your SMPL_NEUTRAL model file; it is not shipped)")
    rest, lift, clearance = smpl_rest(smpl_model, fits.betas)
    fps = 1e6 * (len(fits.timestamps_us) - 1) / float(fits.timestamps_us[-1] - fits.timestamps_us[0])

    def as_tensor(x):
        return torch.from_numpy(np.ascontiguousarray(x))

    # the fits are stored Y-up (Nymeria's SMPL loader turns them Z-up with R = [[1,0,0],[0,0,-1],[0,1,0]]), and our
    # Z-up -> Y-up rotation is the inverse of that R: the parameters are already in our world's axes
    motion = Motion.from_axis_angle(
        as_tensor(fits.transl - [0.0, lift, 0.0]),
        as_tensor(fits.global_orient),
        as_tensor(fits.body_pose[:, :63]),
        rest_joints=as_tensor(rest),
        fps=fps,
    ).resample(MOTION_FPS)
    timecode = fits.timestamps_us[0] + np.arange(motion.num_frames) * (1e6 / MOTION_FPS)
    source = np.round((timecode - fits.timestamps_us[0]) * fps / 1e6).astype(np.int64)
    return Body(motion, timecode, source, np.zeros(motion.num_frames, bool), clearance)


# -------------------------------------------------------------------------------------------- sequences
@dataclass
class SequenceResult:
    """What converting one sequence gave: clip records, dropped clips by reason, or the error that stopped it."""

    name: str
    records: list[dict] = field(default_factory=list)
    dropped: dict[str, int] = field(default_factory=dict)
    error: str | None = None
    reason: str | None = None


def _clock(folder: Path, config: NymeriaConfig, timecode_us: np.ndarray, recording) -> tuple[alignment.Clock, str]:
    if config.timecode_offset_us is not None:
        return alignment.Clock.from_offset(config.timecode_offset_us), "timecode_offset_us"
    if recording is not None:
        return alignment.clock_from_recording(recording, timecode_us), "the given recording"
    for name in (files.DATA_VRS, files.MOTION_VRS):
        if (folder / name).is_file():
            from egotwin.data.nymeria.aria import HeadRecording

            return alignment.clock_from_recording(HeadRecording(folder / name), timecode_us), name
    raise SequenceSkip(
        "no_clock",
        f"{folder}: no {files.DATA_VRS} or {files.MOTION_VRS} to link TIME_CODE to device "
        "time, and no --timecode_offset_us",
    )


def _narrations(folder: Path, config: NymeriaConfig) -> dict[str, list[Narration]]:
    levels = {}
    for level in NARRATION_LEVELS:
        path = folder / "narration" / f"{level}.csv"
        if path.is_file():
            levels[level] = files.read_narrations(path)
    if config.caption_level not in levels:
        raise SequenceSkip("no_narration_file", f"{folder}: missing narration/{config.caption_level}.csv")
    return levels


def _check_narration_clock(levels: dict[str, list[Narration]], start_us: float, end_us: float, config, folder) -> None:
    starts = np.array([r.start_s for rows in levels.values() for r in rows]) * 1e6
    tolerance = config.narration_tolerance_s * 1e6
    outside = (starts < start_us - tolerance) | (starts > end_us + tolerance)
    if outside.any():
        raise SequenceSkip(
            "narration_clock_offset",
            f"{folder}/narration: {outside.sum()} of {len(starts)} narrations start more than "
            f"{config.narration_tolerance_s:g} s outside the head recording "
            f"({start_us / 1e6:.1f}-{end_us / 1e6:.1f} s)",
        )


def head_poses(motion: Motion) -> np.ndarray:
    """(K, 4, 4) world poses of the head joint."""
    rotations, joints = motion.forward_kinematics()
    poses = np.tile(np.eye(4), (motion.num_frames, 1, 1))
    poses[:, :3, :3], poses[:, :3, 3] = rotations[:, HEAD].double().numpy(), joints[:, HEAD].double().numpy()
    return poses


def convert_sequence(
    folder: str | Path, output_dir: str | Path, config: NymeriaConfig, recording=None
) -> SequenceResult:
    """Convert one sequence folder; never raises for a bad sequence (the result carries the error), only for a
    missing optional dependency. `recording` replaces the head `data.vrs` reader (`aria.HeadRecording`): any object
    with its four methods, such as `fixtures.SyntheticRecording`."""
    folder = Path(folder)
    result = SequenceResult(folder.name)
    try:
        _convert(folder, Path(output_dir), config, result, recording)
    except SequenceSkip as skip:
        result.error, result.reason = str(skip), skip.reason
    except (NymeriaFormatError, ValueError, FileNotFoundError) as error:
        result.error, result.reason = str(error), "unreadable"
    return result


def _convert(folder: Path, output_dir: Path, config: NymeriaConfig, result: SequenceResult, recording) -> None:
    # 1. Files, clock, narrations
    files.check_sequence_folder(folder, need_video=not config.motion_only and recording is None, body=config.body)
    info = files.read_sequence_info(folder)
    body = xsens_body(folder) if config.body == "xsens" else smpl_body(folder, config.smpl_model)
    trajectory = files.read_trajectory(folder / files.TRAJECTORY)
    levels = _narrations(folder, config)
    clock, clock_source = _clock(folder, config, body.timecode_us, recording)
    camera = None
    if config.motion_only:
        recording = None
    else:
        from egotwin.data.nymeria.aria import HeadRecording, pinhole_camera

        recording = HeadRecording(folder / files.DATA_VRS) if recording is None else recording
        if recording.rgb_rate_hz() < config.min_rgb_fps:
            raise SequenceSkip("slow_rgb", f"{folder / files.DATA_VRS}: RGB at {recording.rgb_rate_hz():g} fps")
        camera = pinhole_camera(recording.rgb_calibration(), config.size)

    # 2. The time both body and trajectory cover, less trim_s at each end
    device_us = clock.to_device(body.timecode_us)
    start = max(device_us[0], trajectory.timestamps_us[0]) + config.trim_s * 1e6
    end = min(device_us[-1], trajectory.timestamps_us[-1]) - config.trim_s * 1e6
    if end - start < CLIP_SECONDS * 1e6:
        raise SequenceSkip(
            "clocks_do_not_overlap",
            f"{folder}: the body ({device_us[0] / 1e6:.1f}-{device_us[-1] / 1e6:.1f} s device time, clock from "
            f"{clock_source}) and {files.TRAJECTORY} ({trajectory.timestamps_us[0] / 1e6:.1f}-"
            f"{trajectory.timestamps_us[-1] / 1e6:.1f} s) share less than one clip",
        )
    _check_narration_clock(levels, trajectory.timestamps_us[0], trajectory.timestamps_us[-1], config, folder)

    # 3. Head -> device, once per sequence
    devices, valid = alignment.device_poses(trajectory, device_us, config.max_trajectory_gap_ms * 1e3)
    heads = head_poses(body.motion)
    inside = valid & (device_us >= start) & (device_us <= end)
    try:
        head_to_device = alignment.solve_hand_eye(heads[inside], devices[inside], gap=int(MOTION_FPS // 2))
    except ValueError as error:
        raise SequenceSkip("hand_eye_degenerate", f"{folder}: {error}") from error

    # 4. Clips
    first = int(np.searchsorted(device_us, start))
    step = max(1, round(config.clip_stride_s * MOTION_FPS))
    dropped: Counter = Counter()
    for k0 in range(first, len(device_us) - NUM_MOTION_FRAMES + 1, step):
        span = slice(k0, k0 + NUM_MOTION_FRAMES)
        if device_us[span][-1] > end:
            break
        reason, record = _clip(
            folder,
            output_dir,
            config,
            info,
            body,
            trajectory,
            levels,
            recording,
            camera,
            head_to_device,
            devices[span],
            valid[span],
            device_us[span],
            clock,
            k0,
        )
        if reason:
            dropped[reason] += 1
        else:
            result.records.append(record)
    result.dropped = dict(dropped)


def _clip(
    folder,
    output_dir,
    config,
    info,
    body,
    trajectory,
    levels,
    recording,
    camera,
    head_to_device,
    devices,
    valid,
    device_us,
    clock,
    k0,
) -> tuple[str | None, dict | None]:
    """Check and write one clip starting at motion frame k0; returns (the reason it was dropped, None) or
    (None, its record)."""
    if body.broken[k0 : k0 + NUM_MOTION_FRAMES].any():
        return "broken_body_frames", None
    if not valid.all():
        return "missing_trajectory", None
    quality = alignment.min_quality(trajectory, device_us[0], device_us[-1])
    if quality < config.min_quality_score:
        return "low_quality_score", None
    start_s, end_s = device_us[0] / 1e6, device_us[-1] / 1e6
    texts = {level: overlapping(rows, start_s, end_s, config.min_caption_overlap_s) for level, rows in levels.items()}
    caption = caption_of(texts[config.caption_level])
    if not caption:
        return "no_caption", None

    # the body placed on the SLAM head for this clip, then the floor at y = 0 (for the body and the cameras alike)
    motion = body.motion.slice(k0, k0 + NUM_MOTION_FRAMES)
    fit = alignment.align_clip(head_poses(motion) @ head_to_device, devices)
    if fit.residual_m.max() > config.max_residual_m:
        return "large_residual", None
    motion = motion.transformed(torch.from_numpy(fit.transform))
    floor = alignment.floor_height(motion.joints()[:, list(FOOT_JOINTS), 1].double().numpy(), body.rest_clearance)
    to_floor = alignment.rigid(np.eye(3), np.array([0.0, -floor, 0.0]))
    motion = motion.transformed(torch.from_numpy(to_floor))

    video = None
    if not config.motion_only:
        video = _read_video(recording, camera, trajectory, device_us[::2], motion, floor, config)
        if isinstance(video, str):
            return video, None

    clip_id = f"{info.uid}_{k0:06d}"
    split = split_of(info.participant, config)
    clip_dir = output_dir / split / clip_id
    clip_dir.mkdir(parents=True, exist_ok=True)
    motion.save_npz(clip_dir / "motion.npz")
    (clip_dir / "caption.txt").write_text(caption + "\n")
    record = {
        "clip_id": clip_id,
        "split": split,
        "path": f"{split}/{clip_id}",
        "source": "nymeria",
        "video": video is not None,
        "sequence": info.name,
        "sequence_uid": info.uid,
        "participant": info.participant,
        "location": info.location,
        "body": config.body,
        "caption": caption,
        "caption_level": config.caption_level,
        "narrations": {level: [r.text for r in rows] for level, rows in texts.items()},
        "start_device_us": round(device_us[0]),
        "start_timecode_us": round(body.timecode_us[k0]),
        "first_body_frame": int(body.source_frame[k0]),
        "body_frame_stride": int(body.source_frame[1] - body.source_frame[0]),
        "duration_s": float(CLIP_SECONDS),
        "min_quality_score": None if np.isnan(quality) else quality,
        "residual_head_mean_m": float(fit.residual_m.mean()),
        "residual_head_max_m": float(fit.residual_m.max()),
        "residual_head_mean_deg": float(fit.residual_deg.mean()),
        "floor_height_m": floor,
        "num_frames": NUM_VIDEO_FRAMES,
    }
    if video is not None:
        frames, cameras, hands, offset_ms = video
        write_video(clip_dir / "video.mp4", frames)
        np.savez(
            clip_dir / "cameras.npz",
            camera_to_world=cameras,
            intrinsics=camera.intrinsics,
            width=np.int64(config.size),
            height=np.int64(config.size),
            hand_visible=hands,
        )
        record.update(width=config.size, height=config.size, max_capture_offset_ms=offset_ms)
    return None, record


def _read_video(recording, camera, trajectory, times_us, motion, floor, config):
    """For video frame times (41,): the RGB frames closest to them, undistorted (41, size, size, 3), the camera poses
    (41, 4, 4) at each frame's own capture time (floor at y = 0), the hands in view (41, 2) and the largest capture
    offset in ms; or "missing_trajectory" when a capture time has no pose."""
    from egotwin.data.nymeria.aria import undistort

    frames, captured = [], []
    for t in times_us:
        image, capture_us = recording.rgb_frame(t)
        frames.append(undistort(camera, image))
        captured.append(capture_us)
    captured = np.array(captured)
    devices, valid = alignment.device_poses(trajectory, captured, config.max_trajectory_gap_ms * 1e3)
    if not valid.all():
        return "missing_trajectory"
    cameras = devices @ camera.device_to_camera
    cameras[:, 1, 3] -= floor
    hands = hands_in_view(motion, cameras, camera.intrinsics, config.size)
    return np.stack(frames), cameras, hands, float(np.abs(captured - times_us).max() / 1e3)


def hands_in_view(motion: Motion, cameras: np.ndarray, intrinsics: np.ndarray, size: int) -> np.ndarray:
    """(41, 2) bool: the left and right wrist joints of the motion (81 frames) project inside the image, in front of
    the camera, at the video frames (a joint test, coarser than EgoWorld's vertex test; docs/nymeria.md)."""
    from egotwin.body.head_camera import project
    from egotwin.body.skeleton import LEFT_WRIST, RIGHT_WRIST

    wrists = motion.joints()[::2][:, [LEFT_WRIST, RIGHT_WRIST]].double()
    pixels, depth = project(wrists, torch.from_numpy(cameras), torch.from_numpy(intrinsics).double())
    return ((pixels >= 0).all(-1) & (pixels <= size).all(-1) & (depth > 0)).numpy()


# ----------------------------------------------------------------------------------------------- runs
def _read_journal(path: Path, config: NymeriaConfig) -> dict[str, dict]:
    """Finished sequences (name -> result) of an earlier run into the same folder with the same settings."""
    if not path.exists():
        return {}
    lines = path.read_text().splitlines()
    if not lines:
        return {}
    if json.loads(lines[0]) != {"settings": json.loads(json.dumps(config.settings()))}:
        raise ValueError(f"{path.parent} was converted with other settings ({lines[0]}); use another --output_dir")
    done = {}
    for line in lines[1:]:
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:  # the last line of a killed run may be cut short: that sequence is redone
            continue
        done[entry["name"]] = entry
    return done


def _convert_job(job: tuple[str, str, NymeriaConfig]) -> dict:
    return asdict(convert_sequence(*job))


def _pool_worker(job: tuple[str, str, NymeriaConfig]) -> dict:
    # one torch thread per pool worker (the workers fill the cores); never set in the caller's own process, whose
    # thread count is the caller's business (a changed count changes float sums elsewhere)
    torch.set_num_threads(1)
    return _convert_job(job)


def write_report(output_dir: Path, results: list[dict]) -> dict:
    """`report.json`: clips written and dropped (by reason), sequences skipped (by reason, with the errors), and the
    head residual over the written clips."""
    dropped: Counter = Counter()
    for r in results:
        dropped.update(r["dropped"])
    residuals = np.array([rec["residual_head_max_m"] for r in results for rec in r["records"]])
    report = {
        "clips_written": sum(len(r["records"]) for r in results),
        "clips_dropped": dict(sorted(dropped.items())),
        "sequences_converted": sum(r["error"] is None for r in results),
        "sequences_skipped": dict(sorted(Counter(r["reason"] for r in results if r["error"]).items())),
        "errors": {r["name"]: r["error"] for r in results if r["error"]},
        "clips_per_sequence": {r["name"]: len(r["records"]) for r in results},
        "residual_head_max_m": {
            "median": float(np.median(residuals)),
            "p95": float(np.percentile(residuals, 95)),
            "max": float(residuals.max()),
        }
        if len(residuals)
        else None,
    }
    (output_dir / REPORT_NAME).write_text(json.dumps(report, indent=2) + "\n")
    return report


def convert(config: NymeriaConfig, progress: bool = True) -> dict:
    """Convert `config.sequences` into `config.output_dir` (resuming an earlier run); returns the report.
    metadata.jsonl lists every clip converted into the folder so far, in sequence-name order."""
    if not config.output_dir:
        raise ValueError("output_dir is not set")
    if not config.sequences:
        raise ValueError("no sequence folders given")
    root = Path(config.output_dir)
    root.mkdir(parents=True, exist_ok=True)
    journal_path = root / JOURNAL_NAME
    done = _read_journal(journal_path, config)
    names = [Path(s).name for s in config.sequences]
    if len(set(names)) != len(names):
        raise ValueError(f"sequence folder names must be unique, got {names}")
    todo = [s for s in config.sequences if Path(s).name not in done or done[Path(s).name]["error"]]
    bar = tqdm(
        total=len(config.sequences),
        initial=len(config.sequences) - len(todo),
        desc="sequences",
        unit="seq",
        disable=not progress,
    )
    with open(journal_path, "a") as journal:
        if journal.tell() == 0:
            journal.write(json.dumps({"settings": config.settings()}) + "\n")
        elif not journal_path.read_bytes().endswith(b"\n"):
            journal.write("\n")

        def finish(result: dict) -> None:
            done[result["name"]] = result
            journal.write(json.dumps(result) + "\n")
            journal.flush()
            bar.update(1)
            bar.set_postfix(clips=sum(len(r["records"]) for r in done.values()))

        jobs = [(s, str(root), config) for s in todo]
        if config.workers == 1:
            for job in jobs:
                finish(_convert_job(job))
        elif jobs:
            context = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(config.workers, mp_context=context) as pool:
                for result in pool.map(_pool_worker, jobs):
                    finish(result)
    bar.close()
    results = [done[name] for name in sorted(done)]
    with open(root / "metadata.jsonl", "w") as f:
        for result in results:
            f.writelines(json.dumps(record, sort_keys=True) + "\n" for record in result["records"])
    return write_report(root, results)

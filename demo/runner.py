"""What a click on Generate or Continue does, without Gradio: check the inputs, sample with the pipeline, render and
export the clip, measure its viewpoint alignment. `demo/ui.py` wires this to the page; tests call it directly.

Progress is reported through a plain callable `progress(fraction, desc=...)`, which `gr.Progress` is.
"""

from __future__ import annotations

import logging
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from demo.domain import DomainCheck, DomainChecker
from demo.head_view import HeadViewPanel, example_sources, frame_key, head_view_panel
from demo.inputs import (
    InputError,
    check_prompt,
    check_seed,
    load_driving_motion,
    load_image,
    load_initial_pose,
    load_video,
    random_seed,
)
from demo.session import Session
from egotwin.data.constants import MODES
from egotwin.diffusion.guidance import GuidanceScales
from egotwin.motion import Motion
from egotwin.pipelines import EgoTwinPipeline, EgoTwinPipelineOutput, check_motion_lead
from egotwin.render import export_all, render_body_view

try:  # the viewpoint-alignment figures are optional: the demo runs without the evaluation package
    from egotwin.eval import viewpoint_alignment
    from egotwin.eval.consistency import still_camera_alignment
except ImportError:
    viewpoint_alignment = still_camera_alignment = None

try:  # Hugging Face ZeroGPU Spaces: the GPU is attached only while a decorated function runs
    import spaces

    _on_gpu = spaces.GPU(duration=120)
except ImportError:

    def _on_gpu(fn: Callable) -> Callable:
        return fn


logger = logging.getLogger(__name__)

SAMPLING_SHARE = 0.8
"""Share of the progress bar given to sampling; rendering and exports take the rest."""
MAX_CLIPS = 6
"""Clips that Continue may join (30 s): rendering and exporting grow with the whole clip, inside the one queue slot."""
Progress = Callable[..., object]


@dataclass(frozen=True)
class SamplingSettings:
    """The 'advanced' settings of a run."""

    seed: int | None = None
    """None draws a fresh seed (reported back in the result)."""
    num_inference_steps: int = 50
    guidance_scale: float = GuidanceScales.text
    motion_guidance_scale: float = GuidanceScales.motion
    video_guidance_scale: float = GuidanceScales.video
    motion_lead: float | None = None
    """T2VM: how far the motion's denoising runs ahead of the video's (0 = the paper's joint sampling); None = the
    checkpoint's own (`pipe.config.motion_lead`). The other modes generate one modality and ignore it."""


@dataclass(frozen=True)
class GenerationRequest:
    """Everything the page sends for one Generate click; files are paths on the server."""

    mode: str
    prompt: str
    image: str | None = None
    """Start frame (t2vm, tm2v)."""
    pose_preset: str | None = "standing"
    pose_file: str | None = None
    """Initial-pose motion file (.npz / .bvh, frame 0 used); overrides the preset (t2vm, tv2m)."""
    motion_file: str | None = None
    """Driving motion (tm2v)."""
    video_file: str | None = None
    """Driving video (tv2m)."""
    settings: SamplingSettings = SamplingSettings()


@dataclass
class DemoResult:
    """A finished run: the clip, its files, its alignment figures and how long it took."""

    output: EgoTwinPipelineOutput
    files: dict[str, Path]
    """export_all's files: side_by_side, egocentric, npz, bvh, glb, cameras."""
    seed: int
    alignment: dict[str, float] | None
    """viewpoint_alignment's figures, None when unavailable."""
    alignment_note: str | None
    """Why there are no figures, when there are none."""
    timings: dict[str, float]
    """Seconds: sample (inputs, text, sampling, decoding), render (exports and alignment), total."""
    modes: list[str] = field(default_factory=list)
    """The mode of each 5 s clip, in order: the first one's, then "t2vm" for each Continue."""
    notes: list[str] = field(default_factory=list)
    """The pipeline's warnings for the user (a prompt longer than the text encoder reads, ...)."""


@_on_gpu
def _sample(pipe: EgoTwinPipeline, call: Callable[..., EgoTwinPipelineOutput], **kwargs) -> EgoTwinPipelineOutput:
    """Run `call` (the pipeline or its continue_from) with `kwargs`; on ZeroGPU Spaces this holds the GPU."""
    return call(**kwargs)


def start_frame(pipeline_kwargs: dict) -> np.ndarray:
    """The start frame of a pipeline call: the image, or the given video's first frame (tv2m)."""
    return pipeline_kwargs["video"][0] if "video" in pipeline_kwargs else pipeline_kwargs["image"]


class DemoRunner:
    """Owns the pipeline and turns requests into results. One sampling runs at a time (the pipeline's schedulers
    hold per-call state), whatever concurrency the UI's queue allows."""

    def __init__(self, pipe: EgoTwinPipeline, render_size: int = 320):
        self.pipe = pipe
        self.render_size = render_size
        self._lock = threading.Lock()
        self.wait = WaitEstimate()
        self.domain = DomainChecker(pipe)
        self._sources: dict[str, dict] | None = None
        pipe.set_progress_bar_config(disable=True)

    @classmethod
    def from_checkpoint(
        cls, folder: str | Path, device: str | None = None, torch_dtype: torch.dtype | None = None, **kwargs
    ) -> DemoRunner:
        """Load a pipeline folder (saved by save_pretrained / training/build_pipeline.py) onto `device`
        (default: CUDA when present) in `torch_dtype` (default float32)."""
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        runner = cls(EgoTwinPipeline.from_pretrained(folder, torch_dtype=torch_dtype).to(device), **kwargs)
        runner.warm_up()
        return runner

    def warm_up(self) -> None:
        """Do at start what the first click would otherwise wait for: load the text encoder and the body (the
        pipeline loads them lazily) and open the offscreen renderer."""
        self.pipe.encode_prompt("warm up")
        intrinsics = self.pipe.rig.intrinsics(self.pipe.width, self.pipe.height)
        render_body_view(Motion.rest(1, self.pipe.body.rest_joints), intrinsics, self.pipe.body, self.render_size)

    # ------------------------------------------------------------------------------------------- inputs
    def pipeline_inputs(self, request: GenerationRequest) -> dict:
        """The pipeline's keyword arguments for a request, every file loaded and checked (InputError otherwise)."""
        if request.mode not in MODES:
            raise InputError(f"Unknown mode '{request.mode}'; choose one of {', '.join(m.upper() for m in MODES)}.")
        kwargs: dict = {"prompt": check_prompt(request.prompt), "mode": request.mode}
        width, height = self.pipe.width, self.pipe.height
        if request.mode in ("t2vm", "tm2v"):
            if not request.image:
                raise InputError(f"{request.mode.upper()} needs a start frame: upload an image or pick an example.")
            kwargs["image"] = load_image(request.image, width, height)
        if request.mode == "tm2v":
            if not request.motion_file:
                raise InputError("TM2V needs a motion: upload a .npz (AMASS / SMPL-X) or .bvh file of at least 5 s.")
            kwargs["motion"] = load_driving_motion(request.motion_file)
        else:
            kwargs["initial_pose"] = load_initial_pose(request.pose_preset, request.pose_file)
        if request.mode == "tv2m":
            if not request.video_file:
                raise InputError(
                    "TV2M needs a video: upload an mp4 of at least 5 s (its first frame is the start frame)."
                )
            kwargs["video"] = load_video(request.video_file, width, height)
        return kwargs

    @staticmethod
    def settings_inputs(settings: SamplingSettings) -> dict:
        """The pipeline's steps, guidance-scale and motion-lead arguments, range-checked (InputError otherwise)."""
        steps = settings.num_inference_steps
        if isinstance(steps, float) and steps.is_integer():
            steps = int(steps)
        if not isinstance(steps, int) or not 1 <= steps <= 200:
            raise InputError(f"The number of steps must be a whole number from 1 to 200, got {steps}.")
        scales = {
            "guidance_scale": settings.guidance_scale,
            "motion_guidance_scale": settings.motion_guidance_scale,
            "video_guidance_scale": settings.video_guidance_scale,
        }
        for name, value in scales.items():
            if value is None or not 0 <= float(value) <= 50:
                raise InputError(f"The {name.replace('_', ' ')} must be between 0 and 50, got {value}.")
        inputs = {"num_inference_steps": steps, **{k: float(v) for k, v in scales.items()}}
        lead = settings.motion_lead
        if lead is not None:
            try:
                inputs["motion_lead"] = check_motion_lead(lead)
            except ValueError:
                raise InputError(f"The motion lead must be at least 0 and below 1, got {lead}.") from None
        return inputs

    # ------------------------------------------------------------------------------------------ running
    def generate(self, session: Session, request: GenerationRequest, progress: Progress | None = None) -> DemoResult:
        """One 5 s clip in the request's mode; it becomes the session's latest result."""
        start = time.perf_counter()
        kwargs = {**self.pipeline_inputs(request), **self.settings_inputs(request.settings)}
        if request.mode != "t2vm":  # one modality is generated: nothing to run ahead of
            kwargs.pop("motion_lead", None)
        check = self.check_start_frame(kwargs)
        notes = [check.note()] if check is not None and check.out_of_domain else []
        modes = [request.mode]
        result = self._run(session, self.pipe.__call__, kwargs, request.settings.seed, progress, start, modes, notes)
        session.start_key = frame_key(start_frame(kwargs))
        return result

    def head_view(self, session: Session) -> HeadViewPanel:
        """The third panel for the session's latest clip: what its generated head would see (demo/head_view.py), when
        its start frame is one of the examples' (their frames are read on the first request, not on a click's path)."""
        if session.last is None or session.run_folder is None:
            raise InputError("Nothing to show yet: generate a clip first.")
        with self._lock:
            if self._sources is None:
                self._sources = example_sources(self.pipe.width, self.pipe.height)
            source = self._sources.get(session.start_key)
            return head_view_panel(self.pipe, session.last, source, session.run_folder)

    def check_start_frame(self, kwargs: dict) -> DomainCheck | None:
        """How EgoWorld-like the start frame (the image, or the video's first frame) is (demo/domain.py); None
        without a reference for this checkpoint."""
        return self.domain.check(start_frame(kwargs))

    def extend(
        self, session: Session, prompt: str, settings: SamplingSettings, progress: Progress | None = None
    ) -> DemoResult:
        """Five more seconds after the session's latest result (pipe.continue_from), joined to it."""
        if session.last is None:
            raise InputError("Nothing to continue yet: generate a clip first.")
        if len(session.modes) >= MAX_CLIPS:
            raise InputError(
                f"This clip is already {len(session.modes)} clips ({5 * len(session.modes)} s) long, the demo's limit; "
                "press Generate to start a new one."
            )
        start = time.perf_counter()
        kwargs = {"previous": session.last, "prompt": check_prompt(prompt), **self.settings_inputs(settings)}
        modes = [*session.modes, "t2vm"]  # continue_from generates both modalities
        return self._run(session, self.pipe.continue_from, kwargs, settings.seed, progress, start, modes)

    def _run(
        self,
        session: Session,
        call: Callable[..., EgoTwinPipelineOutput],
        kwargs: dict,
        seed: int | None,
        progress: Progress | None,
        start: float,
        modes: list[str],
        notes: list[str] | None = None,
    ) -> DemoResult:
        """Sample (`call(**kwargs)`), export and measure; `start` is when the click's work began (perf_counter);
        `modes` are the clips' modes once it is done; `notes` are for the user, with the pipeline's own."""
        if progress is None:  # not `progress or ...`: gr.Progress defines __len__ and is falsy
            progress = _no_progress
        seed = random_seed() if seed is None else check_seed(seed)
        steps = kwargs["num_inference_steps"]
        seconds = 5.0 * len(modes)
        step_times: list[float] = []

        def on_step(pipe: EgoTwinPipeline, index: int, timestep: torch.Tensor, tensors: dict) -> dict:
            step_times.append(time.perf_counter())
            left = self.wait.remaining(steps - index - 1, seconds, step_times)
            progress(
                SAMPLING_SHARE * (index + 1) / steps,
                desc=f"Sampling: step {index + 1} of {steps}{_about(left)}",
            )
            return {}

        notes = list(notes or [])
        # while another visitor's clip is sampled, how long that takes is unknown here: no estimate then
        expected = _about(self.wait.total(steps, seconds))
        progress(0.0, desc="Waiting for the model" if self._lock.locked() else f"Encoding the inputs{expected}")
        with self._lock, warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", UserWarning)
            try:
                output = _sample(
                    self.pipe,
                    call,
                    generator=torch.Generator().manual_seed(seed),
                    callback_on_step_end=on_step,
                    **kwargs,
                )
            except ValueError as error:  # the pipeline's own input checks: the user's to fix
                raise InputError(str(error)) from error
        # the pipeline warns the user through `warnings` (a prompt longer than the text encoder reads, ...)
        notes += [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
        sampled = time.perf_counter()

        progress(
            SAMPLING_SHARE,
            desc=f"Rendering the body view and the exports{_about(self.wait.render_seconds(seconds))}",
        )
        folder = session.new_run_folder()
        files = export_all(
            output.frames,
            output.motion,
            output.camera_to_world,
            output.intrinsics,
            folder,
            caption=" / then: ".join(output.prompts or [output.prompt]),
            mode=" + ".join(modes),
            body=self.pipe.body,
            size=self.render_size,
        )
        alignment, alignment_note = measure_alignment(output)
        session.last, session.modes = output, modes
        done = time.perf_counter()
        progress(1.0, desc="Done")
        timings = {"sample": sampled - start, "render": done - sampled, "total": done - start}
        if len(step_times) >= 2:
            self.wait.update(steps, seconds, step_times, render=done - sampled, overhead=sampled - start)
        files = {k: Path(v) for k, v in files.items()}
        return DemoResult(output, files, seed, alignment, alignment_note, timings, modes, notes)


def _no_progress(*args, **kwargs) -> None:
    """The progress callback when there is none."""


def _about(seconds: float | None) -> str:
    """' (about 6 s left)' for a progress message; '' when there is no estimate yet."""
    return "" if seconds is None else f" (about {max(1, round(seconds))} s left)"


@dataclass
class WaitEstimate:
    """What a click costs on this machine, measured on the runs so far (running means), for the progress messages:
    seconds per sampling step, the time before the first step (inputs, text, decoding), and rendering seconds per
    second of clip. All None until the first run."""

    step: float | None = None
    overhead: float | None = None
    render_per_second: float | None = None

    def render_seconds(self, seconds: float) -> float | None:
        """Expected render time of a clip of `seconds`."""
        return None if self.render_per_second is None else self.render_per_second * seconds

    def total(self, steps: int, seconds: float) -> float | None:
        """Expected seconds of a whole click of `steps` steps on a clip of `seconds`."""
        if self.step is None:
            return None
        return self.overhead + steps * self.step + self.render_seconds(seconds)

    def remaining(self, steps_left: int, seconds: float, step_times: list[float]) -> float | None:
        """Seconds left after a step: this run's own step time once it has one, else the previous runs'."""
        step = (step_times[-1] - step_times[0]) / (len(step_times) - 1) if len(step_times) >= 2 else self.step
        if step is None:
            return None
        return steps_left * step + (self.render_seconds(seconds) or 0.0)

    def update(self, steps: int, seconds: float, step_times: list[float], render: float, overhead: float) -> None:
        """Fold in a finished run (half weight to the newest, so that a busy machine shows within a few runs)."""
        step = (step_times[-1] - step_times[0]) / (len(step_times) - 1)
        overhead -= step * len(step_times)  # sample time = before + steps + decoding; keep what is not steps
        new = {"step": step, "overhead": max(overhead, 0.0), "render_per_second": render / seconds}
        for name, value in new.items():
            old = getattr(self, name)
            setattr(self, name, value if old is None else 0.5 * (old + value))


def measure_alignment(output: EgoTwinPipelineOutput) -> tuple[dict[str, float] | None, str | None]:
    """The clip's viewpoint-alignment figures (camera path estimated from its frames against its head path), or
    None and the reason when they cannot be computed; never raises, since they are extra information."""
    if viewpoint_alignment is None:
        return None, "Viewpoint-alignment figures are unavailable (egotwin.eval.viewpoint_alignment is missing)."
    try:
        figures = viewpoint_alignment(output.frames, output.camera_to_world, output.intrinsics)
    except Exception as error:  # e.g. too few image features to track in a flat generated frame
        logger.info("viewpoint alignment failed: %r", error)
        return None, f"Viewpoint alignment could not be measured for this clip ({error})."
    figures = {k: float(v) for k, v in figures.items() if isinstance(v, (int, float))}
    # the reference: a camera that never moves, scored against the same head path (README, "Evaluation")
    still = still_camera_alignment(output.camera_to_world)
    figures.update({f"still_{k}": float(still[k]) for k in ("trans_err", "rot_err") if k in still})
    return figures, None

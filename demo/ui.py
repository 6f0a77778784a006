"""The Gradio page: inputs on the left (mode, prompt, start frame, initial pose, motion or video, advanced settings),
the generated clip on the right (side-by-side video, animated 3D body, downloads, viewpoint alignment, seed).

Event handlers turn every input problem into a `gr.Error` with the message from `demo/inputs.py` (the server keeps
running), pass a `gr.Progress` to the runner, and keep one `Session` per browser tab in a `gr.State`.
Public API endpoints (gradio_client): `/generate` and `/continue`.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import gradio as gr

from demo.inputs import (
    EXAMPLES_DIR,
    IMAGE_SUFFIXES,
    MAX_PROMPT_CHARS,
    MOTION_SUFFIXES,
    POSE_PRESETS,
    InputError,
    load_image,
)
from demo.runner import DemoResult, DemoRunner, GenerationRequest, SamplingSettings
from demo.session import Session, close_session, prune_cache

logger = logging.getLogger(__name__)

TITLE = "EgoTwin: dreaming body and view in first person"
INTRO = """\
# EgoTwin: dreaming body and view in first person
One diffusion transformer generates, together, an **egocentric video** and the **whole-body motion** of the person
wearing the camera, so that the camera path of the video is the head path of the body.
Pick an example below or bring your own start frame, then press **Generate**; **Continue** adds 5 s more.
"""
MODE_CHOICES = [
    ("T2VM: text -> video + motion", "t2vm"),
    ("TM2V: text + motion -> video", "tm2v"),
    ("TV2M: text + video -> motion", "tv2m"),
]
SESSION_TTL_S = 2 * 3600
"""A tab idle this long loses its session (its files are deleted); closing the tab deletes them sooner."""
PREVIEW_SIZE = 160
"""Pixels of the start-frame preview (the model's frame, enlarged by a whole factor)."""
SERVER_PROBLEM = (
    "Generation failed because of a problem on the server, not with your inputs (it has been logged); "
    "please try again."
)
CACHE_CLEANUP = (1800, 3600)
"""Gradio deletes the copies it served of our files every 30 min once they are an hour old."""


def checked_number(component: gr.Number | gr.Slider) -> gr.Number | gr.Slider:
    """`component` with a preprocess step that gives a value that is not a number in range (possible through the
    API) a message naming the input and its range, instead of Gradio's generic error."""
    preprocess = component.preprocess

    def checked(payload):
        number = isinstance(payload, (int, float)) and not isinstance(payload, bool) and math.isfinite(payload)
        if not number or not component.minimum <= payload <= component.maximum:
            raise gr.Error(
                f"{component.label} must be a number from {component.minimum:g} to {component.maximum:g}, "
                f"got {payload!r}.",
                title="Please check the inputs",
            )
        return preprocess(payload)

    component.preprocess = checked
    return component


def load_examples(folder: Path = EXAMPLES_DIR) -> list[dict]:
    """The rows of `examples.json` with file names turned into paths; [] when the folder has none."""
    index = folder / "examples.json"
    if not index.is_file():
        return []
    rows = json.loads(index.read_text())
    keys = ("image", "pose_file", "motion_file", "video_file")
    return [{**row, **{k: str(folder / row[k]) if row.get(k) else None for k in keys}} for row in rows]


def mode_visibility(mode: str) -> list[dict]:
    """Which inputs each mode uses: start frame (t2vm, tm2v), initial pose (t2vm, tv2m), motion (tm2v),
    video (tv2m), motion guidance w_m (t2vm, tm2v), video guidance w_v (t2vm, tv2m), motion lead (t2vm)."""
    return [
        gr.update(visible=mode != "tv2m"),
        gr.update(visible=mode != "tm2v"),
        gr.update(visible=mode == "tm2v"),
        gr.update(visible=mode == "tv2m"),
        gr.update(visible=mode != "tv2m"),
        gr.update(visible=mode != "tm2v"),
        gr.update(visible=mode == "t2vm"),
    ]


def format_status(result: DemoResult) -> str:
    """Mode, length, seed and timings of a run, then the pipeline's notes for the user."""
    out = result.output
    clips = len(out.prompts or [out.prompt])
    modes = result.modes or [out.mode]
    named = modes[0].upper() + "".join(", then T2VM (Continue)" for _ in modes[1:2])
    lines = [
        f"**{named}**: {out.motion.duration:.1f} s ({clips} clip{'s' if clips > 1 else ''}), "
        f"seed **{result.seed}**; sampled in {result.timings['sample']:.1f} s, "
        f"rendered in {result.timings['render']:.1f} s"
    ]
    lines += [f"- {note}" for note in result.notes]
    return "\n".join(lines)


def format_alignment(alignment: dict[str, float] | None, note: str | None = None) -> str:
    """egotwin.eval.viewpoint_alignment's figures as a small table (or why there are none)."""
    if not alignment:
        return f"*{note or 'Viewpoint alignment: not available for this clip.'}*"
    rows = [
        f"| {name} | {alignment[total]:.3f} | {alignment[mean]:.3f} |"
        for name, total, mean in (
            ("TransErr (m)", "trans_err", "trans_err_mean"),
            ("RotErr (rad)", "rot_err", "rot_err_mean"),
        )
        if total in alignment and mean in alignment
    ]
    scale = f"; Sim(3) scale of the fit {alignment['scale']:.2f}" if "scale" in alignment else ""
    return (
        "**Viewpoint alignment**: the camera path that visual odometry finds in the video against the head path of "
        f"the motion (lower is better{scale})\n\n| | sum over frames | per frame |\n|---|---|---|\n" + "\n".join(rows)
    )


def result_outputs(session: Session, result: DemoResult) -> tuple:
    """(session, side-by-side video, glb, downloads, alignment, status, seed), the order of the page's outputs."""
    files = result.files
    downloads = [str(files[k]) for k in ("side_by_side", "egocentric", "npz", "bvh", "glb", "cameras") if k in files]
    for note in result.notes:
        gr.Warning(note)
    return (
        session,
        str(files["side_by_side"]),
        str(files["glb"]),
        downloads,
        format_alignment(result.alignment, result.alignment_note),
        format_status(result),
        result.seed,
    )


def build_demo(runner: DemoRunner, default_steps: int = 50) -> gr.Blocks:
    """The whole page around `runner` (not launched; see app.py)."""
    pipe = runner.pipe
    defaults = SamplingSettings(num_inference_steps=default_steps, motion_lead=pipe.config.motion_lead)
    examples = load_examples()

    def settings(seed, randomize, steps, guidance, motion_guidance, video_guidance, motion_lead) -> SamplingSettings:
        return SamplingSettings(
            seed=None if randomize else seed,
            num_inference_steps=steps,
            guidance_scale=guidance,
            motion_guidance_scale=motion_guidance,
            video_guidance_scale=video_guidance,
            motion_lead=motion_lead,
        )

    def run(session: Session | None, work) -> tuple:
        """Run `work(session)` with a session (a new one on the first run) and show any problem as gr.Error."""
        new = session is None
        session = Session() if new else session
        prune_cache()  # before this run's files are copied into Gradio's cache: it stays within its budget
        try:
            return result_outputs(session, work(session))
        except InputError as error:
            if new:
                session.close()
            raise gr.Error(str(error), title="Please check the inputs") from error
        except Exception as error:  # a bug or a resource problem: keep serving, tell the user, log the trace
            if new:
                session.close()
            logger.exception("generation failed")
            raise gr.Error(SERVER_PROBLEM) from error

    def generate(
        session, mode, prompt, image, pose_preset, pose_file, motion_file, video_file,
        seed, randomize, steps, guidance, motion_guidance, video_guidance, motion_lead, progress=gr.Progress(),
    ):  # fmt: skip
        request = GenerationRequest(
            mode=mode,
            prompt=prompt,
            image=image,
            pose_preset=pose_preset,
            pose_file=pose_file,
            motion_file=motion_file,
            video_file=video_file,
            settings=settings(seed, randomize, steps, guidance, motion_guidance, video_guidance, motion_lead),
        )
        return run(session, lambda s: runner.generate(s, request, progress))

    def extend(
        session, prompt, seed, randomize, steps, guidance, motion_guidance, video_guidance, motion_lead,
        progress=gr.Progress(),
    ):  # fmt: skip
        if session is None or session.last is None:
            raise gr.Error("Nothing to continue yet: generate a clip first.", title="Please check the inputs")
        options = settings(seed, randomize, steps, guidance, motion_guidance, video_guidance, motion_lead)
        return run(session, lambda s: runner.extend(s, prompt, options, progress))

    def preview(path):
        """The start frame as the model will see it; a warning (not an error) for a bad upload, so the page
        stays usable and Generate explains it again."""
        if not path:
            return None
        try:
            frame = load_image(path, pipe.width, pipe.height)
        except InputError as error:
            gr.Warning(str(error))
            return None
        except Exception:  # never a bare error badge: the visitor gets words, the log the trace
            logger.exception("start-frame preview failed")
            gr.Warning(f"The start frame '{Path(path).name}' cannot be shown; {SERVER_PROBLEM}")
            return None
        # shown with square pixels, large enough to see, instead of blurred by the browser
        zoom = max(1, PREVIEW_SIZE // max(frame.shape[:2]))
        return frame.repeat(zoom, axis=0).repeat(zoom, axis=1)

    with gr.Blocks(title=TITLE, delete_cache=CACHE_CLEANUP) as demo:
        session = gr.State(None, time_to_live=SESSION_TTL_S, delete_callback=close_session)
        gr.Markdown(INTRO)
        with gr.Row():
            with gr.Column(scale=2, min_width=320):
                mode = gr.Radio(MODE_CHOICES, value="t2vm", label="Mode", elem_id="mode")
                prompt = gr.Textbox(
                    label="Prompt",
                    placeholder="walk forward to the door",
                    lines=2,
                    max_lines=4,
                    max_length=MAX_PROMPT_CHARS,
                    elem_id="prompt",
                )
                with gr.Group() as start_group:
                    with gr.Row():
                        image = gr.File(
                            label="Start frame (any image: centre-cropped and resized)",
                            file_types=list(IMAGE_SUFFIXES),
                            height=PREVIEW_SIZE,
                            elem_id="start-frame",
                        )
                        image_preview = gr.Image(
                            label=f"As the model sees it ({pipe.width}x{pipe.height})",
                            interactive=False,
                            height=PREVIEW_SIZE,
                            buttons=[],
                        )
                with gr.Group() as pose_group:
                    pose_preset = gr.Dropdown(list(POSE_PRESETS), value="standing", label="Initial pose")
                    pose_file = gr.File(
                        label="...or the first frame of a motion file (.npz AMASS/SMPL-X, .bvh); overrides the preset",
                        file_types=list(MOTION_SUFFIXES),
                        height=PREVIEW_SIZE,
                        elem_id="pose-file",
                    )
                motion_file = gr.File(
                    label="Motion (.npz AMASS/SMPL-X or .bvh, at least 5 s; the first 5 s are used)",
                    file_types=list(MOTION_SUFFIXES),
                    height=PREVIEW_SIZE,
                    visible=False,
                    elem_id="motion-file",
                )
                video_file = gr.Video(
                    label="Video (at least 5 s; the first 5 s at 8 fps are used, its first frame is the start frame)",
                    sources=["upload"],
                    visible=False,
                    elem_id="video-file",
                )
                with gr.Accordion("Advanced", open=False):
                    with gr.Row():
                        seed = gr.Number(label="Seed", value=0, precision=0, minimum=0, maximum=2**32 - 1)
                        randomize = gr.Checkbox(label="New random seed each run", value=True)
                    steps = gr.Slider(1, 100, value=defaults.num_inference_steps, step=1, label="Sampling steps")
                    guidance = gr.Slider(0, 15, value=defaults.guidance_scale, step=0.5, label="Text guidance w_t")
                    motion_guidance = gr.Slider(
                        0, 10, value=defaults.motion_guidance_scale, step=0.25,
                        label="Motion guidance w_m (how closely the video follows the motion)",
                    )  # fmt: skip
                    video_guidance = gr.Slider(
                        0, 10, value=defaults.video_guidance_scale, step=0.25,
                        label="Video guidance w_v (how closely the motion follows the video)",
                    )  # fmt: skip
                    motion_lead = gr.Slider(
                        0, 0.95, value=defaults.motion_lead, step=0.05,
                        label="Motion lead (T2VM: how far the body's denoising runs ahead of the video's; 0 = joint)",
                    )  # fmt: skip
                for number in (seed, steps, guidance, motion_guidance, video_guidance, motion_lead):
                    checked_number(number)
                with gr.Row():
                    generate_button = gr.Button("Generate", variant="primary", elem_id="generate")
                    continue_button = gr.Button("Continue (+5 s)", elem_id="continue")
            with gr.Column(scale=3, min_width=400):
                video = gr.Video(
                    label="Egocentric video | the body and its head camera",
                    autoplay=True,
                    loop=True,
                    interactive=False,
                    elem_id="result-video",
                )
                status = gr.Markdown(label="Status", elem_id="status")
                with gr.Row():
                    body = gr.Model3D(label="Animated body (glb)", height=320, elem_id="result-glb")
                    with gr.Column():
                        alignment = gr.Markdown(label="Viewpoint alignment", elem_id="alignment")
                        downloads = gr.File(label="Downloads", file_count="multiple", elem_id="downloads")

        if examples:
            keys = ("mode", "prompt", "image", "pose_file", "motion_file", "video_file")
            gr.Examples(
                [[row[k] for k in keys] for row in examples],
                inputs=[mode, prompt, image, pose_file, motion_file, video_file],
                example_labels=[f"{row['mode'].upper()}: {row['prompt']}" for row in examples],
                label="Examples (EgoWorld test scenes)",
            )

        mode.change(
            mode_visibility,
            mode,
            [start_group, pose_group, motion_file, video_file, motion_guidance, video_guidance, motion_lead],
            api_visibility="private",
        )
        image.change(preview, image, image_preview, api_visibility="private")
        advanced = [seed, randomize, steps, guidance, motion_guidance, video_guidance, motion_lead]
        outputs = [session, video, body, downloads, alignment, status, seed]
        generate_button.click(
            generate,
            [session, mode, prompt, image, pose_preset, pose_file, motion_file, video_file, *advanced],
            outputs,
            api_name="generate",
            concurrency_id="sampler",
            concurrency_limit=1,
        )
        continue_button.click(
            extend,
            [session, prompt, *advanced],
            outputs,
            api_name="continue",
            concurrency_id="sampler",
            concurrency_limit=1,
        )
    return demo

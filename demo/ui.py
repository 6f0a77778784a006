"""The Gradio page: inputs on the left (mode, prompt, start frame, initial pose, motion or video, advanced settings,
then the examples as thumbnails), the generated clip on the right (side-by-side video, status, the animated 3D body,
viewpoint alignment next to its reference values, downloads). Before the first click the page shows the first
example and its pre-generated result (assets/examples/result, demo/make_examples.py), so it loads instantly.

Event handlers turn every input problem into a `gr.Error` with the message from `demo/inputs.py` (the server keeps
running), pass a `gr.Progress` to the runner, and keep one `Session` per browser tab in a `gr.State`. Continue is
enabled once the tab has a clip. The row of views (`#views`): the body, and for an example's start frame what the
generated head would see in that example's apartment (demo/head_view.py), rendered when the visitor asks for it.
Public API endpoints (gradio_client): `/generate` and `/continue`.
"""

from __future__ import annotations

import json
import logging
import math
import os
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
PAPER_URL = "https://arxiv.org/abs/2508.13013"
INTRO = """\
# EgoTwin: dreaming body and view in first person
One diffusion transformer generates, together, an **egocentric video** and the **whole-body motion** of the person
wearing the camera, so that the camera path of the video is the head path of the body.
Pick an example below or bring your own start frame, then press **Generate**; **Continue** adds 5 s more.
[Paper (ICLR 2026)]({paper}) · {code}

*{model}*
"""
RESULT_DIR = EXAMPLES_DIR / "result"
SHIPPED_CHECKPOINT = EXAMPLES_DIR.parent / "egotwin-tiny"
DATA_OWN = {"trans_err": 1.74, "rot_err": 3.18}
"""The odometry's own TransErr / RotErr on EgoWorld's real videos against their exact cameras (median of 92 clips,
README "Evaluation"): the best a generated clip can score."""
MODE_CHOICES = [
    ("T2VM: text -> video + motion", "t2vm"),
    ("TM2V: text + motion -> video", "tm2v"),
    ("TV2M: text + video -> motion", "tv2m"),
]
SESSION_TTL_S = 2 * 3600
"""A tab idle this long loses its session (its files are deleted); closing the tab deletes them sooner."""
PREVIEW_SIZE = 160
"""Pixels of the start-frame preview (the model's frame, enlarged by a whole factor)."""
HEAD_VIEW_PENDING = (
    "*What this head would see*: for an example's start frame, press the button to render its EgoWorld apartment from "
    "the generated head (a few seconds)."
)
HEAD_VIEW_UNAVAILABLE = (
    "What this head would see cannot be rendered on this server (re-rendering an EgoWorld apartment needs OpenGL); "
    "the clip and its alignment figures above are complete."
)
SERVER_PROBLEM = (
    "Generation failed because of a problem on the server, not with your inputs (it has been logged); please try again."
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
    """egotwin.eval.viewpoint_alignment's figures as a small table next to their references: a motionless camera
    against the same head path, and EgoWorld's real videos (or why there are no figures)."""
    if not alignment:
        return f"*{note or 'Viewpoint alignment: not available for this clip.'}*"

    def cell(key: str) -> str:
        return f"{alignment[key]:.1f}" if key in alignment else "-"

    rows = [
        f"| {name} | **{cell(key)}** | {cell('still_' + key)} | {DATA_OWN[key]:.2f} |"
        for name, key in (("TransErr (m)", "trans_err"), ("RotErr (rad)", "rot_err"))
    ]
    return (
        "**Does the video's camera follow the body's head?** The camera path that visual odometry finds in the video "
        "against the head path of the motion, summed over the 41 frames (lower is better; a clip is consistent "
        "only where it beats the motionless camera)\n\n"
        "| | this clip | a motionless camera | EgoWorld's real videos |\n|---|---|---|---|\n" + "\n".join(rows)
    )


def intro(pipe, device: str) -> str:
    """The page's first lines: what EgoTwin does, the links, and what this checkpoint makes."""
    space = os.environ.get("SPACE_ID")
    code_url = os.environ.get("EGOTWIN_CODE_URL") or (
        f"https://huggingface.co/spaces/{space}/tree/main" if space else None
    )
    code = f"[Code]({code_url})" if code_url else "Code: this app's repository (README.md)"
    processor = "a CPU" if device == "cpu" else "a GPU"
    model = f"This checkpoint makes {pipe.width}x{pipe.height} frames at 8 fps on {processor}."
    if is_shipped(pipe):
        model = (
            f"The shipped small model makes {pipe.width}x{pipe.height} frames at 8 fps on {processor}; it was trained "
            "only on EgoWorld's synthetic apartments. The paper's model is CogVideoX-5B at 480x480."
        )
    return INTRO.format(paper=PAPER_URL, code=code, model=model)


def is_shipped(pipe) -> bool:
    """Whether `pipe` was loaded from the shipped checkpoint (assets/egotwin-tiny)."""
    return bool(pipe.name_or_path) and Path(pipe.name_or_path).resolve() == SHIPPED_CHECKPOINT.resolve()


def pregenerated_result() -> tuple[str | None, str, str]:
    """(side-by-side video, status, alignment) of the first example's pre-generated result; (None, '', '') without
    one."""
    summary_file = RESULT_DIR / "result.json"
    if not summary_file.is_file():
        return None, "", ""
    summary = json.loads(summary_file.read_text())
    status = (
        f"**Example result, made in advance** ({summary['mode'].upper()}, seed {summary['seed']}, "
        f"{summary['steps']} steps, {summary['seconds']:.0f} s on a {summary['cores']}-core CPU). "
        "Press **Generate** to make your own."
    )
    return (
        str(RESULT_DIR / "side_by_side.mp4"),
        status,
        format_alignment(summary["alignment"], summary["alignment_note"]),
    )


def example_gallery(examples: list[dict]) -> list[tuple[str, str]]:
    """(thumbnail, caption) of each example: its start frame, or the video's first frame saved next to it."""
    thumbnails = [row["image"] or str(Path(row["video_file"]).with_suffix(".png")) for row in examples]
    return [(thumb, example_label(row)) for thumb, row in zip(thumbnails, examples, strict=True)]


def example_label(row: dict) -> str:
    """'T2VM: go to the door and open it'."""
    return f"{row['mode'].upper()}: {row['prompt']}"


def result_outputs(session: Session, result: DemoResult) -> tuple:
    """(session, side-by-side video, glb, head view, head-view text, downloads, alignment, status, seed), the order
    of the page's outputs; the head view is emptied here and filled on request (`show_head_view`)."""
    files = result.files
    downloads = [str(files[k]) for k in ("side_by_side", "egocentric", "npz", "bvh", "glb", "cameras") if k in files]
    for note in result.notes:
        gr.Warning(note)
    return (
        session,
        str(files["side_by_side"]),
        str(files["glb"]),
        None,
        HEAD_VIEW_PENDING,
        downloads,
        format_alignment(result.alignment, result.alignment_note),
        format_status(result),
        result.seed,
    )


def video_text_note(pipe) -> str:
    """What the text-guidance slider does not set: the video's own w_t, when the checkpoint gives it one."""
    scale = pipe.config.video_text_guidance_scale
    return (
        ""
        if scale is None
        else f" The video takes this checkpoint's own w_t ({scale:g}): it keeps more of the start frame."
    )


def build_demo(runner: DemoRunner, default_steps: int = 50) -> gr.Blocks:
    """The whole page around `runner` (not launched; see app.py)."""
    pipe = runner.pipe
    defaults = SamplingSettings(  # the checkpoint's own text guidance and motion lead
        num_inference_steps=default_steps,
        guidance_scale=pipe.config.guidance_scale,
        motion_lead=pipe.config.motion_lead,
    )
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

    def show_head_view(session: Session | None) -> tuple:
        """The third view, on request: what the generated head would see, when the start frame has an apartment."""
        try:
            panel = runner.head_view(session) if session is not None else None
        except Exception:  # e.g. no OpenGL on this server: the rest of the page is complete, say why this is not
            logger.exception("head view failed")
            return None, HEAD_VIEW_UNAVAILABLE
        return (None, "") if panel is None else (None if panel.video is None else str(panel.video), panel.text)

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
            gr.Warning(
                f"The start frame '{Path(path).name}' cannot be shown because of a problem on the server (it has "
                "been logged); Generate checks it again."
            )
            return None
        # shown with square pixels, large enough to see, instead of blurred by the browser
        zoom = max(1, PREVIEW_SIZE // max(frame.shape[:2]))
        return frame.repeat(zoom, axis=0).repeat(zoom, axis=1)

    first = examples[0] if examples else None
    # the result made in advance is the shipped model's: another checkpoint starts with an empty result
    result_video, result_status, result_alignment = pregenerated_result() if is_shipped(pipe) else (None, "", "")

    def keep_seed(value: float) -> bool:
        """'Use this seed again': the seed field keeps the last run's seed; stop drawing new ones."""
        gr.Info(f"The next runs use seed {int(value)} (Advanced); tick 'New random seed each run' to draw new ones.")
        return False

    def pick_example(evt: gr.SelectData) -> tuple:
        """The clicked example's inputs: mode, prompt, start frame, pose file, motion, video."""
        row = examples[evt.index]
        return row["mode"], row["prompt"], row["image"], row["pose_file"], row["motion_file"], row["video_file"]

    with gr.Blocks(title=TITLE, delete_cache=CACHE_CLEANUP) as demo:
        session = gr.State(None, time_to_live=SESSION_TTL_S, delete_callback=close_session)
        gr.Markdown(intro(pipe, pipe.device.type), elem_id="intro")
        with gr.Row():
            with gr.Column(scale=2, min_width=320):
                mode = gr.Radio(MODE_CHOICES, value="t2vm", label="Mode", elem_id="mode")
                prompt = gr.Textbox(
                    value=first["prompt"] if first else "",
                    label="Prompt: what the person does",
                    placeholder="walk forward to the door",
                    lines=2,
                    max_lines=4,
                    max_length=MAX_PROMPT_CHARS,
                    elem_id="prompt",
                )
                with gr.Group() as start_group, gr.Row():
                    image = gr.File(
                        value=first["image"] if first else None,
                        label="Start frame: the first thing the person sees (any image; centre-cropped, resized)",
                        file_types=list(IMAGE_SUFFIXES),
                        height=PREVIEW_SIZE,
                        elem_id="start-frame",
                    )
                    image_preview = gr.Image(
                        value=preview(first["image"]) if first else None,
                        label=f"As the model sees it ({pipe.width}x{pipe.height})",
                        interactive=False,
                        height=PREVIEW_SIZE,
                        buttons=[],
                    )
                with gr.Group() as pose_group:
                    pose_preset = gr.Dropdown(list(POSE_PRESETS), value="standing", label="Initial pose")
                    pose_file = gr.File(
                        value=first["pose_file"] if first else None,
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
                        randomize = gr.Checkbox(label="New random seed each run", value=True, elem_id="randomize")
                    steps = gr.Slider(
                        1, 100, value=defaults.num_inference_steps, step=1, label="Sampling steps",
                        info="More steps: slower, usually cleaner (the wait grows in proportion).",
                    )  # fmt: skip
                    guidance = gr.Slider(
                        0, 15, value=defaults.guidance_scale, step=0.5, label="Follow the prompt (text guidance w_t)",
                        info="How strongly the clip follows the words; 0 ignores them, high values exaggerate."
                        + video_text_note(pipe),
                    )  # fmt: skip
                    motion_guidance = gr.Slider(
                        0, 10, value=defaults.motion_guidance_scale, step=0.25,
                        label="Video follows the body (motion guidance w_m)",
                        info="How closely the view follows the head's movement.",
                    )  # fmt: skip
                    video_guidance = gr.Slider(
                        0, 10, value=defaults.video_guidance_scale, step=0.25,
                        label="Body follows the video (video guidance w_v)",
                        info="How closely the body's movement follows what the view shows.",
                    )  # fmt: skip
                    motion_lead = gr.Slider(
                        0, 0.95, value=defaults.motion_lead, step=0.05, label="Plan the body first (motion lead)",
                        info="T2VM: 0 makes body and view together (the paper); higher settles the body's "
                        "movement first and lets the view follow it.",
                    )  # fmt: skip
                for number in (seed, steps, guidance, motion_guidance, video_guidance, motion_lead):
                    checked_number(number)
                with gr.Row():
                    generate_button = gr.Button("Generate", variant="primary", elem_id="generate")
                    continue_button = gr.Button("Continue (+5 s)", interactive=False, elem_id="continue")
                if examples:
                    gallery = gr.Gallery(
                        example_gallery(examples),
                        label="Examples (EgoWorld test scenes): click one, then Generate",
                        columns=3,
                        height="auto",
                        allow_preview=False,
                        object_fit="contain",
                        elem_id="examples",
                    )
            with gr.Column(scale=3, min_width=400):
                video = gr.Video(
                    value=result_video,
                    label="Egocentric video | the body and its head camera",
                    autoplay=True,
                    loop=True,
                    interactive=False,
                    elem_id="result-video",
                )
                status = gr.Markdown(result_status, label="Status", elem_id="status")
                reuse_seed = gr.Button("Use this seed again", size="sm", elem_id="reuse-seed")
                with gr.Row(elem_id="views"):  # more views of the clip go next to the body
                    body = gr.Model3D(label="Animated body (glb)", height=320, elem_id="result-glb")
                    head_view = gr.Video(
                        label="What this head would see (the example's apartment, re-rendered)",
                        autoplay=True,
                        loop=True,
                        interactive=False,
                        height=320,
                        elem_id="head-view",
                    )
                head_button = gr.Button(
                    "What would this head see?", size="sm", interactive=False, elem_id="head-view-button"
                )
                head_note = gr.Markdown("", elem_id="head-view-note")
                alignment = gr.Markdown(result_alignment, label="Viewpoint alignment", elem_id="alignment")
                downloads = gr.File(label="Downloads", file_count="multiple", elem_id="downloads")

        if examples:
            gallery.select(
                pick_example, None, [mode, prompt, image, pose_file, motion_file, video_file], api_visibility="private"
            )
        mode.change(
            mode_visibility,
            mode,
            [start_group, pose_group, motion_file, video_file, motion_guidance, video_guidance, motion_lead],
            api_visibility="private",
        )
        image.change(preview, image, image_preview, api_visibility="private")
        reuse_seed.click(keep_seed, seed, randomize, api_visibility="private")
        advanced = [seed, randomize, steps, guidance, motion_guidance, video_guidance, motion_lead]
        outputs = [session, video, body, head_view, head_note, downloads, alignment, status, seed]
        enable_head_view = {"fn": lambda: gr.Button(interactive=True), "outputs": head_button}
        enable_continue = {"fn": lambda: gr.Button(interactive=True), "outputs": continue_button}
        generate_button.click(
            generate,
            [session, mode, prompt, image, pose_preset, pose_file, motion_file, video_file, *advanced],
            outputs,
            api_name="generate",
            concurrency_id="sampler",
            concurrency_limit=1,
        ).success(**enable_continue, api_visibility="private").success(**enable_head_view, api_visibility="private")
        continue_button.click(
            extend,
            [session, prompt, *advanced],
            outputs,
            api_name="continue",
            concurrency_id="sampler",
            concurrency_limit=1,
        )
        # on request, not after every clip: a click's answer stays as fast as before, and the render takes the
        # sampler's slot (it uses the cores and the VAE) only when asked for
        head_button.click(
            show_head_view, session, [head_view, head_note], concurrency_id="sampler", api_visibility="private"
        )
    return demo

"""The full-scale recipe end to end on a tiny random CogVideoX folder (`scripts/make_tiny_cogvideox.py`): the commands
of docs/full_scale.md, read from that page and run as written (with the launcher and step-count changes the page
states), then the three sampling modes from the pipeline they build and one generation asked of the running app."""

import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from benchmarks.bench_demo import free_port
from demo.inputs import EXAMPLES_DIR
from egotwin.motion.random_motion import walking_motion
from egotwin.pipelines import EgoTwinPipeline
from scripts.make_tiny_cogvideox import TinyCogVideoXConfig, make_tiny_cogvideox

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "full_scale.md"
ZERO2_LAUNCH = "accelerate launch --config_file training/accelerate/zero2.yaml -m"
SMOKE_FLAGS = {  # what docs/full_scale.md says the test appends, by entry point
    "training.stage1_motion_vae": "--max_steps 2 --batch_size 4",
    "training.stage2_t2m": "--max_steps 2 --batch_size 2 --val_batches 1 --num_workers 0 --preset tiny",
    "training.stage3_joint": "--max_steps 2 --batch_size 2 --val_batches 1 --num_workers 0",
}


def documented_commands() -> list[str]:
    """The bash block under "## The 5B commands" in docs/full_scale.md, one command a line."""
    section = DOC.read_text().split("## The 5B commands", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.DOTALL).group(1)
    return [line for line in block.splitlines() if line.strip()]


def smoke_command(command: str) -> str:
    """The documented command as the test runs it: one CPU process for the ZeRO-2 launcher, short runs."""
    command = command.replace(ZERO2_LAUNCH, "python -m")
    module = next((name for name in SMOKE_FLAGS if f"-m {name} " in command), None)
    command = f"{command} {SMOKE_FLAGS[module]}" if module else command
    return re.sub(r"^python ", shlex.quote(sys.executable) + " ", command)


def test_the_doc_states_the_commands_and_what_the_test_changes():
    commands, text = documented_commands(), " ".join(DOC.read_text().split())
    assert len(commands) == 7 and sum(ZERO2_LAUNCH in command for command in commands) == 2
    assert all(any(f"-m {module} " in command for command in commands) for module in SMOKE_FLAGS)
    stage3 = SMOKE_FLAGS["training.stage3_joint"]
    assert SMOKE_FLAGS["training.stage2_t2m"] == f"{stage3} --preset tiny"
    for flags in (SMOKE_FLAGS["training.stage1_motion_vae"], stage3, "--preset tiny", "--port P --steps 2"):
        assert f"`{flags}`" in text, flags


def test_the_tiny_folder_is_a_cogvideox_folder_to_diffusers(tmp_path):
    """diffusers' own CogVideoXPipeline loads the tiny folder (its T5 tokenizer from spiece.model) and generates with
    it; the parts are bf16 and 5B-style as published."""
    from diffusers import CogVideoXPipeline

    folder = make_tiny_cogvideox(TinyCogVideoXConfig(output_dir=str(tmp_path / "tiny")))
    pipe = CogVideoXPipeline.from_pretrained(folder, dtype=torch.float32)
    config = pipe.transformer.config
    assert config.use_rotary_positional_embeddings and (config.sample_height, config.text_embed_dim) == (8, 32)
    assert pipe.vae.config.scaling_factor == 0.7 and pipe.scheduler.config.snr_shift_scale == 1.0
    frames = pipe(
        "walk to the door",
        height=64,
        width=64,
        num_frames=9,
        num_inference_steps=1,
        output_type="pt",
        generator=torch.Generator().manual_seed(0),
    ).frames
    assert frames.shape == (1, 9, 3, 64, 64) and torch.isfinite(frames).all()
    weights = load_file(folder / "transformer" / "diffusion_pytorch_model.safetensors")
    assert {tensor.dtype for tensor in weights.values()} == {torch.bfloat16}
    with pytest.raises(FileExistsError, match="not empty"):
        make_tiny_cogvideox(TinyCogVideoXConfig(output_dir=str(folder)))


@pytest.mark.slow
def test_the_5b_recipe_runs_end_to_end_on_a_tiny_cogvideox_folder(tmp_path):
    cogvideox = make_tiny_cogvideox(TinyCogVideoXConfig(output_dir=str(tmp_path / "CogVideoX-tiny")))
    runs = tmp_path / "runs"
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "OMP_NUM_THREADS": "1",
        "PYOPENGL_PLATFORM": "egl",
        "GRADIO_ANALYTICS_ENABLED": "False",
        "COGVIDEOX": str(cogvideox),
        "DATA": "synthetic:8",
        "RUNS": str(runs),
    }
    *training, app_command = [smoke_command(command) for command in documented_commands()]
    for command in training:
        subprocess.run(["bash", "-c", command], cwd=REPO, env=env, check=True, stdout=subprocess.DEVNULL)

    # Stage 2 trains only the motion branch: the folder's bf16 CogVideoX weights come out exactly, in float32
    folder_weights = load_file(cogvideox / "transformer" / "diffusion_pytorch_model.safetensors")
    stage2 = load_file(runs / "stage2_t2m_5b" / "transformer" / "diffusion_pytorch_model.safetensors")
    assert {t.dtype for t in folder_weights.values()} == {torch.bfloat16} and {t.dtype for t in stage2.values()} == {
        torch.float32
    }
    assert all(torch.equal(stage2[name], weight.float()) for name, weight in folder_weights.items())

    # The pipeline samples each mode; its T5 is the folder's
    pipe = EgoTwinPipeline.from_pretrained(runs / "egotwin-5b")
    pipe.set_progress_bar_config(disable=True)
    assert (
        pipe.config.text_encoder_name == str(cogvideox.resolve())
        and pipe.transformer.config.use_rotary_positional_embeddings
    )
    image = np.full((64, 64, 3), 128, np.uint8)
    t2vm = pipe("walk to the door", image=image, num_inference_steps=2, generator=torch.Generator().manual_seed(0))
    tm2v = pipe(
        "walk to the door", image=image, mode="tm2v", motion=walking_motion(duration=5.0), num_inference_steps=2
    )
    tv2m = pipe("walk to the door", mode="tv2m", video=t2vm.frames, num_inference_steps=2)
    for out in (t2vm, tm2v, tv2m):
        assert out.frames.shape == (41, 64, 64, 3) and out.motion.num_frames == 81
        assert torch.isfinite(out.motion.trans).all()

    # The app, started by the documented command, answers a generation
    from gradio_client import handle_file

    port = free_port()
    with open(tmp_path / "app.log", "w+") as log:
        server = subprocess.Popen(
            ["bash", "-c", f"exec {app_command} --port {port} --steps 2"],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            client = connect(f"http://127.0.0.1:{port}", server, log)
            advanced = (7, False, 2, 6.0, 1.5, 1.5, 0.0)  # seed, random seed, steps, w_t, w_m, w_v, motion lead
            video, *_, status, seed = client.predict(
                "t2vm",
                "go to the door and open it",
                handle_file(str(EXAMPLES_DIR / "door.png")),
                "standing",
                None,
                None,
                None,
                *advanced,
                api_name="/generate",
            )
            assert seed == 7 and Path(video).stat().st_size > 0 and "T2VM" in status
        finally:
            server.terminate()
            server.wait(timeout=30)


def connect(url: str, server: subprocess.Popen, log, timeout: float = 300.0):
    """A gradio_client `Client` of the app at `url` once it answers (an AssertionError with its log if it dies)."""
    from gradio_client import Client

    deadline = time.monotonic() + timeout
    while True:
        if server.poll() is not None or time.monotonic() > deadline:
            log.seek(0)
            raise AssertionError(f"the app did not come up:\n{log.read()[-3000:]}")
        try:
            return Client(url, verbose=False)
        except Exception:  # noqa: BLE001 (not up yet)
            time.sleep(1)


def test_the_gpu_check_parses_its_arguments_and_runs_its_cpu_smoke_path(tmp_path, capsys):
    """benchmarks/bench_full_scale.py on the tiny preset on CPU: both steps run, their losses are real, EgoTwin's
    parameters are CogVideoX's plus the motion branch, and the figures are written."""
    from benchmarks.bench_full_scale import BenchConfig, main

    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0 and "--preset" in capsys.readouterr().out
    results = main(
        [
            "--preset",
            "tiny",
            "--device",
            "cpu",
            "--height",
            "64",
            "--width",
            "64",
            "--warmup",
            "0",
            "--steps",
            "1",
            "--output_dir",
            str(tmp_path),
        ]
    )
    assert results["config"] == {
        **vars(BenchConfig()),
        "preset": "tiny",
        "device": "cpu",
        "height": 64,
        "width": 64,
        "warmup": 0,
        "steps": 1,
        "output_dir": str(tmp_path),
    }
    assert all(results[name]["step_s"] > 0 and np.isfinite(results[name]["loss"]) for name in ("egotwin", "cogvideox"))
    assert results["step_time_ratio"] == results["egotwin"]["step_s"] / results["cogvideox"]["step_s"]
    counts = results["parameters"]
    assert counts["total"] == counts["cogvideox"] + counts["motion"] and counts["motion"] > 0
    assert counts["plain_cogvideox"] == counts["cogvideox"]  # the same text/video model, like for like
    assert "EgoTwin step / CogVideoX step" in capsys.readouterr().out
    assert (tmp_path / "bench_full_scale.json").is_file()

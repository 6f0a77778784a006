"""The shipped small model (assets/egotwin-tiny): a complete half-precision pipeline under the size target that loads
offline, and whose motion does what its prompt says from the demo's own start frame and pose (turn left / right,
walk forward / backward), with the head camera the motion carries."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from egotwin.eval.directions import forward_m, head_yaw_deg
from egotwin.motion.motion import Motion
from egotwin.pipelines import EgoTwinPipeline

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "assets" / "egotwin-tiny"
EXAMPLES = ROOT / "assets" / "examples"


@pytest.fixture(scope="module")
def pipe() -> EgoTwinPipeline:
    pipe = EgoTwinPipeline.from_pretrained(SHIPPED)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def test_a_complete_small_half_precision_pipeline():
    size = sum(f.stat().st_size for f in SHIPPED.rglob("*") if f.is_file())
    assert size < 40e6, f"{size / 1e6:.1f} MB"
    assert {p.name for p in SHIPPED.iterdir()} >= {"model_index.json", "transformer", "vae", "motion_vae", "scheduler"}
    weights = list(SHIPPED.rglob("*.safetensors"))
    assert weights and all(".cache" not in str(w) for w in weights)


def generate(pipe: EgoTwinPipeline, prompt: str, seed: int) -> np.ndarray:
    out = pipe(
        prompt,
        image=np.asarray(Image.open(EXAMPLES / "turn_left.png").convert("RGB")),
        initial_pose=Motion.load_npz(EXAMPLES / "turn_left_pose.npz"),
        mode="t2vm",
        num_inference_steps=20,
        generator=torch.Generator().manual_seed(seed),
    )
    assert out.frames.shape == (41, 64, 64, 3) and out.motion.num_frames == 81
    return np.asarray(out.camera_to_world, dtype=np.float64)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1])
def test_the_head_turns_and_walks_as_the_prompt_says(pipe, seed):
    # EgoWorld's turns are 90-180 degrees and its walks 1-2 m; positive yaw is to the person's left. From this start
    # frame the shipped model's forward walk veers left by about 30 degrees (its previous model's by about 10).
    assert head_yaw_deg(generate(pipe, "turn to the left", seed)) > 45
    assert head_yaw_deg(generate(pipe, "turn to the right", seed)) < -45
    forward = generate(pipe, "the person walks forward", seed)
    assert forward_m(forward) > 0.5 and abs(head_yaw_deg(forward)) < 45
    assert forward_m(generate(pipe, "walk backwards", seed)) < -0.3

"""Rebuild the README's generated example: one T2VM sample of the shipped model on a demo example, as an animated GIF
of the demo's side-by-side video (egocentric view | body with its head-camera frustum).

    PYOPENGL_PLATFORM=egl python scripts/make_readme_example.py [--checkpoint assets/egotwin-tiny] [--example 1] \\
        [--seed 0] [--output docs/images/example_t2vm.gif]

The example's prompt, start frame and start pose come from assets/examples/examples.json (the same inputs as the
demo's example buttons); the seed is fixed, so the GIF is what a visitor gets from the same click and seed. `--help`
lists every setting.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from demo.inputs import EXAMPLES_DIR  # noqa: E402
from egotwin.config import parse_config  # noqa: E402
from egotwin.data.clip_format import read_video  # noqa: E402
from egotwin.motion.motion import Motion  # noqa: E402
from egotwin.render.export import export_all  # noqa: E402


@dataclasses.dataclass(frozen=True)
class ReadmeExampleConfig:
    """Rebuild the README's generated example: one T2VM sample of a pipeline on a demo example, as a GIF."""

    checkpoint: str = str(ROOT / "assets" / "egotwin-tiny")
    """Pipeline folder to sample from."""
    example: int = 1
    """Row of assets/examples/examples.json (a T2VM one)."""
    seed: int = 0
    """Seed of the sampling noise."""
    steps: int = 50
    """Denoising steps."""
    width: int = 320
    """GIF width in pixels (the height keeps the video's aspect)."""
    output: str = str(ROOT / "docs" / "images" / "example_t2vm.gif")
    """The GIF file to write."""


PROG = "python scripts/make_readme_example.py"


def example_row(index: int) -> dict:
    """Row `index` of the demo's examples, which must be a T2VM one (the GIF shows a generated video and motion)."""
    rows = json.loads((EXAMPLES_DIR / "examples.json").read_text())
    if not 0 <= index < len(rows):
        raise SystemExit(f"{PROG}: error: --example {index}: examples.json has rows 0 to {len(rows) - 1}")
    if rows[index]["mode"] != "t2vm":
        raise SystemExit(f"{PROG}: error: example {index} is a {rows[index]['mode']} example; pick a T2VM one")
    return rows[index]


def main(argv: list[str] | None = None) -> Path:
    config = parse_config(ReadmeExampleConfig, argv, prog=PROG)
    row = example_row(config.example)

    from egotwin.pipelines import EgoTwinPipeline

    pipe = EgoTwinPipeline.from_pretrained(config.checkpoint)
    output = pipe(
        prompt=row["prompt"],
        image=np.asarray(Image.open(EXAMPLES_DIR / row["image"]).convert("RGB")),
        initial_pose=Motion.load_npz(EXAMPLES_DIR / row["pose_file"]),
        mode="t2vm",
        num_inference_steps=config.steps,
        generator=torch.Generator().manual_seed(config.seed),
    )
    with tempfile.TemporaryDirectory() as tmp:
        files = export_all(
            output.frames,
            output.motion,
            output.camera_to_world,
            output.intrinsics,
            tmp,
            caption=row["prompt"],
            mode="t2vm",
            body=pipe.body,
        )
        frames = read_video(files["side_by_side"])[::2]  # 16 fps -> 8 fps, the video's own rate
    height = round(frames.shape[1] * config.width / frames.shape[2])
    out = Path(config.output)
    images = [Image.fromarray(f).resize((config.width, height), Image.LANCZOS) for f in frames]
    out.parent.mkdir(parents=True, exist_ok=True)
    images[0].save(out, save_all=True, append_images=images[1:], duration=125, loop=0, optimize=True)
    print(f"wrote {out} ({out.stat().st_size / 1024:.0f} KiB): '{row['prompt']}', seed {config.seed}")
    return out


if __name__ == "__main__":
    main()

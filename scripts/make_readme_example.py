"""Rebuild the README's generated example: one T2VM sample of the shipped model on a demo example, as an animated GIF
of the demo's side-by-side video (egocentric view | body with its head-camera frustum).

    PYOPENGL_PLATFORM=egl python scripts/make_readme_example.py [--checkpoint assets/egotwin-tiny] [--example 1] \\
        [--seed 0] [--out docs/images/example_t2vm.gif]

The example's prompt, start frame and start pose come from assets/examples/examples.json (the same inputs as the
demo's example buttons); the seed is fixed, so the GIF is what a visitor gets from the same click and seed.
"""

from __future__ import annotations

import argparse
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
from egotwin.data.clip_format import read_video  # noqa: E402
from egotwin.motion.motion import Motion  # noqa: E402
from egotwin.render.export import export_all  # noqa: E402


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=str(ROOT / "assets" / "egotwin-tiny"))
    parser.add_argument("--example", type=int, default=1, help="row of assets/examples/examples.json (a T2VM one)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--width", type=int, default=320, help="GIF width in pixels")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images" / "example_t2vm.gif")
    args = parser.parse_args(argv)

    from egotwin.pipelines import EgoTwinPipeline

    row = json.loads((EXAMPLES_DIR / "examples.json").read_text())[args.example]
    if row["mode"] != "t2vm":
        parser.error(f"example {args.example} is a {row['mode']} example; pick a T2VM one")
    pipe = EgoTwinPipeline.from_pretrained(args.checkpoint)
    output = pipe(
        prompt=row["prompt"],
        image=np.asarray(Image.open(EXAMPLES_DIR / row["image"]).convert("RGB")),
        initial_pose=Motion.load_npz(EXAMPLES_DIR / row["pose_file"]),
        mode="t2vm",
        num_inference_steps=args.steps,
        generator=torch.Generator().manual_seed(args.seed),
    )
    with tempfile.TemporaryDirectory() as tmp:
        files = export_all(output.frames, output.motion, output.camera_to_world, output.intrinsics, tmp,
                           caption=row["prompt"], mode="t2vm", body=pipe.body)
        frames = read_video(files["side_by_side"])[::2]  # 16 fps -> 8 fps, the video's own rate
    height = round(frames.shape[1] * args.width / frames.shape[2])
    images = [Image.fromarray(f).resize((args.width, height), Image.LANCZOS) for f in frames]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    images[0].save(args.out, save_all=True, append_images=images[1:], duration=125, loop=0, optimize=True)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1024:.0f} KiB): '{row['prompt']}', seed {args.seed}")
    return args.out


if __name__ == "__main__":
    main()

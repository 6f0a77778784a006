"""The figures of docs/alignment.md "Validation": the known-answer setups of tests/test_eval_alignment.py, printed.

    PYOPENGL_PLATFORM=egl OMP_NUM_THREADS=1 python -m scripts.alignment_validation [OUT_DIR]    # ~3 min on one core

OUT_DIR (default runs/alignment_validation) receives the three EgoWorld clips (seed 4242, one per apartment).
"""

import sys

import numpy as np
import torch

from egotwin.data.clip_format import read_clip, read_metadata
from egotwin.eval.alignment import (
    AlignmentConfig,
    AlignmentRenderer,
    ClipSetAlignment,
    frame_scores,
    make_references,
    offset_cameras,
    summarize_frames,
)
from egotwin.models.video_vae import load_pretrained_video_vae, round_trip_frames
from egotwin.world.generate import WorldConfig, generate, load_default_body
from egotwin.world.replay import clip_source, rebuild_clip_world
from tests.test_eval_alignment import FRAMES, GRID, turning_path  # the CI tests' own setups


def show(name, video, references):
    s = summarize_frames([frame_scores(video, references)], [references.scored], 15.0)
    print(f"{name}: " + ", ".join(f"{k} {v:.3f}" for k, v in s.items()), flush=True)


def main():
    torch.set_num_threads(1)
    root = sys.argv[1] if len(sys.argv) > 1 else "runs/alignment_validation"
    records = generate(root, 3, seed=4242, config=WorldConfig(clips_per_apartment=1), progress=False)
    body = load_default_body()
    renderer = AlignmentRenderer(body)
    rest = torch.as_tensor(np.asarray(body.rest_joints))
    world = rebuild_clip_world(clip_source(root, records[1]), rest)
    clip = read_clip(f"{root}/{records[1]['path']}")
    head = turning_path(clip["camera_to_world"][0])
    refs = make_references(renderer, world, world.motion, head, None, GRID, FRAMES)
    show("turning path, on time", refs.head_frames, refs)
    show("turning path, still camera", refs.still_frames, refs)
    show("turning path, 3 frames late", refs.head_frames[np.maximum(FRAMES - 3, 0)], refs)
    for yaw, pitch in ((60.0, 0.0), (0.0, 20.0), (-90.0, 0.0)):
        video = renderer.render_paths(world, world.motion, offset_cameras(head, [yaw], [pitch])[0], FRAMES)[0]
        show(f"turning path rendered at yaw {yaw:+.0f}, pitch {pitch:+.0f}", video, refs)
    vae = load_pretrained_video_vae("assets/egotwin-tiny")
    flat = AlignmentConfig(yaw_step_deg=30.0, pitch_offsets_deg=(0.0,))
    own = make_references(renderer, world, world.motion, clip["camera_to_world"][FRAMES], vae, flat, FRAMES)
    video = round_trip_frames(vae, clip["frames"][None, FRAMES])[0]
    show("clip's own frames 0-8 through the shipped VAE", video, own)
    raw = make_references(renderer, world, world.motion, clip["camera_to_world"][FRAMES], None, flat, FRAMES)
    show("clip's own frames 0-8 through the shipped VAE, raw renders", video, raw)
    samples = []
    for record in read_metadata(root):
        c = read_clip(f"{root}/{record['path']}")
        samples.append({k: c[k] for k in ("frames", "motion", "camera_to_world", "intrinsics")})
    scorer = ClipSetAlignment(root, read_metadata(root), flat)
    print("3 clips, own videos:", {k: round(v, 3) for k, v in scorer(samples).items()}, flush=True)
    scorer.close()
    renderer.close()


if __name__ == "__main__":
    main()

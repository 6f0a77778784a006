"""Clips per second per core of EgoWorld generation at 64x64, one worker: plan + motion + render 41 frames + write
the clip (mp4, npz, caption).

    python -m benchmarks.bench_world [--clips 16] [--width 64] [--height 64] [--clips_per_apartment 4] [--seed 0]
        [--textured]

Runs one worker on one torch thread, as each `--workers` process does. Prints the median wall and CPU time per clip
(after one warm-up clip), the stage breakdown, and clips/s/core = 1 / median time. CPU time (this process and its
ffmpeg child) is the figure to trust on a shared machine: wall time includes waiting for cores other processes hold.
`--help` lists every setting.
"""

from __future__ import annotations

import dataclasses
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("PYOPENGL_PLATFORM", "egl")
os.environ.setdefault("LP_NUM_THREADS", "1")  # as in the generation workers

import numpy as np  # noqa: E402
import torch  # noqa: E402

from egotwin.body.head_camera import HeadCameraRig  # noqa: E402
from egotwin.config import parse_config  # noqa: E402
from egotwin.world.apartment import generate_apartment  # noqa: E402
from egotwin.world.generate import WorldConfig, apartment_seed, load_default_body, make_clip, save_clip  # noqa: E402
from egotwin.world.render import EgoRenderer  # noqa: E402


@dataclasses.dataclass(frozen=True)
class BenchWorldConfig:
    """Clips per second per core of EgoWorld generation, one worker: plan + motion + render + write."""

    clips: int = 16
    """Timed clips (after one warm-up clip)."""
    width: int = 64
    """Video width in pixels (at least 16)."""
    height: int = 64
    """Video height in pixels (at least 16)."""
    clips_per_apartment: int = 4
    """Clips recorded in one apartment before a new one is generated."""
    seed: int = 0
    """Seed of the apartments and clips."""
    textured: bool = False
    """Render with procedural textures and posters (WorldConfig.textured)."""


def cpu_seconds() -> float:
    """CPU time of this process and its finished children (the ffmpeg encoder runs as a child process)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def main(argv: list[str] | None = None) -> None:
    config = parse_config(BenchWorldConfig, argv, prog="python -m benchmarks.bench_world")
    errors = []
    if min(config.clips, config.clips_per_apartment) < 1:
        errors.append("--clips and --clips_per_apartment must be positive")
    if min(config.width, config.height) < 16:
        errors.append("--width and --height must be at least 16")
    if errors:
        raise SystemExit("python -m benchmarks.bench_world: error: " + "; ".join(errors))
    torch.set_num_threads(1)
    world = WorldConfig(
        width=config.width,
        height=config.height,
        clips_per_apartment=config.clips_per_apartment,
        textured=config.textured,
    )
    body = load_default_body(world.body_height)
    renderer = EgoRenderer(body, world.width, world.height, HeadCameraRig(), world.textured)
    rest = torch.as_tensor(np.asarray(body.rest_joints), dtype=torch.float32)
    walls, cpus, stages = [], [], {"apartment": [], "clip (plan+motion+render)": [], "write (mp4+npz)": []}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for i in range(-1, config.clips):  # clip -1 warms up (GL context, shader compilation)
            wall0, cpu0 = time.perf_counter(), cpu_seconds()
            index = max(i, 0)
            apartment_time = 0.0
            if i <= 0 or index % world.clips_per_apartment == 0:
                t = time.perf_counter()
                apartment = generate_apartment(apartment_seed(config.seed, index // world.clips_per_apartment))
                renderer.set_apartment(apartment)
                apartment_time = time.perf_counter() - t
            t = time.perf_counter()
            clip = make_clip(f"bench_{i}", apartment, np.random.default_rng([config.seed, index]), renderer, rest)
            clip_time = time.perf_counter() - t
            t = time.perf_counter()
            save_clip(root, clip, "train", "bench")
            write_time = time.perf_counter() - t
            if i >= 0:
                walls.append(time.perf_counter() - wall0)
                cpus.append(cpu_seconds() - cpu0)
                for name, value in zip(stages, (apartment_time, clip_time, write_time)):
                    stages[name].append(value)
    renderer.close()
    wall, cpu = statistics.median(walls), statistics.median(cpus)
    print(
        f"EgoWorld {config.width}x{config.height}{' textured' if config.textured else ''}, {config.clips} clips, "
        f"{config.clips_per_apartment} clips per apartment, 1 worker, torch threads {torch.get_num_threads()}, "
        f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )
    print(f"median per clip: wall {wall:.3f} s, CPU {cpu:.3f} s (mean wall {statistics.mean(walls):.3f} s)")
    for name, values in stages.items():
        print(f"  {name:28s} mean {statistics.mean(values):.3f} s")
    print(f"clips/s/core: {1 / wall:.2f} by wall time, {1 / cpu:.2f} by CPU time")
    print(f"10,000 clips on 2 cores (2 workers): about {10000 / (2 / wall) / 3600:.2f} h")


if __name__ == "__main__":
    main()

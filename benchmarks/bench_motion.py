"""Time encoding and decoding of motion features: a batch of 64 five-second motions (81 frames at 16 fps), both
representations, plus the head camera read from head-centric features versus through decoding and FK.

    python -m benchmarks.bench_motion [--batch 64] [--frames 81] [--repeats 20] [--threads N] [--device cpu]

Prints the median wall time of `--repeats` runs after one warm-up, and the torch thread count they ran with;
`--help` lists every setting.
"""

from __future__ import annotations

import dataclasses
import statistics
import time
from collections.abc import Callable

import torch

from egotwin.body.builtin import builtin_rest_joints
from egotwin.body.head_camera import HeadCameraRig
from egotwin.config import parse_config
from egotwin.motion.random_motion import smooth_random_motion
from egotwin.motion.representation import MotionRepresentation, get_representation


@dataclasses.dataclass(frozen=True)
class BenchMotionConfig:
    """Time encoding and decoding of motion features, both representations, and the head camera read from them."""

    batch: int = 64
    """Motions per batch."""
    frames: int = 81
    """Frames per motion (81: five seconds at 16 fps)."""
    repeats: int = 20
    """Timed runs of each operation (after one warm-up); the median is printed."""
    threads: int = 0
    """torch.set_num_threads (0: torch's own choice)."""
    device: str = "cpu"
    """Torch device."""


def median_ms(fn: Callable[[], object], repeats: int, device: torch.device) -> float:
    """Median wall time of `fn` in milliseconds, after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(1000 * (time.perf_counter() - start))
    return statistics.median(times)


def main(argv: list[str] | None = None) -> None:
    config = parse_config(BenchMotionConfig, argv, prog="python -m benchmarks.bench_motion")
    if min(config.batch, config.frames, config.repeats) < 1:
        raise SystemExit("python -m benchmarks.bench_motion: error: --batch, --frames and --repeats must be positive")
    if config.threads:
        torch.set_num_threads(config.threads)
    device = torch.device(config.device)

    local, trans = smooth_random_motion(config.batch, config.frames, generator=torch.Generator().manual_seed(0))
    local, trans, rest = local.to(device), trans.to(device), builtin_rest_joints().to(device)
    print(
        f"batch {config.batch} x {config.frames} frames, float32, device {device}, torch {torch.__version__}, "
        f"torch.get_num_threads() = {torch.get_num_threads()}, median of {config.repeats}"
    )
    rig = HeadCameraRig()
    with torch.no_grad():
        for name in ("head_centric", "root_centric"):
            rep: MotionRepresentation = get_representation(name)
            features = rep.encode_batch(local, trans, rest)
            encode = median_ms(lambda: rep.encode_batch(local, trans, rest), config.repeats, device)
            decode = median_ms(lambda: rep.decode_batch(features, rest), config.repeats, device)
            camera = median_ms(lambda: rep.head_camera(features, rig, rest), config.repeats, device)
            print(f"{name:>12} (D = {rep.dim}): encode {encode:7.2f} ms   decode {decode:7.2f} ms   ", end="")
            print(f"head camera {camera:7.2f} ms")


if __name__ == "__main__":
    main()

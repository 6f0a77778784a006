"""Time encoding and decoding of motion features: a batch of 64 five-second motions (81 frames at 16 fps), both
representations, plus the head camera read from head-centric features versus through decoding and FK.

    python -m benchmarks.bench_motion [--batch 64] [--frames 81] [--repeats 20] [--threads N] [--device cpu]

Prints the median wall time of `--repeats` runs after one warm-up, and the torch thread count they ran with.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from egotwin.body.builtin import builtin_rest_joints
from egotwin.body.head_camera import HeadCameraRig
from egotwin.motion.random_motion import smooth_random_motion
from egotwin.motion.representation import MotionRepresentation, get_representation


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--frames", type=int, default=81)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's own choice)")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    local, trans = smooth_random_motion(args.batch, args.frames, generator=torch.Generator().manual_seed(0))
    local, trans, rest = local.to(device), trans.to(device), builtin_rest_joints().to(device)
    print(
        f"batch {args.batch} x {args.frames} frames, float32, device {device}, torch {torch.__version__}, "
        f"torch.get_num_threads() = {torch.get_num_threads()}, median of {args.repeats}"
    )
    rig = HeadCameraRig()
    with torch.no_grad():
        for name in ("head_centric", "root_centric"):
            rep: MotionRepresentation = get_representation(name)
            features = rep.encode_batch(local, trans, rest)
            encode = median_ms(lambda: rep.encode_batch(local, trans, rest), args.repeats, device)
            decode = median_ms(lambda: rep.decode_batch(features, rest), args.repeats, device)
            camera = median_ms(lambda: rep.head_camera(features, rig, rest), args.repeats, device)
            print(f"{name:>12} (D = {rep.dim}): encode {encode:7.2f} ms   decode {decode:7.2f} ms   ", end="")
            print(f"head camera {camera:7.2f} ms")


if __name__ == "__main__":
    main()

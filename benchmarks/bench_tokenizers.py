"""Encode/decode time of one 5 s clip for each tokenizer on CPU (or CUDA when present), median of repeats.

    python -m benchmarks.bench_tokenizers [--repeats 3] [--threads N] [--video_vae FOLDER]   (from the repository root)

Clip: video (1, 3, 41, 64, 64) through the small CogVideoX VAE (the stage-0 default config, or a saved one given by
`--video_vae`, e.g. a pipeline's vae/ folder: its layout sets the cost), motion (1, 81, 282)
head-centric features through the default motion VAE, and one caption through the text encoder (all-MiniLM-L6-v2).
Weights are random (speed does not depend on them); the timings cover the networks only. `--help` lists every
setting.
"""

from __future__ import annotations

import dataclasses
import statistics
import time

import torch

from egotwin.config import parse_config
from egotwin.models.motion_vae import MotionVAE
from egotwin.models.text_encoder import TextEncoder
from egotwin.models.video_vae import decode_video, encode_video, load_pretrained_video_vae, small_video_vae

PROMPT = "walk to the red table, then open the door on the left"
"""The timed caption."""


@dataclasses.dataclass(frozen=True)
class BenchTokenizersConfig:
    """Encode/decode time of one 5 s clip for each tokenizer (video VAE, motion VAE, text encoder)."""

    repeats: int = 3
    """Timed runs of each network (after one warm-up); the median is printed."""
    video_vae: str = ""
    """A saved video VAE folder, e.g. a pipeline's vae/ ('': the stage-0 default config, random weights)."""
    threads: int = 0
    """torch CPU threads (0: torch's own choice)."""


def median_seconds(fn, repeats: int) -> float:
    fn()  # warm-up
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


@torch.no_grad()
def main(argv: list[str] | None = None) -> None:
    config = parse_config(BenchTokenizersConfig, argv, prog="python -m benchmarks.bench_tokenizers")
    if config.repeats < 1:
        raise SystemExit("python -m benchmarks.bench_tokenizers: error: --repeats must be positive")
    if config.threads:
        torch.set_num_threads(config.threads)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(0)

    video_vae = load_pretrained_video_vae(config.video_vae) if config.video_vae else small_video_vae()
    video_vae = video_vae.to(device).eval()
    video = torch.rand(1, 3, 41, 64, 64, device=device) * 2 - 1
    video_latents = encode_video(video_vae, video)
    motion_vae = MotionVAE().to(device).eval()
    motion = torch.randn(1, 81, 282, device=device)
    motion_latents = motion_vae.encode(motion).mean
    text = TextEncoder.from_minilm().to(device)

    rows = [
        (
            f"video VAE encode (41x64x64 -> {'x'.join(map(str, video_latents.shape[1:]))})",
            lambda: encode_video(video_vae, video),
        ),
        ("video VAE decode", lambda: decode_video(video_vae, video_latents)),
        ("motion VAE encode (81x282 -> 21x32)", lambda: motion_vae.encode(motion)),
        ("motion VAE decode", lambda: motion_vae.decode(motion_latents)),
        ("text encoder (1 prompt, 32 tokens)", lambda: text.encode(PROMPT)),
    ]
    print(f"device={device} threads={torch.get_num_threads()} repeats={config.repeats}")
    for name, fn in rows:
        print(f"{name:45s} median {1000 * median_seconds(fn, config.repeats):9.1f} ms")


if __name__ == "__main__":
    main()

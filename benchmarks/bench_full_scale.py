"""GPU check of the full scale: one stage-3 training step of EgoTwin's `cogvideox-5b` preset (random weights) against
the same step of plain CogVideoX-5B (diffusers' `CogVideoXTransformer3DModel`, same config), on one GPU.

    python -m benchmarks.bench_full_scale --output_dir runs/bench_full_scale            # 480x720x41, bf16, H100-class
    python -m benchmarks.bench_full_scale --preset tiny --device cpu --height 64 --width 64   # the CPU smoke path

What one step is, for both models: batch 1, 41 frames at height x width (11 latent frames of (h/8, w/8), 2x2 patches:
14,850 video tokens at 480x720), 226 text tokens of the preset's width, and for EgoTwin 21 motion latents
(81 poses); the stage-3 diffusion loss (`egotwin.diffusion.loss`, asynchronous timesteps; CogVideoX: the same v-MSE of
the video alone); forward and backward with gradient checkpointing; then an AdamW step. Everything lives on the one
device in bf16 (weights, gradients, AdamW states): a single GPU cannot hold the float32 masters and AdamW states of 5.9B
parameters (94 GB), which the multi-GPU recipes shard (ZeRO-2, FSDP) and docs/full_scale.md budgets by arithmetic. So
the figures here are the model's own cost: step time (median over `steps` after `warmup`), peak device memory
(`torch.cuda.max_memory_allocated`) and the EgoTwin / CogVideoX step-time ratio. Prints them and, with `output_dir`,
writes `bench_full_scale.json` there.
"""

from __future__ import annotations

import dataclasses
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from diffusers import CogVideoXTransformer3DModel

from egotwin.config import parse_config
from egotwin.diffusion.loss import diffusion_loss
from egotwin.diffusion.scheduler import make_scheduler
from egotwin.models.presets import parameter_counts, transformer_config
from egotwin.models.transformer import EgoTwinTransformer3DModel


@dataclasses.dataclass(frozen=True)
class BenchConfig:
    """One training step of EgoTwin against plain CogVideoX at full scale."""

    preset: str = "cogvideox-5b"
    """Transformer preset (`egotwin.models.presets`); CogVideoX is its config without the motion branch."""
    device: str = "cuda"
    height: int = 480
    width: int = 720
    """Frame size in pixels (the VAE compresses 8x: the transformer's native latent size is set to it)."""
    frames: int = 41
    """Video frames (4k + 1); the motion has 2 * frames - 1 poses."""
    dtype: str = "bf16"
    """'bf16' or 'fp32' (weights, gradients and AdamW states)."""
    gradient_checkpointing: bool = True
    optimizer: str = "adamw"
    """'adamw' (states on the device, in `dtype`) or 'none' (forward and backward only)."""
    warmup: int = 1
    steps: int = 3
    seed: int = 0
    output_dir: str = ""
    """Where to write bench_full_scale.json ('' : print only)."""


def build(model_class: type, config: dict, bench: BenchConfig) -> torch.nn.Module:
    """A randomly initialised model made directly on the device in the bench's dtype (5.9B float32 weights on the host
    first would take 24 GB)."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype({"bf16": torch.bfloat16, "fp32": torch.float32}[bench.dtype])
    try:
        with torch.device(bench.device):
            model = model_class(**config)
    finally:
        torch.set_default_dtype(previous)
    if bench.gradient_checkpointing:
        model.enable_gradient_checkpointing()
    return model.train()


def time_steps(step: Callable[[], torch.Tensor], params: list[torch.nn.Parameter], bench: BenchConfig) -> dict:
    """Run `warmup` + `steps` training steps of the loss `step()`; their median time, peak memory and last loss."""
    optimizer = torch.optim.AdamW(params, lr=1e-5) if bench.optimizer == "adamw" else None
    device = torch.device(bench.device)
    synchronize = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times, loss = [], None
    for index in range(bench.warmup + bench.steps):
        synchronize()
        start = time.perf_counter()
        loss = step()
        loss.backward()
        if optimizer is not None:
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        synchronize()
        if index >= bench.warmup:
            times.append(time.perf_counter() - start)
    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None
    return {"step_s": statistics.median(times), "peak_memory_gib": peak / 2**30 if peak else None, "loss": loss.item()}


def egotwin_step(
    bench: BenchConfig, config: dict, scheduler, text, video, motion, generator
) -> tuple[dict, dict, tuple | None]:
    """EgoTwin's timed steps, its parameter counts and the video RoPE it builds (CogVideoX takes the same)."""
    egotwin = build(EgoTwinTransformer3DModel, config, bench)
    rotary = None
    if config.get("use_rotary_positional_embeddings"):
        rotary = egotwin.video_rotary_embedding(video.shape[1], video.shape[3], video.shape[4], video.device)
    timed = time_steps(
        lambda: diffusion_loss(egotwin, scheduler, text, video, motion, generator=generator).loss,
        list(egotwin.parameters()),
        bench,
    )
    return {"egotwin": timed}, parameter_counts(egotwin), rotary


def run(bench: BenchConfig) -> dict:
    """Time both steps (EgoTwin first, then CogVideoX, one model on the device at a time); returns the figures."""
    if (bench.frames - 1) % 4 or bench.height % 16 or bench.width % 16:
        raise ValueError(
            f"frames must be 4k+1 and height, width multiples of 16, got {bench.frames}, {bench.height}x{bench.width}"
        )
    config = transformer_config(bench.preset, sample_height=bench.height // 8, sample_width=bench.width // 8)
    cogvideox_config = {key: value for key, value in config.items() if not key.startswith("motion_")}
    generator = torch.Generator(bench.device).manual_seed(bench.seed)
    shape = (1, (bench.frames - 1) // 4 + 1, config["in_channels"], bench.height // 8, bench.width // 8)
    video = torch.randn(shape, generator=generator, device=bench.device)
    motion = torch.randn(
        1, (2 * bench.frames - 2) // 4 + 1, config["motion_in_channels"], generator=generator, device=bench.device
    )
    text = torch.randn(
        1, config["max_text_seq_length"], config["text_embed_dim"], generator=generator, device=bench.device
    )
    scheduler = make_scheduler()

    torch.manual_seed(bench.seed)
    results, counts, rotary = egotwin_step(bench, config, scheduler, text, video, motion, generator)
    if torch.device(bench.device).type == "cuda":
        torch.cuda.empty_cache()  # the EgoTwin model is gone: CogVideoX's peak is its own

    cogvideox = build(CogVideoXTransformer3DModel, cogvideox_config, bench)
    dtype = next(cogvideox.parameters()).dtype

    def cogvideox_loss() -> torch.Tensor:
        t = torch.randint(0, scheduler.config.num_train_timesteps, (1,), generator=generator, device=bench.device)
        noise = torch.randn(video.shape, generator=generator, device=bench.device)
        noisy, target = scheduler.add_noise(video, noise, t), scheduler.get_velocity(video, noise, t)
        prediction = cogvideox(noisy.to(dtype), text.to(dtype), t, image_rotary_emb=rotary).sample
        return F.mse_loss(prediction.float(), target.float())

    results["cogvideox"] = time_steps(cogvideox_loss, list(cogvideox.parameters()), bench)
    results["step_time_ratio"] = results["egotwin"]["step_s"] / results["cogvideox"]["step_s"]
    results["parameters"] = {**counts, "plain_cogvideox": sum(param.numel() for param in cogvideox.parameters())}
    results["config"] = dataclasses.asdict(bench)
    results["device_name"] = (
        torch.cuda.get_device_name(bench.device) if torch.device(bench.device).type == "cuda" else "cpu"
    )
    return results


def main(argv: list[str] | None = None) -> dict:
    bench = parse_config(BenchConfig, argv)
    results = run(bench)
    for name in ("egotwin", "cogvideox"):
        peak = results[name]["peak_memory_gib"]
        print(
            f"{name:>9}: step {results[name]['step_s']:.3f} s, peak memory "
            + (f"{peak:.1f} GiB" if peak is not None else "n/a (cpu)")
            + f", loss {results[name]['loss']:.4f}"
        )
    print(
        f"EgoTwin step / CogVideoX step: {results['step_time_ratio']:.3f} ({results['device_name']}, "
        f"{bench.height}x{bench.width}x{bench.frames}, {bench.dtype}, "
        f"parameters {results['parameters']['total'] / 1e6:,.1f}M)"
    )
    if bench.output_dir:
        Path(bench.output_dir).mkdir(parents=True, exist_ok=True)
        (Path(bench.output_dir) / "bench_full_scale.json").write_text(json.dumps(results, indent=2) + "\n")
    return results


if __name__ == "__main__":
    main()

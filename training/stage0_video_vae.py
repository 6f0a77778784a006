"""Stage 0: train the small CogVideoX video VAE on EgoWorld video (design "Training stages"; full scale loads a
pretrained one).

    python -m training.stage0_video_vae --config training/configs/stage0_video_vae.json --data_root DATA

Loss: L1 + MSE reconstruction of the clip (B, 3, 41, H, W) in [-1, 1] plus a small KL. CogVideoX's own VAE recipe adds
a perceptual and an adversarial term; neither has weights that can be had offline, and at 64x64 the PSNR target is
met by pixel losses. At the end the latents' spread is measured and stored as the model's `scaling_factor` (so the
diffusion stages see unit-variance latents), the model goes to `output_dir/video_vae` (`save_pretrained`), and the
held-out split's PSNR is written to `eval.json`.

Decoder fine-tuning (`init_from` a trained VAE, `train_decoder_only`): the encoder, and so the latent space and its
scaling factor, stay exactly as they were, so a latent cache and a transformer trained on them stay valid, while the
decoder learns what sampling asks of it: whole 41-frame clips (the first phase trains on short windows, and a
whole-clip decode scores 1-1.5 dB below a 9-frame one). Stable Diffusion's fine-tuned "ft-MSE" decoder is the same idea.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from diffusers import AutoencoderKLCogVideoX
from torch.utils.data import Dataset

from egotwin.config import parse_config
from egotwin.models.video_vae import (
    SMALL_VIDEO_VAE_CONFIG,
    latent_scaling_factor,
    small_video_vae,
    use_mkldnn_conv3d,
)
from training.common import (
    LossLog,
    TrainConfig,
    build_clip_dataset,
    make_accelerator,
    make_loader,
    make_optimizer,
    resume_from,
    save_checkpoint,
    step_generator,
)


@dataclasses.dataclass(frozen=True)
class Stage0Config(TrainConfig):
    """Stage 0: the small video VAE."""

    output_dir: str = "runs/stage0_video_vae"
    block_out_channels: tuple[int, ...] = SMALL_VIDEO_VAE_CONFIG["block_out_channels"]
    layers_per_block: int = SMALL_VIDEO_VAE_CONFIG["layers_per_block"]
    norm_num_groups: int = SMALL_VIDEO_VAE_CONFIG["norm_num_groups"]
    kl_weight: float = 1e-6
    learning_rate: float = 3e-4
    batch_size: int = 4
    train_frames: int = 17
    """Frames (4k+1) of the random window each training batch takes from its clips; 0 takes whole clips. Short windows
    cost less (CogVideoX's VAE also trains on short clips), but the held-out PSNR is measured on whole 41-frame clips,
    which diffusers encodes as a 9-frame chunk and then 8-frame chunks carrying the causal convolutions' cache, and
    decodes two latents at a time: paths a 9-frame window never takes (a VAE trained on 9 frames alone scored 29 dB on
    windows and 25 dB on whole clips). From 17 frames on a window takes them."""
    train_size: int = 0
    """Side of a random square crop (a multiple of 8) each training batch takes from its frames; 0 takes whole frames.
    The VAE is fully convolutional, so crops teach it the same filters at a fraction of the cost per step; the held-out
    PSNR is measured on whole frames."""
    val_clips: int = 64
    """Held-out PSNR over the first N clips of the val split (0: all); a whole-clip decode costs about a second on
    CPU."""
    scaling_batches: int = 8
    """Training batches whose latents set the scaling factor at export."""
    init_from: str = ""
    """A saved video VAE folder (`save_pretrained`) to start from instead of random weights; its architecture is used
    and the block_out_channels / layers_per_block / norm_num_groups fields are ignored."""
    train_decoder_only: bool = False
    """Train the decoder alone (needs `init_from`): the encoder is frozen and the exported model keeps the init's
    scaling factor, so latents encoded before stay valid."""


def collate_video(items: list[dict]) -> torch.Tensor:
    """Clip items -> their videos stacked, (B, 3, T, H, W)."""
    return torch.stack([item["video"] for item in items])


def temporal_crop(video: torch.Tensor, frames: int, generator: torch.Generator) -> torch.Tensor:
    """A random window of `frames` (4k+1) frames of a batch (B, 3, T, H, W), the same for the whole batch; 0 or >= T:
    all."""
    if frames <= 0 or frames >= video.shape[2]:
        return video
    if (frames - 1) % 4:
        raise ValueError(f"train_frames must be 4k+1 (e.g. 9, 17), got {frames}")
    start = int(torch.randint(0, video.shape[2] - frames + 1, (1,), generator=generator))
    return video[:, :, start : start + frames]


def spatial_crop(video: torch.Tensor, size: int, generator: torch.Generator) -> torch.Tensor:
    """A random `size` x `size` crop (a multiple of 8, the VAE's downsampling) of a batch (B, 3, T, H, W), the same for
    the whole batch; 0 or >= the frame: all."""
    height, width = video.shape[-2:]
    if size <= 0 or (size >= height and size >= width):
        return video
    if size % 8:
        raise ValueError(f"train_size must be a multiple of 8 (the VAE downsamples 8x), got {size}")
    size_h, size_w = min(size, height), min(size, width)
    top = int(torch.randint(0, height - size_h + 1, (1,), generator=generator))
    left = int(torch.randint(0, width - size_w + 1, (1,), generator=generator))
    return video[..., top : top + size_h, left : left + size_w]


def psnr(reconstruction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """PSNR in dB of videos in [-1, 1] (peak-to-peak 2), per item: (B, ...) -> (B,)."""
    mse = (reconstruction.clamp(-1, 1) - target).pow(2).flatten(1).mean(1)
    return 10 * torch.log10(4.0 / mse.clamp_min(1e-12))


@torch.no_grad()
def evaluate(vae: AutoencoderKLCogVideoX, dataset: Dataset, batch_size: int = 2) -> dict[str, float]:
    """Mean PSNR (dB) of posterior-mean reconstructions over a data set."""
    vae.eval()
    device = next(vae.parameters()).device
    values = []
    for start in range(0, len(dataset), batch_size):
        video = collate_video([dataset[i] for i in range(start, min(start + batch_size, len(dataset)))]).to(device)
        reconstruction = vae.decode(vae.encode(video).latent_dist.mode()).sample
        values.append(psnr(reconstruction, video))
    return {"psnr_db": torch.cat(values).mean().item()}


def build_vae(config: Stage0Config) -> AutoencoderKLCogVideoX:
    """The model a run starts from: `init_from`'s weights or a fresh small VAE; with `train_decoder_only` only the
    decoder (and its post-quantisation conv, when the config has one) is trainable."""
    if config.train_decoder_only and not config.init_from:
        raise ValueError("train_decoder_only needs init_from: a trained VAE whose encoder to keep")
    if config.init_from:
        vae = use_mkldnn_conv3d(AutoencoderKLCogVideoX.from_pretrained(config.init_from, local_files_only=True))
    else:
        vae = small_video_vae(
            block_out_channels=config.block_out_channels,
            layers_per_block=config.layers_per_block,
            norm_num_groups=config.norm_num_groups,
        )
    if config.train_decoder_only:
        vae.requires_grad_(False)
        vae.decoder.requires_grad_(True)
        if getattr(vae, "post_quant_conv", None) is not None:
            vae.post_quant_conv.requires_grad_(True)
    return vae


def train(config: Stage0Config, dataset: Dataset, val_dataset: Dataset | None = None) -> AutoencoderKLCogVideoX:
    """Train (or resume) the small video VAE on the clips of `dataset`; returns the trained model (unwrapped)."""
    # 1. Run directory, model, optimiser, and the state of an interrupted run
    accelerator = make_accelerator(config)
    output_dir = Path(config.output_dir)
    vae = build_vae(config)
    optimizer, scheduler = make_optimizer(vae, config)
    vae, optimizer = accelerator.prepare(vae, optimizer)
    # Not through `prepare`: a prepared scheduler steps once per process per step, shortening the warmup on N GPUs.
    accelerator.register_for_checkpointing(scheduler)
    step = resume_from(accelerator, config)
    loader = make_loader(dataset, config, step, accelerator, collate_fn=collate_video)
    log = LossLog(output_dir, accelerator.is_main_process)

    # 2. Training loop
    vae.train()
    for video in loader:
        if step >= config.max_steps:
            break
        crop_generator = step_generator(config.seed, step)
        video = temporal_crop(video, config.train_frames, crop_generator)
        video = spatial_crop(video, config.train_size, crop_generator).to(accelerator.device)
        # encode/decode are called on the unwrapped model to get the posterior; so this stage runs in one process.
        with torch.set_grad_enabled(not config.train_decoder_only):
            posterior = accelerator.unwrap_model(vae).encode(video).latent_dist
        latents = posterior.sample(generator=step_generator(config.seed, step, accelerator.device))
        reconstruction = accelerator.unwrap_model(vae).decode(latents).sample
        l1, mse = F.l1_loss(reconstruction, video), F.mse_loss(reconstruction, video)
        # Per latent element; diffusers' `kl()` sums over image dims (1, 2, 3) only, which does not fit (B, C, T, h, w).
        kl = 0.5 * (posterior.mean.pow(2) + posterior.var - 1.0 - posterior.logvar).mean()
        loss = l1 + mse + (0.0 if config.train_decoder_only else config.kl_weight) * kl
        accelerator.backward(loss)
        if config.max_grad_norm > 0:
            accelerator.clip_grad_norm_(vae.parameters(), config.max_grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        log.add(
            {
                "loss": loss.detach(),
                "l1": l1.detach(),
                "mse": mse.detach(),
                "kl": kl.detach(),
                "psnr_db": psnr(reconstruction.detach(), video).mean(),
            }
        )
        if step % config.log_every == 0 or step == config.max_steps:
            log.write(step, {"lr": scheduler.get_last_lr()[0]})
        if step % config.checkpoint_every == 0 or step == config.max_steps:
            save_checkpoint(accelerator, config, step, config.keep_checkpoints)

    # 3. Scaling factor from the latents' spread, export, and the held-out PSNR
    model = accelerator.unwrap_model(vae).eval()
    if accelerator.is_main_process:
        if not config.train_decoder_only:  # a decoder fine-tune keeps the encoder, so its scaling factor too
            with torch.no_grad():
                batches = [
                    collate_video([dataset[i] for i in range(b * config.batch_size, (b + 1) * config.batch_size)])
                    for b in range(min(config.scaling_batches, len(dataset) // config.batch_size))
                ]
                latents = torch.cat([model.encode(v.to(accelerator.device)).latent_dist.mode() for v in batches])
            scale = latent_scaling_factor(latents)
            if not math.isfinite(scale):
                raise RuntimeError("video latents have no spread; training diverged")
            model.register_to_config(scaling_factor=scale)
        model.save_pretrained(output_dir / "video_vae")
        if val_dataset is not None and len(val_dataset):
            if config.val_clips > 0 and len(val_dataset) > config.val_clips:
                val_dataset = torch.utils.data.Subset(val_dataset, range(config.val_clips))
            metrics = evaluate(model, val_dataset)
            record = {"step": step, "split": config.val_split, "clips": len(val_dataset), **metrics}
            (output_dir / "eval.json").write_text(json.dumps(record, indent=2) + "\n")
            print("held-out:", json.dumps(metrics))
    return model


def main(argv: list[str] | None = None) -> None:
    config = parse_config(Stage0Config, argv)
    dataset = build_clip_dataset(config.data_root, config.train_split)
    val_dataset = build_clip_dataset(config.data_root, config.val_split) if config.val_split else None
    train(config, dataset, val_dataset)


if __name__ == "__main__":
    main()

"""Stage 1: train the causal motion VAE on EgoWorld motion (design "Tokenizers" and "Training stages").

    python -m training.stage1_motion_vae --config training/configs/stage1_motion_vae.json --data_root DATA

Every clip's motion is canonicalised (frame 0's head above the origin, facing +z) and turned into features of the
chosen representation once, up front; the z-score statistics of the training split are saved next to the model
(`feature_stats.safetensors`), which goes to `output_dir/motion_vae` in diffusers' `save_pretrained` layout.
At the end the held-out split is reconstructed and scored in the units the issue sets targets in: mean joint position
error (mm), head position error (mm) and head rotation error (degrees).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import torch
from torch.utils.data import Dataset, TensorDataset

from egotwin.body.kinematics import forward_kinematics
from egotwin.body.rotations import geodesic_angle
from egotwin.body.skeleton import HEAD
from egotwin.config import parse_config
from egotwin.data.latents import clip_motion
from egotwin.models.motion_vae import MotionVAE, motion_vae_loss
from egotwin.models.video_vae import latent_scaling_factor
from egotwin.motion.normalization import FeatureStats
from egotwin.motion.representation import MotionRepresentation, get_representation
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
class Stage1Config(TrainConfig):
    """Stage 1: the motion VAE."""

    output_dir: str = "runs/stage1_motion_vae"
    representation: str = "head_centric"
    """'head_centric' (EgoTwin) or 'root_centric' (the "w/o MR" ablation)."""
    latent_channels: int = 32
    block_out_channels: tuple[int, ...] = (256, 256)
    layers_per_block: int = 2
    kl_weight: float = 1e-4
    learning_rate: float = 2e-4
    batch_size: int = 32


def motion_features(dataset: Dataset, representation: MotionRepresentation) -> tuple[torch.Tensor, torch.Tensor]:
    """Raw (not z-scored) features (N, T, D) of every clip's canonicalised motion and its rest skeletons (N, 22, 3)."""
    features, rest = [], []
    for index in range(len(dataset)):
        motion = clip_motion(dataset[index])
        features.append(representation.encode(motion).float())
        rest.append(motion.rest_joints.float())
    return torch.stack(features), torch.stack(rest)


@torch.no_grad()
def evaluate(
    vae: MotionVAE,
    features: torch.Tensor,
    rest_joints: torch.Tensor,
    stats: FeatureStats,
    representation: MotionRepresentation,
    batch_size: int = 64,
) -> dict[str, float]:
    """Reconstruct raw features (N, T, D) through the posterior mean; errors of the decoded bodies against the
    originals (both through the representation's exact decoder and FK): joint position (mm, mean over joints and
    frames), head position (mm), head rotation (degrees)."""
    vae.eval()
    device = next(vae.parameters()).device
    sums = {"mpjpe_mm": 0.0, "head_position_mm": 0.0, "head_rotation_deg": 0.0}
    for start in range(0, len(features), batch_size):
        target = features[start : start + batch_size].to(device)
        rest = rest_joints[start : start + batch_size].to(device).unsqueeze(1)  # (B, 1, 22, 3)
        recon = stats.denormalize(vae(stats.normalize(target), sample_posterior=False).sample)
        poses = []
        for x in (target, recon):
            local, trans = representation.decode_batch(x, rest)
            poses.append(forward_kinematics(local, rest, trans))
        (rot_t, joints_t), (rot_r, joints_r) = poses
        sums["mpjpe_mm"] += 1000 * (joints_t - joints_r).norm(dim=-1).mean(dim=(1, 2)).sum().item()
        sums["head_position_mm"] += (
            1000 * (joints_t[..., HEAD, :] - joints_r[..., HEAD, :]).norm(dim=-1).mean(1).sum().item()
        )
        angle = geodesic_angle(rot_t[..., HEAD, :, :], rot_r[..., HEAD, :, :])
        sums["head_rotation_deg"] += torch.rad2deg(angle).mean(1).sum().item()
    return {key: value / len(features) for key, value in sums.items()}


@torch.no_grad()
def motion_latent_scale(vae: MotionVAE, features: torch.Tensor, batch_size: int = 256) -> float:
    """1 / std of the posterior means of z-scored features (N, T, D): the factor that gives the diffusion transformer
    unit-variance motion latents (what `latent_scaling_factor` is for the video VAE)."""
    vae.eval()
    device = next(vae.parameters()).device
    means = [vae.encode(features[i : i + batch_size].to(device)).mean for i in range(0, len(features), batch_size)]
    return latent_scaling_factor(torch.cat(means))


def train(config: Stage1Config, dataset: Dataset, val_dataset: Dataset | None = None) -> MotionVAE:
    """Train (or resume) the motion VAE on the clips of `dataset`; returns the trained model (unwrapped)."""
    # 1. Run directory, features and their statistics
    accelerator = make_accelerator(config)
    output_dir = Path(config.output_dir)
    representation = get_representation(config.representation)
    features, _ = motion_features(dataset, representation)
    stats = FeatureStats.accumulate([features], representation=representation.name)
    train_set = TensorDataset(stats.normalize(features))

    # 2. Model, optimiser, and the state of an interrupted run
    vae = MotionVAE(
        in_channels=representation.dim,
        latent_channels=config.latent_channels,
        block_out_channels=config.block_out_channels,
        layers_per_block=config.layers_per_block,
        representation=representation.name,
    )
    optimizer, scheduler = make_optimizer(vae, config)
    vae, optimizer = accelerator.prepare(vae, optimizer)
    # Not through `prepare`: a prepared scheduler steps once per process per step, shortening the warmup on N GPUs.
    accelerator.register_for_checkpointing(scheduler)
    step = resume_from(accelerator, config)
    loader = make_loader(train_set, config, step, accelerator)
    loss_groups = representation.loss_groups
    log = LossLog(output_dir, accelerator.is_main_process)

    # 3. Training loop
    vae.train()
    for (batch,) in loader:
        if step >= config.max_steps:
            break
        batch = batch.to(accelerator.device)
        out = vae(batch, generator=step_generator(config.seed, step, accelerator.device))
        loss, logs = motion_vae_loss(out.sample, batch, out.latent_dist, loss_groups, config.kl_weight)
        accelerator.backward(loss)
        if config.max_grad_norm > 0:
            accelerator.clip_grad_norm_(vae.parameters(), config.max_grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        log.add(logs)
        if step % config.log_every == 0 or step == config.max_steps:
            log.write(step, {"lr": scheduler.get_last_lr()[0]})
        if step % config.checkpoint_every == 0 or step == config.max_steps:
            save_checkpoint(accelerator, config, step, config.keep_checkpoints)

    # 4. Export the model with its statistics, and score the held-out split
    model = accelerator.unwrap_model(vae)
    if accelerator.is_main_process:
        model.register_to_config(scaling_factor=motion_latent_scale(model, train_set.tensors[0]))
        model.save_pretrained(output_dir / "motion_vae")
        stats.save(output_dir / "motion_vae" / "feature_stats.safetensors")
        if val_dataset is not None and len(val_dataset):
            val_features, val_rest = motion_features(val_dataset, representation)
            metrics = evaluate(model, val_features, val_rest, stats, representation)
            (output_dir / "eval.json").write_text(
                json.dumps({"step": step, "split": config.val_split, **metrics}, indent=2) + "\n"
            )
            print("held-out:", json.dumps(metrics))
    return model


def main(argv: list[str] | None = None) -> None:
    config = parse_config(Stage1Config, argv)
    dataset = build_clip_dataset(config.data_root, config.train_split, need_video=False)
    val_dataset = build_clip_dataset(config.data_root, config.val_split, need_video=False) if config.val_split else None
    train(config, dataset, val_dataset)


if __name__ == "__main__":
    main()

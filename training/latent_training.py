"""What the two diffusion stages (2: text-to-motion, 3: joint text-video-motion) share: the config fields, reading the
latent caches, building the transformer so that its input sizes come from the cache, text dropout, the training loop
with EMA, validation and export.

A cache folder (`latents`) holds one latent cache per split, as `training.cache_latents --output_dir CACHE/train`
writes them: `CACHE/<train_split>` and, for validation, `CACHE/<val_split>`.

Besides `training.common`'s run layout, a stage writes `output_dir/transformer/`: the transformer in diffusers'
`save_pretrained` layout (the EMA weights when EMA is on) with `training_run.json` (the run config and what the latent
cache was made with) next to it. It is rewritten at every checkpoint, so a killed run still leaves a usable model.
With several processes each rank also writes `output_dir/replicas/rank_XX.json` at the end: a SHA-256 of its weights
and the clips it trained on in that process, to check that the replicas agree and shared out the data.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import torch
from diffusers.training_utils import EMAModel
from torch.utils.data import DataLoader, Dataset, Sampler

from egotwin.data.latents import LatentDataset
from egotwin.diffusion.loss import diffusion_loss
from egotwin.diffusion.scheduler import make_scheduler
from egotwin.models.presets import build_transformer, transformer_config
from egotwin.models.transformer import EgoTwinTransformer3DModel
from training.common import (
    EpochBatchSampler,
    LossLog,
    TrainConfig,
    learning_rate_factor,
    resume_from,
    save_checkpoint,
    step_generator,
)

TRANSFORMER_FOLDER = "transformer"
RUN_FILE = "training_run.json"


@dataclasses.dataclass(frozen=True)
class DiffusionTrainConfig(TrainConfig):
    """Fields of the diffusion stages (2 and 3). `data_root` is not used: they read latent caches."""

    latents: str = ""
    """Folder with one latent cache per split: `<latents>/<train_split>`, `<latents>/<val_split>`."""
    preset: str = "tiny"
    """Transformer preset (`egotwin.models.presets`); the cache sets motion_in_channels, text_embed_dim and
    max_text_seq_length."""
    cogvideox_folder: str = ""
    """A local CogVideoX diffusers folder: its text/video weights are loaded and the preset's motion branch added."""
    representation: str = ""
    """Expected motion representation of the cache ('' accepts the cache's); it is recorded with the model."""
    text_dropout: float = 0.1
    """Fraction of captions replaced by the empty prompt (what classifier-free guidance needs)."""
    sample_posterior: bool = True
    """Draw latents from the cached VAE posteriors (a fresh draw each epoch) instead of their means."""
    snr_shift_scale: float = 1.0
    """CogVideoX scheduler's SNR shift (1.0 as CogVideoX-5B)."""
    ema_decay: float = 0.999
    """EMA decay of the trained weights (0 disables); the EMA weights are what gets exported."""
    gradient_checkpointing: bool = False
    val_every: int = 500
    """Validation loss on the val cache every N steps (0: only at the end)."""
    val_batches: int = 8
    """How many fixed batches of the val cache (taken in order, fixed noise) make the validation loss."""
    warmup_steps: int = 200


# ------------------------------------------------------------------------------------------------------ data
@dataclasses.dataclass
class LatentCaches:
    """The training cache, the validation cache (or None) and the training cache's index (what made it)."""

    train: LatentDataset
    val: LatentDataset | None
    index: dict

    @property
    def representation(self) -> str:
        return self.index["motion_vae"]["representation"]

    @property
    def video_latent_size(self) -> tuple[int, int] | None:
        """(h, w) of the video latents; None for a motion-only cache."""
        return self.train.video_latent_size

    def description(self) -> dict:
        """What the latents were made with, recorded next to the exported model."""
        return {key: self.index[key] for key in ("motion_vae", "video_vae", "text_encoder")}


def open_caches(config: DiffusionTrainConfig) -> LatentCaches:
    """The caches of `config.latents`; checks that the representation is the one the config expects."""
    if not config.latents:
        raise ValueError("latents is not set: point it at a folder of latent caches (see training.cache_latents)")
    root = Path(config.latents)
    train = LatentDataset(root / config.train_split, sample_posterior=config.sample_posterior, seed=config.seed)
    val = LatentDataset(root / config.val_split, sample_posterior=False) if config.val_split else None
    caches = LatentCaches(train, val, train.index)
    if config.representation and config.representation != caches.representation:
        raise ValueError(
            f"the config expects the '{config.representation}' motion representation, but the cache {root / config.train_split} "
            f"was made with '{caches.representation}'"
        )
    if val is not None and val.index["motion_vae"] != train.index["motion_vae"]:
        raise ValueError(f"train and val caches were made with different motion VAEs: {train.index['motion_vae']} vs {val.index['motion_vae']}")
    return caches


class _EpochItems(Dataset):
    """A `LatentDataset` addressed by (epoch, index), so each epoch draws fresh posterior samples, also in workers."""

    def __init__(self, latents: LatentDataset):
        self.latents = latents

    def __len__(self) -> int:
        return len(self.latents)

    def __getitem__(self, key: tuple[int, int]) -> dict:
        epoch, index = key
        self.latents.set_epoch(epoch)
        return self.latents[index]


class _EpochBatches(Sampler[list[tuple[int, int]]]):
    """`EpochBatchSampler`'s batches with every index tagged by its epoch."""

    def __init__(self, sampler: EpochBatchSampler):
        self.sampler = sampler

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        for number, batch in enumerate(self.sampler, start=self.sampler.start_batch):
            epoch = number // self.sampler.batches_per_epoch
            yield [(epoch, index) for index in batch]

    def __len__(self) -> int:
        return len(self.sampler)


def make_latent_loader(latents: LatentDataset, config: DiffusionTrainConfig, start_batch: int, accelerator) -> DataLoader:
    """Batches of the training cache in `EpochBatchSampler` order from `start_batch`, this rank's share only (not passed
    through `accelerator.prepare`, whose own sharding would not know the resume position)."""
    sampler = EpochBatchSampler(
        len(latents), config.batch_size, config.seed, start_batch, accelerator.process_index, accelerator.num_processes
    )
    return DataLoader(_EpochItems(latents), batch_sampler=_EpochBatches(sampler), num_workers=config.num_workers)


def apply_text_dropout(
    embeddings: torch.Tensor, null_embedding: torch.Tensor, rate: float, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Replace each row of `embeddings` (B, L, D) by `null_embedding` (L, D) with probability `rate`.

    Returns the embeddings and the dropped rows (B,) bool."""
    dropped = torch.rand(embeddings.size(0), generator=generator, device=generator.device).to(embeddings.device) < rate
    null = null_embedding.to(embeddings.device, embeddings.dtype).expand_as(embeddings)
    return torch.where(dropped[:, None, None], null, embeddings), dropped


# ----------------------------------------------------------------------------------------------------- model
def build_stage_transformer(
    config: DiffusionTrainConfig, caches: LatentCaches, **overrides
) -> EgoTwinTransformer3DModel:
    """The transformer of `config.preset` (random init) or, with `cogvideox_folder`, CogVideoX's weights plus the preset's
    fresh motion branch; its motion and text input sizes, and its video latent size when the cache has video, are the
    cache's. `overrides`: config keys such as `full_attention`."""
    index = caches.index
    sizes = dict(
        motion_in_channels=index["motion_vae"]["latent_channels"],
        text_embed_dim=index["text_encoder"]["dim"],
        max_text_seq_length=index["text_encoder"]["max_length"],
    )
    if caches.video_latent_size is not None and not config.cogvideox_folder:
        sizes.update(sample_height=caches.video_latent_size[0], sample_width=caches.video_latent_size[1])
    if not config.cogvideox_folder:
        model = build_transformer(config.preset, **{**sizes, **overrides})
    else:
        motion_config = {key: value for key, value in transformer_config(config.preset).items() if key.startswith("motion_")}
        motion_config.update(motion_in_channels=sizes["motion_in_channels"], **overrides)
        model = EgoTwinTransformer3DModel.from_cogvideox(config.cogvideox_folder, **motion_config)
    check_cache_fits(model, caches)
    return model


def require_video(config: DiffusionTrainConfig, caches: LatentCaches) -> None:
    """A clear error where a stage that trains the video branch is given a motion-only cache."""
    if not (caches.train.has_video and (caches.val is None or caches.val.has_video)):
        raise ValueError(
            f"{config.latents}: a motion-only latent cache (made without --video_vae) cannot train the video branch; "
            "cache it again with the stage-0 video VAE"
        )


def check_cache_fits(model: EgoTwinTransformer3DModel, caches: LatentCaches) -> None:
    """A clear error where the cache's latents or text embeddings do not fit the transformer's inputs. The video latent
    size is the transformer's native one (`sample_height` x `sample_width`): the pipeline generates at that size."""
    index = caches.index
    wanted = {
        "motion latent channels": (model.config.motion_in_channels, index["motion_vae"]["latent_channels"]),
        "text embedding width": (model.config.text_embed_dim, index["text_encoder"]["dim"]),
        "text length": (model.config.max_text_seq_length, index["text_encoder"]["max_length"]),
    }
    if index["video_vae"] is not None:  # a motion-only cache (stage 2) has no video latents
        wanted["video latent channels"] = (model.config.in_channels, index["video_vae"]["latent_channels"])
        wanted["video latent size"] = ((model.config.sample_height, model.config.sample_width), caches.video_latent_size)
    wrong = [f"{name}: transformer {a}, cache {b}" for name, (a, b) in wanted.items() if a != b]
    if wrong:
        raise ValueError("the latent cache does not fit the transformer (" + "; ".join(wrong) + ")")


def parameters_sha256(model: torch.nn.Module) -> str:
    """SHA-256 of every parameter's bytes, in `named_parameters` order (equal only for bit-identical weights)."""
    digest = hashlib.sha256()
    for name, param in model.named_parameters():
        digest.update(name.encode())
        digest.update(param.detach().float().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


# ------------------------------------------------------------------------------------------------- training
@torch.no_grad()
def validation_loss(
    model: EgoTwinTransformer3DModel, val: LatentDataset, config: DiffusionTrainConfig, with_video: bool, shared_timestep: bool
) -> dict[str, float]:
    """Diffusion loss on the first `val_batches` batches of the val cache (posterior means, no text dropout), each with
    noise and timesteps from a fixed seed, so values from different steps and runs compare."""
    scheduler = make_scheduler("ddim", config.snr_shift_scale)
    device = next(model.parameters()).device
    sums: dict[str, float] = {}
    batches = 0
    for batches, start in enumerate(range(0, min(len(val), config.val_batches * config.batch_size), config.batch_size), 1):
        items = [val[i] for i in range(start, min(start + config.batch_size, len(val)))]
        keys = ("video_latents", "motion_latents", "text_embeddings") if with_video else ("motion_latents", "text_embeddings")
        batch = {key: torch.stack([item[key] for item in items]).to(device) for key in keys}
        generator = torch.Generator(device).manual_seed(config.seed * 1_000_003 + start)
        out = diffusion_loss(
            model, scheduler, batch["text_embeddings"], batch["video_latents"] if with_video else None,
            batch["motion_latents"], shared_timestep, generator,
        )
        for key in ("loss", "video_loss", "motion_loss"):
            if getattr(out, key) is not None:
                sums[f"val_{key}"] = sums.get(f"val_{key}", 0.0) + getattr(out, key).item()
    return {key: value / max(batches, 1) for key, value in sums.items()}


def export_transformer(model: EgoTwinTransformer3DModel, ema: EMAModel | None, trained: list, config, caches: LatentCaches, step: int) -> Path:
    """Save `output_dir/transformer` (EMA weights if any) with the run config and the cache's description."""
    folder = Path(config.output_dir) / TRANSFORMER_FOLDER
    if ema is not None:
        ema.store(trained)
        ema.copy_to(trained)
    model.save_pretrained(folder)
    if ema is not None:
        ema.restore(trained)
    run = {"step": step, "ema": ema is not None, "config": dataclasses.asdict(config), "latents": caches.description()}
    (folder / RUN_FILE).write_text(json.dumps(run, indent=2) + "\n")
    return folder


def fit(
    config: DiffusionTrainConfig,
    accelerator,
    model: EgoTwinTransformer3DModel,
    param_groups: list[dict],
    caches: LatentCaches,
    with_video: bool,
    shared_timestep: bool = False,
) -> EgoTwinTransformer3DModel:
    """Train the parameters of `param_groups` (dicts with "params" and "lr"; every other parameter is frozen) with the
    diffusion loss on the training cache; returns the model (unwrapped, with the EMA weights when EMA is on).

    `with_video`: stage 3 (video + motion latents, a cache the caller has passed through `require_video`) or stage 2
    (motion only, no video tokens)."""
    # 1. Which weights train; optimiser, EMA and the state of an interrupted run
    trained = [param for group in param_groups for param in group["params"]]
    trained_ids = {id(param) for param in trained}
    for param in model.parameters():
        param.requires_grad_(id(param) in trained_ids)
    if config.gradient_checkpointing:
        model.enable_gradient_checkpointing()
    optimizer = torch.optim.AdamW(param_groups, betas=(config.adam_beta1, config.adam_beta2), weight_decay=config.weight_decay)
    lr_scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: learning_rate_factor(config, step))
    # The schedule counts optimizer steps whatever the number of processes, so it stays out of `prepare` (which would
    # step it once per process); it is checkpointed as a custom object instead.
    accelerator.register_for_checkpointing(lr_scheduler)
    ema = EMAModel(trained, decay=config.ema_decay) if config.ema_decay > 0 else None
    if ema is not None:
        accelerator.register_for_checkpointing(ema)
    if accelerator.state.deepspeed_plugin is not None:
        # DeepSpeed takes the micro batch from a prepared DataLoader; ours stays out of `prepare` (see make_latent_loader)
        accelerator.state.deepspeed_plugin.deepspeed_config["train_micro_batch_size_per_gpu"] = config.batch_size
    model, optimizer = accelerator.prepare(model, optimizer)
    step = resume_from(accelerator, config)
    if ema is not None:
        ema.to(accelerator.device)  # a loaded EMA state arrives on the CPU

    # 2. Data, noise schedule, the empty prompt for text dropout
    loader = make_latent_loader(caches.train, config, step, accelerator)
    scheduler = make_scheduler("ddim", config.snr_shift_scale)
    null_text = caches.train.null_text()[0].to(accelerator.device)
    unwrapped = accelerator.unwrap_model(model)
    log = LossLog(config.output_dir, accelerator.is_main_process)
    seen: list[str] = []

    def validate() -> dict[str, float]:
        """Validation loss of the weights that get exported (EMA when on); main process only."""
        if not accelerator.is_main_process:
            return {}
        if ema is not None:
            ema.store(trained)
            ema.copy_to(trained)
        unwrapped.eval()
        values = validation_loss(unwrapped, caches.val, config, with_video, shared_timestep)
        unwrapped.train()
        if ema is not None:
            ema.restore(trained)
        return values

    # 3. Training loop
    model.train()
    for batch in loader:
        if step >= config.max_steps:
            break
        # one generator per (step, rank): reproducible, and different noise on each rank's different clips
        generator = step_generator(config.seed, step * accelerator.num_processes + accelerator.process_index, accelerator.device)
        text, dropped = apply_text_dropout(batch["text_embeddings"].to(accelerator.device), null_text, config.text_dropout, generator)
        out = diffusion_loss(
            model,
            scheduler,
            text,
            batch["video_latents"].to(accelerator.device) if with_video else None,
            batch["motion_latents"].to(accelerator.device),
            shared_timestep,
            generator,
        )
        accelerator.backward(out.loss)
        if config.max_grad_norm > 0:
            accelerator.clip_grad_norm_(trained, config.max_grad_norm)
        optimizer.step()
        lr_scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        if ema is not None:
            ema.step(trained)
        step += 1
        seen += batch["clip_id"]
        log.add({"loss": out.loss.detach(), "motion_loss": out.motion_loss.detach(), "text_dropped": dropped.float().mean()}
                | ({"video_loss": out.video_loss.detach()} if with_video else {}))
        val = {}
        if caches.val is not None and (step == config.max_steps or (config.val_every and step % config.val_every == 0)):
            val = validate()
            accelerator.wait_for_everyone()
        if step % config.log_every == 0 or step == config.max_steps or val:
            log.write(step, {"lr": lr_scheduler.get_last_lr()[0], **val})
        if step % config.checkpoint_every == 0 or step == config.max_steps:
            save_checkpoint(accelerator, config, step, config.keep_checkpoints)
            if accelerator.is_main_process:
                export_transformer(unwrapped, ema, trained, config, caches, step)
            accelerator.wait_for_everyone()

    # 4. Each replica's fingerprint in a distributed run, and the exported weights
    if accelerator.num_processes > 1:
        folder = Path(config.output_dir) / "replicas"
        folder.mkdir(parents=True, exist_ok=True)
        report = {"rank": accelerator.process_index, "step": step, "parameters_sha256": parameters_sha256(unwrapped), "clip_ids": seen}
        (folder / f"rank_{accelerator.process_index:02d}.json").write_text(json.dumps(report) + "\n")
    accelerator.wait_for_everyone()
    if ema is not None:
        ema.copy_to(trained)
    return unwrapped

"""What the two diffusion stages (2: text-to-motion, 3: joint text-video-motion) share: the config fields, reading the
latent caches, building the transformer so that its input sizes come from the cache, text dropout, the training loop
with EMA, validation and export.

A cache folder (`latents`) holds one latent cache per split, as `training.cache_latents --output_dir CACHE/train`
writes them: `CACHE/<train_split>` and, for validation, `CACHE/<val_split>`.

Besides `training.common`'s run layout, a stage writes `output_dir/transformer/`: the transformer in diffusers'
`save_pretrained` layout (the EMA weights when EMA is on) with `training_run.json` (the run config and what the latent
cache was made with) next to it. It is rewritten at every checkpoint, so a killed run still leaves a usable model.
With several processes each rank also writes `output_dir/replicas/rank_XX.json` at the end: a SHA-256 of its weights
(FSDP shards gathered), how many parameter values it holds (its shard under FSDP) and the clips it trained on in that
process, to check that the replicas agree and shared out the data.

Engines (accelerate's launcher configs in `training/accelerate/`): one process, DDP, DeepSpeed ZeRO-2 and FSDP2 run the
same loop. The model trains in float32 master weights (bf16 compute through autocast or FSDP's mixed precision), except
under DeepSpeed, which casts the model to bf16 and keeps the float32 masters in its optimizer; the loss feeds the model
in its parameters' dtype either way. The trained-parameter list is taken after `accelerator.prepare` (FSDP replaces the
parameters by shards), every process runs validation (a sharded forward needs them all), and the export is the
gathered float32 state dict written by the main process (`gathered_weights`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path

import torch
from accelerate import init_empty_weights
from accelerate.utils import DistributedType
from diffusers.training_utils import EMAModel
from torch.distributed.tensor import DTensor, distribute_tensor
from torch.utils.data import DataLoader, Dataset, Sampler

from egotwin.data.latents import LatentDataset, parameters_sha256
from egotwin.diffusion.loss import Generators, diffusion_loss, per_item
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
            f"the config expects the '{config.representation}' motion representation, "
            f"but the cache {root / config.train_split} "
            f"was made with '{caches.representation}'"
        )
    if val is not None and val.index["motion_vae"] != train.index["motion_vae"]:
        raise ValueError(
            f"train and val caches were made with different motion VAEs: "
            f"{train.index['motion_vae']} vs {val.index['motion_vae']}"
        )
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


def make_latent_loader(
    latents: LatentDataset, config: DiffusionTrainConfig, start_batch: int, accelerator
) -> DataLoader:
    """Batches of the training cache in `EpochBatchSampler` order from `start_batch`, this rank's share only (not passed
    through `accelerator.prepare`, whose own sharding would not know the resume position)."""
    sampler = EpochBatchSampler(
        len(latents), config.batch_size, config.seed, start_batch, accelerator.process_index, accelerator.num_processes
    )
    return DataLoader(_EpochItems(latents), batch_sampler=_EpochBatches(sampler), num_workers=config.num_workers)


def apply_text_dropout(
    embeddings: torch.Tensor, null_embedding: torch.Tensor, rate: float, generator: Generators
) -> tuple[torch.Tensor, torch.Tensor]:
    """Replace each row of `embeddings` (B, L, D) by `null_embedding` (L, D) with probability `rate`; `generator` may
    be a list, one per row.

    Returns the embeddings and the dropped rows (B,) bool."""
    draws = per_item(lambda n, g: torch.rand(n, generator=g, device=g.device), embeddings.size(0), generator)
    dropped = draws.to(embeddings.device) < rate
    null = null_embedding.to(embeddings.device, embeddings.dtype).expand_as(embeddings)
    return torch.where(dropped[:, None, None], null, embeddings), dropped


def clip_generators(config: DiffusionTrainConfig, step: int, accelerator) -> list[torch.Generator]:
    """One generator per clip of this process's share of global batch `step`, seeded by (seed, step, the clip's place
    in the global batch): text dropout, timesteps and noise of a clip do not depend on how many processes share the
    batch, so a run on N processes trains the same weights as one process with N times the batch."""
    world, rank = accelerator.num_processes, accelerator.process_index
    places = range(rank, config.batch_size * world, world)  # EpochBatchSampler's share of rank `rank`
    return [
        step_generator(config.seed, step * config.batch_size * world + place, accelerator.device) for place in places
    ]


# ----------------------------------------------------------------------------------------------------- model
def build_stage_transformer(
    config: DiffusionTrainConfig, caches: LatentCaches, with_video: bool, **overrides
) -> EgoTwinTransformer3DModel:
    """The transformer of `config.preset` (random init) or, with `cogvideox_folder`, CogVideoX's weights (in their
    stored dtype) plus the preset's fresh motion branch; its motion and text input sizes, and its video latent size
    when the cache has video, are the cache's. `with_video`: the stage trains video (see `check_cache_fits`).
    `overrides`: config keys such as `full_attention`."""
    index = caches.index
    sizes = {
        "motion_in_channels": index["motion_vae"]["latent_channels"],
        "text_embed_dim": index["text_encoder"]["dim"],
        "max_text_seq_length": index["text_encoder"]["max_length"],
    }
    if caches.video_latent_size is not None and not config.cogvideox_folder:
        sizes.update(sample_height=caches.video_latent_size[0], sample_width=caches.video_latent_size[1])
    if not config.cogvideox_folder:
        model = build_transformer(config.preset, **{**sizes, **overrides})
    else:
        motion_config = {
            key: value for key, value in transformer_config(config.preset).items() if key.startswith("motion_")
        }
        motion_config.update(motion_in_channels=sizes["motion_in_channels"], **overrides)
        model = EgoTwinTransformer3DModel.from_cogvideox(config.cogvideox_folder, **motion_config)
    check_cache_fits(model, caches, with_video)
    return model


def require_video(config: DiffusionTrainConfig, caches: LatentCaches) -> None:
    """A clear error where a stage that trains the video branch is given a motion-only cache."""
    if not (caches.train.has_video and (caches.val is None or caches.val.has_video)):
        raise ValueError(
            f"{config.latents}: a motion-only latent cache (made without --video_vae) cannot train the video branch; "
            "cache it again with the stage-0 video VAE"
        )


def check_cache_fits(model: EgoTwinTransformer3DModel, caches: LatentCaches, with_video: bool) -> None:
    """A clear error where the cache's latents or text embeddings do not fit the transformer's inputs. The video latent
    size is the transformer's native one (`sample_height` x `sample_width`): the pipeline generates at that size.
    Without video (stage 2, which trains no video) the cache's video latents, if any, are not read and not checked."""
    index = caches.index
    wanted = {
        "motion latent channels": (model.config.motion_in_channels, index["motion_vae"]["latent_channels"]),
        "text embedding width": (model.config.text_embed_dim, index["text_encoder"]["dim"]),
        "text length": (model.config.max_text_seq_length, index["text_encoder"]["max_length"]),
    }
    if with_video and index["video_vae"] is not None:
        wanted["video latent channels"] = (model.config.in_channels, index["video_vae"]["latent_channels"])
        wanted["video latent size"] = (
            (model.config.sample_height, model.config.sample_width),
            caches.video_latent_size,
        )
    wrong = [f"{name}: transformer {a}, cache {b}" for name, (a, b) in wanted.items() if a != b]
    if wrong:
        raise ValueError("the latent cache does not fit the transformer (" + "; ".join(wrong) + ")")


# ------------------------------------------------------------------------------------ engines: DDP, ZeRO-2, FSDP
def full_tensor(tensor: torch.Tensor) -> torch.Tensor:
    """An FSDP shard (a DTensor) gathered whole, every process must call it; any other tensor as it is."""
    return tensor.full_tensor() if isinstance(tensor, DTensor) else tensor


def canonical_name(name: str) -> str:
    """A parameter's name without the prefixes wrappers add (activation checkpointing, torch.compile)."""
    return name.replace("_checkpoint_wrapped_module.", "").replace("_orig_mod.", "")


def named_trained_parameters(model: torch.nn.Module, names: list[str]) -> list[torch.nn.Parameter]:
    """The parameters of `model` called `names`, in that order. Taken again after `accelerator.prepare`: FSDP replaces
    every parameter by a sharded one, so a list taken before would clip and average tensors that no longer train."""
    params = {canonical_name(name): param for name, param in model.named_parameters()}
    missing = [name for name in names if name not in params]
    if missing:
        raise RuntimeError(f"trained parameters missing from the prepared model: {missing[:5]}")
    return [params[name] for name in names]


class TrainingEMA(EMAModel):
    """diffusers' EMA of the trained weights, held in float32 (under DeepSpeed the weights it follows are the bf16
    working copy, whose resolution would swallow the small EMA updates) and checkpointed whole: accelerate writes
    custom state from the main process only, so FSDP shards are gathered on save and cut back to this process's shard
    on load."""

    def __init__(self, parameters: list[torch.nn.Parameter], decay: float):
        super().__init__(parameters, decay=decay)
        self.to(dtype=torch.float32)

    def state_dict(self) -> dict:
        return {**super().state_dict(), "shadow_params": [full_tensor(p).cpu() for p in self.shadow_params]}

    def load_state_dict(self, state_dict: dict) -> None:
        shards = self.shadow_params
        super().load_state_dict(state_dict)
        self.shadow_params = [
            distribute_tensor(whole.to(shard.device), shard.device_mesh, shard.placements)
            if isinstance(shard, DTensor)
            else whole
            for whole, shard in zip(self.shadow_params, shards)
        ]


@contextlib.contextmanager
def ema_weights(ema: TrainingEMA | None, trained: list[torch.nn.Parameter]) -> Iterator[None]:
    """The EMA weights in `trained` for the duration of the block (the training weights kept aside, same layout)."""
    if ema is None:
        yield
        return
    kept = [param.detach().clone() for param in trained]
    ema.copy_to(trained)
    try:
        yield
    finally:
        with torch.no_grad():
            for param, value in zip(trained, kept):
                param.copy_(value)


def gathered_weights(accelerator, model, ema: TrainingEMA | None, trained_names: list[str]) -> dict[str, torch.Tensor]:
    """The whole state dict to export, float32 on the CPU, on the main process (empty elsewhere); every process must
    call it. Trained weights are the float32 masters wherever the engine keeps them: DeepSpeed's fp32 copy
    (`safe_get_full_fp32_param`, gathered from the ZeRO partitions), FSDP's fp32 shards gathered into a full state dict
    (`accelerator.get_state_dict`), the model's own float32 weights otherwise; the EMA weights instead when EMA is on.
    Frozen weights are exported as the model holds them, upcast (exactly) to float32."""
    unwrapped = accelerator.unwrap_model(model)
    if accelerator.distributed_type == DistributedType.DEEPSPEED:
        from deepspeed.utils import safe_get_full_fp32_param

        state = dict(unwrapped.state_dict())
        for name, param in unwrapped.named_parameters():
            if param.requires_grad:
                state[name] = safe_get_full_fp32_param(param)
    else:
        state = accelerator.get_state_dict(model)
    state = {canonical_name(name): tensor for name, tensor in state.items()}
    if ema is not None:
        state.update((name, full_tensor(shadow)) for name, shadow in zip(trained_names, ema.shadow_params))
    if not accelerator.is_main_process:
        return {}
    return {name: full_tensor(tensor).detach().float().cpu() for name, tensor in state.items()}


# ------------------------------------------------------------------------------------------------- training
@torch.no_grad()
def validation_loss(
    model: EgoTwinTransformer3DModel,
    val: LatentDataset,
    config: DiffusionTrainConfig,
    with_video: bool,
    shared_timestep: bool,
) -> dict[str, float]:
    """Diffusion loss on the first `val_batches` batches of the val cache (posterior means, no text dropout), each clip
    with noise and timesteps from a fixed seed of its own, so values from different steps and runs (and batch sizes)
    compare. Every process computes the same batches: a sharded (FSDP) model's forward needs them all."""
    scheduler = make_scheduler("ddim", config.snr_shift_scale)
    device = next(model.parameters()).device
    sums: dict[str, float] = {}
    batches = 0
    for batches, start in enumerate(
        range(0, min(len(val), config.val_batches * config.batch_size), config.batch_size), 1
    ):
        items = [val[i] for i in range(start, min(start + config.batch_size, len(val)))]
        keys = (
            ("video_latents", "motion_latents", "text_embeddings")
            if with_video
            else ("motion_latents", "text_embeddings")
        )
        batch = {key: torch.stack([item[key] for item in items]).to(device) for key in keys}
        generators = [
            torch.Generator(device).manual_seed(config.seed * 1_000_003 + i) for i in range(start, start + len(items))
        ]
        out = diffusion_loss(
            model,
            scheduler,
            batch["text_embeddings"],
            batch["video_latents"] if with_video else None,
            batch["motion_latents"],
            shared_timestep,
            generators,
        )
        for key in ("loss", "video_loss", "motion_loss"):
            if getattr(out, key) is not None:
                sums[f"val_{key}"] = sums.get(f"val_{key}", 0.0) + getattr(out, key).item()
    return {key: value / max(batches, 1) for key, value in sums.items()}


def export_transformer(
    accelerator, model, ema: TrainingEMA | None, trained_names: list[str], config, caches: LatentCaches, step: int
) -> Path:
    """Save `output_dir/transformer` (float32, the EMA weights if any; see `gathered_weights`) with the run config and
    the cache's description; every process must call it, the main process writes."""
    folder = Path(config.output_dir) / TRANSFORMER_FOLDER
    state = gathered_weights(accelerator, model, ema, trained_names)
    if accelerator.is_main_process:
        with init_empty_weights():  # a weightless twin that takes the gathered tensors as its own
            twin = EgoTwinTransformer3DModel.from_config(accelerator.unwrap_model(model).config)
        twin.load_state_dict(state, assign=True)
        twin.save_pretrained(folder)
        run = {
            "step": step,
            "ema": ema is not None,
            "config": dataclasses.asdict(config),
            "latents": caches.description(),
        }
        (folder / RUN_FILE).write_text(json.dumps(run, indent=2) + "\n")
    accelerator.wait_for_everyone()
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
    diffusion loss on the training cache; returns the model (unwrapped, with the EMA weights when EMA is on; under FSDP
    its parameters are this process's shards: read the export).

    `with_video`: stage 3 (video + motion latents, a cache the caller has passed through `require_video`) or stage 2
    (motion only, no video tokens). Runs single-process, under DDP, DeepSpeed ZeRO-2 or FSDP2 (accelerate's launcher
    configs in `training/accelerate/`)."""
    # 1. Which weights train (by name: the engines replace or recast the parameters); float32 master weights
    trained_ids = {id(param) for group in param_groups for param in group["params"]}
    trained_names = [name for name, param in model.named_parameters() if id(param) in trained_ids]
    for param in model.parameters():
        param.requires_grad_(id(param) in trained_ids)
    if accelerator.distributed_type != DistributedType.DEEPSPEED:
        # AdamW steps on bf16 weights would round away; autocast or FSDP's mixed precision gives the bf16 compute.
        # DeepSpeed casts the model to bf16 itself and keeps an fp32 master copy in its optimizer.
        model.float()
    if config.gradient_checkpointing:
        model.enable_gradient_checkpointing()

    # 2. Optimiser, engine, EMA and the state of an interrupted run
    optimizer = torch.optim.AdamW(
        param_groups, betas=(config.adam_beta1, config.adam_beta2), weight_decay=config.weight_decay
    )
    lr_scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: learning_rate_factor(config, step))
    # The schedule counts optimizer steps whatever the number of processes, so it stays out of `prepare` (which would
    # step it once per process); it is checkpointed as a custom object instead.
    accelerator.register_for_checkpointing(lr_scheduler)
    if accelerator.state.deepspeed_plugin is not None:
        # DeepSpeed takes the micro batch from a prepared DataLoader; ours stays out of `prepare`
        # (see make_latent_loader)
        accelerator.state.deepspeed_plugin.deepspeed_config["train_micro_batch_size_per_gpu"] = config.batch_size
    model, optimizer = accelerator.prepare(model, optimizer)
    unwrapped = accelerator.unwrap_model(model)
    trained = named_trained_parameters(unwrapped, trained_names)
    ema = TrainingEMA(trained, config.ema_decay) if config.ema_decay > 0 else None
    if ema is not None:
        accelerator.register_for_checkpointing(ema)
    step = resume_from(accelerator, config)
    if ema is not None:
        ema.to(accelerator.device)  # a loaded EMA state arrives on the CPU

    # 3. Data, noise schedule, the empty prompt for text dropout
    loader = make_latent_loader(caches.train, config, step, accelerator)
    scheduler = make_scheduler("ddim", config.snr_shift_scale)
    null_text = caches.train.null_text()[0].to(accelerator.device)
    log = LossLog(config.output_dir, accelerator.is_main_process)
    seen: list[str] = []

    def validate() -> dict[str, float]:
        """Validation loss of the weights that get exported (EMA when on), computed by every process alike."""
        with ema_weights(ema, trained):
            unwrapped.eval()
            values = validation_loss(unwrapped, caches.val, config, with_video, shared_timestep)
            unwrapped.train()
        return values

    # 4. Training loop
    model.train()
    for batch in loader:
        if step >= config.max_steps:
            break
        generators = clip_generators(config, step, accelerator)
        text, dropped = apply_text_dropout(
            batch["text_embeddings"].to(accelerator.device), null_text, config.text_dropout, generators
        )
        out = diffusion_loss(
            model,
            scheduler,
            text,
            batch["video_latents"].to(accelerator.device) if with_video else None,
            batch["motion_latents"].to(accelerator.device),
            shared_timestep,
            generators,
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
        values = {
            "loss": out.loss.detach(),
            "motion_loss": out.motion_loss.detach(),
            "text_dropped": dropped.float().mean(),
        }
        values |= {"video_loss": out.video_loss.detach()} if with_video else {}
        # the whole global batch's means (the processes hold equal shares), as one process with that batch logs them
        log.add(dict(zip(values, accelerator.reduce(torch.stack(list(values.values())), reduction="mean"))))
        val = {}
        if caches.val is not None and (step == config.max_steps or (config.val_every and step % config.val_every == 0)):
            val = validate()
        if step % config.log_every == 0 or step == config.max_steps or val:
            log.write(step, {"lr": lr_scheduler.get_last_lr()[0], **val})
        if step % config.checkpoint_every == 0 or step == config.max_steps:
            save_checkpoint(accelerator, config, step, config.keep_checkpoints)
            export_transformer(accelerator, model, ema, trained_names, config, caches, step)

    # 5. Each replica's fingerprint in a distributed run, and the exported weights
    if accelerator.num_processes > 1:
        folder = Path(config.output_dir) / "replicas"
        folder.mkdir(parents=True, exist_ok=True)
        report = {
            "rank": accelerator.process_index,
            "step": step,
            "parameters_sha256": parameters_sha256(unwrapped),
            "parameters_held": sum(
                param.to_local().numel() if isinstance(param, DTensor) else param.numel()
                for param in unwrapped.parameters()
            ),  # this process's share under FSDP
            "clip_ids": seen,
        }
        (folder / f"rank_{accelerator.process_index:02d}.json").write_text(json.dumps(report) + "\n")
    accelerator.wait_for_everyone()
    if ema is not None:
        ema.copy_to(trained)
    return unwrapped

"""What every training stage shares: typed configs from a file and the command line, the resumable batch order,
`accelerate` checkpoints that resume exactly after a kill, and the loss log.

A run directory holds `config.json`, `log.jsonl` (one line per logged step), `checkpoints/step_XXXXXXX/` (written by
`accelerator.save_state`: model, optimizer, scheduler, RNG states; plus `trainer_state.json` with the step and a copy
of the config), and whatever the stage exports (the final model in diffusers' `save_pretrained` layout).

Exact resumption rests on three things: the batch order is a pure function of (seed, batch number)
(`EpochBatchSampler`), any randomness in a step comes from a generator seeded by (seed, step) (`step_generator`), and
`accelerator.load_state` restores weights, optimizer and scheduler. A run killed at any point and restarted with
`resume="latest"` ends with the same weights as one that never stopped.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import torch
from torch.utils.data import Dataset, Sampler

from egotwin.config import save_config

CHECKPOINT_PREFIX = "step_"


# ------------------------------------------------------------------------------------------------ configs
@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Fields every stage has; each stage's config extends it."""

    output_dir: str = "runs/stage"
    """Run directory: config, log, checkpoints and the exported model."""
    data_root: str = ""
    """EgoWorld clip folder (see `egotwin.data.dataset`), or 'synthetic:N' for a smoke run on N random clips."""
    train_split: str = "train"
    """Split trained on."""
    val_split: str = "val"
    """Held-out split evaluated at the end of training ('' to skip)."""
    seed: int = 0
    """Seed of the initialisation, the batch order and the noise: a resumed run continues the same stream."""
    max_steps: int = 1000
    """Optimizer steps of the whole run."""
    batch_size: int = 8
    """Items per batch on each process."""
    learning_rate: float = 1e-4
    """Peak learning rate (AdamW)."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    adam_beta1: float = 0.9
    """AdamW beta1."""
    adam_beta2: float = 0.999
    """AdamW beta2."""
    warmup_steps: int = 100
    """Linear warm-up of the learning rate from 0 over the first N steps."""
    decay_steps: int = 0
    """Linear decay of the learning rate to 0 over the last N steps before max_steps (0: constant after warmup).
    The schedule is a function of the step and this config, so a resumed run may add or move the decay."""
    max_grad_norm: float = 1.0
    """Gradients are clipped to this global norm (0: no clipping)."""
    log_every: int = 10
    """Steps between log lines (log.jsonl and the console)."""
    checkpoint_every: int = 200
    """Steps between resumable checkpoints."""
    keep_checkpoints: int = 3
    """How many of the newest checkpoints to keep on disk."""
    resume: str = "latest"
    """'latest' (the newest checkpoint in output_dir, if any), a checkpoint folder, or '' to start fresh."""
    mixed_precision: str = "no"
    """accelerate's setting: 'no', 'fp16' or 'bf16'."""
    num_workers: int = 0
    """DataLoader worker processes."""


# ------------------------------------------------------------------------------------------ batch order
class EpochBatchSampler(Sampler[list[int]]):
    """An endless stream of batches (lists of indices): epoch e is a permutation drawn from seed (seed, e), cut into
    full batches (the remainder is dropped). Batch b of the run depends on (seed, b) alone, so a resumed run starts at
    `start_batch` with exactly the batches the uninterrupted run would have seen. With several processes each takes
    its share of every global batch (`rank`::`world_size`)."""

    def __init__(
        self, num_items: int, batch_size: int, seed: int = 0, start_batch: int = 0, rank: int = 0, world_size: int = 1
    ):
        if batch_size * world_size > num_items:
            raise ValueError(
                f"a global batch of {batch_size * world_size} needs at least that many items, "
                f"the data set has {num_items}"
            )
        self.num_items, self.batch_size, self.seed = num_items, batch_size, seed
        self.start_batch, self.rank, self.world_size = start_batch, rank, world_size
        self.batches_per_epoch = num_items // (batch_size * world_size)

    def __iter__(self) -> Iterator[list[int]]:
        batch = self.start_batch
        epoch, order = -1, None
        global_size = self.batch_size * self.world_size
        while True:
            if batch // self.batches_per_epoch != epoch:
                epoch = batch // self.batches_per_epoch
                order = torch.randperm(
                    self.num_items, generator=torch.Generator().manual_seed(self.seed * 100_003 + epoch)
                ).tolist()
            start = (batch % self.batches_per_epoch) * global_size
            yield order[start : start + global_size][self.rank :: self.world_size]
            batch += 1

    def __len__(self) -> int:
        return self.batches_per_epoch


def step_generator(seed: int, step: int, device: torch.device | str = "cpu") -> torch.Generator:
    """The random generator of one training step, a function of (seed, step) only."""
    return torch.Generator(device=device).manual_seed(seed * 1_000_003 + step)


# --------------------------------------------------------------------------------------------- checkpoints
def checkpoint_dirs(output_dir: str | Path) -> list[Path]:
    """Complete checkpoints of a run, oldest first (a folder without trainer_state.json was cut off while writing)."""
    root = Path(output_dir) / "checkpoints"
    if not root.is_dir():
        return []
    found = [p for p in root.glob(f"{CHECKPOINT_PREFIX}*") if (p / "trainer_state.json").is_file()]
    return sorted(found, key=lambda p: int(p.name[len(CHECKPOINT_PREFIX) :]))


def save_checkpoint(accelerator, config, step: int, keep: int) -> Path:
    """`accelerator.save_state` + trainer_state.json (written last, so it marks the checkpoint complete) + config."""
    folder = Path(config.output_dir) / "checkpoints" / f"{CHECKPOINT_PREFIX}{step:07d}"
    accelerator.save_state(str(folder))
    if accelerator.is_main_process:
        save_config(config, folder / "config.json")
        (folder / "trainer_state.json").write_text(json.dumps({"step": step}) + "\n")
        for old in checkpoint_dirs(config.output_dir)[:-keep] if keep > 0 else []:
            shutil.rmtree(old)
    accelerator.wait_for_everyone()
    return folder


def resume_from(accelerator, config) -> int:
    """Load the checkpoint `config.resume` names; returns the step to continue from (0 when starting fresh)."""
    if not config.resume:
        return 0
    if config.resume == "latest":
        found = checkpoint_dirs(config.output_dir)
        if not found:
            return 0
        folder = found[-1]
    else:
        folder = Path(config.resume)
        if not (folder / "trainer_state.json").is_file():
            raise FileNotFoundError(f"{folder}: not a complete checkpoint (no trainer_state.json)")
    accelerator.load_state(str(folder))
    step = json.loads((folder / "trainer_state.json").read_text())["step"]
    accelerator.print(f"resumed from {folder} at step {step}")
    return step


# --------------------------------------------------------------------------------------------------- setup
def make_accelerator(config):
    """An `Accelerator` for the run; creates the run directory and writes config.json next to the checkpoints."""
    from accelerate import Accelerator
    from accelerate.utils import set_seed

    accelerator = Accelerator(mixed_precision=config.mixed_precision)
    set_seed(config.seed)
    if accelerator.is_main_process:
        Path(config.output_dir).mkdir(parents=True, exist_ok=True)
        save_config(config, Path(config.output_dir) / "config.json")
    return accelerator


def make_optimizer(
    model: torch.nn.Module, config
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    """AdamW with a linear warmup, a constant learning rate and an optional linear decay (`learning_rate_factor`)."""
    optimizer = torch.optim.AdamW(
        model.parameters(),
        lr=config.learning_rate,
        betas=(config.adam_beta1, config.adam_beta2),
        weight_decay=config.weight_decay,
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: learning_rate_factor(config, step))
    return optimizer, scheduler


def learning_rate_factor(config, step: int) -> float:
    """Learning-rate multiplier at optimizer step `step`: linear warmup, constant, then the optional linear decay
    to 0 at max_steps (`decay_steps`)."""
    warmup = min(1.0, (step + 1) / max(config.warmup_steps, 1))
    if config.decay_steps <= 0:
        return warmup
    return min(warmup, max(0.0, (config.max_steps - step) / config.decay_steps))


def make_loader(dataset: Dataset, config, start_batch: int, accelerator, collate_fn=None):
    """A DataLoader over `EpochBatchSampler`, positioned at `start_batch` (not passed through `accelerator.prepare`,
    whose own sharding would not know the resume position)."""
    sampler = EpochBatchSampler(
        len(dataset), config.batch_size, config.seed, start_batch, accelerator.process_index, accelerator.num_processes
    )
    return torch.utils.data.DataLoader(
        dataset, batch_sampler=sampler, num_workers=config.num_workers, collate_fn=collate_fn
    )


class LossLog:
    """Averages losses over the steps between two log lines, then prints them and appends them as JSON lines to
    `output_dir/log.jsonl` (main process only)."""

    def __init__(self, output_dir: str | Path, enabled: bool = True):
        self.path = Path(output_dir) / "log.jsonl"
        self.enabled = enabled
        self.start = time.perf_counter()
        self.sums: dict[str, float] = {}
        self.count = 0

    def add(self, values: dict[str, torch.Tensor | float]) -> None:
        """Accumulate one step's values."""
        for key, value in values.items():
            self.sums[key] = self.sums.get(key, 0.0) + float(value)
        self.count += 1

    def write(self, step: int, extra: dict[str, float] | None = None) -> None:
        """Log the averages since the last write (plus `extra`, e.g. the learning rate) as `step`."""
        averages = {key: value / max(self.count, 1) for key, value in self.sums.items()}
        self.sums, self.count = {}, 0
        if not self.enabled:
            return
        record = {"step": step, **averages, **(extra or {}), "time_s": round(time.perf_counter() - self.start, 2)}
        print(" ".join(f"{k}={v:.5g}" if isinstance(v, float) else f"{k}={v}" for k, v in record.items()), flush=True)
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")


def read_log(output_dir: str | Path) -> list[dict]:
    """The records of `log.jsonl` by step. A resumed run logs again the steps between its checkpoint and the kill;
    the last record of each step wins."""
    path = Path(output_dir) / "log.jsonl"
    lines = path.read_text().splitlines() if path.is_file() else []
    records = {}
    for line in filter(str.strip, lines):
        record = json.loads(line)
        records[record["step"]] = record
    return [records[step] for step in sorted(records)]


def build_clip_dataset(data_root: str, split: str, need_video: bool = True) -> Dataset:
    """The EgoWorld clip data set of `data_root` / `split` (items: the layout of design "Time layout", see
    `egotwin.data.dataset`), or `SyntheticClips` for `data_root` = 'synthetic:N' (the split picks the seed, so train and
    val differ). `need_video=False` (stages that read motion and text only) also accepts motion-only clips."""
    if not data_root:
        raise ValueError("data_root is not set: point it at an EgoWorld clip folder (or 'synthetic:N' for a smoke run)")
    if data_root.startswith("synthetic:"):
        from training.synthetic_clips import SyntheticClips

        return SyntheticClips(int(data_root.split(":", 1)[1]), seed={"train": 0, "val": 1, "test": 2}.get(split, 3))
    from egotwin.data.dataset import ClipDataset

    return ClipDataset(data_root, split=split, need_video=need_video)

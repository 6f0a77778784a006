"""Train the EgoWorld evaluators of `egotwin.eval.evaluators` (text-motion, video-text, hand detector).

    python -m training.train_evaluators --data_root data/egoworld --output_dir runs/evaluators   (--help: every setting)

Each evaluator trains on the train split for its own number of steps (a few minutes each on a CPU for ~5000 clips),
then is scored on the held-out split (R-Precision top-1/2/3 with 32-pair batches for the contrastive ones, F1 for
the hand detector); the models go to `output_dir/{text_motion,video_text,hands}` (save_pretrained layout, the
motion feature statistics of the train split next to the text-motion model) and the scores to `output_dir/eval.json`.
These runs are short, so there are no intermediate checkpoints: a killed run is simply started again.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

from egotwin.config import parse_config
from egotwin.data.latents import clip_motion
from egotwin.eval.evaluators import HandDetector, TextMotionEvaluator, VideoTextEvaluator
from egotwin.eval.metrics import binary_f1, r_precision
from egotwin.models.text_encoder import TextEncoder
from egotwin.motion.normalization import FeatureStats
from egotwin.motion.representation import get_representation
from training.common import LossLog, TrainConfig, build_clip_dataset, make_accelerator, make_optimizer


@dataclasses.dataclass(frozen=True)
class EvaluatorConfig(TrainConfig):
    """Training of the three evaluators."""

    output_dir: str = "runs/evaluators"
    """Folder the evaluators (text_motion/, video_text/, hands/) and eval.json are written to."""
    evaluators: tuple[str, ...] = ("text_motion", "video_text", "hands")
    """Which evaluators to train (comma-separated on the command line)."""
    text_motion_steps: int = 3000
    """Steps of the text-motion evaluator."""
    video_text_steps: int = 1000
    """Steps of the video-text evaluator."""
    hands_steps: int = 1000
    """Steps of the hand detector."""
    batch_size: int = 32
    """Clips per contrastive batch (the hand detector takes `hands_batch_size` frames)."""
    hands_batch_size: int = 128
    """Frames per batch of the hand detector."""
    learning_rate: float = 3e-4
    """Peak learning rate (AdamW)."""
    weight_decay: float = 1e-4
    """AdamW weight decay."""
    warmup_steps: int = 100
    """Linear warm-up of the learning rate from 0 over the first N steps."""
    log_every: int = 100
    """Steps between log lines."""
    embed_dim: int = 256
    """Size of the joint embedding space of the contrastive evaluators."""
    text_encoder: str = "minilm"
    """'minilm' (the small default) or a CogVideoX diffusers folder (its T5)."""


@dataclasses.dataclass
class ClipTensors:
    """A split held in memory."""

    frames: torch.Tensor
    """(N, T, H, W, 3) uint8."""
    features: torch.Tensor
    """(N, 81, D) raw head-centric features of the canonicalised motion."""
    hand_visible: torch.Tensor
    """(N, T, 2) bool."""
    captions: list[str]


def load_split(dataset, representation_name: str = "head_centric", threads: int = 8) -> ClipTensors:
    """Every clip of a `ClipDataset`-like data set, as tensors. Reading a clip mostly waits on an ffmpeg subprocess
    decoding its video, so a thread pool overlaps them."""
    representation = get_representation(representation_name)

    def read(index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, str]:
        item = dataset[index]
        frames = ((item["video"].permute(1, 2, 3, 0) + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8)
        return frames, representation.encode(clip_motion(item)).float(), item["hand_visible"], item["caption"]

    with ThreadPoolExecutor(threads) as pool:
        frames, features, hands, captions = zip(*pool.map(read, range(len(dataset))))
    return ClipTensors(torch.stack(frames), torch.stack(features), torch.stack(hands), list(captions))


def to_video(frames: torch.Tensor) -> torch.Tensor:
    """(B, T, H, W, 3) uint8 -> (B, 3, T, H, W) float in [-1, 1]."""
    return frames.permute(0, 4, 1, 2, 3).float() / 127.5 - 1.0


def fit(
    model: torch.nn.Module,
    loss_fn: Callable[[torch.Tensor], torch.Tensor],
    num_items: int,
    steps: int,
    batch_size: int,
    config: EvaluatorConfig,
    accelerator,
    name: str,
) -> torch.nn.Module:
    """`steps` AdamW steps of `loss_fn(indices)` over random batches of item indices (fixed by the seed)."""
    optimizer, scheduler = make_optimizer(model, config)
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    generator = torch.Generator().manual_seed(config.seed)
    (Path(config.output_dir) / name).mkdir(parents=True, exist_ok=True)
    log = LossLog(Path(config.output_dir) / name, accelerator.is_main_process)
    model.train()
    order, position = torch.randperm(num_items, generator=generator), 0
    for step in range(1, steps + 1):
        if position + batch_size > num_items:
            order, position = torch.randperm(num_items, generator=generator), 0
        indices = order[position : position + batch_size]
        position += batch_size
        loss = loss_fn(indices)
        accelerator.backward(loss)
        if config.max_grad_norm > 0:
            accelerator.clip_grad_norm_(model.parameters(), config.max_grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        log.add({"loss": loss.detach()})
        if step % config.log_every == 0 or step == steps:
            log.write(step)
    return accelerator.unwrap_model(model).eval()


@torch.no_grad()
def embed_in_batches(fn: Callable[[torch.Tensor], torch.Tensor], num_items: int, batch_size: int = 64) -> np.ndarray:
    return torch.cat(
        [fn(torch.arange(s, min(s + batch_size, num_items))).cpu() for s in range(0, num_items, batch_size)]
    ).numpy()


def train(config: EvaluatorConfig, train_set: ClipTensors, val_set: ClipTensors | None = None) -> dict[str, float]:
    """Train the chosen evaluators, save them, and return (and write) the held-out scores."""
    unknown = set(config.evaluators) - {"text_motion", "video_text", "hands"}
    if unknown:
        raise ValueError(f"unknown evaluators {sorted(unknown)}")
    accelerator = make_accelerator(config)
    device = accelerator.device
    output_dir = Path(config.output_dir)
    text_encoder = TextEncoder.load(config.text_encoder).to(device)

    # captions repeat a lot: embed each distinct one once
    def embed_captions(captions: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        distinct = sorted(set(captions))
        embeddings, mask = text_encoder.encode(distinct)
        where = torch.tensor([distinct.index(c) for c in captions])
        return embeddings[where].cpu(), mask[where].cpu()

    text, text_mask = embed_captions(train_set.captions)
    val_text = embed_captions(val_set.captions) if val_set is not None else None
    scores: dict[str, float] = {}

    if "text_motion" in config.evaluators:
        stats = FeatureStats.accumulate([train_set.features], representation="head_centric")
        features = stats.normalize(train_set.features)
        model = TextMotionEvaluator(
            motion_dim=features.shape[-1],
            text_dim=text.shape[-1],
            embed_dim=config.embed_dim,
            text_encoder=config.text_encoder,
        )
        model = fit(
            model,
            lambda i: model.loss(features[i].to(device), text[i].to(device), text_mask[i].to(device)),
            len(features),
            config.text_motion_steps,
            config.batch_size,
            config,
            accelerator,
            "text_motion",
        )
        model.feature_stats = stats
        model.save_pretrained(output_dir / "text_motion")
        if val_set is not None and len(val_set.captions) >= 32:
            val_features = stats.normalize(val_set.features)
            motion = embed_in_batches(lambda i: model.encode_motion(val_features[i].to(device)), len(val_features))
            words = embed_in_batches(
                lambda i: model.encode_text(val_text[0][i].to(device), val_text[1][i].to(device)), len(val_features)
            )
            scores.update(
                {f"text_motion_r_precision_top{k + 1}": float(v) for k, v in enumerate(r_precision(motion, words))}
            )

    if "video_text" in config.evaluators:
        model = VideoTextEvaluator(
            text_dim=text.shape[-1], embed_dim=config.embed_dim, text_encoder=config.text_encoder
        )
        frames = train_set.frames
        model = fit(
            model,
            lambda i: model.loss(to_video(frames[i]).to(device), text[i].to(device), text_mask[i].to(device)),
            len(frames),
            config.video_text_steps,
            config.batch_size,
            config,
            accelerator,
            "video_text",
        )
        model.save_pretrained(output_dir / "video_text")
        if val_set is not None and len(val_set.captions) >= 32:
            videos = embed_in_batches(
                lambda i: model.encode_video(to_video(val_set.frames[i]).to(device)), len(val_set.frames), 16
            )
            words = embed_in_batches(
                lambda i: model.encode_text(val_text[0][i].to(device), val_text[1][i].to(device)), len(videos)
            )
            scores.update(
                {f"video_text_r_precision_top{k + 1}": float(v) for k, v in enumerate(r_precision(videos, words))}
            )

    if "hands" in config.evaluators:
        frames = train_set.frames.flatten(0, 1)
        labels = train_set.hand_visible.flatten(0, 1).float()
        # hands are seen in about one frame in eight: weight the positives so both kinds of error count
        pos_weight = ((1 - labels).sum(0) / labels.sum(0).clamp_min(1)).clamp(1, 10).to(device)
        model = HandDetector()
        model = fit(
            model,
            lambda i: torch.nn.functional.binary_cross_entropy_with_logits(
                model(frames[i].to(device).permute(0, 3, 1, 2).float() / 127.5 - 1.0),
                labels[i].to(device),
                pos_weight=pos_weight,
            ),
            len(frames),
            config.hands_steps,
            config.hands_batch_size,
            config,
            accelerator,
            "hands",
        )
        model.save_pretrained(output_dir / "hands")
        if val_set is not None:
            predicted = model.detect(val_set.frames.flatten(0, 1)).numpy()
            scores["hands_f1"] = binary_f1(predicted, val_set.hand_visible.flatten(0, 1).numpy())

    if accelerator.is_main_process and scores:
        (output_dir / "eval.json").write_text(json.dumps({"split": config.val_split, **scores}, indent=2) + "\n")
        print("held-out:", json.dumps(scores))
    return scores


def main(argv: list[str] | None = None) -> None:
    config = parse_config(EvaluatorConfig, argv, prog="python -m training.train_evaluators")
    train_set = load_split(build_clip_dataset(config.data_root, config.train_split))
    val_set = load_split(build_clip_dataset(config.data_root, config.val_split)) if config.val_split else None
    train(config, train_set, val_set)


if __name__ == "__main__":
    main()

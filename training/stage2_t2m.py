"""Stage 2: text-to-motion pretraining (design "Training stages"): text and motion tokens only (no video tokens), 10%
text dropout, the motion diffusion loss; the motion branch trains and the text branch stays frozen.

    python -m training.stage2_t2m --config training/configs/stage2_t2m.json --latents CACHE --output_dir runs/stage2_t2m

At full scale `cogvideox_folder` loads CogVideoX's pretrained text/video weights and only the new motion branch
trains. The tiny CPU model has no pretrained part, so its config trains the text branch as well (`train_text_branch`).
The model goes to `output_dir/transformer` (see `training.latent_training`); stage 3 starts from it.
"""

from __future__ import annotations

import dataclasses

import torch

from egotwin.config import parse_config
from egotwin.diffusion.loss import compute_dtype
from egotwin.models.transformer import EgoTwinTransformer3DModel
from training.common import make_accelerator
from training.latent_training import DiffusionTrainConfig, build_stage_transformer, fit, open_caches


@dataclasses.dataclass(frozen=True)
class Stage2Config(DiffusionTrainConfig):
    """Stage 2: text-to-motion pretraining."""

    output_dir: str = "runs/stage2_t2m"
    train_text_branch: bool = False
    """Also train the text-branch weights the text + motion forward reaches. Off as the paper (the text branch is
    pretrained CogVideoX); on for the tiny model, whose text branch is random: freezing it would freeze noise."""
    learning_rate: float = 2e-4
    batch_size: int = 32


def text_motion_parameters(model: EgoTwinTransformer3DModel) -> list[torch.nn.Parameter]:
    """The parameters a text + motion forward (no video tokens) gives a gradient, found by one probe backward on random
    inputs: the motion branch and the text path through the lower layers; not the upper CogVideoX layers, the video
    input and output, nor the text weights of the last joint layer that feed only text outputs (their gradient is
    zero). Exactly these are the ones training can move."""
    config = model.config
    device, dtype = next(model.parameters()).device, compute_dtype(model)
    generator = torch.Generator().manual_seed(0)
    text = torch.randn(1, config.max_text_seq_length, config.text_embed_dim, generator=generator).to(device, dtype)
    motion = torch.randn(1, 5, config.motion_in_channels, generator=generator).to(device, dtype)
    output = model(None, text, None, motion, torch.tensor([500], device=device)).motion_sample
    params = list(model.parameters())
    grads = torch.autograd.grad(output.square().sum(), params, allow_unused=True)
    return [param for param, grad in zip(params, grads) if grad is not None and bool(grad.any())]


def train(config: Stage2Config) -> EgoTwinTransformer3DModel:
    """Train (or resume) stage 2; returns the transformer (EMA weights when EMA is on)."""
    accelerator = make_accelerator(config)
    caches = open_caches(config)
    model = build_stage_transformer(config, caches, with_video=False).to(accelerator.device)
    trained = text_motion_parameters(model) if config.train_text_branch else model.motion_parameters()
    return fit(config, accelerator, model, [{"params": trained, "lr": config.learning_rate}], caches, with_video=False)


def main(argv: list[str] | None = None) -> None:
    train(parse_config(Stage2Config, argv))


if __name__ == "__main__":
    main()

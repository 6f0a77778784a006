"""Stage 3: joint text-video-motion training (design "Training stages"): asynchronous timesteps, the structured
attention mask, 10% text dropout, video + motion diffusion loss; all weights train.

    python -m training.stage3_joint --config training/configs/stage3_joint.json --latents CACHE \
        --output_dir runs/stage3_joint

The transformer starts from stage 2's export (`init_from` = its `transformer` folder) or, without one, from
`cogvideox_folder` (or the preset's random init) with a fresh motion branch. CogVideoX's recipe: AdamW with betas
0.9/0.95; the pretrained (text/video) and the new (motion) weights may have their own learning rates.
The paper's ablations are switches: `shared_timestep` (w/o AD), `full_attention` (w/o IM), and a latent cache made
with a root-centric motion VAE (w/o MR; `representation` checks the cache is the intended one).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import torch
from diffusers.utils import SAFE_WEIGHTS_INDEX_NAME, SAFETENSORS_WEIGHTS_NAME
from safetensors.torch import load_file

from egotwin.config import parse_config
from egotwin.models.presets import transformer_config
from egotwin.models.transformer import EgoTwinTransformer3DModel
from training.common import make_accelerator
from training.latent_training import (
    RUN_FILE,
    DiffusionTrainConfig,
    LatentCaches,
    build_stage_transformer,
    check_cache_fits,
    fit,
    open_caches,
    require_video,
)


@dataclasses.dataclass(frozen=True)
class Stage3Config(DiffusionTrainConfig):
    """Stage 3: joint text-video-motion training."""

    output_dir: str = "runs/stage3_joint"
    init_from: str = ""
    """A stage-2 `transformer` folder to start from ('' = `cogvideox_folder` or the preset, with a fresh motion
    branch)."""
    learning_rate: float = 1e-4
    """Learning rate of the pretrained (text/video) weights."""
    motion_learning_rate: float = 0.0
    """Learning rate of the motion branch (0: `learning_rate`)."""
    adam_beta2: float = 0.95
    shared_timestep: bool = False
    """One timestep for video and motion (the "w/o AD" ablation)."""
    full_attention: bool = False
    """Open every video <-> motion attention pair (the "w/o IM" ablation)."""
    batch_size: int = 16
    patch_size: int = 0
    """Video patch size (0: the init's, or the preset's). With the cache's video latent size it sets the video layout;
    where `init_from`'s differs (stage 2 never sees video, and a video VAE with another spatial compression gives
    latents of another size), the init's video patch embedding and output projection, the only weights whose shapes
    depend on the layout, start fresh and everything else loads."""


def video_layout(config: Stage3Config, caches: LatentCaches, init_config: dict) -> dict:
    """The transformer config keys of the video layout this run trains: the cache's latent size, `patch_size`."""
    height, width = caches.video_latent_size
    patch = config.patch_size or init_config["patch_size"]
    if height % patch or width % patch:
        raise ValueError(f"video latents of {height}x{width} do not split into {patch}x{patch} patches")
    return {"sample_height": height, "sample_width": width, "patch_size": patch}


def load_transformer(config: Stage3Config, caches: LatentCaches) -> EgoTwinTransformer3DModel:
    """Stage 2's transformer (with this run's `full_attention`, in this run's video layout) or a fresh one (see
    `build_stage_transformer`)."""
    if not config.init_from:
        # the latent size comes from the cache there; CogVideoX weights come with their own layout
        patch = (
            {}
            if config.cogvideox_folder
            else {"patch_size": video_layout(config, caches, transformer_config(config.preset))["patch_size"]}
        )
        return build_stage_transformer(config, caches, with_video=True, full_attention=config.full_attention, **patch)
    check_same_motion_vae(config, caches)
    init_config = EgoTwinTransformer3DModel.load_config(config.init_from)
    layout = video_layout(config, caches, init_config)
    changed = {key: value for key, value in layout.items() if init_config[key] != value}
    if changed:
        # A fresh model in the new layout takes every weight whose shape still fits; a new patch size changes only
        # patch_embed.proj and proj_out, which keep the fresh model's initialisation. The init is read as weights,
        # never built in its own layout (which may be one the model now refuses: a patch wider than the model).
        weights = read_weights(config.init_from)
        model = EgoTwinTransformer3DModel.from_config(
            {**init_config, **changed, "full_attention": config.full_attention}
        )
        fresh = [
            name
            for name, tensor in model.state_dict().items()
            if name in weights and tensor.shape != weights[name].shape
        ]
        loaded = model.load_state_dict(
            {name: tensor for name, tensor in weights.items() if name not in fresh}, strict=False
        )
        if loaded.unexpected_keys or set(loaded.missing_keys) != set(fresh):
            raise ValueError(
                f"{config.init_from}: weights do not match its config (missing {loaded.missing_keys}, "
                f"unexpected {loaded.unexpected_keys})"
            )
        print(
            f"video layout of {config.init_from} changed to {layout}"
            + (f"; fresh: {', '.join(fresh)}" if fresh else "")
        )
    else:
        model = EgoTwinTransformer3DModel.from_pretrained(config.init_from, full_attention=config.full_attention)
    check_cache_fits(model, caches, with_video=True)
    return model


def check_same_motion_vae(config: Stage3Config, caches: LatentCaches) -> None:
    """A clear error where `init_from` was trained on the latents of another motion VAE than the cache's (recorded in
    its `training_run.json`): its motion branch would read latents that mean something else. An init without that
    record (not written by stage 2) is not checked."""
    record = Path(config.init_from) / RUN_FILE
    if not record.is_file():
        return
    trained_on = json.loads(record.read_text())["latents"]["motion_vae"]
    cache = caches.index["motion_vae"]
    differing = sorted(key for key in trained_on.keys() & cache.keys() if trained_on[key] != cache[key])
    if differing:
        raise ValueError(
            f"{config.init_from} was trained on latents of another motion VAE than the cache {config.latents} "
            f"(they differ in {', '.join(differing)}): cache the data again with the motion VAE of stage 2, "
            "or run stage 2 on this cache"
        )


def read_weights(folder: str | Path) -> dict[str, torch.Tensor]:
    """The state dict of a diffusers model folder (one safetensors file, or shards listed in its index), read without
    building the model."""
    folder = Path(folder)
    index = folder / SAFE_WEIGHTS_INDEX_NAME
    files = (
        sorted(set(json.loads(index.read_text())["weight_map"].values()))
        if index.is_file()
        else [SAFETENSORS_WEIGHTS_NAME]
    )
    weights: dict[str, torch.Tensor] = {}
    for name in files:
        weights.update(load_file(folder / name))
    return weights


def train(config: Stage3Config) -> EgoTwinTransformer3DModel:
    """Train (or resume) stage 3; returns the transformer (EMA weights when EMA is on)."""
    accelerator = make_accelerator(config)
    caches = open_caches(config)
    require_video(config, caches)
    model = load_transformer(config, caches).to(accelerator.device)
    motion = model.motion_parameters()
    motion_ids = {id(param) for param in motion}
    groups = [
        {"params": [param for param in model.parameters() if id(param) not in motion_ids], "lr": config.learning_rate},
        {"params": motion, "lr": config.motion_learning_rate or config.learning_rate},
    ]
    return fit(config, accelerator, model, groups, caches, with_video=True, shared_timestep=config.shared_timestep)


def main(argv: list[str] | None = None) -> None:
    train(parse_config(Stage3Config, argv))


if __name__ == "__main__":
    main()

"""Assemble an `EgoTwinPipeline` folder from the training stages' outputs, or a random-weights one for development.

    # the embedded model: stage-0 video VAE, stage-1 motion VAE, stage-3 transformer, MiniLM text, saved in float16
    python -m training.build_pipeline --video_vae runs/stage0/video_vae --motion_vae runs/stage1/motion_vae \\
        --transformer runs/stage3/transformer --text_encoder minilm --dtype float16 --output_dir assets/egotwin-tiny
    # full scale: the VAE and the T5 reference come from a local CogVideoX folder
    python -m training.build_pipeline --cogvideox CogVideoX-5b --motion_vae ... --transformer ... --output_dir ...
    # random weights of the right shapes (apps and tests can be built before training ends)
    python -m training.build_pipeline --random --preset tiny --output_dir /tmp/random_pipe

Only local folders are read; the text encoder is stored by reference ("minilm" or the CogVideoX folder's path).
The folder size is printed at the end.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import torch
from diffusers import AutoencoderKLCogVideoX

from egotwin.body.builtin import DEFAULT_HEIGHT
from egotwin.config import parse_config
from egotwin.data.latents import STATS_FILE
from egotwin.diffusion.guidance import GuidanceScales
from egotwin.diffusion.scheduler import make_scheduler
from egotwin.models.motion_vae import MotionVAE
from egotwin.models.presets import build_transformer
from egotwin.models.text_encoder import minilm_path
from egotwin.models.transformer import EgoTwinTransformer3DModel
from egotwin.models.video_vae import load_pretrained_video_vae, small_video_vae
from egotwin.motion.motion import Motion
from egotwin.motion.normalization import FeatureStats
from egotwin.motion.random_motion import smooth_random_motion
from egotwin.motion.representation import get_representation
from egotwin.pipelines import EgoTwinPipeline
from egotwin.pipelines.pipeline_egotwin import DTYPES


def text_encoder_dim(text_encoder: str) -> int:
    """Embedding width of a text encoder reference, read from its config.json (no weights loaded)."""
    if text_encoder == "minilm":
        return json.loads((minilm_path() / "config.json").read_text())["hidden_size"]
    config = Path(text_encoder) / "text_encoder" / "config.json"
    if not config.is_file():
        raise FileNotFoundError(
            f"{text_encoder}: not a CogVideoX folder with a T5 text encoder (text_encoder/config.json)"
        )
    return json.loads(config.read_text())["d_model"]


def random_feature_stats(representation: str = "head_centric", num_clips: int = 16, seed: int = 0) -> FeatureStats:
    """Feature statistics of smooth random 5 s motions (canonicalised): realistic scales for random-weights
    pipelines."""
    rep = get_representation(representation)
    generator = torch.Generator().manual_seed(seed)
    local, trans = smooth_random_motion(num_clips, 81, generator=generator)
    motions = [
        Motion(trans=trans[i], global_orient=local[i, :, 0], body_pose=local[i, :, 1:]) for i in range(num_clips)
    ]
    return FeatureStats.accumulate(
        (rep.encode(motion.canonicalize()[0]) for motion in motions), representation=representation
    )


def random_pipeline(
    transformer: EgoTwinTransformer3DModel,
    video_vae_config: dict | None = None,
    motion_vae_config: dict | None = None,
    text_encoder: str = "minilm",
    body_height: float = DEFAULT_HEIGHT,
    seed: int = 0,
) -> EgoTwinPipeline:
    """A pipeline around `transformer` with randomly initialised small VAEs (overridable configs) of matching shapes;
    `seed` seeds the VAEs and the feature statistics (seed the transformer's construction yourself)."""
    torch.manual_seed(seed)
    motion_vae_config = dict(motion_vae_config or {})
    representation = motion_vae_config.setdefault("representation", "head_centric")
    motion_vae = MotionVAE(
        in_channels=get_representation(representation).dim,
        latent_channels=transformer.config.motion_in_channels,
        **motion_vae_config,
    )
    vae = small_video_vae(**(video_vae_config or {}))
    return EgoTwinPipeline(
        transformer=transformer.eval(),
        vae=vae.eval(),
        motion_vae=motion_vae.eval(),
        scheduler=make_scheduler(),
        text_encoder_name=text_encoder,
        body_height=body_height,
        feature_stats=random_feature_stats(representation, seed=seed),
    )


def assemble_pipeline(
    motion_vae: str | Path,
    transformer: str | Path,
    video_vae: str | Path | None = None,
    cogvideox: str | Path | None = None,
    text_encoder: str | None = None,
    body_height: float = DEFAULT_HEIGHT,
    motion_lead: float = 0.0,
    guidance_scale: float = GuidanceScales.text,
    video_text_guidance_scale: float | None = None,
) -> EgoTwinPipeline:
    """A pipeline from trained parts: a stage-0 `video_vae` folder or a CogVideoX folder (its `vae`), the stage-1
    `motion_vae` folder (with feature_stats.safetensors) and the stage-3 `transformer` folder. The text encoder
    defaults to MiniLM, or to the CogVideoX folder's T5 when `cogvideox` is given. `motion_lead`,
    `guidance_scale` and `video_text_guidance_scale` are the checkpoint's default T2VM motion lead, text guidance w_t
    and the video's own w_t (`EgoTwinPipeline.__call__`)."""
    if (video_vae is None) == (cogvideox is None):
        raise ValueError("give exactly one of video_vae (stage 0) and cogvideox (a CogVideoX folder)")
    text_encoder = text_encoder or (str(Path(cogvideox).resolve()) if cogvideox is not None else "minilm")
    motion_vae, transformer = Path(motion_vae), Path(transformer)
    for name, folder in (("motion_vae", motion_vae), ("transformer", transformer)):
        if not (folder / "config.json").is_file():
            raise FileNotFoundError(f"{folder}: no {name} here (expected config.json)")
    vae: AutoencoderKLCogVideoX = load_pretrained_video_vae(video_vae if video_vae is not None else cogvideox)
    vae.disable_slicing()
    stats_path = motion_vae / STATS_FILE
    if not stats_path.is_file():
        raise FileNotFoundError(
            f"{motion_vae}: the motion feature statistics are missing ({STATS_FILE}, written by stage 1)"
        )
    motion_model = MotionVAE.from_pretrained(motion_vae, local_files_only=True).eval()
    stats = FeatureStats.load(
        stats_path, dim=motion_model.config.in_channels, representation=motion_model.config.representation
    )
    model = EgoTwinTransformer3DModel.from_pretrained(transformer, local_files_only=True).eval()
    if text_encoder_dim(text_encoder) != model.config.text_embed_dim:
        raise ValueError(
            f"the transformer takes {model.config.text_embed_dim}-d text embeddings, {text_encoder} makes "
            f"{text_encoder_dim(text_encoder)}-d ones"
        )
    return EgoTwinPipeline(
        transformer=model,
        vae=vae,
        motion_vae=motion_model,
        scheduler=make_scheduler(),
        text_encoder_name=text_encoder,
        body_height=body_height,
        feature_stats=stats,
        motion_lead=motion_lead,
        guidance_scale=guidance_scale,
        video_text_guidance_scale=video_text_guidance_scale,
    )


def folder_size(folder: str | Path) -> int:
    """Total bytes of the files under `folder`."""
    return sum(path.stat().st_size for path in Path(folder).rglob("*") if path.is_file())


@dataclasses.dataclass(frozen=True)
class BuildConfig:
    """Assemble one pipeline folder from the stages' outputs (or random weights of a preset's shapes)."""

    output_dir: str = ""
    """Pipeline folder to write (required)."""
    video_vae: str = ""
    """Stage-0 video_vae folder (the embedded model)."""
    cogvideox: str = ""
    """Local CogVideoX diffusers folder (full scale: its vae and T5)."""
    motion_vae: str = ""
    """Stage-1 motion_vae folder (with feature_stats.safetensors)."""
    transformer: str = ""
    """Stage-3 transformer folder."""
    text_encoder: str = ""
    """'minilm' or a CogVideoX folder (default: minilm, or --cogvideox's T5)."""
    dtype: str = "float32"
    """dtype of the saved weights: float32, float16 or bfloat16."""
    body_height: float = DEFAULT_HEIGHT
    """Height of the built-in body, metres."""
    motion_lead: float = 0.0
    """Default T2VM motion lead saved with the pipeline, in [0, 1) (0: the paper's joint sampling)."""
    guidance_scale: float = GuidanceScales.text
    """Default text guidance w_t saved with the pipeline (chosen on validation)."""
    video_text_guidance_scale: float | None = None
    """Default w_t of the video alone saved with the pipeline (None: the video takes --guidance_scale, the paper)."""
    random: bool = False
    """Random weights of the preset's shapes (development)."""
    preset: str = "tiny"
    """Transformer preset for --random."""
    seed: int = 0
    """Seed of the random weights."""


def main(argv: list[str] | None = None) -> None:
    config = parse_config(BuildConfig, argv, prog="python -m training.build_pipeline")
    missing = [] if config.random else [name for name in ("motion_vae", "transformer") if not getattr(config, name)]
    if not config.output_dir or missing or config.dtype not in DTYPES:
        problems = ["--output_dir is required"] if not config.output_dir else []
        problems += [f"--{' and --'.join(missing)} required (or --random)"] if missing else []
        problems += [f"--dtype must be one of {sorted(DTYPES)}"] if config.dtype not in DTYPES else []
        raise SystemExit("python -m training.build_pipeline: error: " + "; ".join(problems))
    if config.random:
        torch.manual_seed(config.seed)
        pipe = random_pipeline(
            build_transformer(config.preset),
            text_encoder=config.text_encoder or "minilm",
            body_height=config.body_height,
            seed=config.seed,
        )
    else:
        pipe = assemble_pipeline(
            config.motion_vae,
            config.transformer,
            config.video_vae or None,
            config.cogvideox or None,
            config.text_encoder or None,
            config.body_height,
            config.motion_lead,
            config.guidance_scale,
            config.video_text_guidance_scale,
        )
    pipe.to(DTYPES[config.dtype])
    pipe.save_pretrained(config.output_dir)
    print(f"wrote {config.output_dir}: {folder_size(config.output_dir) / 2**20:.1f} MiB ({config.dtype})")


if __name__ == "__main__":
    main()

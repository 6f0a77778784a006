"""Assemble an `EgoTwinPipeline` folder from the training stages' outputs, or a random-weights one for development.

    # the embedded model: stage-0 video VAE, stage-1 motion VAE, stage-3 transformer, MiniLM text, saved in float16
    python -m training.build_pipeline --video_vae runs/stage0/video_vae --motion_vae runs/stage1/motion_vae \\
        --transformer runs/stage3/transformer --text_encoder minilm --dtype float16 --out assets/egotwin-tiny
    # full scale: the VAE and the T5 reference come from a local CogVideoX folder
    python -m training.build_pipeline --cogvideox CogVideoX-5b --motion_vae ... --transformer ... --out ...
    # random weights of the right shapes (apps and tests can be built before training ends)
    python -m training.build_pipeline --random --preset tiny --out /tmp/random_pipe

Only local folders are read; the text encoder is stored by reference ("minilm" or the CogVideoX folder's path).
The folder size is printed at the end.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from diffusers import AutoencoderKLCogVideoX

from egotwin.body.builtin import DEFAULT_HEIGHT
from egotwin.data.latents import STATS_FILE
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
    """Feature statistics of smooth random 5 s motions (canonicalised): realistic scales for random-weights pipelines."""
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
) -> EgoTwinPipeline:
    """A pipeline from trained parts: a stage-0 `video_vae` folder or a CogVideoX folder (its `vae`), the stage-1
    `motion_vae` folder (with feature_stats.safetensors) and the stage-3 `transformer` folder. The text encoder
    defaults to MiniLM, or to the CogVideoX folder's T5 when `cogvideox` is given. `motion_lead` is the checkpoint's
    default T2VM motion lead (`EgoTwinPipeline.__call__`)."""
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
    )


def folder_size(folder: str | Path) -> int:
    """Total bytes of the files under `folder`."""
    return sum(path.stat().st_size for path in Path(folder).rglob("*") if path.is_file())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="pipeline folder to write")
    parser.add_argument("--video_vae", help="stage-0 video_vae folder (embedded model)")
    parser.add_argument("--cogvideox", help="local CogVideoX diffusers folder (full scale: its vae and T5)")
    parser.add_argument("--motion_vae", help="stage-1 motion_vae folder (with feature_stats.safetensors)")
    parser.add_argument("--transformer", help="stage-3 transformer folder")
    parser.add_argument(
        "--text_encoder", default=None, help="'minilm' or a CogVideoX folder (default: minilm, or --cogvideox's T5)"
    )
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="float32", help="dtype of the saved weights")
    parser.add_argument("--body_height", type=float, default=DEFAULT_HEIGHT, help="height of the built-in body, metres")
    parser.add_argument(
        "--motion_lead", type=float, default=0.0,
        help="default T2VM motion lead saved with the pipeline, in [0, 1) (0: the paper's joint sampling)",
    )
    parser.add_argument("--random", action="store_true", help="random weights of the preset's shapes (development)")
    parser.add_argument("--preset", default="tiny", help="transformer preset for --random")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random weights")
    args = parser.parse_args(argv)

    if args.random:
        torch.manual_seed(args.seed)
        pipe = random_pipeline(
            build_transformer(args.preset),
            text_encoder=args.text_encoder or "minilm",
            body_height=args.body_height,
            seed=args.seed,
        )
    else:
        missing = [name for name in ("motion_vae", "transformer") if getattr(args, name) is None]
        if missing:
            parser.error(f"--{' and --'.join(missing)} required (or --random)")
        pipe = assemble_pipeline(
            args.motion_vae,
            args.transformer,
            args.video_vae,
            args.cogvideox,
            args.text_encoder,
            args.body_height,
            args.motion_lead,
        )
    pipe.to(DTYPES[args.dtype])
    pipe.save_pretrained(args.out)
    print(f"wrote {args.out}: {folder_size(args.out) / 2**20:.1f} MiB ({args.dtype})")


if __name__ == "__main__":
    main()

"""A tiny random CogVideoX folder in the published diffusers layout, to try the full-scale path (docs/full_scale.md)
end to end on a laptop: everything the real CogVideoX-5B folder has, at toy sizes, with random weights, in bf16.

    python -m scripts.make_tiny_cogvideox --output_dir /tmp/CogVideoX-tiny

    model_index.json  CogVideoXPipeline's, written by diffusers' save_pretrained
    transformer/      CogVideoXTransformer3DModel, 5B-style (3D RoPE, no positional table), 64 wide, 4 layers,
                      64x64 frames (8x8 latents, 2x2 patches)
    vae/              AutoencoderKLCogVideoX: 16 latent channels, 8x spatial and 4x temporal compression (as 5B's)
    text_encoder/     T5EncoderModel (T5 v1.1 layout), 32 wide: the text embedding width of the transformer
    tokenizer/        spiece.model (a sentencepiece unigram model trained here on a few captions),
                      tokenizer_config.json, special_tokens_map.json, added_tokens.json: the files of CogVideoX's T5
                      tokenizer folder
    scheduler/        CogVideoXDDIMScheduler with CogVideoX-5B's scheduler_config.json

diffusers' own `CogVideoXPipeline.from_pretrained` loads it (tests/test_full_scale.py).
"""

from __future__ import annotations

import dataclasses
import io
import json
import shutil
from pathlib import Path

import torch

T5_SPECIAL = {"pad_token": "<pad>", "eos_token": "</s>", "unk_token": "<unk>"}
CAPTIONS = [
    "walk to the red table, then open the door on the left",
    "turn left and look at the kitchen",
    "sit down on the sofa and look out of the window",
    "pick up the cup from the shelf and turn around",
    "walk forward through the hallway to the blue chair",
]
"""The sentencepiece training text: EgoWorld-like captions, so prompts of that kind tokenise into real pieces."""


def write_tokenizer(folder: str | Path, vocab_size: int = 64, extra_ids: int = 100, max_length: int = 226) -> int:
    """Write a T5 tokenizer folder laid out as CogVideoX's `tokenizer/`: a sentencepiece unigram model trained on
    `CAPTIONS` (T5's ids: pad 0, eos 1, unk 2, no bos) plus `extra_ids` sentinel tokens. Returns the vocabulary size
    (sentencepiece pieces + sentinels), what the T5 encoder's embedding must cover."""
    import sentencepiece as spm

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(CAPTIONS * 8),
        model_writer=model,
        vocab_size=vocab_size,
        model_type="unigram",
        pad_id=0,
        eos_id=1,
        unk_id=2,
        bos_id=-1,
        character_coverage=1.0,
        hard_vocab_limit=False,
        minloglevel=2,
    )
    (folder / "spiece.model").write_bytes(model.getvalue())
    pieces = spm.SentencePieceProcessor(model_proto=model.getvalue()).get_piece_size()
    sentinels = [f"<extra_id_{i}>" for i in range(extra_ids)]
    config = {
        **T5_SPECIAL,
        "additional_special_tokens": sentinels,
        "clean_up_tokenization_spaces": True,
        "extra_ids": extra_ids,
        "legacy": True,
        "model_max_length": max_length,
        "sp_model_kwargs": {},
        "tokenizer_class": "T5Tokenizer",
    }
    write_json(folder / "tokenizer_config.json", config)
    write_json(folder / "special_tokens_map.json", {**T5_SPECIAL, "additional_special_tokens": sentinels})
    # T5 numbers the sentinels down from the top: <extra_id_0> is the last id
    write_json(folder / "added_tokens.json", {token: pieces + extra_ids - 1 - i for i, token in enumerate(sentinels)})
    return pieces + extra_ids


def write_json(path: Path, value: dict) -> None:
    path.write_text(json.dumps(value, indent=2) + "\n")


COGVIDEOX_5B_SCHEDULER = {
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "beta_start": 0.00085,
    "clip_sample": False,
    "clip_sample_range": 1.0,
    "num_train_timesteps": 1000,
    "prediction_type": "v_prediction",
    "rescale_betas_zero_snr": True,
    "sample_max_value": 1.0,
    "set_alpha_to_one": True,
    "snr_shift_scale": 1.0,
    "steps_offset": 0,
    "timestep_spacing": "trailing",
    "trained_betas": None,
}
"""CogVideoX-5B's `scheduler/scheduler_config.json` (CogVideoXDDIMScheduler)."""


@dataclasses.dataclass(frozen=True)
class TinyCogVideoXConfig:
    """Sizes of the tiny folder."""

    output_dir: str = "CogVideoX-tiny"
    """Folder to write (new or empty)."""
    num_layers: int = 4
    """Transformer blocks (CogVideoX-5B: 42)."""
    frame_size: int = 64
    """Frame height and width in pixels (CogVideoX-5B: 480 x 720); latents are 8x smaller."""
    text_dim: int = 32
    """T5 width, the transformer's text embedding width (T5-XXL: 4096)."""
    seed: int = 0
    dtype: str = "bf16"
    """Weight dtype of every part, 'bf16' as CogVideoX-5B is published, or 'fp32'."""


def make_tiny_cogvideox(config: TinyCogVideoXConfig = TinyCogVideoXConfig()) -> Path:
    """Write the folder of `config` (see the module docstring); returns its path."""
    from diffusers import AutoencoderKLCogVideoX, CogVideoXDDIMScheduler, CogVideoXPipeline, CogVideoXTransformer3DModel
    from transformers import AutoTokenizer, T5Config, T5EncoderModel

    if config.frame_size % 16:
        raise ValueError(f"frame_size must be a multiple of 16 (8x VAE, 2x2 patches), got {config.frame_size}")
    dtype = {"bf16": torch.bfloat16, "fp32": torch.float32}[config.dtype]
    folder = Path(config.output_dir)
    if folder.exists() and any(folder.iterdir()):
        raise FileExistsError(f"{folder} exists and is not empty; remove it or choose another output_dir")
    torch.manual_seed(config.seed)
    vocab_size = write_tokenizer(folder / "tokenizer_published")
    t5 = T5Config(
        vocab_size=vocab_size,
        d_model=config.text_dim,
        d_kv=8,
        d_ff=2 * config.text_dim,
        num_layers=2,
        num_heads=4,
        feed_forward_proj="gated-gelu",
        is_encoder_decoder=False,
    )
    latent = config.frame_size // 8
    transformer = CogVideoXTransformer3DModel(
        num_attention_heads=2,
        attention_head_dim=32,
        in_channels=16,
        out_channels=16,
        time_embed_dim=32,
        text_embed_dim=config.text_dim,
        num_layers=config.num_layers,
        sample_width=latent,
        sample_height=latent,
        sample_frames=49,
        patch_size=2,
        max_text_seq_length=226,
        use_rotary_positional_embeddings=True,
    )
    vae = AutoencoderKLCogVideoX(
        block_out_channels=(8, 8, 16, 16),
        layers_per_block=1,
        norm_num_groups=4,
        latent_channels=16,
        temporal_compression_ratio=4,
        sample_height=config.frame_size,
        sample_width=config.frame_size,
        scaling_factor=0.7,  # CogVideoX-5B's
    )
    pipeline = CogVideoXPipeline(
        tokenizer=AutoTokenizer.from_pretrained(folder / "tokenizer_published"),
        text_encoder=T5EncoderModel(t5),
        vae=vae,
        transformer=transformer,
        scheduler=CogVideoXDDIMScheduler(**COGVIDEOX_5B_SCHEDULER),
    )
    pipeline.to(dtype).save_pretrained(folder)
    # the published tokenizer/ is the sentencepiece files, not the tokenizer.json transformers would write
    shutil.rmtree(folder / "tokenizer")
    (folder / "tokenizer_published").rename(folder / "tokenizer")
    return folder


def main(argv: list[str] | None = None) -> None:
    from egotwin.config import parse_config

    config = parse_config(TinyCogVideoXConfig, argv)
    folder = make_tiny_cogvideox(config)
    size = sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())
    print(f"wrote {folder}: {size / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()

"""The latent cache: a clip data set encoded once to video latents, motion latents and text embeddings, so the diffusion
stages (2 and 3) never run the VAEs or the text encoder in their training loop (as CogVideoX fine-tuning toolkits do).

Layout of a cache folder:
- `index.json`: item count, shard table, per-item clip_id and caption, and what encoded them (VAE latent widths and
  the video VAE's scaling factor, the motion representation, the text encoder's name, width and length).
- `shard_XXXXX.safetensors`: per shard of up to `shard_size` items, stacked along dim 0:
  `video_mean`, `video_std` (N, T', 16, h, w), already multiplied by the video VAE's scaling factor (the transformer's
  layout); `motion_mean`, `motion_std` (N, k+1, C), multiplied by the motion VAE's scaling factor; video latent frame 0
  is the latent of the start frame encoded alone, as the pipeline encodes I0; `text_embeddings` (N, L, D); `text_mask`
  (N, L) uint8.
  A motion-only cache (made without a video VAE, enough for stage 2) has no `video_*` tensors and `"video_vae": null`
  in its index.
- `null_text.safetensors`: the embedding and mask of the empty prompt "", for text dropout.
- `feature_stats.safetensors`: the motion feature statistics the motion latents were made with (to decode them).

Both VAEs' posteriors are stored as (mean, std), as the diffusers CogVideoX training scripts keep the latent
distribution: `LatentDataset` draws a fresh latent each epoch (or returns the mean), which keeps the VAE's noise as
augmentation at the cost of twice the storage.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch.utils.data import Dataset

from egotwin.models.motion_vae import MotionVAE
from egotwin.models.text_encoder import TextEncoder
from egotwin.models.video_vae import encode_video_distribution
from egotwin.motion.motion import Motion
from egotwin.motion.normalization import FeatureStats
from egotwin.motion.representation import MotionRepresentation

INDEX_FILE = "index.json"
NULL_TEXT_FILE = "null_text.safetensors"
STATS_FILE = "feature_stats.safetensors"


def clip_motion(item: dict) -> Motion:
    """The canonicalised `Motion` of a clip item ("trans", "global_orient", "body_pose", "rest_joints"): frame 0's
    head above the origin, facing +z (design "Head-centric motion")."""
    motion = Motion(
        trans=item["trans"],
        global_orient=item["global_orient"],
        body_pose=item["body_pose"],
        rest_joints=item["rest_joints"],
    )
    return motion.canonicalize()[0]


@torch.no_grad()
def cache_latents(
    dataset: Dataset,
    output_dir: str | Path,
    video_vae,
    motion_vae: MotionVAE,
    text_encoder: TextEncoder,
    representation: MotionRepresentation,
    stats: FeatureStats,
    batch_size: int = 4,
    shard_size: int = 256,
) -> Path:
    """Encode every item of `dataset` (clip items: "video" (3, T, H, W), motion, "caption", "clip_id") into a cache
    folder at `output_dir`; returns the path of its index. `video_vae=None` makes a motion-only cache (stage 2 needs
    no video latents, so it can start before the video VAE is trained)."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    if shard_size % batch_size:
        raise ValueError(f"shard_size ({shard_size}) must be a multiple of batch_size ({batch_size})")
    if motion_vae.config.in_channels != representation.dim or stats.dim != representation.dim:
        raise ValueError(
            f"motion VAE ({motion_vae.config.in_channels}), statistics ({stats.dim}) and representation "
            f"'{representation.name}' ({representation.dim}) disagree on the feature size"
        )
    motion_vae.eval()
    device = next(motion_vae.parameters()).device
    if video_vae is not None:
        video_vae.eval()
        video_device = next(video_vae.parameters()).device

    motion_scale = motion_vae.config.scaling_factor
    items, shards, pending = [], [], []
    latent_size = None  # (h, w) of the video latents, recorded in the index

    def flush() -> None:
        tensors = {key: torch.cat([p[key] for p in pending]).contiguous() for key in pending[0]}
        name = f"shard_{len(shards):05d}.safetensors"
        save_file(tensors, str(output_dir / name))
        shards.append({"file": name, "start": sum(s["count"] for s in shards), "count": len(tensors["text_mask"])})
        pending.clear()

    for start in range(0, len(dataset), batch_size):
        batch = [dataset[i] for i in range(start, min(start + batch_size, len(dataset)))]
        tensors = {}
        # 1. Video: posterior of the scaled latents
        if video_vae is not None:
            video = torch.stack([item["video"] for item in batch]).to(video_device)
            video_mean, video_std = encode_video_distribution(video_vae, video)
            # O^0 as sampling will see it: I0 encoded alone (the VAE's GroupNorms pool over the frames encoded
            # together, so latent frame 0 of the whole clip differs slightly from the start frame's latent by itself)
            video_mean[:, :1], video_std[:, :1] = encode_video_distribution(video_vae, video[:, :, :1])
            tensors.update(video_mean=video_mean.float().cpu(), video_std=video_std.float().cpu())
            latent_size = list(video_mean.shape[-2:])
        # 2. Motion: canonicalise, features, z-score, posterior
        features = torch.stack([representation.encode(clip_motion(item)).float() for item in batch])
        posterior = motion_vae.encode(stats.normalize(features).to(device))
        # 3. Text
        embeddings, mask = text_encoder.encode([item["caption"] for item in batch])
        pending.append(
            tensors
            | {
                "motion_mean": (posterior.mean * motion_scale).float().cpu(),
                "motion_std": (posterior.std * motion_scale).float().cpu(),
                "text_embeddings": embeddings.cpu(),
                "text_mask": mask.to(torch.uint8).cpu(),
            }
        )
        items += [
            {"clip_id": str(item.get("clip_id", start + i)), "caption": item["caption"]} for i, item in enumerate(batch)
        ]
        if sum(len(p["text_mask"]) for p in pending) >= shard_size:
            flush()
    if pending:
        flush()

    null_embeddings, null_mask = text_encoder.encode([""])
    save_file(
        {"text_embeddings": null_embeddings[0].cpu(), "text_mask": null_mask[0].to(torch.uint8).cpu()},
        str(output_dir / NULL_TEXT_FILE),
    )
    stats.save(output_dir / STATS_FILE)
    index = {
        "num_items": len(items),
        "shards": shards,
        "items": items,
        "video_vae": None
        if video_vae is None
        else {
            "latent_channels": video_vae.config.latent_channels,
            "latent_size": latent_size,
            "scaling_factor": video_vae.config.scaling_factor,
        },
        "motion_vae": {
            "latent_channels": motion_vae.config.latent_channels,
            "representation": representation.name,
            "scaling_factor": motion_scale,
            "parameters_sha256": parameters_sha256(motion_vae),  # which motion VAE: a stage-3 init must match it
        },
        "text_encoder": {"name": text_encoder.name, "dim": text_encoder.dim, "max_length": text_encoder.max_length},
    }
    (output_dir / INDEX_FILE).write_text(json.dumps(index, indent=1) + "\n")
    return output_dir / INDEX_FILE


def parameters_sha256(model: torch.nn.Module) -> str:
    """SHA-256 of every parameter's bytes, in `named_parameters` order (equal only for bit-identical weights). Sharded
    (FSDP) parameters are gathered whole, so under FSDP every process must call it."""
    digest = hashlib.sha256()
    for name, param in model.named_parameters():
        whole = param.detach().full_tensor() if hasattr(param, "full_tensor") else param.detach()
        digest.update(name.encode())
        digest.update(whole.float().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


class LatentDataset(Dataset):
    """Reads a latent cache. Item: "video_latents" (T', 16, h, w) (not in a motion-only cache), "motion_latents"
    (k+1, C), "text_embeddings" (L, D), "text_mask" (L,) bool, "caption", "clip_id".

    `sample_posterior`: latents are drawn from the stored Gaussians with a generator seeded by (seed, epoch, index),
    so a run is reproducible and resumable; call `set_epoch` each epoch for fresh draws. Otherwise the means.
    Shards are read lazily, one item at a time."""

    def __init__(self, root: str | Path, sample_posterior: bool = True, seed: int = 0):
        self.root = Path(root)
        if not (self.root / INDEX_FILE).is_file():
            raise FileNotFoundError(
                f"{self.root}: not a latent cache (no {INDEX_FILE}); build one with training.cache_latents"
            )
        self.index = json.loads((self.root / INDEX_FILE).read_text())
        self.sample_posterior, self.seed, self.epoch = sample_posterior, seed, 0
        self._handles: dict[str, object] = {}

    def __len__(self) -> int:
        return self.index["num_items"]

    @property
    def has_video(self) -> bool:
        """Whether the cache holds video latents (a motion-only cache, made without a video VAE, does not)."""
        return self.index["video_vae"] is not None

    @property
    def video_latent_size(self) -> tuple[int, int] | None:
        """(h, w) of the cached video latents (None in a motion-only cache); caches made before the index recorded it
        are read from their first shard."""
        if not self.has_video:
            return None
        if "latent_size" in self.index["video_vae"]:
            return tuple(self.index["video_vae"]["latent_size"])
        return tuple(self._read(self.index["shards"][0]["file"], 0, "video_mean").shape[-2:])

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _locate(self, index: int) -> tuple[str, int]:
        for shard in self.index["shards"]:
            if shard["start"] <= index < shard["start"] + shard["count"]:
                return shard["file"], index - shard["start"]
        raise IndexError(f"item {index} out of range for a cache of {len(self)}")

    def _read(self, file: str, row: int, key: str) -> torch.Tensor:
        if file not in self._handles:
            self._handles[file] = safe_open(str(self.root / file), framework="pt")
        return self._handles[file].get_slice(key)[row : row + 1][0]

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < len(self):
            raise IndexError(f"item {index} out of range for a cache of {len(self)}")
        file, row = self._locate(index)
        generator = torch.Generator().manual_seed((self.seed * 1_000_003 + self.epoch) * 1_000_003 + index)
        item = {}
        # motion first, so a motion-only cache draws the same motion latents as the full cache of the same clips
        for modality in ("motion", "video") if self.has_video else ("motion",):
            mean = self._read(file, row, f"{modality}_mean")
            if self.sample_posterior:
                mean = mean + self._read(file, row, f"{modality}_std") * torch.randn(mean.shape, generator=generator)
            item[f"{modality}_latents"] = mean
        item["text_embeddings"] = self._read(file, row, "text_embeddings")
        item["text_mask"] = self._read(file, row, "text_mask").bool()
        item.update(self.index["items"][index])
        return item

    def null_text(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The cached embedding (L, D) and mask (L,) of the empty prompt, for text dropout."""
        with safe_open(str(self.root / NULL_TEXT_FILE), framework="pt") as f:
            return f.get_tensor("text_embeddings"), f.get_tensor("text_mask").bool()

    def feature_stats(self) -> FeatureStats:
        """The motion feature statistics the motion latents were made with."""
        return FeatureStats.load(self.root / STATS_FILE, representation=self.index["motion_vae"]["representation"])

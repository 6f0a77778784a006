"""Learned evaluators trained on EgoWorld (training/train_evaluators.py), in diffusers' save_pretrained layout.

- `TextMotionEvaluator`: the HumanML3D-style text-motion evaluator (Guo et al. 2022) behind M-FID, R-Precision and
  MM-Dist: a 1D convolutional encoder over the z-scored head-centric features of a clip's 81 canonical motion frames,
  and a text encoder over the frozen MiniLM token embeddings, trained contrastively (symmetric InfoNCE).
- `VideoTextEvaluator`: the video feature space for I-FID and FVD, and CLIP-SIM's replacement: a factorised
  (2D per frame, then 1D over time) CNN over 64x64 clips trained contrastively against the same text embeddings.
  Frame features give I-FID, clip features give FVD, and the cosine between video and text embeddings x 100 stands in
  for CLIP-SIM (which is CLIP's image-text cosine x 100).
- `HandDetector`: per-frame left/right hand visibility, a small CNN trained on EgoWorld frames against the exact
  labels in cameras.npz (`hand_visible`), used by HandScore (egotwin/eval/hands.py).
Embeddings are L2-normalised, so distances (MM-Dist) lie in [0, 2] and are not on HumanML3D's scale.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn

from egotwin.motion.motion import Motion
from egotwin.motion.normalization import FeatureStats
from egotwin.motion.representation import get_representation

FEATURE_STATS_NAME = "feature_stats.safetensors"
EVALUATOR_SIZE = 64
"""Frames are resized to EVALUATOR_SIZE x EVALUATOR_SIZE before the video evaluators see them."""


class TextHead(nn.Module):
    """Token embeddings (B, L, D) + mask (B, L) -> (B, E): per-token MLP, masked mean, projection."""

    def __init__(self, text_dim: int, hidden: int, embed_dim: int):
        super().__init__()
        self.token_mlp = nn.Sequential(nn.Linear(text_dim, hidden), nn.GELU(), nn.Linear(hidden, hidden))
        self.proj = nn.Linear(hidden, embed_dim)

    def forward(self, embeddings: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        weights = mask.float().unsqueeze(-1)
        pooled = (self.token_mlp(embeddings) * weights).sum(1) / weights.sum(1).clamp_min(1.0)
        return self.proj(F.gelu(pooled))


def contrastive_loss(a: torch.Tensor, b: torch.Tensor, logit_scale: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE of matching rows of two L2-normalised embedding sets (B, E); duplicate captions in a batch
    count as positives of each other only through their own row (as in CLIP)."""
    logits = logit_scale.exp() * a @ b.T
    target = torch.arange(len(a), device=a.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))


class TextMotionEvaluator(ModelMixin, ConfigMixin):
    """Motion features (B, 81, D) z-scored and text token embeddings -> joint embedding space (B, E)."""

    @register_to_config
    def __init__(
        self,
        motion_dim: int = 282,
        text_dim: int = 384,
        hidden: int = 256,
        embed_dim: int = 256,
        representation: str = "head_centric",
        text_encoder: str = "minilm",
    ):
        super().__init__()
        self.motion_encoder = nn.Sequential(
            nn.Conv1d(motion_dim, hidden, 5, padding=2),
            nn.GELU(),
            nn.Conv1d(hidden, hidden, 4, stride=2, padding=1),
            nn.GELU(),
            nn.Conv1d(hidden, hidden, 4, stride=2, padding=1),
            nn.GELU(),
        )
        self.motion_proj = nn.Linear(hidden, embed_dim)
        self.text_head = TextHead(text_dim, hidden, embed_dim)
        self.logit_scale = nn.Parameter(torch.tensor(float(torch.log(torch.tensor(1 / 0.07)))))
        self.feature_stats: FeatureStats | None = None

    def encode_motion(self, features: torch.Tensor) -> torch.Tensor:
        """z-scored features (B, T, D) -> L2-normalised embeddings (B, E)."""
        hidden = self.motion_encoder(features.transpose(1, 2)).mean(-1)
        return F.normalize(self.motion_proj(hidden), dim=-1)

    def encode_text(self, embeddings: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Token embeddings (B, L, D_text), mask (B, L) -> L2-normalised embeddings (B, E)."""
        return F.normalize(self.text_head(embeddings, mask), dim=-1)

    def loss(self, features: torch.Tensor, embeddings: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return contrastive_loss(self.encode_motion(features), self.encode_text(embeddings, mask), self.logit_scale)

    @torch.no_grad()
    def embed_motions(self, motions: list[Motion]) -> torch.Tensor:
        """Motions (each canonicalised here, 81 frames at 16 fps) -> embeddings (N, E)."""
        if self.feature_stats is None:
            raise RuntimeError("feature statistics are missing: load the evaluator with from_pretrained or set them")
        representation = get_representation(self.config.representation)
        features = torch.stack([representation.encode(m.canonicalize()[0]).float() for m in motions])
        return self.encode_motion(self.feature_stats.normalize(features.to(self.device)))

    def save_pretrained(self, save_directory: str | Path, **kwargs) -> None:
        super().save_pretrained(save_directory, **kwargs)
        if self.feature_stats is not None:
            self.feature_stats.save(Path(save_directory) / FEATURE_STATS_NAME)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | Path, **kwargs) -> TextMotionEvaluator:
        model = super().from_pretrained(pretrained_model_name_or_path, **kwargs)
        model.feature_stats = FeatureStats.load(
            Path(pretrained_model_name_or_path) / FEATURE_STATS_NAME, representation=model.config.representation
        )
        return model


def _frame_cnn(channels: tuple[int, ...]) -> tuple[nn.Sequential, int]:
    """64x64 frames -> (channels[-1], s, s) maps: a 4x4 patchify convolution (stride 4), then stride-2 4x4
    convolutions; cheap enough to train on a CPU. Returns the network and s."""
    layers, previous = [], 3
    for i, width in enumerate(channels):
        conv = nn.Conv2d(previous, width, 4, stride=4) if i == 0 else nn.Conv2d(previous, width, 4, stride=2, padding=1)
        layers += [conv, nn.GroupNorm(8, width), nn.GELU()]
        previous = width
    return nn.Sequential(*layers), EVALUATOR_SIZE // 4 // 2 ** (len(channels) - 1)


def video_to_evaluator(video: torch.Tensor) -> torch.Tensor:
    """(B, 3, T, H, W) in [-1, 1] -> (B*T, 3, 64, 64) frames at the evaluator size."""
    b, c, t, h, w = video.shape
    frames = video.transpose(1, 2).reshape(b * t, c, h, w)
    if (h, w) != (EVALUATOR_SIZE, EVALUATOR_SIZE):
        frames = F.interpolate(frames, size=(EVALUATOR_SIZE, EVALUATOR_SIZE), mode="bilinear", antialias=True)
    return frames


class VideoTextEvaluator(ModelMixin, ConfigMixin):
    """Videos (B, 3, T, H, W) in [-1, 1] and text token embeddings -> joint embedding space (B, E); frame features
    (B, T, F) for I-FID and clip features (B, H) for FVD. The clip branch sees every `frame_stride`-th frame (the
    video VAE's temporal stride: 41 frames -> 11)."""

    @register_to_config
    def __init__(
        self,
        channels: tuple[int, ...] = (32, 64, 128),
        frame_stride: int = 4,
        frame_dim: int = 256,
        hidden: int = 256,
        text_dim: int = 384,
        embed_dim: int = 256,
        text_encoder: str = "minilm",
    ):
        super().__init__()
        self.frame_encoder, spatial = _frame_cnn(tuple(channels))
        self.frame_proj = nn.Linear(channels[-1] * spatial * spatial, frame_dim)
        self.temporal = nn.Sequential(
            nn.Conv1d(frame_dim, hidden, 3, padding=1),
            nn.GELU(),
            nn.Conv1d(hidden, hidden, 4, stride=2, padding=1),
            nn.GELU(),
            nn.Conv1d(hidden, hidden, 4, stride=2, padding=1),
            nn.GELU(),
        )
        self.video_proj = nn.Linear(hidden, embed_dim)
        self.text_head = TextHead(text_dim, hidden, embed_dim)
        self.logit_scale = nn.Parameter(torch.tensor(float(torch.log(torch.tensor(1 / 0.07)))))

    def frame_features(self, video: torch.Tensor) -> torch.Tensor:
        """(B, 3, T, H, W) in [-1, 1] -> (B, T, frame_dim)."""
        b, t = video.shape[0], video.shape[2]
        features = self.frame_encoder(video_to_evaluator(video)).flatten(1)
        return self.frame_proj(features).reshape(b, t, -1)

    def video_features(self, video: torch.Tensor, frame_features: torch.Tensor | None = None) -> torch.Tensor:
        """(B, 3, T, H, W) -> clip features (B, hidden) (pass the `frame_features` of all T frames to reuse them)."""
        stride = self.config.frame_stride
        if frame_features is None:
            frames = self.frame_features(video[:, :, ::stride])
        else:
            frames = frame_features[:, ::stride]
        return self.temporal(F.gelu(frames).transpose(1, 2)).mean(-1)

    def encode_video(self, video: torch.Tensor, video_features: torch.Tensor | None = None) -> torch.Tensor:
        """-> L2-normalised embeddings (B, E)."""
        features = self.video_features(video) if video_features is None else video_features
        return F.normalize(self.video_proj(features), dim=-1)

    def encode_text(self, embeddings: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.text_head(embeddings, mask), dim=-1)

    def loss(self, video: torch.Tensor, embeddings: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return contrastive_loss(self.encode_video(video), self.encode_text(embeddings, mask), self.logit_scale)


class HandDetector(ModelMixin, ConfigMixin):
    """Frames (N, 3, H, W) in [-1, 1] -> hand logits (N, 2) (left, right)."""

    @register_to_config
    def __init__(self, channels: tuple[int, ...] = (32, 64, 128), threshold: float = 0.5):
        super().__init__()
        self.backbone, spatial = _frame_cnn(tuple(channels))
        self.head = nn.Linear(channels[-1] * spatial * spatial, 2)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        if frames.shape[-2:] != (EVALUATOR_SIZE, EVALUATOR_SIZE):
            frames = F.interpolate(frames, size=(EVALUATOR_SIZE, EVALUATOR_SIZE), mode="bilinear", antialias=True)
        return self.head(self.backbone(frames).flatten(1))

    @torch.no_grad()
    def detect(self, frames, batch_size: int = 256) -> torch.Tensor:
        """frames (T, H, W, 3) uint8 (numpy or torch) -> (T, 2) bool, True where the hand is seen."""
        frames = torch.as_tensor(frames)
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != torch.uint8:
            raise ValueError(f"frames must be (T, H, W, 3) uint8, got {tuple(frames.shape)} {frames.dtype}")
        out = []
        for start in range(0, len(frames), batch_size):
            chunk = frames[start : start + batch_size].to(self.device).permute(0, 3, 1, 2).float() / 127.5 - 1.0
            out.append(torch.sigmoid(self(chunk)) > self.config.threshold)
        return torch.cat(out).cpu()


EVALUATOR_FOLDERS = {"text_motion": TextMotionEvaluator, "video_text": VideoTextEvaluator, "hands": HandDetector}
"""Subfolders of an evaluators folder written by training/train_evaluators.py."""


def load_evaluators(folder: str | Path, device: str | torch.device = "cpu") -> dict[str, ModelMixin]:
    """All evaluators of a folder (those present), in eval mode on `device`."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no evaluators folder (train one with training/train_evaluators.py)")
    found = {
        name: cls.from_pretrained(folder / name).to(device).eval()
        for name, cls in EVALUATOR_FOLDERS.items()
        if (folder / name / "config.json").is_file()
    }
    if not found:
        raise FileNotFoundError(f"{folder}: none of {sorted(EVALUATOR_FOLDERS)} found")
    return found

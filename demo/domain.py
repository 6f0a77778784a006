"""Is a start frame like the world the model was trained on? The shipped small model knows only EgoWorld's synthetic
apartments: from a photograph its view dissolves into EgoWorld-like rooms within a second or two. The demo measures
each start frame and says so on the page.

The measure uses the pipeline's own video VAE (trained on EgoWorld only), on the frame as the model sees it:
- `reconstruction`: mean absolute error (0-255 levels) of the frame encoded and decoded: the VAE renders EgoWorld's
  flat-shaded surfaces well and a photograph's textures badly;
- `latent_z`: root-mean-square z-score of the frame's latent statistics (mean and std of each latent channel, 32
  numbers) against those of EgoWorld frames: catches smooth photographs that the VAE still reconstructs.
A frame is out of domain when either passes its threshold. The reference statistics and the thresholds are
calibrated for one VAE (`demo/make_examples.py` writes them to `REFERENCE_FILE`, with a fingerprint of the VAE's
weights); for another checkpoint's VAE there is no reference and no verdict.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from demo.inputs import EXAMPLES_DIR
from egotwin.pipelines import EgoTwinPipeline

REFERENCE_FILE = EXAMPLES_DIR / "egoworld_domain.json"
FULL_SCALE_NOTE = (
    "A full-scale checkpoint (the paper's CogVideoX-5B backbone trained on real egocentric video such as Nymeria) "
    "would keep a real scene and make the body follow it; this one keeps EgoWorld's look."
)


def vae_fingerprint(pipe: EgoTwinPipeline) -> str:
    """A short hash of the video VAE's weights: which VAE a reference was calibrated on."""
    digest = hashlib.sha256()
    for name, tensor in sorted(pipe.vae.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().float().cpu().numpy().tobytes())
    return digest.hexdigest()[:16]


@torch.no_grad()
def frame_measures(pipe: EgoTwinPipeline, frame: np.ndarray) -> tuple[float, np.ndarray]:
    """(reconstruction error in levels, (32,) latent statistics) of an (H, W, 3) uint8 frame at the model's size."""
    video = pipe.preprocess_frames([frame])
    latents = pipe.encode_frames(video)
    decoded = pipe.decode_latents(latents)[0].astype(np.float64)
    seen = pipe.to_uint8(video)[0].astype(np.float64)
    channels = latents[0, 0].float().flatten(1)  # (C, h * w)
    return float(np.abs(decoded - seen).mean()), torch.cat((channels.mean(1), channels.std(1))).cpu().numpy()


@dataclass(frozen=True)
class DomainReference:
    """EgoWorld's latent statistics and the two thresholds, for the VAE with `fingerprint`."""

    fingerprint: str
    latent_mean: np.ndarray
    latent_std: np.ndarray
    max_reconstruction: float
    max_latent_z: float

    @classmethod
    def load(cls, path: Path = REFERENCE_FILE) -> DomainReference | None:
        """The reference in `path`, None if there is none."""
        if not path.is_file():
            return None
        data = json.loads(path.read_text())
        return cls(data["fingerprint"], np.array(data["latent_mean"]), np.array(data["latent_std"]),
                   data["max_reconstruction"], data["max_latent_z"])  # fmt: skip

    def latent_z(self, statistics: np.ndarray) -> float:
        """RMS z-score of a frame's (32,) latent statistics against EgoWorld's."""
        return float(np.sqrt((((statistics - self.latent_mean) / self.latent_std) ** 2).mean()))


@dataclass(frozen=True)
class DomainCheck:
    """A start frame's measures and the verdict."""

    reconstruction: float
    latent_z: float
    out_of_domain: bool
    reference: DomainReference

    def note(self) -> str | None:
        """What the page says about an out-of-domain frame; None for an EgoWorld-like one."""
        if not self.out_of_domain:
            return None
        return (
            "This start frame looks unlike the EgoWorld apartments the shipped model was trained on (VAE "
            f"round-trip error {self.reconstruction:.1f} levels, EgoWorld frames up to "
            f"{self.reference.max_reconstruction:.1f}; latent statistics {self.latent_z:.1f} standard deviations "
            f"from EgoWorld's, up to {self.reference.max_latent_z:.1f}). Expect the view to turn into an "
            "EgoWorld-like room within a second or two, and a body that depends little on the picture. "
            + FULL_SCALE_NOTE
        )


class DomainChecker:
    """Checks start frames against the reference for the pipeline's VAE (no verdicts without one)."""

    def __init__(self, pipe: EgoTwinPipeline, reference: DomainReference | None = None) -> None:
        self.pipe = pipe
        reference = DomainReference.load() if reference is None else reference
        self.reference = reference if reference is not None and reference.fingerprint == vae_fingerprint(pipe) else None

    def check(self, frame: np.ndarray) -> DomainCheck | None:
        """The verdict on an (H, W, 3) uint8 start frame; None when this VAE has no reference."""
        if self.reference is None:
            return None
        reconstruction, statistics = frame_measures(self.pipe, frame)
        z = self.reference.latent_z(statistics)
        out = reconstruction > self.reference.max_reconstruction or z > self.reference.max_latent_z
        return DomainCheck(reconstruction, z, out, self.reference)


def calibrate(
    pipe: EgoTwinPipeline, fit_frames: list[np.ndarray], held_out_frames: list[np.ndarray], margin: float = 1.15
) -> DomainReference:
    """A reference from EgoWorld frames: latent statistics from `fit_frames`, thresholds `margin` times the largest
    measures of `held_out_frames` (other apartments), so that no held-out EgoWorld frame is called out of domain."""
    statistics = np.stack([frame_measures(pipe, f)[1] for f in fit_frames])
    partial = DomainReference(vae_fingerprint(pipe), statistics.mean(0), statistics.std(0) + 1e-6, np.inf, np.inf)
    held = [frame_measures(pipe, f) for f in held_out_frames]
    max_reconstruction = margin * max(r for r, _ in held)
    max_z = margin * max(partial.latent_z(s) for _, s in held)
    return DomainReference(partial.fingerprint, partial.latent_mean, partial.latent_std, max_reconstruction, max_z)


def save_reference(reference: DomainReference, path: Path = REFERENCE_FILE) -> None:
    """Write a reference as JSON (a few KB)."""
    data = {
        "fingerprint": reference.fingerprint,
        "latent_mean": [round(float(x), 6) for x in reference.latent_mean],
        "latent_std": [round(float(x), 6) for x in reference.latent_std],
        "max_reconstruction": round(reference.max_reconstruction, 3),
        "max_latent_z": round(reference.max_latent_z, 3),
    }
    path.write_text(json.dumps(data, indent=1) + "\n")

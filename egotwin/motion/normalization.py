"""Z-score statistics of motion features, computed on the training split and saved next to checkpoints (design
"Head-centric motion").

`FeatureStats.accumulate` streams over a data set one batch at a time, merging per-batch means and squared deviations
in float64 (Chan et al.'s parallel form of Welford's algorithm), so neither memory nor cancellation grows with the
data. Standard deviations are floored at `std_floor`: some features are constant by construction (the head's own
`j_p` is always zero, `h_rdot` is the identity and `h_pdot` zero at frame 0 of every clip) and must not be divided
by zero; any feature that varies less than the floor is only centred, not blown up.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

DEFAULT_STD_FLOOR = 1e-3
"""Below the smallest spread of any feature that carries signal (joint steps of a slow clip are ~1e-3 m per frame)."""


class FeatureStatsError(ValueError):
    """Statistics that do not fit the features they are used with, or a statistics file that cannot be read."""


@dataclass
class FeatureStats:
    """Per-feature mean and standard deviation, (D,) each."""

    mean: torch.Tensor
    std: torch.Tensor
    count: int = 0
    """How many frames the statistics were computed from."""
    representation: str = ""
    """Name of the representation the features come from, checked on load when given."""

    def __post_init__(self) -> None:
        if self.mean.ndim != 1 or self.mean.shape != self.std.shape:
            raise FeatureStatsError(
                f"mean and std must both have shape (D,), got {tuple(self.mean.shape)} and {tuple(self.std.shape)}"
            )
        if not (torch.isfinite(self.mean).all() and torch.isfinite(self.std).all()) or (self.std <= 0).any():
            raise FeatureStatsError("mean must be finite and std finite and positive")

    @property
    def dim(self) -> int:
        return self.mean.shape[0]

    # -------------------------------------------------------------------------------------------- building
    @classmethod
    def accumulate(
        cls, batches: Iterable[torch.Tensor], std_floor: float = DEFAULT_STD_FLOOR, representation: str = ""
    ) -> FeatureStats:
        """Statistics over every frame of a stream of feature batches, each (..., D) (e.g. (B, T, D))."""
        count, mean, m2 = 0, None, None
        for batch in batches:
            x = batch.detach().reshape(-1, batch.shape[-1]).to(device="cpu", dtype=torch.float64)
            if mean is not None and x.shape[1] != mean.shape[0]:
                raise FeatureStatsError(f"feature batches disagree in size: {mean.shape[0]} then {x.shape[1]}")
            n = x.shape[0]
            if n == 0:
                continue
            batch_mean = x.mean(0)
            batch_m2 = ((x - batch_mean) ** 2).sum(0)
            if mean is None:
                count, mean, m2 = n, batch_mean, batch_m2
                continue
            delta = batch_mean - mean
            total = count + n
            mean = mean + delta * (n / total)
            m2 = m2 + batch_m2 + delta**2 * (count * n / total)
            count = total
        if mean is None:
            raise FeatureStatsError("no features to compute statistics from")
        std = (m2 / count).sqrt().clamp_min(std_floor)
        return cls(mean=mean.float(), std=std.float(), count=count, representation=representation)

    # ------------------------------------------------------------------------------------------------ use
    def _check(self, features: torch.Tensor) -> None:
        if features.shape[-1] != self.dim:
            raise FeatureStatsError(
                f"features have {features.shape[-1]} values per frame but the statistics have {self.dim}"
                + (f" (computed for '{self.representation}')" if self.representation else "")
            )

    def normalize(self, features: torch.Tensor) -> torch.Tensor:
        """(..., D) -> (..., D) z-scores."""
        self._check(features)
        return (features - self.mean.to(features)) / self.std.to(features)

    def denormalize(self, normalized: torch.Tensor) -> torch.Tensor:
        """(..., D) z-scores -> (..., D) features."""
        self._check(normalized)
        return normalized * self.std.to(normalized) + self.mean.to(normalized)

    # ---------------------------------------------------------------------------------------------- files
    def save(self, path: str | Path) -> None:
        """Write a `.safetensors` file (mean, std) with count and representation name in its metadata."""
        save_file(
            {
                "mean": self.mean.detach().cpu().float().contiguous(),
                "std": self.std.detach().cpu().float().contiguous(),
            },
            str(path),
            metadata={"count": str(self.count), "representation": self.representation, "dim": str(self.dim)},
        )

    @classmethod
    def load(cls, path: str | Path, dim: int | None = None, representation: str | None = None) -> FeatureStats:
        """Read statistics saved by `save`; `dim` / `representation`, when given, must match what was saved."""
        path = Path(path)
        try:
            with safe_open(str(path), framework="pt") as f:
                metadata = f.metadata() or {}
                tensors = {key: f.get_tensor(key) for key in f.keys()}
        except FileNotFoundError:
            raise
        except Exception as error:  # safetensors raises its own error types for corrupt files
            raise FeatureStatsError(f"{path}: not a readable statistics file ({error})") from error
        if set(tensors) != {"mean", "std"}:
            raise FeatureStatsError(f"{path}: expected tensors 'mean' and 'std', found {sorted(tensors)}")
        stats = cls(
            mean=tensors["mean"],
            std=tensors["std"],
            count=int(metadata.get("count", 0)),
            representation=metadata.get("representation", ""),
        )
        if dim is not None and stats.dim != dim:
            raise FeatureStatsError(f"{path}: statistics are for {stats.dim} features, the model uses {dim}")
        if representation is not None and stats.representation and stats.representation != representation:
            raise FeatureStatsError(
                f"{path}: statistics are for '{stats.representation}' features, not '{representation}'"
            )
        return stats

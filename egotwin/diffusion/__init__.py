"""Diffusion around the EgoTwin transformer: the noise schedule, the asynchronous training loss and guidance."""

from egotwin.diffusion.guidance import (
    GuidanceBatch,
    GuidanceScales,
    build_guidance_batch,
    combine_guidance,
    guided_prediction,
)
from egotwin.diffusion.loss import DiffusionLossOutput, diffusion_loss, generated_mse, replace_initial, sample_timesteps
from egotwin.diffusion.scheduler import SCHEDULER_CONFIG, make_scheduler

__all__ = [
    "SCHEDULER_CONFIG",
    "DiffusionLossOutput",
    "GuidanceBatch",
    "GuidanceScales",
    "build_guidance_batch",
    "combine_guidance",
    "diffusion_loss",
    "generated_mse",
    "guided_prediction",
    "make_scheduler",
    "replace_initial",
    "sample_timesteps",
]

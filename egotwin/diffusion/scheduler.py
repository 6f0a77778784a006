"""The noise schedule shared by video and motion (design "Asynchronous diffusion"): CogVideoX's, from diffusers.

v-prediction, zero terminal SNR (so timestep T = 999 is pure noise, which is what "dropping" a modality means in
guidance), 1000 training steps, trailing timestep spacing at inference.
"""

from typing import Literal

from diffusers import CogVideoXDDIMScheduler, CogVideoXDPMScheduler

SCHEDULER_CONFIG: dict = dict(
    num_train_timesteps=1000,
    beta_start=0.00085,
    beta_end=0.012,
    beta_schedule="scaled_linear",
    clip_sample=False,
    set_alpha_to_one=True,
    steps_offset=0,
    prediction_type="v_prediction",
    rescale_betas_zero_snr=True,
    timestep_spacing="trailing",
)


def make_scheduler(
    kind: Literal["ddim", "dpm"] = "ddim", snr_shift_scale: float = 1.0
) -> CogVideoXDDIMScheduler | CogVideoXDPMScheduler:
    """A CogVideoX scheduler in EgoTwin's configuration.

    Args:
        kind: "ddim" (`CogVideoXDDIMScheduler`, the default sampler) or "dpm" (`CogVideoXDPMScheduler`).
        snr_shift_scale: CogVideoX's SNR shift; 1.0 as in CogVideoX-5B (CogVideoX-2B ships 3.0).
    """
    schedulers = {"ddim": CogVideoXDDIMScheduler, "dpm": CogVideoXDPMScheduler}
    if kind not in schedulers:
        raise ValueError(f"unknown scheduler kind {kind!r}; choose 'ddim' or 'dpm'")
    return schedulers[kind](**SCHEDULER_CONFIG, snr_shift_scale=snr_shift_scale)

"""`EgoTwinPipeline`: text + start frame I0 + start pose P0 -> a 5 s egocentric video and the wearer's motion (design
"Sampling and guidance").

A diffusers `DiffusionPipeline` in the vocabulary of diffusers' CogVideoX pipeline (`check_inputs`, `encode_prompt`,
`prepare_latents`, `decode_latents`, `__call__`, an output dataclass, `callback_on_step_end`). Its parts:

- `transformer` (`EgoTwinTransformer3DModel`), `vae` (`AutoencoderKLCogVideoX`), `motion_vae` (`MotionVAE`),
  `scheduler` (CogVideoX DDIM from `make_scheduler`): saved as diffusers subfolders with a `model_index.json`;
- the motion feature statistics, saved as `motion_vae/feature_stats.safetensors` (where stage 1 writes them);
- by reference in `model_index.json`, never as weights: the text encoder (`"minilm"` or a local CogVideoX folder for
  T5), the body (built-in mannequin of `body_height`, or the user's SMPL-X through $EGOTWIN_SMPLX_DIR) and the head
  camera rig. The motion representation is the motion VAE's (`motion_vae.config.representation`).

Latent conventions: video latents are the VAE's scaled latents `(B, 11, 16, h, w)` for 41 frames; motion latents are
the motion VAE posterior of z-scored features times `motion_vae.config.scaling_factor`, `(B, 21, C)` for 81 poses.
O^0 is I0 encoded alone as a 1-frame video; motion latent 0 is P0 (canonicalised) encoded alone, since the motion VAE
is causal. Both stay clean at every step. Modes: "t2vm" generates both; "tm2v" takes the motion, "tv2m" the video,
clean at timestep 0 (`egotwin.diffusion.guidance`).

The decoded motion's frame 0 is P0 itself (its features replace the motion VAE's lossy reconstruction of frame 0):
P0 is an input, and continuation (`continue_from`) needs the seam between clips to be exactly the shared pose.
"""

import copy
import json
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import PIL.Image
import torch
from diffusers import AutoencoderKLCogVideoX, CogVideoXDDIMScheduler, CogVideoXDPMScheduler, DiffusionPipeline
from diffusers.utils import BaseOutput
from diffusers.utils.torch_utils import randn_tensor
from diffusers.video_processor import VideoProcessor

from egotwin.body.body_model import BodyModel, load_body_model
from egotwin.body.builtin import DEFAULT_HEIGHT
from egotwin.body.head_camera import HeadCameraRig
from egotwin.data.clip_format import read_video
from egotwin.data.constants import MODES, MOTION_FPS, NUM_MOTION_FRAMES, NUM_VIDEO_FRAMES
from egotwin.data.latents import STATS_FILE
from egotwin.diffusion.guidance import GuidanceScales, guided_prediction
from egotwin.diffusion.loss import replace_initial
from egotwin.models.motion_vae import MotionVAE, num_latent_frames
from egotwin.models.text_encoder import TextEncoder
from egotwin.models.transformer import EgoTwinTransformer3DModel
from egotwin.models.video_vae import decode_video, encode_video, use_mkldnn_conv3d
from egotwin.motion.motion import Motion
from egotwin.motion.normalization import FeatureStats
from egotwin.motion.representation import get_representation

_COMPONENTS = ("transformer", "vae", "motion_vae", "scheduler")
DTYPES = {
    "float32": torch.float32,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
    "fp32": torch.float32,
    "bf16": torch.bfloat16,
    "fp16": torch.float16,
}
"""Weight dtypes by the names command lines take."""


def check_motion_lead(motion_lead) -> float:
    """A T2VM motion lead (see `EgoTwinPipeline.__call__`) as a float; ValueError unless a number in [0, 1)."""
    if isinstance(motion_lead, bool) or not isinstance(motion_lead, (int, float)) or not 0.0 <= motion_lead < 1.0:
        raise ValueError(f"motion_lead must be a number in [0, 1), got {motion_lead!r}")
    return float(motion_lead)


def check_guidance_scale(scale) -> float:
    """A guidance weight as a float; ValueError unless a number >= 0."""
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not scale >= 0.0:
        raise ValueError(f"a guidance scale must be a number >= 0, got {scale!r}")
    return float(scale)


def motion_denoising_steps(mode: str, num_inference_steps: int, motion_lead: float) -> int:
    """How many sampler steps the motion takes for `motion_lead` (see `EgoTwinPipeline.__call__`); ValueError if
    invalid."""
    motion_lead = check_motion_lead(motion_lead)
    if motion_lead and mode != "t2vm":
        raise ValueError(f"motion_lead is for mode 't2vm' (both generated); mode {mode!r} has one generated modality")
    return max(1, round((1.0 - motion_lead) * num_inference_steps))


class _Stepper:
    """One modality's sampler: a scheduler and its own timesteps, stepped with the signature the scheduler has.

    CogVideoX's DDIM steps from (prediction, t, sample); its DPM solver is second order and also takes its previous
    clean estimate and the previous timestep (what diffusers' CogVideoX pipeline passes it)."""

    def __init__(self, scheduler: CogVideoXDDIMScheduler | CogVideoXDPMScheduler, generator: torch.Generator | None):
        self.scheduler, self.generator = scheduler, generator
        self.previous_clean: torch.Tensor | None = None

    def step(self, prediction: torch.Tensor, index: int, sample: torch.Tensor) -> torch.Tensor:
        timesteps = self.scheduler.timesteps
        if not isinstance(self.scheduler, CogVideoXDPMScheduler):
            return self.scheduler.step(prediction, timesteps[index], sample, return_dict=False)[0]
        previous_t = timesteps[index - 1] if index > 0 else None
        sample, self.previous_clean = self.scheduler.step(
            prediction,
            self.previous_clean,
            timesteps[index],
            previous_t,
            sample,
            generator=self.generator,
            return_dict=False,
        )
        return sample


@dataclass
class EgoTwinPipelineOutput(BaseOutput):
    """What a pipeline call returns.

    Args:
        frames: `(41, H, W, 3)` uint8 video at 8 fps (`41 + 40 k` frames after k continuations); the given video in
            tv2m.
        motion: the wearer's motion at 16 fps, 81 frames (`81 + 80 k`), in the canonical frame of its start pose
            (frame-0 head above the origin, facing +z), or, after continuations, in the first clip's frame.
        camera_to_world: `(41, 4, 4)` float32, the head camera (OpenCV axes) of `motion` at the video frames
            (motion frames 0, 2, 4, ...).
        intrinsics: `(3, 3)` float32 pinhole matrix for the frames' size.
        prompt: the prompt of the (last) clip. mode: "t2vm", "tm2v" or "tv2m".
        seed: the generator's seed, when a generator was given.
        prompts: one prompt per 5 s clip, in order.
    """

    frames: np.ndarray
    motion: Motion
    camera_to_world: np.ndarray
    intrinsics: np.ndarray
    prompt: str
    mode: str
    seed: int | None = None
    prompts: list[str] = field(default_factory=list)


class EgoTwinPipeline(DiffusionPipeline):
    """Joint egocentric video and human motion generation (T2VM), and the conditional modes TM2V and TV2M.

    Args:
        transformer: the three-branch diffusion transformer.
        vae: the CogVideoX video VAE.
        motion_vae: the causal motion VAE (its config names the motion representation and latent scaling factor).
        scheduler: CogVideoX DDIM (default) or DPM scheduler (`CogVideoXDPMScheduler.from_config(
            pipe.scheduler.config)`); video and motion each step their own copy.
        text_encoder_name: "minilm" or the path of a local CogVideoX folder (T5), loaded on first use.
        body_height: standing height of the built-in body that generated motion is decoded on.
        camera_eye_offset, camera_pitch_down_deg, camera_fov_deg: the `HeadCameraRig` the model was trained with.
        feature_stats: z-score statistics of the motion features (required; `from_pretrained` reads them).
        motion_lead: the checkpoint's default T2VM motion lead (`__call__`), chosen on validation; 0.0 (the paper's
            joint sampling) for checkpoints saved without one.
        guidance_scale: the checkpoint's default text guidance w_t (`__call__`), chosen on validation;
            `GuidanceScales.text` for checkpoints saved without one.
        video_text_guidance_scale: the checkpoint's default w_t of the video alone (`__call__`); None (and for
            checkpoints saved without one): the video takes `guidance_scale`, as in the paper.
    """

    model_cpu_offload_seq = "transformer->vae->motion_vae"
    _callback_tensor_inputs = ["latents", "motion_latents", "prompt_embeds", "negative_prompt_embeds"]

    def __init__(
        self,
        transformer: EgoTwinTransformer3DModel,
        vae: AutoencoderKLCogVideoX,
        motion_vae: MotionVAE,
        scheduler: CogVideoXDDIMScheduler | CogVideoXDPMScheduler,
        text_encoder_name: str = "minilm",
        body_height: float = DEFAULT_HEIGHT,
        camera_eye_offset: tuple[float, float, float] | list[float] = HeadCameraRig.eye_offset,
        camera_pitch_down_deg: float = HeadCameraRig.pitch_down_deg,
        camera_fov_deg: float = HeadCameraRig.fov_deg,
        feature_stats: FeatureStats | None = None,
        motion_lead: float = 0.0,
        guidance_scale: float = GuidanceScales.text,
        video_text_guidance_scale: float | None = None,
    ):
        super().__init__()
        if feature_stats is None:
            raise ValueError(
                "EgoTwinPipeline needs the motion feature statistics (feature_stats) the motion VAE was trained with"
            )
        if transformer.config.motion_in_channels != motion_vae.config.latent_channels:
            raise ValueError(
                f"the transformer takes {transformer.config.motion_in_channels}-channel motion latents "
                f"but the motion VAE makes {motion_vae.config.latent_channels}"
            )
        if transformer.config.in_channels != vae.config.latent_channels:
            raise ValueError(
                f"the transformer takes {transformer.config.in_channels}-channel video latents but the VAE makes "
                f"{vae.config.latent_channels}"
            )
        self.register_modules(transformer=transformer, vae=vae, motion_vae=motion_vae, scheduler=scheduler)
        self.register_to_config(
            text_encoder_name=str(text_encoder_name),
            body_height=float(body_height),
            camera_eye_offset=[float(x) for x in camera_eye_offset],
            camera_pitch_down_deg=float(camera_pitch_down_deg),
            camera_fov_deg=float(camera_fov_deg),
            motion_lead=check_motion_lead(motion_lead),
            guidance_scale=check_guidance_scale(guidance_scale),
            video_text_guidance_scale=(
                None if video_text_guidance_scale is None else check_guidance_scale(video_text_guidance_scale)
            ),
        )
        use_mkldnn_conv3d(vae)
        self.representation = get_representation(motion_vae.config.representation)
        if feature_stats.dim != self.representation.dim:
            raise ValueError(
                f"feature statistics have {feature_stats.dim} features, the '{self.representation.name}' "
                f"representation {self.representation.dim}"
            )
        self.feature_stats = feature_stats
        self.rig = HeadCameraRig(tuple(camera_eye_offset), camera_pitch_down_deg, camera_fov_deg)
        self.vae_scale_factor_spatial = 2 ** (len(vae.config.block_out_channels) - 1)
        self.vae_scale_factor_temporal = vae.config.temporal_compression_ratio
        self.video_processor = VideoProcessor(vae_scale_factor=self.vae_scale_factor_spatial)
        self._text_encoder: TextEncoder | None = None
        self._body: BodyModel | None = None

    # ------------------------------------------------------------------------------------------ parts
    @property
    def height(self) -> int:
        """Frame height in pixels the model generates."""
        return self.transformer.config.sample_height * self.vae_scale_factor_spatial

    @property
    def width(self) -> int:
        """Frame width in pixels the model generates."""
        return self.transformer.config.sample_width * self.vae_scale_factor_spatial

    @property
    def text_encoder(self) -> TextEncoder:
        """The frozen text encoder named by `config.text_encoder_name`, loaded on first use; T5 in the transformer's
        dtype (MiniLM stays float32)."""
        if self._text_encoder is None:
            self._text_encoder = TextEncoder.load(self.config.text_encoder_name, dtype=self.transformer.dtype)
        elif self._text_encoder.name == "t5":  # follows a later `pipe.to(dtype)`
            self._text_encoder.to(self.transformer.dtype)
        return self._text_encoder

    @property
    def body(self) -> BodyModel:
        """The body generated motion is decoded on: SMPL-X from $EGOTWIN_SMPLX_DIR when set, else the mannequin."""
        if self._body is None:
            self._body = load_body_model(height=self.config.body_height)
        return self._body

    # -------------------------------------------------------------------------------------------- files
    def save_pretrained(self, save_directory: str | Path, **kwargs: Any) -> None:
        """Write every part (diffusers layout + `model_index.json`) and the feature statistics to `save_directory`.

        Weights are saved in the dtype the parts have: `pipe.to(torch.float16).save_pretrained(...)` halves the size."""
        super().save_pretrained(save_directory, **kwargs)
        self.feature_stats.save(Path(save_directory) / "motion_vae" / STATS_FILE)

    @classmethod
    def from_pretrained(
        cls, pretrained_model_name_or_path: str | Path, torch_dtype: torch.dtype | None = None, **kwargs: Any
    ) -> "EgoTwinPipeline":
        """Load a pipeline folder written by `save_pretrained` (local folders only; nothing is downloaded).

        `torch_dtype` None loads float32 whatever the saved dtype (half precision is slow or unsupported on CPU); on a
        GPU pass `torch.bfloat16` (a T5 text encoder then runs in it too). `enable_model_cpu_offload()` works as in
        diffusers (transformer -> vae -> motion_vae; the text encoder goes back to the CPU after each prompt).
        A missing folder or part raises FileNotFoundError naming it."""
        folder = Path(pretrained_model_name_or_path)
        if not folder.is_dir():
            raise FileNotFoundError(
                f"{folder}: no such pipeline folder (EgoTwin loads local folders saved by save_pretrained or "
                "training/build_pipeline.py, never the hub)"
            )
        if not (folder / "model_index.json").is_file():
            raise FileNotFoundError(f"{folder}: not a pipeline folder, model_index.json is missing")
        for part in _COMPONENTS:
            config_name = "scheduler_config.json" if part == "scheduler" else "config.json"
            if not (folder / part / config_name).is_file():
                raise FileNotFoundError(f"{folder}: the pipeline's {part} is missing ({part}/{config_name})")
            if part != "scheduler" and not any((folder / part).glob("*.safetensors")):
                raise FileNotFoundError(f"{folder}: the pipeline's {part} has no weights ({part}/*.safetensors)")
        stats_path = folder / "motion_vae" / STATS_FILE
        if not stats_path.is_file():
            raise FileNotFoundError(f"{folder}: the motion feature statistics are missing (motion_vae/{STATS_FILE})")
        representation = json.loads((folder / "motion_vae" / "config.json").read_text()).get("representation")
        stats = FeatureStats.load(stats_path, representation=representation)
        return super().from_pretrained(
            folder, dtype=torch_dtype or torch.float32, local_files_only=True, feature_stats=stats, **kwargs
        )

    # ------------------------------------------------------------------------------------------- inputs
    def motion_lead_for(self, mode: str, motion_lead: float | None = None) -> float:
        """The motion lead a call in `mode` uses: `motion_lead`, or when None the checkpoint's in t2vm (0 elsewhere)."""
        if motion_lead is not None:
            return motion_lead
        return self.config.motion_lead if mode == "t2vm" else 0.0

    def check_inputs(
        self,
        prompt: str,
        mode: str,
        image: PIL.Image.Image | np.ndarray | None,
        initial_pose: Motion | None,
        motion: Motion | None,
        video: np.ndarray | str | Path | None,
        num_inference_steps: int,
        callback_on_step_end_tensor_inputs: list[str],
    ) -> None:
        """Raise ValueError with a clear message for any input that does not fit the mode or the model."""
        if not isinstance(prompt, str) or not prompt.strip():
            raise ValueError(f"prompt must be a non-empty string, got {prompt!r}")
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; choose one of {MODES}")
        if mode in ("t2vm", "tm2v") and image is None:
            raise ValueError(f"mode {mode!r} needs the start frame: pass image=")
        if mode == "tv2m" and image is not None:
            raise ValueError("mode 'tv2m' takes the start frame from the video's frame 0; do not pass image=")
        if mode == "tm2v" and motion is None:
            raise ValueError("mode 'tm2v' generates video from a given motion: pass motion=")
        if mode != "tm2v" and motion is not None:
            raise ValueError(f"mode {mode!r} generates the motion; motion= is only for 'tm2v'")
        if mode == "tv2m" and video is None:
            raise ValueError("mode 'tv2m' generates motion from a given video: pass video=")
        if mode != "tv2m" and video is not None:
            raise ValueError(f"mode {mode!r} generates the video; video= is only for 'tv2m'")
        if mode == "tm2v" and initial_pose is not None:
            raise ValueError("mode 'tm2v' takes the start pose from the motion's frame 0; do not pass initial_pose=")
        if image is not None:
            self._check_frame(image, "image")
        for name, value in (("initial_pose", initial_pose), ("motion", motion)):
            if value is None:
                continue
            if not isinstance(value, Motion):
                raise ValueError(f"{name} must be an egotwin Motion, got {type(value).__name__}")
            if not all(torch.isfinite(t).all() for t in (value.trans, value.global_orient, value.body_pose)):
                raise ValueError(f"{name} contains NaN or infinite values")
        if motion is not None and motion.duration < (NUM_MOTION_FRAMES - 1) / MOTION_FPS - 1e-6:
            raise ValueError(f"motion must last at least 5 s (81 frames at 16 fps), got {motion.duration:.2f} s")
        if video is not None and not isinstance(video, (str, Path)):
            if not isinstance(video, np.ndarray) or video.ndim != 4 or video.shape[-1] != 3 or video.dtype != np.uint8:
                raise ValueError(
                    "video must be a (T, H, W, 3) uint8 array at 8 fps or a path to a video file, got "
                    + (
                        f"shape {video.shape} dtype {video.dtype}"
                        if isinstance(video, np.ndarray)
                        else type(video).__name__
                    )
                )
            if video.shape[0] < NUM_VIDEO_FRAMES:
                raise ValueError(
                    f"video must have at least {NUM_VIDEO_FRAMES} frames (5 s at 8 fps), got {video.shape[0]}"
                )
        if isinstance(num_inference_steps, bool) or not isinstance(num_inference_steps, int) or num_inference_steps < 1:
            raise ValueError(f"num_inference_steps must be a positive integer, got {num_inference_steps!r}")
        unknown = set(callback_on_step_end_tensor_inputs) - set(self._callback_tensor_inputs)
        if unknown:
            raise ValueError(
                f"callback_on_step_end_tensor_inputs {sorted(unknown)} are not available; "
                f"choose from {self._callback_tensor_inputs}"
            )

    @staticmethod
    def _check_frame(frame: Any, name: str) -> None:
        if isinstance(frame, PIL.Image.Image):
            return
        if not isinstance(frame, np.ndarray) or frame.ndim != 3 or frame.shape[-1] != 3 or frame.dtype != np.uint8:
            described = (
                f"shape {frame.shape} dtype {frame.dtype}" if isinstance(frame, np.ndarray) else type(frame).__name__
            )
            raise ValueError(f"{name} must be a PIL image or an (H, W, 3) uint8 array, got {described}")

    def preprocess_frames(self, frames: list[PIL.Image.Image | np.ndarray]) -> torch.Tensor:
        """RGB frames of any size -> `(1, 3, T, H, W)` in [-1, 1] at the model's size: center-cropped to its aspect
        ratio and resized (diffusers' `VideoProcessor`, resize_mode "crop")."""
        images = [f if isinstance(f, PIL.Image.Image) else PIL.Image.fromarray(f) for f in frames]
        images = [image.convert("RGB") for image in images]
        return self.video_processor.preprocess_video(images, self.height, self.width, resize_mode="crop")

    @staticmethod
    def to_uint8(video: torch.Tensor) -> np.ndarray:
        """`(1, 3, T, H, W)` in [-1, 1] -> `(T, H, W, 3)` uint8."""
        return ((video[0].float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 3, 0).cpu().numpy()

    def encode_prompt(self, prompt: str, device: torch.device | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Prompt -> (prompt_embeds, negative_prompt_embeds), each `(1, L, D)`: the text and the null (empty) text.

        Prompts longer than the encoder's `max_length` tokens are truncated, with a warning."""
        device = device or self._execution_device
        encoder = self.text_encoder.to(device)
        num_tokens = len(encoder.tokenizer(prompt).input_ids)
        if num_tokens > encoder.max_length:
            warnings.warn(
                f"the prompt has {num_tokens} tokens; {encoder.name} takes {encoder.max_length}, the rest is cut off",
                stacklevel=3,
            )
        embeddings, _ = encoder.encode([prompt, ""])
        if getattr(self, "_all_hooks", None):  # model CPU offload: the encoder leaves the accelerator like the parts do
            encoder.to("cpu")
        dtype = self.transformer.dtype
        return embeddings[:1].to(device, dtype), embeddings[1:].to(device, dtype)

    # ------------------------------------------------------------------------------------------ latents
    @torch.no_grad()
    def encode_frames(self, video: torch.Tensor) -> torch.Tensor:
        """`(1, 3, T, H, W)` in [-1, 1] -> scaled video latents `(1, T', 16, h, w)`, latent 0 from frame 0 alone
        (O^0)."""
        latents = encode_video(self.vae, video.to(self.vae.device))
        if video.shape[2] > 1:  # O^0 as in training: the start frame encoded by itself
            latents[:, :1] = encode_video(self.vae, video[:, :, :1].to(self.vae.device))
        return latents.to(self.transformer.dtype)

    def motion_features(self, motion: Motion) -> torch.Tensor:
        """A canonicalised motion -> its (unnormalised) features `(T, D)`, float32 on the CPU."""
        return self.representation.encode(motion.to(device="cpu", dtype=torch.float32)).float()

    @torch.no_grad()
    def encode_motion(self, features: torch.Tensor) -> torch.Tensor:
        """Features `(T, D)`, T = 4k+1 -> motion latents `(1, k+1, C)` in the transformer's space (posterior mean)."""
        normalized = self.feature_stats.normalize(features)[None].to(self.motion_vae.device, self.motion_vae.dtype)
        latents = self.motion_vae.encode(normalized).mode() * self.motion_vae.config.scaling_factor
        return latents.to(self.transformer.dtype)

    def prepare_latents(
        self,
        shape: tuple[int, ...],
        clean_initial: torch.Tensor,
        generator: torch.Generator | None,
        device: torch.device,
    ) -> torch.Tensor:
        """Gaussian noise of `shape` (scaled by the scheduler's initial sigma) with entry 0 the clean
        `clean_initial`."""
        noise = randn_tensor(shape, generator=generator, device=device, dtype=clean_initial.dtype)
        return replace_initial(noise * self.scheduler.init_noise_sigma, clean_initial)

    @torch.no_grad()
    def decode_latents(self, latents: torch.Tensor) -> np.ndarray:
        """Video latents `(1, T', 16, h, w)` -> frames `(T, H, W, 3)` uint8."""
        return self.to_uint8(decode_video(self.vae, latents.to(self.vae.device)))

    @torch.no_grad()
    def decode_motion_latents(
        self, motion_latents: torch.Tensor, initial_features: torch.Tensor, rest_joints: torch.Tensor
    ) -> Motion:
        """Motion latents `(1, k+1, C)` -> `Motion` of 4k+1 frames at 16 fps on `rest_joints`, frame 0 = P0's
        features."""
        latents = (
            motion_latents.to(self.motion_vae.device, self.motion_vae.dtype) / self.motion_vae.config.scaling_factor
        )
        features = self.feature_stats.denormalize(self.motion_vae.decode(latents)[0].float().cpu())
        features = torch.cat([initial_features[:1], features[1:]])
        return self.representation.decode(features, rest_joints.float().cpu(), fps=MOTION_FPS)

    def camera_trajectory(self, motion: Motion) -> np.ndarray:
        """The head camera of `motion` (16 fps) at the video frames (every second pose): `(T_video, 4, 4)` float32."""
        return self.rig.camera_poses(*motion.head_pose())[::2].float().numpy()

    # ------------------------------------------------------------------------------------------ sampling
    @torch.no_grad()
    def __call__(
        self,
        prompt: str | list[str],
        image: PIL.Image.Image | np.ndarray | list | None = None,
        initial_pose: Motion | list[Motion | None] | None = None,
        mode: str = "t2vm",
        motion: Motion | list[Motion] | None = None,
        video: np.ndarray | str | Path | list | None = None,
        num_inference_steps: int = 50,
        guidance_scale: float | None = None,
        motion_guidance_scale: float = GuidanceScales.motion,
        video_guidance_scale: float = GuidanceScales.video,
        motion_lead: float | None = None,
        video_text_guidance_scale: float | None = None,
        generator: torch.Generator | list[torch.Generator] | None = None,
        callback_on_step_end: Callable[["EgoTwinPipeline", int, torch.Tensor, dict], dict] | None = None,
        callback_on_step_end_tensor_inputs: list[str] | None = None,
        attention_kwargs: dict[str, Any] | None = None,
        return_dict: bool = True,
    ) -> EgoTwinPipelineOutput | tuple[np.ndarray, Motion] | list:
        """Generate one 5 s clip, or one per prompt when `prompt` is a list.

        Args:
            prompt: what the wearer does. A list of B prompts makes a batch: `image`, `initial_pose`, `motion`,
                `video` and `generator` are then each one value shared by all or a list of B, and the call returns a
                list of B outputs. The batch is sampled one clip after another (the same numbers as B single calls
                with the same generators), which is what a CPU gives anyway.
            image: start frame I0 (PIL image or `(H, W, 3)` uint8, any size: center-cropped and resized), for t2vm/tm2v.
            initial_pose: start pose P0 (a Motion, its frame 0 is used), or None for the body's standing rest pose.
            mode: "t2vm" (generate both), "tm2v" (motion given), "tv2m" (video given).
            motion: tm2v's motion, any fps (resampled to 16 fps), at least 5 s; its first 5 s are used.
            video: tv2m's video, `(T, H, W, 3)` uint8 at 8 fps or a path to a video file (its frames taken as 8 fps);
                its first 41 frames are used, frame 0 is I0.
            num_inference_steps: sampler steps of the pipeline's scheduler (CogVideoX DDIM or DPM).
            guidance_scale, motion_guidance_scale, video_guidance_scale: w_t, w_m, w_v (`egotwin.diffusion.guidance`);
                `guidance_scale` None takes the checkpoint's (`config.guidance_scale`).
            video_text_guidance_scale: w_t of the video's prediction alone (t2vm, tm2v); None takes the
                checkpoint's (`config.video_text_guidance_scale`), and where that is None too, `guidance_scale` (the
                paper's one w_t). `GuidanceScales.video_text`.
            motion_lead: t2vm only, in [0, 1); None takes the checkpoint's (`config.motion_lead`, used in t2vm only).
                How far the motion's denoising runs ahead of the video's. 0 is the paper's joint sampling (both at
                the same t every step, Eq. 4). With lead L the motion takes
                `round((1 - L) * num_inference_steps)` steps of its own schedule while the video takes all of its
                steps, so at every step the motion is less noisy than the video; once the motion is clean, the
                video's remaining steps are TM2V's (Eq. 3) on it. Asynchronous timesteps in training are what make
                the model able to denoise at unequal t; the lead lets the video's coarse layout, settled in the
                first steps, see a head path that already exists.
            generator: seeds every noise draw.
            callback_on_step_end: `fn(pipe, step_index, timestep, callback_kwargs) -> dict`, called after each step with
                the tensors named in `callback_on_step_end_tensor_inputs` (default ["latents"]); tensors it returns
                replace the pipeline's.
            attention_kwargs: diffusers' per-call attention options; EgoTwin's joint attention has none, so any key
                is refused (ValueError) rather than ignored.
            return_dict: False returns `(frames, motion)`.
        """
        if attention_kwargs:
            raise ValueError(
                f"EgoTwin's joint attention takes no attention_kwargs (got {sorted(attention_kwargs)}); "
                "LoRA scales and custom processors are not supported"
            )
        if isinstance(prompt, list):
            return self._call_batch(
                prompt,
                dict(image=image, initial_pose=initial_pose, motion=motion, video=video, generator=generator),
                dict(
                    mode=mode,
                    num_inference_steps=num_inference_steps,
                    guidance_scale=guidance_scale,
                    motion_guidance_scale=motion_guidance_scale,
                    video_guidance_scale=video_guidance_scale,
                    motion_lead=motion_lead,
                    video_text_guidance_scale=video_text_guidance_scale,
                    callback_on_step_end=callback_on_step_end,
                    callback_on_step_end_tensor_inputs=callback_on_step_end_tensor_inputs,
                    return_dict=return_dict,
                ),
            )
        tensor_inputs = (
            ["latents"] if callback_on_step_end_tensor_inputs is None else list(callback_on_step_end_tensor_inputs)
        )
        self.check_inputs(prompt, mode, image, initial_pose, motion, video, num_inference_steps, tensor_inputs)
        motion_steps = motion_denoising_steps(mode, num_inference_steps, self.motion_lead_for(mode, motion_lead))
        device = self._execution_device
        dtype = self.transformer.dtype

        # 1. Text
        prompt_embeds, negative_prompt_embeds = self.encode_prompt(prompt, device)

        # 2. Observations: I0 alone, or the whole given video (tv2m)
        if mode == "tv2m":
            frames = read_video(video) if isinstance(video, (str, Path)) else video
            if len(frames) < NUM_VIDEO_FRAMES:
                raise ValueError(f"the video has {len(frames)} frames; tv2m needs {NUM_VIDEO_FRAMES} (5 s at 8 fps)")
            given_video = self.preprocess_frames(list(frames[:NUM_VIDEO_FRAMES]))
            video_latents = self.encode_frames(given_video)
        else:
            given_video = None
            video_latents = self.encode_frames(self.preprocess_frames([image]))

        # 3. Actions: P0 alone, or the whole given motion (tm2v), canonicalised
        if mode == "tm2v":
            # only the first 5 s are resampled: the work does not grow with the motion's length or frame rate
            start = motion.resample(MOTION_FPS, NUM_MOTION_FRAMES) if motion.fps != MOTION_FPS else motion
            given_motion = start.slice(0, NUM_MOTION_FRAMES).to(device="cpu", dtype=torch.float32).canonicalize()[0]
            pose = given_motion.slice(0, 1)
            given_features = self.motion_features(given_motion)
            initial_features = given_features[:1]
            motion_latents = self.encode_motion(given_features)
        else:
            given_motion = None
            pose = Motion.rest(1, self.body.rest_joints) if initial_pose is None else initial_pose.slice(0, 1)
            pose = pose.to(device="cpu", dtype=torch.float32).canonicalize()[0]
            initial_features = self.motion_features(pose)
            motion_latents = self.encode_motion(initial_features)

        # 4. Noise: the generated modalities start from it, a dropped modality is fed as it (at timestep T)
        num_video_latents = (NUM_VIDEO_FRAMES - 1) // self.vae_scale_factor_temporal + 1
        num_motion_latents = num_latent_frames(NUM_MOTION_FRAMES)
        video_shape = (1, num_video_latents, *video_latents.shape[2:])
        motion_shape = (1, num_motion_latents, motion_latents.shape[-1])
        latents = (
            video_latents if mode == "tv2m" else self.prepare_latents(video_shape, video_latents, generator, device)
        )
        if mode != "tm2v":
            motion_latents = self.prepare_latents(motion_shape, motion_latents, generator, device)
        dropped_video = self.prepare_latents(video_shape, latents, generator, device)
        dropped_motion = self.prepare_latents(motion_shape, motion_latents, generator, device)

        # 5. Denoising loop: each generated modality steps its own scheduler; the given one and I0 / P0 stay clean
        self.scheduler.set_timesteps(num_inference_steps, device=device)
        motion_scheduler = copy.deepcopy(self.scheduler)
        if motion_steps != num_inference_steps:
            motion_scheduler.set_timesteps(motion_steps, device=device)
        video_stepper, motion_stepper = _Stepper(self.scheduler, generator), _Stepper(motion_scheduler, generator)
        text_scale = self.config.guidance_scale if guidance_scale is None else check_guidance_scale(guidance_scale)
        if video_text_guidance_scale is None:
            video_text_guidance_scale = self.config.video_text_guidance_scale
        scales = GuidanceScales(
            text=text_scale,
            motion=motion_guidance_scale,
            video=video_guidance_scale,
            video_text=None if video_text_guidance_scale is None else check_guidance_scale(video_text_guidance_scale),
        )
        timesteps = self.scheduler.timesteps
        with self.progress_bar(total=len(timesteps)) as progress_bar:
            for i, t in enumerate(timesteps):
                step_mode, motion_t = mode, t
                if mode == "t2vm" and motion_steps != num_inference_steps:
                    if i < motion_steps:
                        motion_t = motion_scheduler.timesteps[i]
                    else:  # the motion is finished and clean: the video's remaining steps are TM2V's
                        step_mode = "tm2v"
                motion_index = min(i, motion_steps - 1)
                video_pred, motion_pred = guided_prediction(
                    self.transformer,
                    step_mode,
                    latents,
                    motion_latents,
                    t,
                    prompt_embeds,
                    negative_prompt_embeds,
                    dropped_video,
                    dropped_motion,
                    scales,
                    self.scheduler.config.num_train_timesteps,
                    motion_t if step_mode == "t2vm" else None,
                )
                if video_pred is not None:
                    latents = replace_initial(video_stepper.step(video_pred, i, latents).to(dtype), latents)
                if motion_pred is not None:
                    stepped = motion_stepper.step(motion_pred, motion_index, motion_latents)
                    motion_latents = replace_initial(stepped.to(dtype), motion_latents)
                if callback_on_step_end is not None:
                    available = {
                        "latents": latents,
                        "motion_latents": motion_latents,
                        "prompt_embeds": prompt_embeds,
                        "negative_prompt_embeds": negative_prompt_embeds,
                    }
                    outputs = callback_on_step_end(self, i, t, {k: available[k] for k in tensor_inputs}) or {}
                    latents = outputs.get("latents", latents)
                    motion_latents = outputs.get("motion_latents", motion_latents)
                    prompt_embeds = outputs.get("prompt_embeds", prompt_embeds)
                    negative_prompt_embeds = outputs.get("negative_prompt_embeds", negative_prompt_embeds)
                progress_bar.update()

        # 6. Decode (the given modality is returned as given)
        frames = self.to_uint8(given_video) if mode == "tv2m" else self.decode_latents(latents)
        if mode == "tm2v":
            out_motion = given_motion
        else:
            out_motion = self.decode_motion_latents(motion_latents, initial_features, pose.rest_joints)
        self.maybe_free_model_hooks()
        if not return_dict:
            return frames, out_motion
        return EgoTwinPipelineOutput(
            frames=frames,
            motion=out_motion,
            camera_to_world=self.camera_trajectory(out_motion),
            intrinsics=self.rig.intrinsics(self.width, self.height).numpy(),
            prompt=prompt,
            mode=mode,
            seed=generator.initial_seed() if isinstance(generator, torch.Generator) else None,
            prompts=[prompt],
        )

    def _call_batch(self, prompts: list[str], per_item: dict[str, Any], shared: dict[str, Any]) -> list:
        """`__call__` for a list of prompts: each per-item input is one value for all or a list of one per prompt."""
        if not prompts:
            raise ValueError("prompt is an empty list; give at least one prompt")
        for name, value in per_item.items():
            if isinstance(value, list) and len(value) != len(prompts):
                raise ValueError(f"{name} is a list of {len(value)} for {len(prompts)} prompts; give one per prompt")
        items = [
            {name: value[b] if isinstance(value, list) else value for name, value in per_item.items()}
            for b in range(len(prompts))
        ]
        return [self(prompt, **item, **shared) for prompt, item in zip(prompts, items)]

    # ------------------------------------------------------------------------------------------ continuation
    def continue_from(
        self,
        previous: EgoTwinPipelineOutput,
        prompt: str,
        num_inference_steps: int = 50,
        generator: torch.Generator | None = None,
        **kwargs: Any,
    ) -> EgoTwinPipelineOutput:
        """Generate the next 5 s (T2VM) from the last frame and pose of `previous`, and join it to `previous`.

        The new clip starts from `previous.frames[-1]` (I0) and `previous.motion`'s last pose (P0, canonicalised);
        its motion is moved back into `previous`'s world frame and appended without repeating the shared frame:
        frames 41 + 40 k, motion 81 + 80 k, cameras likewise. `kwargs` go to `__call__` (guidance scales, callback).
        """
        if not isinstance(previous, EgoTwinPipelineOutput):
            raise ValueError(f"previous must be an EgoTwinPipelineOutput, got {type(previous).__name__}")
        last = previous.motion.slice(previous.motion.num_frames - 1)
        clip = self(
            prompt=prompt,
            image=previous.frames[-1],
            initial_pose=last,
            mode="t2vm",
            num_inference_steps=num_inference_steps,
            generator=generator,
            **kwargs,
        )
        # The canonical transform of the last pose is rigid: its inverse is (R^T, -R^T t).
        transform = last.canonical_transform().double()
        inverse = torch.eye(4, dtype=torch.float64)
        inverse[:3, :3] = transform[:3, :3].T
        inverse[:3, 3] = -transform[:3, :3].T @ transform[:3, 3]
        new_motion = clip.motion.transformed(inverse.float())
        joined = Motion(
            trans=torch.cat([previous.motion.trans, new_motion.trans[1:]]),
            global_orient=torch.cat([previous.motion.global_orient, new_motion.global_orient[1:]]),
            body_pose=torch.cat([previous.motion.body_pose, new_motion.body_pose[1:]]),
            rest_joints=previous.motion.rest_joints,
            fps=previous.motion.fps,
            betas=previous.motion.betas,
        )
        return EgoTwinPipelineOutput(
            frames=np.concatenate([previous.frames, clip.frames[1:]]),
            motion=joined,
            camera_to_world=self.camera_trajectory(joined),
            intrinsics=clip.intrinsics,
            prompt=prompt,
            mode="t2vm",
            seed=clip.seed,
            prompts=[*(previous.prompts or [previous.prompt]), prompt],
        )

"""EgoTwinPipeline on tiny random components (diffusers' `get_dummy_components` practice): 32x32 frames, few steps.

Checks the contract other parts code against: shapes and dtypes per mode, I0 / P0 honoured, the given modality
returned as given, seeding, save/load, the step callback, input errors and clip continuation.
"""

import copy

import numpy as np
import pytest
import torch

from egotwin.body.rotations import rotation_about_y
from egotwin.data.clip_format import write_video
from egotwin.diffusion.guidance import GuidanceScales
from egotwin.models.transformer import EgoTwinTransformer3DModel
from egotwin.models.video_vae import decode_video, encode_video
from egotwin.motion.motion import Motion
from egotwin.motion.random_motion import walking_motion
from egotwin.pipelines import EgoTwinPipeline, EgoTwinPipelineOutput
from training.build_pipeline import folder_size, random_pipeline
from training.build_pipeline import main as build_pipeline_main

STEPS = 2
PROMPT = "walk forward to the door"


def get_dummy_components() -> dict:
    """Transformer, VAE and motion-VAE settings of a pipeline small enough to sample in about a second on CPU."""
    transformer = dict(
        num_attention_heads=2,
        attention_head_dim=32,  # 64 wide: a 2x2 patch of 16 channels is 64 values
        in_channels=16,
        out_channels=16,
        time_embed_dim=32,
        text_embed_dim=384,  # MiniLM
        num_layers=2,
        sample_width=4,
        sample_height=4,  # 4x4 latents = 32x32 frames
        sample_frames=41,
        patch_size=2,
        max_text_seq_length=32,
        motion_in_channels=8,
        motion_dim=32,
        motion_num_layers=1,
    )
    video_vae = dict(block_out_channels=(8, 8, 16, 16), norm_num_groups=4, sample_height=32, sample_width=32)
    motion_vae = dict(block_out_channels=(32, 32), layers_per_block=1)
    return dict(transformer=transformer, video_vae=video_vae, motion_vae=motion_vae)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """These models are too small to gain from threads, and on shared cores OpenMP threads that wait for each other
    make a VAE decode up to 20x slower; restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def pipe(one_thread) -> EgoTwinPipeline:
    components = get_dummy_components()
    torch.manual_seed(0)
    transformer = EgoTwinTransformer3DModel(**components["transformer"])
    pipeline = random_pipeline(transformer, components["video_vae"], components["motion_vae"])
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


def start_frame(seed: int = 0, height: int = 48, width: int = 40) -> np.ndarray:
    """A smooth random RGB image (not the model's size, so cropping and resizing are exercised)."""
    rng = np.random.default_rng(seed)
    small = rng.uniform(0, 255, (4, 4, 3))
    return np.kron(small, np.ones((height // 4 + 1, width // 4 + 1, 1)))[:height, :width].astype(np.uint8)


def start_pose() -> Motion:
    """A mid-stride pose, turned and moved away from the origin (so canonicalisation does something)."""
    walk = walking_motion(duration=1.0).slice(5, 6)
    transform = torch.eye(4)
    transform[:3, :3] = rotation_about_y(torch.tensor(2.0))
    transform[:3, 3] = torch.tensor([1.5, 0.0, -3.0])
    return walk.transformed(transform)


def generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def run(pipe: EgoTwinPipeline, seed: int = 0, **kwargs) -> EgoTwinPipelineOutput:
    kwargs.setdefault("image", start_frame())
    return pipe(PROMPT, num_inference_steps=STEPS, generator=generator(seed), **kwargs)


def assert_contract(pipe: EgoTwinPipeline, out: EgoTwinPipelineOutput, video_frames: int = 41, poses: int = 81) -> None:
    assert out.frames.shape == (video_frames, 32, 32, 3) and out.frames.dtype == np.uint8
    assert out.motion.num_frames == poses and out.motion.fps == 16
    assert out.camera_to_world.shape == (video_frames, 4, 4) and out.camera_to_world.dtype == np.float32
    expected = pipe.rig.camera_poses(*out.motion.head_pose())[::2]
    np.testing.assert_allclose(out.camera_to_world, expected.numpy(), atol=1e-6)
    np.testing.assert_allclose(out.intrinsics, [[16, 0, 16], [0, 16, 16], [0, 0, 1]])


def test_t2vm_output_contract_and_canonical_frame(pipe):
    out = run(pipe)
    assert_contract(pipe, out)
    assert (out.prompt, out.mode, out.seed, out.prompts) == (PROMPT, "t2vm", 0, [PROMPT])
    # Canonical frame: the frame-0 head is above the origin and faces +z.
    head_rotation, head_position = out.motion.head_pose()
    torch.testing.assert_close(head_position[0, [0, 2]], torch.zeros(2), atol=1e-5, rtol=0)
    forward = head_rotation[0, :, 2]
    assert abs(forward[0]) < 1e-5 and forward[2] > 0


def test_initial_frame_and_pose_are_honoured(pipe):
    image, pose = start_frame(1), start_pose()
    final = {}

    def keep_latents(pipeline, step, timestep, tensors):
        final.update(tensors)
        return {}

    out = run(
        pipe,
        image=image,
        initial_pose=pose,
        callback_on_step_end=keep_latents,
        callback_on_step_end_tensor_inputs=["latents", "motion_latents"],
    )
    # P0: motion frame 0 is the canonicalised start pose (through the exact representation round trip), and motion
    # latent 0 stayed that pose's latent.
    canonical = pose.canonicalize()[0]
    torch.testing.assert_close(out.motion.joints()[0], canonical.joints()[0], atol=1e-5, rtol=0)
    torch.testing.assert_close(out.motion.local_rotations[0], canonical.local_rotations[0], atol=1e-5, rtol=0)
    p0_latent = pipe.encode_motion(pipe.motion_features(canonical))
    torch.testing.assert_close(final["motion_latents"][:, :1], p0_latent, atol=0, rtol=0)
    # I0: O^0 stayed the latent of the cropped, resized image encoded alone, and the decoded frame 0 is closer to the
    # VAE round trip of the image than to that of its negative (the random decoder mixes in the next latent).
    video = pipe.preprocess_frames([image])
    torch.testing.assert_close(final["latents"][:, :1], pipe.encode_frames(video), atol=0, rtol=0)

    def round_trip(frame: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            latents = encode_video(pipe.vae, pipe.preprocess_frames([frame]))
            return pipe.to_uint8(decode_video(pipe.vae, latents))[0].astype(float)

    error = np.abs(out.frames[0] - round_trip(image)).mean()
    assert error < np.abs(out.frames[0] - round_trip(255 - image)).mean()


def test_default_initial_pose_is_the_bodys_standing_rest_pose(pipe):
    out = run(pipe)
    rest = Motion.rest(1, pipe.body.rest_joints).canonicalize()[0]
    torch.testing.assert_close(out.motion.joints()[0], rest.joints()[0], atol=1e-5, rtol=0)


def test_tm2v_returns_the_given_motion(pipe):
    walk = walking_motion(duration=6.0, fps=30.0)  # any fps: resampled to 16, first 5 s used
    out = run(pipe, mode="tm2v", motion=walk)
    assert_contract(pipe, out)
    expected = walk.resample(16).slice(0, 81).canonicalize()[0]
    torch.testing.assert_close(out.motion.joints(), expected.joints(), atol=1e-6, rtol=0)
    assert out.mode == "tm2v"


def test_tv2m_returns_the_given_frames_from_an_array_or_a_file(pipe, tmp_path):
    video = np.stack([start_frame(seed, 32, 32) for seed in range(45)])
    out = run(pipe, mode="tv2m", video=video, image=None)
    assert_contract(pipe, out)
    np.testing.assert_array_equal(out.frames, video[:41])

    path = tmp_path / "clip.mp4"
    write_video(path, np.repeat(np.repeat(video[:41], 2, axis=1), 2, axis=2))  # 64x64 file, resized to 32x32
    from_file = run(pipe, mode="tv2m", video=str(path), image=None)
    assert from_file.frames.shape == (41, 32, 32, 3)
    error = np.abs(from_file.frames.astype(float) - video[:41]).mean()  # H.264 and the resize, not another video:
    assert error < 0.2 * np.abs(from_file.frames.astype(float) - video[1:42]).mean()


def test_same_seed_same_output_other_seed_different(pipe):
    first, again, other = run(pipe, seed=5), run(pipe, seed=5), run(pipe, seed=6)
    np.testing.assert_array_equal(first.frames, again.frames)
    torch.testing.assert_close(first.motion.trans, again.motion.trans, atol=0, rtol=0)
    assert not np.array_equal(first.frames, other.frames)
    assert not torch.allclose(first.motion.trans[1:], other.motion.trans[1:])


def test_t2vm_makes_one_batched_call_of_four_rows_per_step(pipe):
    rows = []
    hook = pipe.transformer.register_forward_hook(
        lambda module, args, kwargs_out: rows.append(kwargs_out.sample.size(0))
    )
    try:
        run(pipe)
        run(pipe, mode="tm2v", motion=walking_motion(duration=5.0))
    finally:
        hook.remove()
    assert rows == [4] * STEPS + [3] * STEPS


def test_motion_lead_runs_the_motion_ahead_then_finishes_the_video_as_tm2v(pipe):
    steps, lead = 4, 0.5  # the motion takes 2 steps of its own schedule, the video 4
    calls, motion_seen = [], []
    hook = pipe.transformer.register_forward_hook(
        lambda module, args, kwargs, out: calls.append(
            (kwargs["timestep"].tolist(), kwargs["motion_timestep"].tolist())
        ),
        with_kwargs=True,
    )

    def callback(pipeline, step, timestep, tensors):
        motion_seen.append(tensors["motion_latents"].clone())
        return {}

    try:
        out = pipe(
            PROMPT,
            image=start_frame(),
            num_inference_steps=steps,
            motion_lead=lead,
            generator=generator(0),
            callback_on_step_end=callback,
            callback_on_step_end_tensor_inputs=["motion_latents"],
        )
    finally:
        hook.remove()
    assert_contract(pipe, out)
    video_t = pipe.scheduler.timesteps.tolist()
    motion_scheduler = copy.deepcopy(pipe.scheduler)
    motion_scheduler.set_timesteps(2)
    motion_t = motion_scheduler.timesteps.tolist()
    assert motion_t[0] == video_t[0] == 999 and motion_t[1] < video_t[1]  # the motion is ahead after step 0
    # Motion steps: Eq. 4's four rows, the motion at its own t (its dropped row at T).
    for i in range(2):
        assert calls[i] == ([video_t[i]] * 3 + [999], [motion_t[i]] * 2 + [999, motion_t[i]])
    # Video-only steps: TM2V's three rows, the finished motion clean (t 0) in the joint row; it no longer changes.
    for i in range(2, 4):
        assert calls[i] == ([video_t[i]] * 3, [999, 999, 0])
    torch.testing.assert_close(motion_seen[1], motion_seen[3], atol=0, rtol=0)
    assert not torch.equal(motion_seen[0], motion_seen[1])


def test_a_checkpoints_motion_lead_is_its_t2vm_default_and_survives_save_and_load(pipe, tmp_path):
    assert pipe.config.motion_lead == 0.0  # built without one: the paper's joint sampling
    leading = EgoTwinPipeline(**pipe.components, feature_stats=pipe.feature_stats, motion_lead=0.5)
    leading.set_progress_bar_config(disable=True)
    leading.save_pretrained(tmp_path / "leading")
    loaded = EgoTwinPipeline.from_pretrained(tmp_path / "leading")
    loaded.set_progress_bar_config(disable=True)
    assert loaded.config.motion_lead == 0.5
    by_default, explicit, joint = run(loaded, seed=3), run(pipe, seed=3, motion_lead=0.5), run(pipe, seed=3)
    torch.testing.assert_close(by_default.motion.trans, explicit.motion.trans, atol=1e-5, rtol=0)
    assert (by_default.motion.trans - joint.motion.trans).abs().max() > 1e-4
    # The other modes ignore the checkpoint's lead (one modality is generated) but refuse an explicit one.
    run(loaded, mode="tm2v", motion=walking_motion(duration=5.0))
    with pytest.raises(ValueError, match="motion_lead must be a number"):
        EgoTwinPipeline(**pipe.components, feature_stats=pipe.feature_stats, motion_lead=1.5)


def test_a_checkpoints_text_guidance_is_its_default_and_survives_save_and_load(pipe, tmp_path):
    assert pipe.config.guidance_scale == GuidanceScales.text  # built without one: the library's default
    chosen = EgoTwinPipeline(**pipe.components, feature_stats=pipe.feature_stats, guidance_scale=2.0)
    chosen.save_pretrained(tmp_path / "chosen")
    loaded = EgoTwinPipeline.from_pretrained(tmp_path / "chosen")
    loaded.set_progress_bar_config(disable=True)
    assert loaded.config.guidance_scale == 2.0
    by_default, explicit, library = run(loaded, seed=3), run(pipe, seed=3, guidance_scale=2.0), run(pipe, seed=3)
    assert np.abs(by_default.frames.astype(int) - explicit.frames).max() <= 1
    torch.testing.assert_close(by_default.motion.trans, explicit.motion.trans, atol=1e-5, rtol=0)
    assert (by_default.motion.trans - library.motion.trans).abs().max() > 1e-4
    overridden = run(loaded, seed=3, guidance_scale=GuidanceScales.text)  # an explicit w_t wins over the checkpoint's
    torch.testing.assert_close(overridden.motion.trans, library.motion.trans, atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="guidance scale must be a number >= 0"):
        EgoTwinPipeline(**pipe.components, feature_stats=pipe.feature_stats, guidance_scale=-1.0)


def test_a_checkpoints_video_text_guidance_steers_the_video_alone(pipe, tmp_path):
    """The video's own w_t: saved with the checkpoint and taken by default; at the motion's w_t it is the paper's
    sampling exactly; a different one changes the video, while the motion (in TV2M, generated alone) keeps its w_t."""
    assert pipe.config.video_text_guidance_scale is None
    split = EgoTwinPipeline(**pipe.components, feature_stats=pipe.feature_stats, video_text_guidance_scale=1.0)
    split.save_pretrained(tmp_path / "split")
    loaded = EgoTwinPipeline.from_pretrained(tmp_path / "split")
    loaded.set_progress_bar_config(disable=True)
    assert loaded.config.video_text_guidance_scale == 1.0
    paper, same = run(pipe, seed=4), run(pipe, seed=4, video_text_guidance_scale=GuidanceScales.text)
    assert np.array_equal(paper.frames, same.frames)
    by_default, explicit = run(loaded, seed=4), run(pipe, seed=4, video_text_guidance_scale=1.0)
    assert np.abs(by_default.frames.astype(int) - explicit.frames).max() <= 1
    assert np.abs(by_default.frames.astype(int) - paper.frames).mean() > 0.5
    video = paper.frames
    tv2m = [run(p, seed=4, mode="tv2m", video=video, image=None) for p in (pipe, loaded)]
    torch.testing.assert_close(tv2m[0].motion.trans, tv2m[1].motion.trans, atol=1e-5, rtol=0)


def test_save_and_load_round_trip(pipe, tmp_path):
    pipe.save_pretrained(tmp_path / "fp32")
    loaded = EgoTwinPipeline.from_pretrained(tmp_path / "fp32")
    loaded.set_progress_bar_config(disable=True)
    assert loaded.transformer.dtype == torch.float32
    torch.testing.assert_close(loaded.feature_stats.std, pipe.feature_stats.std)
    assert loaded.config.text_encoder_name == "minilm" and loaded.rig == pipe.rig
    # Same weights bit for bit; oneDNN may pick other kernels for freshly loaded buffers (1e-7 differences), so
    # the outputs agree to float rounding (a uint8 pixel may round the other way).
    for name in ("transformer", "vae", "motion_vae"):
        saved, restored = getattr(pipe, name).state_dict(), getattr(loaded, name).state_dict()
        assert all(torch.equal(saved[key], restored[key]) for key in saved)
    first, second = run(pipe, seed=2), run(loaded, seed=2)
    assert np.abs(first.frames.astype(int) - second.frames).max() <= 1
    torch.testing.assert_close(first.motion.trans, second.motion.trans, atol=1e-5, rtol=0)

    half = EgoTwinPipeline.from_pretrained(tmp_path / "fp32")
    half.to(torch.float16).save_pretrained(tmp_path / "fp16")
    weights = lambda folder: sum(p.stat().st_size for p in folder.rglob("*.safetensors"))  # noqa: E731
    assert weights(tmp_path / "fp16") < 0.6 * weights(tmp_path / "fp32")
    from_half = EgoTwinPipeline.from_pretrained(tmp_path / "fp16")
    assert {from_half.transformer.dtype, from_half.vae.dtype, from_half.motion_vae.dtype} == {torch.float32}
    expected = pipe.transformer.state_dict()
    for name, value in from_half.transformer.state_dict().items():
        torch.testing.assert_close(value, expected[name].half().float(), atol=0, rtol=0)


def test_callback_on_step_end_sees_every_step_and_can_replace_latents(pipe):
    seen = []
    replaced = {}

    def callback(pipeline, step, timestep, tensors):
        seen.append((step, int(timestep), sorted(tensors)))
        if step == STEPS - 1:  # replace both modalities at the end: the outputs must decode exactly these
            replaced["latents"] = torch.zeros_like(tensors["latents"])
            replaced["motion_latents"] = torch.full_like(tensors["motion_latents"], 0.5)
            return dict(replaced)
        return {}

    out = run(pipe, callback_on_step_end=callback, callback_on_step_end_tensor_inputs=["latents", "motion_latents"])
    assert [s for s, _, _ in seen] == list(range(STEPS))
    assert [t for _, t, _ in seen] == pipe.scheduler.timesteps.tolist()
    assert all(names == ["latents", "motion_latents"] for _, _, names in seen)
    np.testing.assert_array_equal(out.frames, pipe.decode_latents(replaced["latents"]))
    pose = pipe.motion_features(Motion.rest(1, pipe.body.rest_joints).canonicalize()[0])
    expected = pipe.decode_motion_latents(replaced["motion_latents"], pose, pipe.body.rest_joints)
    torch.testing.assert_close(out.motion.trans, expected.trans)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(mode="v2t"), "unknown mode"),
        (dict(mode="tm2v"), "pass motion="),
        (dict(mode="t2vm", video=np.zeros((41, 32, 32, 3), np.uint8)), "video= is only for 'tv2m'"),
        (dict(mode="t2vm", motion="walk"), "motion= is only for 'tm2v'"),
        (dict(mode="tv2m"), "do not pass image="),
        (dict(mode="tv2m", image=None), "pass video="),
        (dict(mode="tv2m", image=None, video=np.zeros((20, 32, 32, 3), np.uint8)), "at least 41 frames"),
        (dict(mode="tv2m", image=None, video=np.zeros((41, 32, 32), np.uint8)), r"\(T, H, W, 3\) uint8"),
        (dict(image=None), "needs the start frame"),
        (dict(image=np.zeros((32, 32), np.uint8)), r"\(H, W, 3\) uint8 array"),
        (dict(image=np.zeros((32, 32, 3), np.float32)), "dtype float32"),
        (dict(prompt=""), "non-empty string"),
        (dict(prompt="   "), "non-empty string"),
        (dict(num_inference_steps=0), "positive integer"),
        (dict(initial_pose="standing"), "must be an egotwin Motion"),
        (dict(callback_on_step_end_tensor_inputs=["noise"]), "not available"),
        (dict(motion_lead=1.0), r"motion_lead must be a number in \[0, 1\)"),
        (dict(motion_lead=-0.1), r"motion_lead must be a number in \[0, 1\)"),
        (
            dict(mode="tm2v", motion=walking_motion(duration=5.0), image=start_frame(), motion_lead=0.5),
            "for mode 't2vm'",
        ),
    ],
)
def test_bad_inputs_raise_clear_errors(pipe, kwargs, message):
    arguments = dict(prompt=PROMPT, image=start_frame(), num_inference_steps=1)
    arguments.update(kwargs)
    with pytest.raises(ValueError, match=message):
        pipe(**arguments)


def test_bad_motions_raise_clear_errors(pipe):
    nan_motion = walking_motion(duration=5.0)
    nan_motion.trans[10, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        run(pipe, mode="tm2v", motion=nan_motion)
    with pytest.raises(ValueError, match="at least 5 s"):
        run(pipe, mode="tm2v", motion=walking_motion(duration=3.0))
    with pytest.raises(ValueError, match="initial_pose contains NaN"):
        run(pipe, initial_pose=nan_motion)
    with pytest.raises(ValueError, match="takes the start pose from the motion"):
        run(pipe, mode="tm2v", motion=walking_motion(duration=5.0), initial_pose=start_pose())


def test_too_long_prompt_is_truncated_with_a_warning(pipe):
    with pytest.warns(UserWarning, match="cut off"):
        pipe.encode_prompt("walk " * 100)


def test_unknown_or_incomplete_folders_raise_file_not_found(pipe, tmp_path):
    with pytest.raises(FileNotFoundError, match="no such pipeline folder"):
        EgoTwinPipeline.from_pretrained(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="model_index.json"):
        EgoTwinPipeline.from_pretrained(tmp_path)
    pipe.save_pretrained(tmp_path / "saved")
    (tmp_path / "saved" / "motion_vae" / "feature_stats.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="feature statistics"):
        EgoTwinPipeline.from_pretrained(tmp_path / "saved")
    for weights in (tmp_path / "saved" / "transformer").glob("*.safetensors"):
        weights.unlink()
    with pytest.raises(FileNotFoundError, match="transformer has no weights"):
        EgoTwinPipeline.from_pretrained(tmp_path / "saved")


def test_continuation_joins_clips_without_a_seam(pipe):
    first = run(pipe, initial_pose=start_pose(), seed=1)
    longer = pipe.continue_from(first, "turn left", num_inference_steps=STEPS, generator=generator(2))
    assert_contract(pipe, longer, video_frames=81, poses=161)
    assert longer.prompts == [PROMPT, "turn left"]
    np.testing.assert_array_equal(longer.frames[:41], first.frames)
    torch.testing.assert_close(longer.motion.trans[:81], first.motion.trans, atol=0, rtol=0)

    # The second clip, sampled on its own from the same inputs and seed, is in the canonical frame of the shared
    # pose; moved back by the inverse canonical transform its frame 0 is the first clip's last pose in world frame.
    last = first.motion.slice(80, 81)
    clip = pipe(
        "turn left", image=first.frames[-1], initial_pose=last, num_inference_steps=STEPS, generator=generator(2)
    )
    world = clip.motion.transformed(torch.linalg.inv(last.canonical_transform()))
    torch.testing.assert_close(world.joints()[0], last.joints()[0], atol=1e-5, rtol=0)
    torch.testing.assert_close(world.local_rotations[0], last.local_rotations[0], atol=1e-5, rtol=0)
    torch.testing.assert_close(longer.motion.joints()[81:], world.joints()[1:], atol=1e-5, rtol=0)
    np.testing.assert_array_equal(longer.frames[41:], clip.frames[1:])

    again = pipe.continue_from(longer, "stop", num_inference_steps=STEPS, generator=generator(3))
    assert_contract(pipe, again, video_frames=121, poses=241)
    torch.testing.assert_close(again.motion.trans[:161], longer.motion.trans, atol=0, rtol=0)


def test_model_cpu_offload_gives_the_same_clip(one_thread):
    """diffusers' model CPU offload on this pipeline: hooks chained transformer -> vae -> motion_vae, the same clip as
    without it, the hooks armed again after the call (for the next one) and the text encoder back on the CPU. Without a
    GPU here the offload device is the CPU itself (`device="cpu"`): the hooks and their order run, but no weights move;
    on a GPU each part is moved in and out around its own forward."""
    components = get_dummy_components()
    torch.manual_seed(0)
    pipeline = random_pipeline(
        EgoTwinTransformer3DModel(**components["transformer"]), components["video_vae"], components["motion_vae"]
    )
    pipeline.set_progress_bar_config(disable=True)
    plain = run(pipeline)
    pipeline.enable_model_cpu_offload(device="cpu")
    assert [hook.model for hook in pipeline._all_hooks] == [pipeline.transformer, pipeline.vae, pipeline.motion_vae]
    offloaded = run(pipeline)
    assert np.array_equal(plain.frames, offloaded.frames) and torch.equal(
        plain.motion.body_pose, offloaded.motion.body_pose
    )
    assert len(pipeline._all_hooks) == 3 and next(pipeline.text_encoder.parameters()).device.type == "cpu"


def test_a_bfloat16_pipeline_runs_its_t5_in_bfloat16(one_thread, tmp_path):
    """`from_pretrained(torch_dtype=torch.bfloat16)` of a pipeline whose text encoder is a CogVideoX folder's T5: the
    transformer and the T5 are bf16 (T5-XXL in float32 would take 19 GB more at full scale) and it samples; the default
    load stays float32."""
    from scripts.make_tiny_cogvideox import TinyCogVideoXConfig, make_tiny_cogvideox

    cogvideox = make_tiny_cogvideox(TinyCogVideoXConfig(output_dir=str(tmp_path / "cogvideox")))
    components = get_dummy_components()
    torch.manual_seed(0)
    transformer = EgoTwinTransformer3DModel(
        **{**components["transformer"], "text_embed_dim": 32, "max_text_seq_length": 226}
    )
    random_pipeline(
        transformer, components["video_vae"], components["motion_vae"], text_encoder=str(cogvideox)
    ).save_pretrained(tmp_path / "pipe")
    half = EgoTwinPipeline.from_pretrained(tmp_path / "pipe", torch_dtype=torch.bfloat16)
    half.set_progress_bar_config(disable=True)
    out = run(half)
    assert half.transformer.dtype == half.text_encoder.model.dtype == torch.bfloat16
    assert out.frames.shape == (41, 32, 32, 3) and torch.isfinite(out.motion.body_pose).all()
    full = EgoTwinPipeline.from_pretrained(tmp_path / "pipe")
    assert full.transformer.dtype == full.text_encoder.model.dtype == torch.float32


def test_build_pipeline_assembles_stage_outputs_in_float16(pipe, tmp_path, capsys):
    pipe.vae.save_pretrained(tmp_path / "stage0" / "video_vae")
    pipe.motion_vae.save_pretrained(tmp_path / "stage1" / "motion_vae")
    pipe.transformer.save_pretrained(tmp_path / "stage3" / "transformer")
    stage_args = [
        "--video_vae", str(tmp_path / "stage0" / "video_vae"),
        "--motion_vae", str(tmp_path / "stage1" / "motion_vae"),
        "--transformer", str(tmp_path / "stage3" / "transformer"),
        "--dtype", "float16",
        "--motion_lead", "0.8",
        "--guidance_scale", "2.5",
        "--video_text_guidance_scale", "1.5",
        "--output_dir", str(tmp_path / "assembled"),
    ]  # fmt: skip
    with pytest.raises(FileNotFoundError, match="feature statistics"):
        build_pipeline_main(stage_args)
    pipe.feature_stats.save(tmp_path / "stage1" / "motion_vae" / "feature_stats.safetensors")
    build_pipeline_main(stage_args)
    assert "MiB (float16)" in capsys.readouterr().out
    assembled = EgoTwinPipeline.from_pretrained(tmp_path / "assembled")
    assert assembled.config.text_encoder_name == "minilm" and assembled.transformer.dtype == torch.float32
    assert assembled.config.motion_lead == 0.8 and assembled.config.guidance_scale == 2.5
    assert assembled.config.video_text_guidance_scale == 1.5
    for name in ("transformer", "vae", "motion_vae"):
        expected = getattr(pipe, name).state_dict()
        for key, value in getattr(assembled, name).state_dict().items():
            torch.testing.assert_close(value, expected[key].half().float(), atol=0, rtol=0)
    torch.testing.assert_close(assembled.feature_stats.mean, pipe.feature_stats.mean)


def test_build_pipeline_random_tiny_preset_is_small_enough_to_ship(tmp_path, capsys):
    build_pipeline_main(["--random", "--preset", "tiny", "--dtype", "float16", "--output_dir", str(tmp_path / "tiny")])
    assert folder_size(tmp_path / "tiny") < 40e6
    tiny = EgoTwinPipeline.from_pretrained(tmp_path / "tiny")
    assert (tiny.height, tiny.width) == (64, 64) and tiny.transformer.dtype == torch.float32


@pytest.mark.parametrize("mode", ["t2vm", "tm2v", "tv2m"])
def test_dpm_scheduler_samples_every_mode_with_its_second_order_step(pipe, mode):
    from diffusers import CogVideoXDPMScheduler

    dpm = copy.copy(pipe)
    dpm.scheduler = CogVideoXDPMScheduler.from_config(pipe.scheduler.config)
    calls = []
    original = CogVideoXDPMScheduler.step

    def recording_step(self, model_output, old_pred_original_sample, timestep, timestep_back, sample, **kwargs):
        calls.append((old_pred_original_sample is None, timestep_back))
        return original(self, model_output, old_pred_original_sample, timestep, timestep_back, sample, **kwargs)

    inputs = {
        "t2vm": {},
        "tm2v": {"motion": walking_motion(duration=5.0)},
        "tv2m": {"video": np.stack([start_frame(seed, 32, 32) for seed in range(41)]), "image": None},
    }[mode]
    CogVideoXDPMScheduler.step = recording_step
    try:
        out = dpm(
            PROMPT, num_inference_steps=3, generator=generator(0), mode=mode, **{"image": start_frame(), **inputs}
        )
    finally:
        CogVideoXDPMScheduler.step = original
    assert_contract(dpm, out)
    modalities = 2 if mode == "t2vm" else 1
    assert len(calls) == 3 * modalities
    # each modality's first step has no previous estimate and no previous timestep; the later ones have both
    assert sorted(calls, key=lambda c: not c[0])[:modalities] == [(True, None)] * modalities
    assert all(not first and back is not None for first, back in sorted(calls, key=lambda c: not c[0])[modalities:])
    ddim = pipe(PROMPT, num_inference_steps=3, generator=generator(0), mode=mode, **{"image": start_frame(), **inputs})
    if mode == "tv2m":
        assert not torch.allclose(out.motion.trans, ddim.motion.trans)
    else:
        assert not np.array_equal(out.frames, ddim.frames)


def test_a_list_of_prompts_makes_a_batch_equal_to_single_calls(pipe):
    prompts = [PROMPT, "turn to the left"]
    images = [start_frame(0), start_frame(3)]
    batch = pipe(prompts, image=images, num_inference_steps=STEPS, generator=[generator(1), generator(2)])
    assert [out.prompt for out in batch] == prompts
    for prompt, image, seed, out in zip(prompts, images, (1, 2), batch):
        single = pipe(prompt, image=image, num_inference_steps=STEPS, generator=generator(seed))
        np.testing.assert_array_equal(out.frames, single.frames)
        torch.testing.assert_close(out.motion.trans, single.motion.trans, atol=0, rtol=0)
    with pytest.raises(ValueError, match="image is a list of 1 for 2 prompts"):
        pipe(prompts, image=images[:1], num_inference_steps=STEPS)
    with pytest.raises(ValueError, match="empty list"):
        pipe([], image=images[0])


def test_attention_kwargs_are_refused_not_ignored(pipe):
    with pytest.raises(ValueError, match="takes no attention_kwargs"):
        run(pipe, attention_kwargs={"scale": 0.5})
    assert_contract(pipe, run(pipe, attention_kwargs={}))

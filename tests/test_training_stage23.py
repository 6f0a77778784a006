"""Training stages 2 (text-to-motion) and 3 (joint): configs and launcher files parse, the right weights train and the
frozen ones stay put, text dropout hits ~10%, the ablation switches reach the model, losses fall when over-fitting,
exact resumption (also after a real SIGKILL of the CLI), and two data-parallel processes keep identical weights while
training on different clips."""

import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from accelerate.state import AcceleratorState
from accelerate.utils import set_seed
from safetensors.torch import load_file, save_file

from egotwin.config import load_config, parse_config
from egotwin.data.latents import cache_latents, clip_motion
from egotwin.models.motion_vae import MotionVAE
from egotwin.models.presets import build_transformer
from egotwin.models.text_encoder import TextEncoder
from egotwin.models.transformer import EgoTwinTransformer3DModel
from egotwin.models.video_vae import small_video_vae
from egotwin.motion.normalization import FeatureStats
from egotwin.motion.representation import get_representation
from training.common import read_log, step_generator
from training.latent_training import (
    RUN_FILE,
    apply_text_dropout,
    build_stage_transformer,
    open_caches,
    parameters_sha256,
    validation_loss,
)
from training.stage2_t2m import Stage2Config, text_motion_parameters
from training.stage2_t2m import train as train_stage2
from training.stage3_joint import Stage3Config
from training.stage3_joint import train as train_stage3
from training.synthetic_clips import SyntheticClips

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "training" / "configs"
FAST = dict(batch_size=4, warmup_steps=1, log_every=1, checkpoint_every=100, val_split="", resume="", ema_decay=0.0)


def small_vaes(seed: int = 0):
    """A tiny random video VAE (16x16 frames -> 2x2 latents) and motion VAE (8 latent channels)."""
    torch.manual_seed(seed)
    video_vae = small_video_vae(
        block_out_channels=(8, 8, 8, 8), norm_num_groups=4, sample_height=32, sample_width=32
    ).eval()
    return video_vae, MotionVAE(latent_channels=8, block_out_channels=(32, 32), layers_per_block=1).eval()


def cache_clips(folder: Path, count: int, seed: int, video_vae, motion_vae, text_encoder) -> None:
    """A latent cache of `count` synthetic 16x16 clips of `seed`."""
    representation = get_representation("head_centric")
    data = SyntheticClips(count, size=16, num_video_frames=9, seed=seed)
    stats = FeatureStats.accumulate(
        [representation.encode(clip_motion(data[i])) for i in range(count)], representation=representation.name
    )
    cache_latents(data, folder, video_vae, motion_vae, text_encoder, representation, stats, batch_size=4, shard_size=8)


@pytest.fixture(scope="module")
def latents(tmp_path_factory) -> Path:
    """Latent caches `train` (12 clips) and `val` (4 clips) of synthetic clips, made with tiny random VAEs and MiniLM,
    and motion-only caches of the same clips in `motion_only/`."""
    root = tmp_path_factory.mktemp("latents")
    text_encoder = TextEncoder.from_minilm()
    video_vae, motion_vae = small_vaes()
    for split, count, seed in (("train", 12, 0), ("val", 4, 1)):
        cache_clips(root / split, count, seed, video_vae, motion_vae, text_encoder)
        cache_clips(root / "motion_only" / split, count, seed, None, motion_vae, text_encoder)
    return root


def initial_model(config) -> EgoTwinTransformer3DModel:
    """The weights a fresh run of `config` starts from (its seed, then the transformer, as `train` does)."""
    set_seed(config.seed)
    return build_stage_transformer(config, open_caches(config), with_video=isinstance(config, Stage3Config))


def changed(a: torch.nn.Module, b: torch.nn.Module) -> dict[str, bool]:
    sb = dict(b.named_parameters())
    return {name: not torch.equal(param, sb[name]) for name, param in a.named_parameters()}


def without_time(record: dict) -> dict:
    return {key: value for key, value in record.items() if key != "time_s"}


def assert_same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    assert not any(changed(a, b).values())


# ------------------------------------------------------------------------------------------ configs, launchers
def test_config_files_and_ablation_switches():
    stage2, stage3 = (
        load_config(Stage2Config, CONFIGS / "stage2_t2m.json"),
        load_config(Stage3Config, CONFIGS / "stage3_joint.json"),
    )
    assert stage2.train_text_branch and stage2.preset == "tiny" and stage2.text_dropout == 0.1 and stage2.ema_decay > 0
    assert stage3.init_from == "runs/stage2_t2m/transformer" and (stage3.adam_beta1, stage3.adam_beta2) == (0.9, 0.95)
    assert not stage3.shared_timestep and not stage3.full_attention and stage3.representation == "head_centric"
    ablations = {
        "wo_mr": {"representation": "root_centric"},
        "wo_im": {"full_attention": True},
        "wo_ad": {"shared_timestep": True},
    }
    for name, switch in ablations.items():
        ablation = load_config(Stage3Config, CONFIGS / f"stage3_joint_{name}.json")
        differing = {key for key in vars(stage3) if getattr(ablation, key) != getattr(stage3, key)}
        assert {key: getattr(ablation, key) for key in switch} == switch
        assert differing - {"output_dir", "latents", "init_from"} == set(switch), name
    f4 = load_config(Stage3Config, CONFIGS / "stage3_joint_f4.json")  # the same stage 2 in the 4x VAE's layout
    assert (f4.init_from, f4.patch_size, f4.latents) == (stage3.init_from, 2, "cache/egoworld_f4")
    f4_gpu = load_config(Stage3Config, CONFIGS / "stage3_joint_f4_gpu.json")  # the same run, 4x the batch
    differing = {key for key in vars(f4) if getattr(f4_gpu, key) != getattr(f4, key)}
    assert differing == {"output_dir", "batch_size", "max_steps", "num_workers", "val_every", "keep_checkpoints"}
    assert f4.mixed_precision == "bf16"  # 1.4x faster on this CPU (avx512_bf16), same losses
    assert (f4_gpu.batch_size, f4_gpu.max_steps) == (64, 11000)
    # the measured f4 model's second part: the same CPU run from the 4x4 GPU model's body, shorter, decaying earlier
    f4_from_4x4 = load_config(Stage3Config, CONFIGS / "stage3_joint_f4_from_4x4.json")
    differing = {key for key in vars(f4) if getattr(f4_from_4x4, key) != getattr(f4, key)}
    assert differing == {"output_dir", "init_from", "max_steps", "decay_steps"}
    assert (f4_from_4x4.init_from, f4_from_4x4.max_steps, f4_from_4x4.decay_steps) == (
        "runs/stage3_joint_f4_gpu/transformer",
        6500,
        2500,
    )
    # the shipped transformer fine-tuned on EgoWorld with slower whole-body turns (45 instead of 120 deg/s)
    continued = load_config(Stage3Config, CONFIGS / "stage3_joint_continued.json")
    turn45 = load_config(Stage3Config, CONFIGS / "stage3_joint_turn45.json")
    differing = {key for key in vars(continued) if getattr(turn45, key) != getattr(continued, key)}
    assert differing == {"output_dir", "latents", "init_from", "max_steps", "decay_steps"}
    assert (turn45.init_from, turn45.latents, turn45.max_steps, turn45.decay_steps) == (
        "runs/stage3_joint_long/transformer",
        "cache/egoworld_turn45",
        6000,
        2000,
    )
    # then continued from its own export: warmup again, the last 2000 of 5000 steps decaying
    turn45_more = load_config(Stage3Config, CONFIGS / "stage3_joint_turn45_continued.json")
    differing = {key for key in vars(turn45) if getattr(turn45_more, key) != getattr(turn45, key)}
    assert differing == {"output_dir", "init_from", "max_steps"}
    assert (turn45_more.init_from, turn45_more.max_steps) == ("runs/stage3_joint_turn45/transformer", 5000)
    turn45_again = load_config(Stage3Config, CONFIGS / "stage3_joint_turn45_continued2.json")
    differing = {key for key in vars(turn45_more) if getattr(turn45_again, key) != getattr(turn45_more, key)}
    assert differing == {"output_dir", "init_from"}
    assert turn45_again.init_from == "runs/stage3_joint_turn45_continued/transformer"
    big = load_config(Stage3Config, CONFIGS / "stage3_joint_5b.json")
    assert (big.preset, big.learning_rate, big.gradient_checkpointing, big.mixed_precision) == (
        "cogvideox-5b",
        1e-5,
        True,
        "bf16",
    )
    assert load_config(Stage2Config, CONFIGS / "stage2_t2m_5b.json").train_text_branch is False
    assert load_config(Stage2Config, CONFIGS / "stage2_t2m_wo_mr.json").representation == "root_centric"
    parsed = parse_config(
        Stage3Config, ["--config", str(CONFIGS / "stage3_joint.json"), "--full_attention", "true", "--max_steps", "3"]
    )
    assert parsed.full_attention and parsed.max_steps == 3 and parsed.batch_size == stage3.batch_size


def test_accelerate_launcher_files_parse():
    from accelerate.commands.config.config_args import load_config_from_file
    from accelerate.utils import DistributedType

    ddp = load_config_from_file(str(REPO / "training" / "accelerate" / "ddp.yaml"))
    assert (ddp.distributed_type, ddp.mixed_precision, ddp.use_cpu) == (DistributedType.MULTI_GPU, "bf16", False)
    zero2 = load_config_from_file(str(REPO / "training" / "accelerate" / "zero2.yaml"))
    assert (zero2.distributed_type, zero2.mixed_precision) == (DistributedType.DEEPSPEED, "bf16")
    assert zero2.deepspeed_config["zero_stage"] == 2 and zero2.deepspeed_config["gradient_clipping"] == 1.0
    assert (
        zero2.deepspeed_config["offload_optimizer_device"] == zero2.deepspeed_config["offload_param_device"] == "none"
    )
    fsdp = load_config_from_file(str(REPO / "training" / "accelerate" / "fsdp.yaml"))
    assert (fsdp.distributed_type, fsdp.mixed_precision, fsdp.fsdp_config["fsdp_version"]) == (
        DistributedType.FSDP,
        "bf16",
        2,
    )
    wrapped = set(fsdp.fsdp_config["fsdp_transformer_layer_cls_to_wrap"].split(","))
    assert wrapped == {type(block).__name__ for block in build_transformer("tiny").transformer_blocks}


def test_cache_must_match_the_expected_representation(latents, tmp_path):
    with pytest.raises(ValueError, match="'root_centric' motion representation.*'head_centric'"):
        open_caches(Stage3Config(output_dir=str(tmp_path), latents=str(latents), representation="root_centric"))
    with pytest.raises(FileNotFoundError, match="not a latent cache"):
        open_caches(Stage3Config(output_dir=str(tmp_path), latents=str(tmp_path)))


# ---------------------------------------------------------------------------------------- what trains in stage 2
def test_stage2_trains_the_motion_branch_and_leaves_the_text_branch_frozen(latents, tmp_path):
    config = Stage2Config(
        output_dir=str(tmp_path / "frozen"), latents=str(latents), max_steps=2, learning_rate=1e-3, **FAST
    )
    start, trained = initial_model(config), train_stage2(config)
    moved = changed(start, trained)
    assert all(moved[name] == EgoTwinTransformer3DModel.is_motion_parameter(name) for name in moved)
    assert [r["step"] for r in read_log(tmp_path / "frozen")] == [1, 2]
    assert "video_loss" not in read_log(tmp_path / "frozen")[0]  # no video tokens in stage 2


def test_stage2_trains_the_same_on_a_motion_only_cache_and_stage3_refuses_it(latents, tmp_path):
    config = dict(max_steps=3, learning_rate=1e-3, **{**FAST, "val_split": "val"})
    full = train_stage2(Stage2Config(output_dir=str(tmp_path / "full"), latents=str(latents), **config))
    motion_only = train_stage2(
        Stage2Config(output_dir=str(tmp_path / "mo"), latents=str(latents / "motion_only"), **config)
    )
    assert_same_weights(full, motion_only)
    assert [without_time(r) for r in read_log(tmp_path / "full")] == [
        without_time(r) for r in read_log(tmp_path / "mo")
    ]
    with pytest.raises(ValueError, match="motion-only latent cache"):
        train_stage3(
            Stage3Config(output_dir=str(tmp_path / "s3"), latents=str(latents / "motion_only"), max_steps=1, **FAST)
        )


def test_stage2_train_text_branch_trains_what_the_text_motion_forward_reaches(latents, tmp_path):
    config = Stage2Config(
        output_dir=str(tmp_path), latents=str(latents), max_steps=2, learning_rate=1e-3, train_text_branch=True, **FAST
    )
    start = initial_model(config)
    reached = {id(p) for p in text_motion_parameters(start)}
    names = {name for name, p in start.named_parameters() if id(p) in reached}
    lower = start.config.motion_num_layers
    assert "patch_embed.text_proj.weight" in names and f"transformer_blocks.{lower - 1}.attn1.to_k.weight" in names
    assert {
        name for name, _ in start.named_parameters() if EgoTwinTransformer3DModel.is_motion_parameter(name)
    } <= names
    assert not any(
        name.startswith(("patch_embed.proj.", "proj_out.", "norm_out.", f"transformer_blocks.{lower}."))
        for name in names
    )
    moved = changed(start, train_stage2(config))
    assert {name for name, is_moved in moved.items() if is_moved} == names


def test_text_dropout_rate_and_replacement():
    embeddings, null = torch.randn(16, 5, 3), torch.randn(5, 3)
    dropped_total = 0
    for step in range(500):
        out, dropped = apply_text_dropout(embeddings, null, 0.1, step_generator(0, step))
        assert torch.equal(out[dropped], null.expand(int(dropped.sum()), 5, 3)) and torch.equal(
            out[~dropped], embeddings[~dropped]
        )
        dropped_total += int(dropped.sum())
    assert abs(dropped_total / (500 * 16) - 0.1) < 0.012
    again, _ = apply_text_dropout(embeddings, null, 0.1, step_generator(0, 7))
    assert torch.equal(again, apply_text_dropout(embeddings, null, 0.1, step_generator(0, 7))[0])


# --------------------------------------------------------------------------------------------- stage 3 switches
def test_stage3_takes_stage2_into_the_caches_video_layout(latents, tmp_path):
    """Stage 2 knows no video, so its transformer keeps the preset's layout (8x8 latents, 2x2 patches); stage 3 on a
    cache of 2x2 latents with 1x1 patches loads every weight except the ones whose shape the patch sets, which start
    fresh, and exports a model in the cache's layout. A patch that does not tile the latents is refused."""
    stage2 = train_stage2(
        Stage2Config(output_dir=str(tmp_path / "s2"), latents=str(latents / "motion_only"), max_steps=1, **FAST)
    )
    assert (stage2.config.sample_height, stage2.config.patch_size) == (8, 2)
    init = str(tmp_path / "s2" / "transformer")
    frozen = dict(FAST, learning_rate=0.0, motion_learning_rate=0.0, warmup_steps=0)
    stage3 = train_stage3(
        Stage3Config(
            output_dir=str(tmp_path / "s3"), latents=str(latents), init_from=init, patch_size=1, max_steps=1, **frozen
        )
    )
    assert (stage3.config.sample_height, stage3.config.sample_width, stage3.config.patch_size) == (2, 2, 1)
    assert stage3.patch_embed.proj.weight.shape[-2:] == (1, 1) and stage3.proj_out.out_features == 16
    before = dict(stage2.named_parameters())
    fresh = {name for name, param in stage3.named_parameters() if param.shape != before[name].shape}
    assert fresh == {"patch_embed.proj.weight", "proj_out.weight", "proj_out.bias"}
    assert not [
        name for name, param in stage3.named_parameters() if name not in fresh and not torch.equal(param, before[name])
    ]
    assert EgoTwinTransformer3DModel.from_pretrained(tmp_path / "s3" / "transformer").config.patch_size == 1
    assert torch.isfinite(torch.tensor(read_log(tmp_path / "s3")[-1]["video_loss"]))  # fresh weights are initialised
    with pytest.raises(ValueError, match="2x2 do not split into 4x4 patches"):
        train_stage3(
            Stage3Config(
                output_dir=str(tmp_path / "bad"),
                latents=str(latents),
                init_from=init,
                patch_size=4,
                max_steps=1,
                **FAST,
            )
        )

    # An init saved in a layout the model now refuses (4x4 patches of 16 channels: 256 values per token, 192 wide) is
    # read as weights, never built: stage 3 takes it into a layout that fits.
    refused = tmp_path / "s2_patch4"
    shutil.copytree(init, refused)
    config = json.loads((refused / "config.json").read_text())
    (refused / "config.json").write_text(
        json.dumps({**config, "patch_size": 4, "sample_height": 16, "sample_width": 16})
    )
    weights = load_file(refused / "diffusion_pytorch_model.safetensors")
    weights["patch_embed.proj.weight"] = torch.randn(192, 16, 4, 4)
    weights["proj_out.weight"], weights["proj_out.bias"] = torch.randn(256, 192), torch.randn(256)
    save_file(weights, refused / "diffusion_pytorch_model.safetensors")
    with pytest.raises(ValueError, match="256 values per token"):
        EgoTwinTransformer3DModel.from_pretrained(refused)
    taken = train_stage3(
        Stage3Config(
            output_dir=str(tmp_path / "s3b"),
            latents=str(latents),
            init_from=str(refused),
            patch_size=1,
            max_steps=1,
            **frozen,
        )
    )
    assert not [
        name for name, param in taken.named_parameters() if name not in fresh and not torch.equal(param, before[name])
    ]


def test_a_bfloat16_init_trains_float32_master_weights_and_exports_float32(latents, tmp_path):
    """A bf16 init (as a bf16 CogVideoX folder loads) trains in float32 masters under bf16 autocast: updates far below
    bf16's resolution still move the weights, and the export is float32."""
    config = Stage3Config(
        output_dir=str(tmp_path / "s3"), latents=str(latents), max_steps=1, **{**FAST, "warmup_steps": 0}
    )
    initial_model(config).to(torch.bfloat16).save_pretrained(tmp_path / "init")
    start = EgoTwinTransformer3DModel.from_pretrained(tmp_path / "init")
    assert start.dtype == torch.bfloat16
    AcceleratorState._reset_state(reset_partial_state=True)  # accelerate's state is per process: bf16 needs a fresh one
    try:
        train_stage3(
            dataclasses.replace(config, init_from=str(tmp_path / "init"), mixed_precision="bf16", learning_rate=1e-6)
        )
    finally:
        AcceleratorState._reset_state(reset_partial_state=True)
    exported = EgoTwinTransformer3DModel.from_pretrained(tmp_path / "s3" / "transformer")
    assert exported.dtype == torch.float32
    weight = exported.transformer_blocks[0].attn1.to_q.weight
    step = (weight - start.transformer_blocks[0].attn1.to_q.weight.float()).abs()
    assert 0 < step.max() < 1.5e-6 and (step > 0).float().mean() > 0.9  # AdamW's ~lr steps, kept
    rounded_away = weight.bfloat16() == start.transformer_blocks[0].attn1.to_q.weight
    assert rounded_away.float().mean() > 0.95  # bf16 weights would have kept almost none of these steps


def test_stage3_refuses_an_init_trained_on_another_motion_vaes_latents(latents, tmp_path):
    """Stage 2 on the fixture's cache, then stage 3 on a cache of a motion VAE of the same shape but other weights: a
    clear error (before, it trained silently on latents that mean something else)."""
    train_stage2(
        Stage2Config(output_dir=str(tmp_path / "s2"), latents=str(latents / "motion_only"), max_steps=1, **FAST)
    )
    video_vae, other_motion_vae = small_vaes(seed=1)
    cache_clips(tmp_path / "other" / "train", 4, 0, video_vae, other_motion_vae, TextEncoder.from_minilm())
    config = Stage3Config(
        output_dir=str(tmp_path / "s3"),
        latents=str(tmp_path / "other"),
        init_from=str(tmp_path / "s2" / "transformer"),
        max_steps=1,
        **FAST,
    )
    with pytest.raises(ValueError, match="trained on latents of another motion VAE .* differ in parameters_sha256"):
        train_stage3(config)
    train_stage3(dataclasses.replace(config, latents=str(latents)))  # its own cache is accepted


def test_stage2_trains_on_a_cache_whose_video_does_not_fit_the_cogvideox_folder(latents, tmp_path):
    """Stage 2 trains no video: a CogVideoX folder of 64x64 frames (8x8 latents) with a cache of 16x16 video (2x2
    latents) and the folder's T5 trains; stage 3 on the same pair is refused, naming the video latent size."""
    from scripts.make_tiny_cogvideox import TinyCogVideoXConfig, make_tiny_cogvideox

    folder = make_tiny_cogvideox(TinyCogVideoXConfig(output_dir=str(tmp_path / "cogvideox")))
    video_vae, motion_vae = small_vaes()
    cache_clips(tmp_path / "t5" / "train", 4, 0, video_vae, motion_vae, TextEncoder.load(str(folder)))
    run = dict(FAST, batch_size=2, latents=str(tmp_path / "t5"), cogvideox_folder=str(folder), max_steps=1)
    model = train_stage2(Stage2Config(output_dir=str(tmp_path / "s2"), **run))
    assert (model.config.sample_height, model.config.text_embed_dim, model.config.max_text_seq_length) == (8, 32, 226)
    with pytest.raises(ValueError, match=r"video latent size: transformer \(8, 8\), cache \(2, 2\)"):
        train_stage3(Stage3Config(output_dir=str(tmp_path / "s3"), **run))


def test_ablation_switches_reach_the_model(latents, tmp_path, monkeypatch):
    """w/o AD gives the model equal video and motion timesteps; w/o IM opens the mask, also when it starts from a
    model saved with the structured mask; by default the timesteps differ and the mask blocks pairs."""
    calls = []
    forward = EgoTwinTransformer3DModel.forward

    def recording_forward(self, *args, **kwargs):
        if torch.is_grad_enabled():
            calls.append((self.config.full_attention, kwargs["timestep"].clone(), kwargs["motion_timestep"].clone()))
        return forward(self, *args, **kwargs)

    monkeypatch.setattr(EgoTwinTransformer3DModel, "forward", recording_forward)
    for name, switches in (
        ("default", {}),
        ("wo_ad", {"shared_timestep": True}),
        ("wo_im", {"full_attention": True, "init_from": str(tmp_path / "default" / "transformer")}),
    ):
        calls.clear()
        model = train_stage3(
            Stage3Config(output_dir=str(tmp_path / name), latents=str(latents), max_steps=2, **FAST, **switches)
        )
        assert len(calls) == 2 and all(full == bool(switches.get("full_attention")) for full, _, _ in calls)
        same_t = [torch.equal(t_v, t_m) for _, t_v, t_m in calls]
        assert all(same_t) if switches.get("shared_timestep") else not any(same_t)
        mask = EgoTwinTransformer3DModel.from_pretrained(tmp_path / name / "transformer").attention_mask(
            4, 3, 1, 5, torch.device("cpu")
        )
        assert (mask is None) if switches.get("full_attention") else not mask.all()
        assert model.config.full_attention == bool(switches.get("full_attention"))


@pytest.mark.slow
def test_losses_fall_when_over_fitting(latents, tmp_path):
    """Validation on the training clips themselves (fixed noise and timesteps) falls well below the initial loss."""
    overfit = dict(
        FAST,
        val_split="train",
        val_every=0,
        val_batches=3,
        text_dropout=0.0,
        sample_posterior=False,
        learning_rate=2e-3,
        max_steps=30,
        checkpoint_every=30,
    )
    for stage, config_cls, train, with_video in (
        ("stage2", Stage2Config, train_stage2, False),
        ("stage3", Stage3Config, train_stage3, True),
    ):
        config = config_cls(output_dir=str(tmp_path / stage), latents=str(latents), **overfit)
        before = validation_loss(initial_model(config), open_caches(config).val, config, with_video, False)["val_loss"]
        train(config)
        records = read_log(tmp_path / stage)
        assert all(torch.isfinite(torch.tensor(r["loss"])) for r in records)
        assert records[-1]["val_loss"] < 0.7 * before, (stage, before, records[-1])


# ------------------------------------------------------------------------------------------------- resumption
@pytest.mark.slow
def test_stage3_resume_continues_the_same_run(latents, tmp_path):
    """EMA, validation and posterior sampling on: a run stopped at step 2 and resumed ends bit-identical to one that ran
    through, and so do its log and its exported (EMA) transformer."""
    run = dict(FAST, ema_decay=0.9, val_split="val", val_every=2, val_batches=1, checkpoint_every=2)
    straight = train_stage3(Stage3Config(output_dir=str(tmp_path / "a"), latents=str(latents), max_steps=4, **run))
    train_stage3(Stage3Config(output_dir=str(tmp_path / "b"), latents=str(latents), max_steps=2, **run))
    resumed = train_stage3(
        Stage3Config(output_dir=str(tmp_path / "b"), latents=str(latents), max_steps=4, **{**run, "resume": "latest"})
    )
    assert_same_weights(straight, resumed)
    assert [without_time(r) for r in read_log(tmp_path / "a")] == [without_time(r) for r in read_log(tmp_path / "b")]
    assert_same_weights(straight, EgoTwinTransformer3DModel.from_pretrained(tmp_path / "b" / "transformer"))
    record = json.loads((tmp_path / "b" / "transformer" / RUN_FILE).read_text())
    assert record["step"] == 4 and record["ema"] and record["latents"]["motion_vae"]["representation"] == "head_centric"
    assert "val_loss" in read_log(tmp_path / "b")[-1]


@pytest.mark.slow
def test_stage2_survives_sigkill(latents, tmp_path):
    """A real kill: the CLI is killed after its step-6 checkpoint (leaving a loadable transformer), restarted, and ends
    where a straight run ends."""
    args = [
        "--latents",
        str(latents),
        "--batch_size",
        "4",
        "--checkpoint_every",
        "3",
        "--log_every",
        "3",
        "--val_split",
        "",
        "--warmup_steps",
        "1",
        "--ema_decay",
        "0.9",
        "--train_text_branch",
        "true",
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO)}  # the thread count of this process: bit-identical float sums
    run = tmp_path / "run"
    process = subprocess.Popen(
        [sys.executable, "-m", "training.stage2_t2m", "--output_dir", str(run), "--max_steps", "100000", *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
    )
    deadline = time.time() + 600
    while not (run / "checkpoints" / "step_0000006" / "trainer_state.json").is_file():
        assert process.poll() is None and time.time() < deadline, "training did not reach step 6"
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert EgoTwinTransformer3DModel.from_pretrained(run / "transformer").config.motion_in_channels == 8
    latest = max(int(p.name[5:]) for p in (run / "checkpoints").glob("step_*") if (p / "trainer_state.json").is_file())
    target = latest + 3
    subprocess.run(
        [sys.executable, "-m", "training.stage2_t2m", "--output_dir", str(run), "--max_steps", str(target), *args],
        cwd=REPO,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    straight = train_stage2(
        parse_config(Stage2Config, ["--output_dir", str(tmp_path / "straight"), "--max_steps", str(target), *args])
    )
    assert_same_weights(straight, EgoTwinTransformer3DModel.from_pretrained(run / "transformer"))


# ------------------------------------------------------------------------------------------------ data parallel
@pytest.mark.slow
def test_two_processes_keep_identical_weights_on_different_data(latents, tmp_path):
    """`accelerate launch --config_file training/accelerate/ddp.yaml` with two CPU processes (torchrun + gloo:
    accelerate's own `--cpu` launcher starts one process unless MPI is set up): after 3 steps both replicas hold the
    same weights, which equal the exported model, and between them they trained on every clip of the epoch exactly
    once."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "ACCELERATE_USE_CPU": "true"}
    run = tmp_path / "ddp"
    subprocess.run(
        [
            "accelerate",
            "launch",
            "--config_file",
            str(REPO / "training" / "accelerate" / "ddp.yaml"),
            "--num_processes",
            "2",
            "--mixed_precision",
            "no",
            "--main_process_port",
            str(29500 + os.getpid() % 1000),
            "-m",
            "training.stage3_joint",
            "--config",
            str(CONFIGS / "stage3_joint.json"),
            "--init_from",
            "",
            "--latents",
            str(latents),
            "--output_dir",
            str(run),
            "--max_steps",
            "3",
            "--batch_size",
            "2",
            "--ema_decay",
            "0",
            "--val_split",
            "",
            "--checkpoint_every",
            "3",
            "--log_every",
            "1",
        ],
        cwd=REPO,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    reports = [json.loads((run / "replicas" / f"rank_{rank:02d}.json").read_text()) for rank in (0, 1)]
    assert [r["step"] for r in reports] == [3, 3]
    assert reports[0]["parameters_sha256"] == reports[1]["parameters_sha256"]
    assert reports[0]["parameters_sha256"] == parameters_sha256(
        EgoTwinTransformer3DModel.from_pretrained(run / "transformer")
    )
    seen = [set(r["clip_ids"]) for r in reports]
    assert len(reports[0]["clip_ids"]) == 6 and not seen[0] & seen[1] and len(seen[0] | seen[1]) == 12
    assert len(read_log(run)) == 3


@pytest.mark.slow
def test_fsdp_on_two_processes_trains_what_one_process_trains(latents, tmp_path):
    """`training/accelerate/fsdp.yaml` on two CPU processes (gloo; `tests/fsdp_cpu_launch.py` puts accelerate in its
    FSDP2 mode, which it enters only on accelerator devices): the transformer is sharded (each process holds about half
    the values), clipping (at a norm that clips), EMA, validation by both processes, a sharded checkpoint resumed after
    step 2, and the gathered export. Its exported EMA weights and its logged losses (training and validation) equal a
    one-process run's with the same global batch to float tolerance."""
    flags = [
        "--config",
        str(CONFIGS / "stage3_joint.json"),
        "--init_from",
        "",
        "--latents",
        str(latents),
        "--ema_decay",
        "0.9",
        "--val_split",
        "val",
        "--val_every",
        "2",
        "--checkpoint_every",
        "2",
        "--log_every",
        "1",
        "--warmup_steps",
        "1",
        "--decay_steps",
        "0",
        "--learning_rate",
        "1e-3",
        "--max_grad_norm",
        "0.05",
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "ACCELERATE_USE_CPU": "true"}
    sharded = tmp_path / "fsdp"
    for max_steps in (2, 4):  # stopped after step 2, then resumed from its checkpoint
        subprocess.run(
            [
                "accelerate",
                "launch",
                "--config_file",
                str(REPO / "training" / "accelerate" / "fsdp.yaml"),
                "--num_processes",
                "2",
                "--mixed_precision",
                "no",
                "--main_process_port",
                str(29500 + os.getpid() % 1000),
                str(REPO / "tests" / "fsdp_cpu_launch.py"),
                "training.stage3_joint",
                *flags,
                "--output_dir",
                str(sharded),
                "--batch_size",
                "2",
                "--val_batches",
                "2",
                "--max_steps",
                str(max_steps),
            ],
            cwd=REPO,
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )
    one_process = ["--output_dir", str(tmp_path / "one"), "--batch_size", "4", "--val_batches", "1", "--max_steps", "4"]
    train_stage3(parse_config(Stage3Config, [*flags, *one_process]))  # the same 4 val clips in one batch

    one = EgoTwinTransformer3DModel.from_pretrained(tmp_path / "one" / "transformer")
    both = EgoTwinTransformer3DModel.from_pretrained(sharded / "transformer")
    start = initial_model(parse_config(Stage3Config, flags))
    moved = max((a - b).abs().max().item() for a, b in zip(one.parameters(), start.parameters()))
    assert moved > 1e-3  # the weights did train
    for (name, a), b in zip(one.named_parameters(), both.parameters()):
        torch.testing.assert_close(b, a, rtol=0, atol=1e-5 * moved / 1e-3, msg=name)
    reports = [json.loads((sharded / "replicas" / f"rank_{rank:02d}.json").read_text()) for rank in (0, 1)]
    total = sum(param.numel() for param in one.parameters())
    assert reports[0]["parameters_sha256"] == reports[1]["parameters_sha256"]
    assert reports[0]["parameters_held"] + reports[1]["parameters_held"] == total
    assert all(report["parameters_held"] < 0.6 * total for report in reports)
    logs = read_log(tmp_path / "one"), read_log(sharded)
    assert [r["step"] for r in logs[1] if "val_loss" in r] == [2, 4]
    for single, split in zip(logs[0], logs[1], strict=True):  # training losses: the global batch's, as logged by both
        for key in (
            "loss",
            "video_loss",
            "motion_loss",
            "text_dropped",
            "val_loss",
            "val_video_loss",
            "val_motion_loss",
        ):
            assert (key in single) == (key in split) and abs(single.get(key, 0) - split.get(key, 0)) < 1e-5, key


@pytest.mark.slow
def test_deepspeed_zero2_exports_its_float32_masters(latents, tmp_path):
    """`training/accelerate/zero2.yaml` (bf16) in one CPU process, where DeepSpeed is installed (an optional extra; on
    CPU accelerate sets up DeepSpeed for one process only, so the partitioning itself is left to GPUs): DeepSpeed casts
    the model to bf16 and adds no autocast while the cache is float32 (the first forward crashed before), its
    checkpoint resumes, and the export is its float32 masters: what DeepSpeed's own `zero_to_fp32` consolidates from the
    last checkpoint, not the bf16 working copy."""
    pytest.importorskip("deepspeed")
    from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint

    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    run = tmp_path / "zero2"
    for max_steps in (2, 4):
        subprocess.run(
            [
                "accelerate",
                "launch",
                "--config_file",
                str(REPO / "training" / "accelerate" / "zero2.yaml"),
                "--num_processes",
                "1",
                "--main_process_port",
                str(29500 + os.getpid() % 1000),
                "-m",
                "training.stage3_joint",
                "--config",
                str(CONFIGS / "stage3_joint.json"),
                "--init_from",
                "",
                "--latents",
                str(latents),
                "--output_dir",
                str(run),
                "--max_steps",
                str(max_steps),
                "--batch_size",
                "4",
                "--ema_decay",
                "0",
                "--val_split",
                "val",
                "--val_every",
                "2",
                "--val_batches",
                "1",
                "--checkpoint_every",
                "2",
                "--log_every",
                "1",
                "--warmup_steps",
                "1",
                "--decay_steps",
                "0",
                "--learning_rate",
                "1e-3",
            ],
            cwd=REPO,
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )
    assert [r["step"] for r in read_log(run)] == [1, 2, 3, 4] and "val_loss" in read_log(run)[-1]
    exported = load_file(run / "transformer" / "diffusion_pytorch_model.safetensors")
    masters = get_fp32_state_dict_from_zero_checkpoint(str(run / "checkpoints" / "step_0000004"))
    assert {tensor.dtype for tensor in exported.values()} == {torch.float32} and set(exported) == set(masters)
    assert all(torch.equal(exported[name], masters[name].float()) for name in masters)
    weight = exported["transformer_blocks.0.attn1.to_q.weight"]
    assert (weight.bfloat16().float() != weight).float().mean() > 0.9  # not the bf16 working copy

"""Training stages 0 and 1: typed configs, the resumable batch order, exact resumption after an interruption (also a
real SIGKILL), and that the losses fall."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from egotwin.config import load_config, parse_config
from training.common import EpochBatchSampler, learning_rate_factor, make_optimizer, read_log
from training.stage0_video_vae import Stage0Config, spatial_crop, temporal_crop
from training.stage0_video_vae import train as train_stage0
from training.stage1_motion_vae import Stage1Config
from training.stage1_motion_vae import train as train_stage1
from training.synthetic_clips import SyntheticClips

REPO = Path(__file__).resolve().parents[1]
TINY_STAGE1 = dict(
    block_out_channels=(32, 32),
    layers_per_block=1,
    latent_channels=8,
    batch_size=4,
    warmup_steps=2,
    log_every=1,
    val_split="",
)
TINY_STAGE0 = dict(
    block_out_channels=(8, 8, 8, 8),
    norm_num_groups=4,
    layers_per_block=1,
    batch_size=2,
    warmup_steps=2,
    train_size=8,
    log_every=1,
    scaling_batches=2,
    val_split="",
)


def assert_same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key


def test_config_from_file_and_command_line(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"max_steps": 7, "block_out_channels": [64, 128], "kl_weight": 1e-3}))
    config = load_config(Stage1Config, path, {"max_steps": "9"})
    assert (config.max_steps, config.block_out_channels, config.kl_weight) == (9, (64, 128), 1e-3)
    config = parse_config(Stage1Config, ["--config", str(path), "--block_out_channels", "16,16", "--resume", ""])
    assert config.block_out_channels == (16, 16) and config.resume == "" and config.max_steps == 7
    with pytest.raises(ValueError, match="no fields \\['max_step'\\]"):
        load_config(Stage1Config, None, {"max_step": 3})
    for stage, name in ((Stage0Config, "stage0_video_vae.json"), (Stage1Config, "stage1_motion_vae.json")):
        assert load_config(stage, REPO / "training" / "configs" / name).max_steps > 0
    # the 4x-spatial VAE: three blocks, then the whole-clip phase from its export on 17-frame windows, encoder too
    f4, clips = (
        load_config(Stage0Config, REPO / "training" / "configs" / f"stage0_video_vae_{n}.json")
        for n in ("f4", "f4_clips")
    )
    assert f4.block_out_channels == (16, 32, 64) and f4.train_frames == 9
    assert clips.init_from == f4.output_dir + "/video_vae" and clips.train_frames == 17 and not clips.train_decoder_only


def test_learning_rate_warms_up_holds_and_decays_to_zero():
    config = Stage1Config(warmup_steps=4, max_steps=20, decay_steps=10)
    factors = [learning_rate_factor(config, step) for step in range(21)]
    assert factors[:4] == [0.25, 0.5, 0.75, 1.0] and factors[4:11] == [1.0] * 7
    assert factors[11:] == pytest.approx([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.0])
    assert learning_rate_factor(Stage1Config(warmup_steps=4, max_steps=20), 19) == 1.0  # no decay by default
    # the optimiser sees it
    optimizer, scheduler = make_optimizer(
        torch.nn.Linear(2, 2), Stage1Config(learning_rate=0.1, warmup_steps=1, max_steps=4, decay_steps=2)
    )
    rates = []
    for _ in range(4):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert rates == pytest.approx([0.1, 0.1, 0.1, 0.05])


def test_batch_order_is_a_function_of_seed_and_position():
    stream = iter(EpochBatchSampler(10, 3, seed=5))
    batches = [next(stream) for _ in range(9)]  # three epochs of three full batches
    for epoch in range(3):
        seen = sum(batches[3 * epoch : 3 * epoch + 3], [])
        assert len(set(seen)) == 9 and set(seen) <= set(range(10))
    assert batches[:3] != batches[3:6]
    resumed = iter(EpochBatchSampler(10, 3, seed=5, start_batch=4))
    assert [next(resumed) for _ in range(5)] == batches[4:]
    halves = [iter(EpochBatchSampler(10, 2, seed=5, rank=r, world_size=2)) for r in range(2)]
    assert sorted(next(halves[0]) + next(halves[1])) == sorted(next(iter(EpochBatchSampler(10, 4, seed=5))))
    with pytest.raises(ValueError, match="at least"):
        EpochBatchSampler(3, 4)


def test_stage1_resume_continues_the_same_run(tmp_path):
    data = SyntheticClips(12, size=8, num_video_frames=9)
    straight = train_stage1(
        Stage1Config(output_dir=str(tmp_path / "a"), max_steps=8, checkpoint_every=4, **TINY_STAGE1), data
    )
    part = Stage1Config(output_dir=str(tmp_path / "b"), max_steps=4, checkpoint_every=4, **TINY_STAGE1)
    train_stage1(part, data)
    resumed = train_stage1(
        Stage1Config(output_dir=str(tmp_path / "b"), max_steps=8, checkpoint_every=4, **TINY_STAGE1), data
    )
    assert_same_weights(straight, resumed)
    assert [r["loss"] for r in read_log(tmp_path / "a")] == [r["loss"] for r in read_log(tmp_path / "b")]
    assert (tmp_path / "b" / "checkpoints" / "step_0000008" / "config.json").is_file()
    assert (tmp_path / "b" / "motion_vae" / "feature_stats.safetensors").is_file()


def test_stage0_crops_are_windows_of_the_batch():
    video = torch.arange(2 * 3 * 9 * 16 * 24, dtype=torch.float32).reshape(2, 3, 9, 16, 24)
    generator = torch.Generator().manual_seed(0)
    window = temporal_crop(video, 5, generator)
    crop = spatial_crop(window, 8, generator)
    assert window.shape == (2, 3, 5, 16, 24) and crop.shape == (2, 3, 5, 8, 8)
    # one window for the whole batch: find it in the source by its first pixel
    t, y, x = [int(i[0]) for i in torch.nonzero(video[0, 0] == crop[0, 0, 0, 0, 0])[0:1].T]
    assert torch.equal(crop, video[:, :, t : t + 5, y : y + 8, x : x + 8])
    assert spatial_crop(video, 0, generator) is video and spatial_crop(video, 32, generator) is video
    assert spatial_crop(video, 16, generator).shape[-2:] == (16, 16)
    with pytest.raises(ValueError, match="multiple of 8"):
        spatial_crop(video, 12, generator)
    with pytest.raises(ValueError, match="4k\\+1"):
        temporal_crop(video, 4, generator)


@pytest.mark.slow
def test_stage0_resume_continues_the_same_run(tmp_path):
    data = SyntheticClips(6, size=16, num_video_frames=9)
    straight = train_stage0(
        Stage0Config(output_dir=str(tmp_path / "a"), max_steps=4, checkpoint_every=2, **TINY_STAGE0), data
    )
    train_stage0(Stage0Config(output_dir=str(tmp_path / "b"), max_steps=2, checkpoint_every=2, **TINY_STAGE0), data)
    resumed = train_stage0(
        Stage0Config(output_dir=str(tmp_path / "b"), max_steps=4, checkpoint_every=2, **TINY_STAGE0), data
    )
    assert_same_weights(straight, resumed)
    assert resumed.config.scaling_factor == straight.config.scaling_factor != 1.15258426
    assert (tmp_path / "b" / "video_vae" / "config.json").is_file()


def test_stage0_decoder_fine_tuning_keeps_the_latent_space(tmp_path):
    """`train_decoder_only`: the encoder and the scaling factor are the init's, bit for bit (so latents cached with the
    init stay valid), the decoder moves, and the reconstruction of the training clips gets better."""
    data = SyntheticClips(4, size=16, num_video_frames=9)
    # an untrained VAE (one step at a vanishing rate), so that the decoder has much to learn in a few steps
    base = train_stage0(
        Stage0Config(output_dir=str(tmp_path / "base"), max_steps=1, learning_rate=1e-9, **TINY_STAGE0), data
    )
    with pytest.raises(ValueError, match="needs init_from"):
        train_stage0(
            Stage0Config(output_dir=str(tmp_path / "x"), max_steps=1, train_decoder_only=True, **TINY_STAGE0), data
        )
    tuned = train_stage0(
        Stage0Config(
            output_dir=str(tmp_path / "dec"),
            max_steps=40,
            learning_rate=3e-3,
            train_decoder_only=True,
            init_from=str(tmp_path / "base" / "video_vae"),
            **{**TINY_STAGE0, "train_size": 0},
        ),
        data,
    )
    assert tuned.config.scaling_factor == base.config.scaling_factor
    for name, value in base.state_dict().items():
        same = torch.equal(value, tuned.state_dict()[name])
        assert same == (not name.startswith(("decoder.", "post_quant_conv."))), name
    video = torch.stack([data[i]["video"] for i in range(len(data))])
    with torch.no_grad():
        errors = [F.mse_loss(m.decode(m.encode(video).latent_dist.mode()).sample, video).item() for m in (base, tuned)]
    assert errors[1] < 0.9 * errors[0], errors


@pytest.mark.slow
def test_stage1_loss_falls_and_held_out_metrics_are_reported(tmp_path):
    data, val = SyntheticClips(16, size=8, num_video_frames=9), SyntheticClips(4, size=8, num_video_frames=9, seed=1)
    config = Stage1Config(
        output_dir=str(tmp_path),
        max_steps=60,
        checkpoint_every=60,
        learning_rate=3e-3,
        **{**TINY_STAGE1, "val_split": "val"},
    )
    train_stage1(config, data, val)
    recon = [record["recon"] for record in read_log(tmp_path)]
    assert len(recon) == 60 and sum(recon[-5:]) / 5 < 0.8 * recon[0]
    metrics = json.loads((tmp_path / "eval.json").read_text())
    assert set(metrics) >= {"mpjpe_mm", "head_position_mm", "head_rotation_deg"}
    assert 0 < metrics["mpjpe_mm"] < 2000 and 0 < metrics["head_rotation_deg"] < 180


@pytest.mark.slow
def test_stage1_survives_sigkill(tmp_path):
    """A real kill: the CLI is killed after its step-10 checkpoint, restarted, and ends where a straight run ends."""
    args = [
        "--data_root",
        "synthetic:12",
        "--block_out_channels",
        "32,32",
        "--layers_per_block",
        "1",
        "--latent_channels",
        "8",
        "--batch_size",
        "4",
        "--checkpoint_every",
        "5",
        "--log_every",
        "5",
        "--val_split",
        "",
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    run = tmp_path / "run"
    process = subprocess.Popen(
        [sys.executable, "-m", "training.stage1_motion_vae", "--output_dir", str(run), "--max_steps", "100000", *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
    )

    def saved_steps() -> list[int]:
        return [int(p.name[5:]) for p in (run / "checkpoints").glob("step_*") if (p / "trainer_state.json").is_file()]

    # Wait for any checkpoint at step >= 10, not for step 10's: only the 3 newest are kept, and on a fast machine
    # step 10's is deleted again within a fraction of a second.
    deadline = time.time() + 120
    try:
        while max(saved_steps(), default=0) < 10:
            assert process.poll() is None and time.time() < deadline, "training did not reach step 10"
            time.sleep(0.2)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    latest = max(saved_steps())
    target = latest + 5
    subprocess.run(
        [
            sys.executable,
            "-m",
            "training.stage1_motion_vae",
            "--output_dir",
            str(run),
            "--max_steps",
            str(target),
            *args,
        ],
        cwd=REPO,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )

    from egotwin.models.motion_vae import MotionVAE

    config = parse_config(Stage1Config, ["--output_dir", str(tmp_path / "straight"), "--max_steps", str(target), *args])
    from training.common import build_clip_dataset

    straight = train_stage1(config, build_clip_dataset("synthetic:12", "train"))
    assert_same_weights(straight, MotionVAE.from_pretrained(run / "motion_vae"))

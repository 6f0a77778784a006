"""The evaluation suite on real EgoWorld clips (generated here, ~1-3 s each): the visual-odometry regression against
the exact cameras, the joint-projection hand rule against the renderer's labels, evaluator training / save / load,
and `python -m egotwin.eval` in ground-truth and checkpoint modes."""

import json

import cv2
import numpy as np
import pytest
import torch

from egotwin.data.clip_format import read_clip, read_metadata
from egotwin.data.dataset import ClipDataset
from egotwin.eval import clip_consistency, viewpoint_alignment
from egotwin.eval.__main__ import ground_truth_sample, item_frames
from egotwin.eval.__main__ import main as eval_main
from egotwin.eval.consistency import still_camera_alignment
from egotwin.eval.evaluators import HandDetector, TextMotionEvaluator, VideoTextEvaluator, load_evaluators
from egotwin.eval.hands import hands_in_view, motion_hands_in_view
from egotwin.eval.metrics import binary_f1
from egotwin.eval.table import ALIGNMENT_COLUMNS
from egotwin.models.transformer import EgoTwinTransformer3DModel
from egotwin.models.video_vae import load_pretrained_video_vae, small_video_vae
from egotwin.world.generate import generate
from training.build_pipeline import random_pipeline
from training.train_evaluators import EvaluatorConfig, load_split, train

# Validation of the visual odometry on 92 EgoWorld clips (seeds 4242 x 60 and 5151 x 32), summed over 41 frames:
# TransErr median 1.74 m (p90 5.6), RotErr median 3.18 rad (p90 12.3; 4.4 degrees per frame); a motionless estimate
# scores medians 11.0 m / 16.7 rad. These 4 clips score at most 2.4 m / 7.6 rad: the bounds leave room for platform
# differences in OpenCV while staying far below the motionless estimate.
MAX_TRANS_ERR, MAX_ROT_ERR = 4.0, 9.0


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("egoworld")
    generate(root, 4, seed=4242, workers=1, progress=False)
    yield root
    torch.set_num_threads(threads)


def test_visual_odometry_follows_the_exact_cameras(clips):
    results = []
    for record in read_metadata(clips):
        clip = read_clip(clips / record["path"])
        results.append(viewpoint_alignment(clip["frames"], clip["camera_to_world"], clip["intrinsics"]))
        assert results[-1]["estimated_positions"].shape == (41, 3)
    assert max(r["trans_err"] for r in results) < MAX_TRANS_ERR
    assert max(r["rot_err"] for r in results) < MAX_ROT_ERR
    # frames that are not the clip's own: the same estimate scores far worse against another clip's head path
    clip_a, clip_b = (read_clip(clips / r["path"]) for r in read_metadata(clips)[:2])
    wrong = viewpoint_alignment(clip_a["frames"], clip_b["camera_to_world"], clip_a["intrinsics"])
    assert wrong["rot_err"] > 2 * results[0]["rot_err"]


def test_hands_in_view_agree_with_the_renderer_labels(clips):
    predicted, labels = [], []
    for record in read_metadata(clips):
        clip = read_clip(clips / record["path"])
        predicted.append(motion_hands_in_view(clip["motion"], clip["camera_to_world"], clip["intrinsics"], 64, 64))
        labels.append(clip["hand_visible"])
    assert np.concatenate(labels).any()
    assert binary_f1(np.concatenate(predicted), np.concatenate(labels)) > 0.85  # 0.96 over 60 clips


def test_hands_in_view_known_geometry():
    joints = torch.zeros(2, 22, 3, dtype=torch.float64)
    joints[:, 18], joints[:, 20] = (
        torch.tensor([0.0, 0.0, 0.5]),
        torch.tensor([0.0, 0.0, 1.0]),
    )  # left elbow, wrist ahead
    joints[:, 19], joints[:, 21] = torch.tensor([0.0, 0.0, -0.5]), torch.tensor([0.0, 0.0, -1.0])  # right arm behind
    joints[1, 20] = torch.tensor([5.0, 0.0, 1.0])  # frame 1: left wrist far right, outside the 90-degree view
    joints[1, 18] = torch.tensor([4.5, 0.0, 1.0])
    cameras = torch.eye(4, dtype=torch.float64).expand(2, 4, 4)
    intrinsics = torch.tensor([[32.0, 0, 32], [0, 32.0, 32], [0, 0, 1]])
    assert hands_in_view(joints, cameras, intrinsics, 64, 64).tolist() == [[True, False], [False, False]]


@pytest.mark.slow
def test_evaluators_train_save_load_and_score_ground_truth(clips, tmp_path):
    data = load_split(ClipDataset(clips, split=None))
    assert data.frames.shape == (4, 41, 64, 64, 3) and data.features.shape == (4, 81, 282)
    config = EvaluatorConfig(
        output_dir=str(tmp_path / "evaluators"),
        text_motion_steps=3,
        video_text_steps=2,
        hands_steps=2,
        batch_size=4,
        hands_batch_size=16,
        warmup_steps=1,
        log_every=1,
        val_split="",
    )
    train(config, data)
    models = load_evaluators(tmp_path / "evaluators")
    assert isinstance(models["text_motion"], TextMotionEvaluator) and isinstance(
        models["video_text"], VideoTextEvaluator
    )
    assert isinstance(models["hands"], HandDetector)
    # the statistics travel with the text-motion evaluator: embeddings of the same motions agree after reloading
    first = read_clip(clips / read_metadata(clips)[0]["path"])
    embedding = models["text_motion"].embed_motions([first["motion"]])
    assert embedding.shape == (1, 256) and torch.allclose(embedding.norm(dim=-1), torch.ones(1))
    hands = models["hands"].detect(first["frames"])
    assert hands.shape == (41, 2) and hands.dtype == torch.bool
    consistency = clip_consistency(
        first["frames"], first["motion"], first["camera_to_world"], first["intrinsics"], models["hands"]
    )
    assert 0.0 <= consistency["hand_score"] <= 1.0

    out = tmp_path / "gt"
    results = eval_main(
        [
            "--ground_truth",
            "--data_root",
            str(clips),
            "--split",
            "train",
            "--reference_split",
            "train",
            "--evaluators",
            str(tmp_path / "evaluators"),
            "--output_dir",
            str(out),
            "--batch_size",
            "2",
            "--no_alignment",
        ]
    )
    saved = json.loads((out / "results.json").read_text())
    assert saved["summary"] == results["summary"]
    summary = saved["summary"]
    # the set against itself: zero Frechet distances; consistency is the estimators' own error on these clips
    assert summary["I-FID"]["mean"] == pytest.approx(0.0, abs=1e-4) and summary["M-FID"]["mean"] == pytest.approx(
        0.0, abs=1e-4
    )
    expected = np.mean(
        [
            viewpoint_alignment(*(c[k] for k in ("frames", "camera_to_world", "intrinsics")))["trans_err"]
            for c in (read_clip(clips / r["path"]) for r in read_metadata(clips))
        ]
    )
    assert summary["TransErr"]["mean"] == pytest.approx(expected)
    # the motionless-camera reference: each clip's head path against the identity path, and it is worse than the
    # visual odometry on the clips' own frames
    still = [still_camera_alignment(read_clip(clips / r["path"])["camera_to_world"]) for r in read_metadata(clips)]
    assert summary["TransErr (still camera)"]["mean"] == pytest.approx(np.mean([s["trans_err"] for s in still]))
    assert summary["RotErr (still camera)"]["mean"] == pytest.approx(np.mean([s["rot_err"] for s in still]))
    assert summary["RotErr (still camera)"]["mean"] > summary["RotErr"]["mean"]
    assert "R-Prec@1" not in summary  # fewer than 32 clips
    table = (out / "results.md").read_text()
    assert "| I-FID | FVD | CLIP-SIM | M-FID |" in table and "replications: 1" in table and "n/a" in table
    assert f"RotErr {summary['RotErr (still camera)']['mean']:.3f}" in table


def test_ground_truth_through_a_video_vae_scores_its_reconstructions(clips, tmp_path):
    """`--video_vae`: the clips' videos are scored after the VAE's encode-decode round trip (posterior mean)."""
    torch.manual_seed(0)
    vae = small_video_vae(block_out_channels=(8, 8, 8), norm_num_groups=4).eval()
    vae.save_pretrained(tmp_path / "vae")
    results = eval_main(
        [
            "--ground_truth",
            "--video_vae",
            str(tmp_path / "vae"),
            "--data_root",
            str(clips),
            "--split",
            "train",
            "--no_alignment",
            "--output_dir",
            str(tmp_path / "out"),
        ]
    )
    loaded, expected = load_pretrained_video_vae(tmp_path / "vae"), []
    for item in ClipDataset(clips, split="train"):
        with torch.no_grad():
            reconstruction = vae.decode(vae.encode(item["video"][None]).latent_dist.mode()).sample.clamp(-1, 1)[0]
        sample = ground_truth_sample(item, loaded)
        # the reconstruction (to rounding), not the clip's own video
        assert np.abs(sample["frames"].astype(int) - item_frames({"video": reconstruction}).astype(int)).max() <= 1
        assert np.abs(sample["frames"].astype(int) - item_frames(item).astype(int)).mean() > 10
        expected.append(
            viewpoint_alignment(sample["frames"], sample["camera_to_world"], sample["intrinsics"])["rot_err"]
        )
    assert results["summary"]["RotErr"]["mean"] == pytest.approx(np.mean(expected))
    assert "through the video VAE" in results["name"] and results["settings"]["video_vae"] == str(tmp_path / "vae")
    with pytest.raises(SystemExit):  # a checkpoint decodes with its own VAE
        eval_main(
            [
                "--checkpoint",
                str(tmp_path),
                "--video_vae",
                str(tmp_path / "vae"),
                "--data_root",
                str(clips),
                "--output_dir",
                str(tmp_path / "x"),
            ]
        )


@pytest.mark.slow
def test_cli_scores_a_checkpoint(clips, tmp_path):
    from test_pipeline import get_dummy_components  # the pipeline tests' tiny random components

    components = get_dummy_components()
    torch.manual_seed(0)
    pipe = random_pipeline(
        EgoTwinTransformer3DModel(**components["transformer"]), components["video_vae"], components["motion_vae"]
    )
    pipe.save_pretrained(tmp_path / "pipe")
    results = eval_main(
        [
            "--checkpoint",
            str(tmp_path / "pipe"),
            "--mode",
            "t2vm",
            "--data_root",
            str(clips),
            "--split",
            "train",
            "--num_samples",
            "2",
            "--replications",
            "2",
            "--seed",
            "3",
            "--num_inference_steps",
            "2",
            "--motion_guidance_scale",
            "3",
            "--alignment_yaw_step",
            "180",
            "--alignment_pitches=0",
            "--output_dir",
            str(tmp_path / "out"),
        ]
    )
    assert results["settings"]["replications"] == 2 and results["settings"]["num_samples"] == 2
    assert results["settings"]["guidance (text, motion, video)"] == [6.0, 3.0, 1.5]
    # the exact alignment at the pipeline's 32x32, with its random VAE; both clips in one apartment: no unrelated level
    levels = ("still camera", "start-frame warp")
    alignment = {*ALIGNMENT_COLUMNS, *(f"{c} ({level})" for c in ALIGNMENT_COLUMNS for level in levels)}
    assert (
        set(results["summary"])
        == {"TransErr", "RotErr", "TransErr (still camera)", "RotErr (still camera)"} | alignment
    )
    assert all(np.isfinite(r["TransErr"]) for r in results["replications"])
    assert results["settings"]["alignment"]["video_vae"] and results["replications"][0]["alignment frames"] > 0
    with pytest.raises(SystemExit):
        eval_main(
            ["--data_root", str(clips), "--output_dir", str(tmp_path / "x")]
        )  # neither --checkpoint nor --ground_truth


def dummy_pipeline():
    """The pipeline tests' tiny random pipeline, seeded."""
    from test_pipeline import get_dummy_components

    components = get_dummy_components()
    torch.manual_seed(0)
    pipe = random_pipeline(
        EgoTwinTransformer3DModel(**components["transformer"]), components["video_vae"], components["motion_vae"]
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.mark.parametrize("mode", ["t2vm", "tm2v", "tv2m"])
def test_generate_sample_passes_each_mode_its_inputs(clips, mode):
    from egotwin.eval.__main__ import generate_sample, item_frames, item_motion

    pipe = dummy_pipeline()
    item = ClipDataset(clips, split="train")[0]
    sample = generate_sample(pipe, item, mode, torch.Generator().manual_seed(0), 2)
    assert sample["frames"].shape[0] == 41 and sample["camera_to_world"].shape == (41, 4, 4)
    given_motion = item_motion(item).canonicalize()[0]
    if mode == "tm2v":  # the given motion comes back as given (canonicalised), the video is generated
        torch.testing.assert_close(sample["motion"].trans, given_motion.trans)
    else:
        assert not torch.allclose(sample["motion"].trans, given_motion.trans, atol=1e-3)
    # tv2m returns the given video (at the pipeline's 32x32 here); the other modes generate it
    given_frames = np.stack([cv2.resize(f, (32, 32), interpolation=cv2.INTER_AREA) for f in item_frames(item)])
    difference = np.abs(sample["frames"].astype(float) - given_frames).mean()
    assert difference < 4.0 if mode == "tv2m" else difference > 20.0


def test_generate_sample_uses_the_guidance_it_is_given(clips):
    """The eval's guidance flags reach the pipeline: the defaults reproduce the default sample exactly, a different
    w_m (video follows motion) or video w_t changes TM2V's video, and a different w_v (motion follows video) leaves it
    alone."""
    from egotwin.diffusion.guidance import GuidanceScales
    from egotwin.eval.__main__ import generate_sample

    pipe = dummy_pipeline()
    item = ClipDataset(clips, split="train")[0]

    def frames(scales=None):
        extra = () if scales is None else (scales,)
        return generate_sample(pipe, item, "tm2v", torch.Generator().manual_seed(0), 2, *extra)["frames"].astype(float)

    default = frames()
    assert np.array_equal(frames(GuidanceScales()), default)
    assert np.abs(frames(GuidanceScales(motion=6.0)) - default).max() > 1.0
    assert np.array_equal(frames(GuidanceScales(video=6.0)), default)  # TM2V generates no motion for w_v to steer
    assert np.abs(frames(GuidanceScales(video_text=1.0)) - default).max() > 1.0  # the video's own w_t

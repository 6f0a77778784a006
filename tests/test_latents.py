"""The latent cache: what `cache_latents` writes equals encoding each clip directly, shards and index, posterior draws,
the empty-prompt embedding, and the motion statistics that travel with it."""

import copy
import json

import pytest
import torch

from egotwin.data.latents import LatentDataset, cache_latents, clip_motion, parameters_sha256
from egotwin.models.motion_vae import MotionVAE
from egotwin.models.text_encoder import TextEncoder
from egotwin.models.video_vae import encode_video_distribution, small_video_vae
from egotwin.motion.normalization import FeatureStats
from egotwin.motion.representation import get_representation
from training.synthetic_clips import SyntheticClips


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("cache")
    data = SyntheticClips(5, size=16, num_video_frames=9)
    representation = get_representation("head_centric")
    stats = FeatureStats.accumulate(
        [representation.encode(clip_motion(data[i])) for i in range(5)], representation="head_centric"
    )
    parts = dict(
        video_vae=small_video_vae(
            block_out_channels=(8, 8, 8, 8), norm_num_groups=4, sample_height=32, sample_width=32
        ).eval(),
        motion_vae=MotionVAE(
            latent_channels=8, block_out_channels=(32, 32), layers_per_block=1, scaling_factor=0.5
        ).eval(),
        text_encoder=TextEncoder.from_minilm(),
        representation=representation,
        stats=stats,
    )
    cache_latents(data, root, batch_size=2, shard_size=2, **parts)
    return root, data, parts


def test_index_and_shards(cache):
    root, data, parts = cache
    index = json.loads((root / "index.json").read_text())
    assert index["num_items"] == 5 and [s["count"] for s in index["shards"]] == [2, 2, 1]
    assert index["items"][3] == {"clip_id": data[3]["clip_id"], "caption": data[3]["caption"]}
    assert index["motion_vae"] == {
        "latent_channels": 8,
        "representation": "head_centric",
        "scaling_factor": 0.5,
        "parameters_sha256": parameters_sha256(parts["motion_vae"]),
    }
    nudged = copy.deepcopy(parts["motion_vae"])
    with torch.no_grad():
        next(nudged.parameters()).view(-1)[0] += 1e-6  # one value of one weight: another motion VAE
    assert parameters_sha256(nudged) != index["motion_vae"]["parameters_sha256"]
    assert index["text_encoder"] == {"name": "all-MiniLM-L6-v2", "dim": 384, "max_length": 32}
    assert index["video_vae"]["scaling_factor"] == parts["video_vae"].config.scaling_factor
    assert index["video_vae"]["latent_size"] == [2, 2]  # 16x16 frames, 8x spatial compression
    assert LatentDataset(root).video_latent_size == (2, 2)
    # a cache written before the index recorded the size: read from its first shard
    old = root.parent / f"{root.name}_old"
    old.mkdir(exist_ok=True)
    for file in root.iterdir():
        (old / file.name).write_bytes(file.read_bytes())
    del index["video_vae"]["latent_size"]
    (old / "index.json").write_text(json.dumps(index))
    assert LatentDataset(old).video_latent_size == (2, 2)


@torch.no_grad()
def test_cached_means_equal_direct_encoding(cache):
    root, data, parts = cache
    dataset = LatentDataset(root, sample_posterior=False)
    assert len(dataset) == 5
    for i in (0, 3, 4):
        item, clip = dataset[i], data[i]
        video_mean, _ = encode_video_distribution(parts["video_vae"], clip["video"][None])
        torch.testing.assert_close(item["video_latents"][1:], video_mean[0, 1:])
        # O^0 is the start frame encoded by itself, as the pipeline encodes I0
        start_mean, _ = encode_video_distribution(parts["video_vae"], clip["video"][None, :, :1])
        torch.testing.assert_close(item["video_latents"][:1], start_mean[0])
        assert item["video_latents"].shape == (3, 16, 2, 2)
        features = parts["stats"].normalize(parts["representation"].encode(clip_motion(clip)))
        torch.testing.assert_close(item["motion_latents"], 0.5 * parts["motion_vae"].encode(features[None]).mean[0])
        assert item["motion_latents"].shape == (5, 8)
        embeddings, mask = parts["text_encoder"].encode(clip["caption"])
        torch.testing.assert_close(item["text_embeddings"], embeddings[0])
        assert torch.equal(item["text_mask"], mask[0]) and item["caption"] == clip["caption"]


def test_posterior_draws_are_reproducible_and_fresh_each_epoch(cache):
    root, _, _ = cache
    means = LatentDataset(root, sample_posterior=False)[2]
    a, b = LatentDataset(root, seed=1), LatentDataset(root, seed=1)
    first, again = a[2], b[2]
    assert torch.equal(first["motion_latents"], again["motion_latents"])
    assert not torch.equal(first["motion_latents"], means["motion_latents"])
    a.set_epoch(1)
    assert not torch.equal(a[2]["video_latents"], first["video_latents"])
    with pytest.raises(IndexError):
        a[5]


def test_null_text_and_statistics(cache):
    root, _, parts = cache
    dataset = LatentDataset(root)
    embeddings, mask = dataset.null_text()
    expected, expected_mask = parts["text_encoder"].encode("")
    torch.testing.assert_close(embeddings, expected[0])
    assert torch.equal(mask, expected_mask[0]) and int(mask.sum()) == 2
    stats = dataset.feature_stats()
    torch.testing.assert_close(stats.mean, parts["stats"].mean)
    torch.testing.assert_close(stats.std, parts["stats"].std)


def test_missing_cache_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a latent cache"):
        LatentDataset(tmp_path)

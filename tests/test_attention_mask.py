"""The structured joint attention mask (design "Attention mask"): its table against the rules, and probes through a
model."""

import pytest
import torch
from tiny_transformer import TINY_COGVIDEOX, TINY_MOTION

from egotwin.models.attention_mask import build_attention_mask, video_motion_links
from egotwin.models.transformer import EgoTwinTransformer3DModel

TEXT, FRAMES, PER_FRAME, LATENTS = 3, 11, 4, 21


def rule_allows(query: tuple[str, int], key: tuple[str, int]) -> bool:
    """Spec section 6 written out pair by pair; tokens are (kind, index) with index = frame or motion latent."""
    (q_kind, q), (k_kind, k) = query, key
    if "text" in (q_kind, k_kind) or q_kind == k_kind:
        return True
    if q_kind == "video":  # O^q looks at motion latent k
        return (q == 0 and k == 0) or (q >= 1 and k in (2 * q - 1, 2 * q))
    # motion latent q looks at O^k
    if q == 0:
        return k == 0
    action = (q - 1) // 2  # A^i = latents {2i+1, 2i+2}
    return k in (action, action + 1)


def token_list() -> list[tuple[str, int]]:
    return (
        [("text", i) for i in range(TEXT)]
        + [("video", f) for f in range(FRAMES) for _ in range(PER_FRAME)]
        + [("motion", j) for j in range(LATENTS)]
    )


def test_mask_matches_the_rules_pair_by_pair():
    mask = build_attention_mask(TEXT, FRAMES, PER_FRAME, LATENTS)
    tokens = token_list()
    expected = torch.tensor([[rule_allows(q, k) for k in tokens] for q in tokens])
    assert mask.shape == (len(tokens), len(tokens))
    assert torch.equal(mask, expected)
    # Counts: each O^i (i >= 1) sees 2 motion latents, each action latent sees 2 frames.
    video_sees_motion, motion_sees_video = video_motion_links(FRAMES, LATENTS)
    assert video_sees_motion.sum(1).tolist() == [1] + [2] * (FRAMES - 1)
    assert motion_sees_video.sum(1).tolist() == [1] + [2] * (LATENTS - 1)


def test_full_attention_opens_everything_and_masks_are_cached():
    assert build_attention_mask(TEXT, FRAMES, PER_FRAME, LATENTS, True).all()
    assert build_attention_mask(TEXT, FRAMES, PER_FRAME, LATENTS) is build_attention_mask(
        TEXT, FRAMES, PER_FRAME, LATENTS
    )
    with pytest.raises(ValueError, match="non-negative"):
        build_attention_mask(-1, FRAMES, PER_FRAME, LATENTS)


def one_layer_model(full_attention: bool = False) -> EgoTwinTransformer3DModel:
    """One joint layer: every output token is a per-token function of that layer's attention output."""
    torch.manual_seed(0)
    return EgoTwinTransformer3DModel(
        **{**TINY_COGVIDEOX, "sample_frames": 41},
        **TINY_MOTION,
        num_layers=1,
        motion_num_layers=1,
        sample_width=4,
        sample_height=4,
        max_text_seq_length=TEXT,
        use_rotary_positional_embeddings=True,
        full_attention=full_attention,
    ).eval()


def run(model, video, text, motion):
    with torch.no_grad():
        out = model(video, text, torch.tensor([400]), motion_hidden_states=motion, motion_timestep=torch.tensor([700]))
    return out.sample, out.motion_sample


@pytest.fixture(scope="module")
def inputs():
    generator = torch.Generator().manual_seed(1)
    video = torch.randn(1, FRAMES, 4, 4, 4, generator=generator)  # 2x2 patches -> 4 tokens per frame
    text = torch.randn(1, TEXT, 24, generator=generator)
    motion = torch.randn(1, LATENTS, 6, generator=generator)
    return video, text, motion


def changed_frames(a: torch.Tensor, b: torch.Tensor) -> list[int]:
    """Indices along dim 1 whose entries differ by more than float noise."""
    diff = (a - b).abs().flatten(2).amax(-1)[0]
    assert ((diff < 1e-6) | (diff > 1e-4)).all(), "ambiguous change"
    return torch.nonzero(diff > 1e-4).flatten().tolist()


@pytest.mark.parametrize("action", [0, 4, 9])
def test_perturbing_an_action_changes_only_the_next_observation(inputs, action):
    model = one_layer_model()
    video, text, motion = inputs
    base_video, _ = run(model, video, text, motion)
    perturbed = motion.clone()
    perturbed[:, 2 * action + 1 : 2 * action + 3] += 3.0
    new_video, _ = run(model, video, text, perturbed)
    assert changed_frames(base_video, new_video) == [action + 1]


@pytest.mark.parametrize("frame", [0, 1, 5, 10])
def test_perturbing_an_observation_changes_only_its_adjacent_actions(inputs, frame):
    model = one_layer_model()
    video, text, motion = inputs
    _, base_motion = run(model, video, text, motion)
    perturbed = video.clone()
    perturbed[:, frame] += 3.0
    _, new_motion = run(model, perturbed, text, motion)
    # O^i is seen by A^{i-1} = latents {2i-1, 2i} and A^i = {2i+1, 2i+2}; O^0 also by P0's latent 0.
    expected = (
        [0, 1, 2]
        if frame == 0
        else [j for j in (2 * frame - 1, 2 * frame, 2 * frame + 1, 2 * frame + 2) if j < LATENTS]
    )
    assert changed_frames(base_motion, new_motion) == expected


def test_initial_pose_is_seen_by_the_initial_frame_only(inputs):
    model = one_layer_model()
    video, text, motion = inputs
    base_video, _ = run(model, video, text, motion)
    perturbed = motion.clone()
    perturbed[:, 0] += 3.0
    assert changed_frames(base_video, run(model, video, text, perturbed)[0]) == [0]


def test_text_reaches_every_token(inputs):
    model = one_layer_model()
    video, text, motion = inputs
    base_video, base_motion = run(model, video, text, motion)
    new_video, new_motion = run(model, video, text + 1.0, motion)
    assert changed_frames(base_video, new_video) == list(range(FRAMES))
    assert changed_frames(base_motion, new_motion) == list(range(LATENTS))


def test_full_attention_ablation_lets_every_frame_see_every_action(inputs):
    model = one_layer_model(full_attention=True)
    video, text, motion = inputs
    base_video, _ = run(model, video, text, motion)
    perturbed = motion.clone()
    perturbed[:, 9:11] += 3.0
    assert changed_frames(base_video, run(model, video, text, perturbed)[0]) == list(range(FRAMES))

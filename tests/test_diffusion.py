"""Noise schedule, asynchronous diffusion loss and guidance (design "Asynchronous diffusion" and "Sampling and
guidance")."""

import pytest
import torch
from tiny_transformer import TINY_COGVIDEOX, TINY_MOTION

from egotwin.diffusion import (
    GuidanceScales,
    build_guidance_batch,
    combine_guidance,
    diffusion_loss,
    generated_mse,
    guided_prediction,
    make_scheduler,
    replace_initial,
    sample_timesteps,
)
from egotwin.models.transformer import EgoTwinTransformer3DModel

B, F, M = 2, 3, 5


def small_model(**overrides) -> EgoTwinTransformer3DModel:
    torch.manual_seed(0)
    config = dict(
        **TINY_COGVIDEOX,
        **TINY_MOTION,
        num_layers=2,
        sample_width=4,
        sample_height=4,
        max_text_seq_length=6,
        use_rotary_positional_embeddings=True,
    )
    return EgoTwinTransformer3DModel(**{**config, **overrides})


def latents(seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    return (
        torch.randn(B, F, 4, 4, 4, generator=generator),
        torch.randn(B, M, 6, generator=generator),
        torch.randn(B, 6, 24, generator=generator),
    )


@pytest.mark.parametrize("kind", ["ddim", "dpm"])
def test_scheduler_is_cogvideox_v_prediction_with_zero_terminal_snr(kind):
    scheduler = make_scheduler(kind)
    assert scheduler.config.prediction_type == "v_prediction"
    assert scheduler.alphas_cumprod[-1] < 1e-6  # zero terminal SNR: t = 999 is pure noise
    scheduler.set_timesteps(50)
    assert scheduler.timesteps[0] == 999 and len(scheduler.timesteps) == 50  # trailing spacing
    x0, noise = torch.randn(1, 8), torch.randn(1, 8)
    torch.testing.assert_close(scheduler.add_noise(x0, noise, torch.tensor([999])), noise, atol=1e-3, rtol=0)
    with pytest.raises(ValueError, match="unknown scheduler"):
        make_scheduler("euler")


def test_timesteps_are_independent_or_shared():
    generator = torch.Generator().manual_seed(0)
    t_v, t_m = sample_timesteps(256, 1000, generator=generator)
    assert t_v.min() >= 0 and t_v.max() < 1000
    assert (t_v != t_m).float().mean() > 0.9
    assert abs(torch.corrcoef(torch.stack([t_v.float(), t_m.float()]))[0, 1]) < 0.2
    t_v, t_m = sample_timesteps(256, 1000, shared_timestep=True, generator=generator)
    assert torch.equal(t_v, t_m)


def test_conditioning_latent_is_clean_and_left_out_of_the_loss():
    noisy, clean = torch.randn(B, F, 4), torch.randn(B, F, 4)
    conditioned = replace_initial(noisy, clean)
    assert torch.equal(conditioned[:, 0], clean[:, 0]) and torch.equal(conditioned[:, 1:], noisy[:, 1:])
    prediction = clean.clone()
    prediction[:, 0] += 100.0  # error on the conditioning latent only
    assert generated_mse(prediction, clean) == 0


def test_loss_matches_cogvideox_weighted_x0_loss_and_conditions_on_clean_initials():
    scheduler = make_scheduler()
    model = small_model()
    video, motion, text = latents()
    seen = {}
    model.register_forward_hook(lambda module, args, kwargs, out: seen.update(kwargs=kwargs, out=out), with_kwargs=True)
    result = diffusion_loss(model, scheduler, text, video, motion, generator=torch.Generator().manual_seed(1))
    inputs = seen["kwargs"]
    # Frame 0 / latent 0 enter clean.
    assert torch.equal(inputs["hidden_states"][:, 0], video[:, 0])
    assert torch.equal(inputs["motion_hidden_states"][:, 0], motion[:, 0])
    assert torch.equal(inputs["timestep"], result.video_timestep)
    # CogVideoX's recipe: x0 = get_velocity(v_pred, x_t, t), loss weight 1 / (1 - alpha_bar).
    out = seen["out"]
    for pred, x_t, x0, t, loss in [
        (out.sample, inputs["hidden_states"], video, result.video_timestep, result.video_loss),
        (out.motion_sample, inputs["motion_hidden_states"], motion, result.motion_timestep, result.motion_loss),
    ]:
        x0_pred = scheduler.get_velocity(pred, x_t, t)
        weight = 1 / (1 - scheduler.alphas_cumprod[t].float())
        per_sample = ((x0_pred - x0)[:, 1:] ** 2).flatten(1).mean(1)
        torch.testing.assert_close((weight * per_sample).mean(), loss, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(result.loss, result.video_loss + result.motion_loss)


def test_stage2_loss_without_video_and_shared_timestep_switch():
    scheduler = make_scheduler()
    model = small_model()
    _, motion, text = latents()
    result = diffusion_loss(model, scheduler, text, motion_latents=motion, generator=torch.Generator().manual_seed(0))
    assert result.video_loss is None and torch.equal(result.loss, result.motion_loss)
    video, motion, text = latents()
    shared = diffusion_loss(model, scheduler, text, video, motion, shared_timestep=True)
    assert torch.equal(shared.video_timestep, shared.motion_timestep)
    with pytest.raises(ValueError, match="video latents, motion latents"):
        diffusion_loss(model, scheduler, text)


def test_loss_of_a_bfloat16_model_on_float32_latents():
    """DeepSpeed's bf16 mode casts the whole model to bfloat16 and adds no autocast while the cache holds float32
    latents (issue 22's repro): the inputs follow the model's parameters, the loss matches the float32 model's to
    bfloat16 precision, and the gradients arrive in bfloat16."""
    from egotwin.models.presets import build_transformer

    torch.manual_seed(0)
    model = build_transformer("tiny")
    inputs = torch.randn(1, 32, 384), torch.randn(1, 11, 16, 8, 8), torch.randn(1, 21, 32)
    reference = diffusion_loss(model, make_scheduler(), *inputs, generator=torch.Generator().manual_seed(3))
    model = model.to(torch.bfloat16)
    result = diffusion_loss(model, make_scheduler(), *inputs, generator=torch.Generator().manual_seed(3))
    assert result.loss.dtype == torch.float32 and torch.equal(result.video_timestep, reference.video_timestep)
    torch.testing.assert_close(result.loss, reference.loss, rtol=0.03, atol=0.0)
    result.loss.backward()
    assert model.proj_out.weight.grad.dtype == torch.bfloat16 and model.proj_out.weight.grad.abs().sum() > 0


def test_one_generator_per_item_makes_the_loss_independent_of_how_the_batch_is_split():
    """With a generator per batch item, two halves of a batch (two processes) draw exactly what the whole batch draws
    in one process: their mean loss is the whole batch's."""
    model, scheduler = small_model(), make_scheduler()
    video, motion, text = (torch.cat([x, x.flip(0)]) for x in latents())  # a batch of 4

    def generators(places):
        return [torch.Generator().manual_seed(100 + place) for place in places]

    whole = diffusion_loss(model, scheduler, text, video, motion, generator=generators(range(4)))
    halves = [
        diffusion_loss(model, scheduler, text[half], video[half], motion[half], generator=generators(range(4)[half]))
        for half in (slice(0, 2), slice(2, 4))
    ]
    torch.testing.assert_close(whole.loss, (halves[0].loss + halves[1].loss) / 2, rtol=1e-5, atol=0.0)
    assert torch.equal(whole.motion_timestep, torch.cat([h.motion_timestep for h in halves]))
    with pytest.raises(ValueError, match="3 generators for a batch of 4"):
        diffusion_loss(model, scheduler, text, video, motion, generator=generators(range(3)))


def test_training_on_the_loss_fits_a_fixed_batch():
    scheduler = make_scheduler()
    model = small_model()
    video, motion, text = latents()
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)

    def evaluate() -> float:
        with torch.no_grad():
            generator = torch.Generator().manual_seed(9)
            return diffusion_loss(model, scheduler, text, video, motion, generator=generator).loss.item()

    before = evaluate()
    generator = torch.Generator().manual_seed(0)
    for _ in range(30):
        optimizer.zero_grad()
        diffusion_loss(model, scheduler, text, video, motion, generator=generator).loss.backward()
        optimizer.step()
    assert evaluate() < 0.8 * before


def direct_terms(model, mode, video, motion, t, text, null, noise_v, noise_m, t_m=None):
    """Every guidance term by its own network call, written out from design "Sampling and guidance" (t2vm: motion at
    `t_m`, default t)."""

    def e(z_v, z_m, c, t_v, t_m):
        with torch.no_grad():
            out = model(z_v, c, torch.full((B,), t_v), motion_hidden_states=z_m, motion_timestep=torch.full((B,), t_m))
        return out.sample, out.motion_sample

    T = 999
    if mode == "tm2v":  # video generated, motion given clean
        return {
            "video": (
                e(video, noise_m, null, t, T)[0],
                e(video, noise_m, text, t, T)[0],
                e(video, motion, text, t, 0)[0],
            )
        }
    if mode == "tv2m":
        return {
            "motion": (
                e(noise_v, motion, null, T, t)[1],
                e(noise_v, motion, text, T, t)[1],
                e(video, motion, text, 0, t)[1],
            )
        }
    # T2VM (four rows): N co-noised without text, C co-noised with text, Dv motion dropped, Dm video dropped.
    t_m = t if t_m is None else t_m
    null_joint, text_joint = e(video, motion, null, t, t_m), e(video, motion, text, t, t_m)
    return {
        "video": (null_joint[0], text_joint[0], e(video, noise_m, text, t, T)[0]),
        "motion": (null_joint[1], text_joint[1], e(noise_v, motion, text, T, t_m)[1]),
    }


@pytest.mark.parametrize("mode", ["tm2v", "tv2m", "t2vm"])
def test_guidance_equals_the_per_term_formula_in_one_batched_call(mode):
    model = small_model().eval()
    video, motion, text = latents(0)
    noise_v, noise_m, null = latents(1)
    noise_v, noise_m = replace_initial(noise_v, video), replace_initial(noise_m, motion)  # I0 / P0 stay clean
    scales = GuidanceScales(text=5.0, motion=1.7, video=2.3)
    calls = []
    hook = model.register_forward_hook(lambda module, args, out: calls.append(out.motion_sample.size(0)))
    with torch.no_grad():
        guided_video, guided_motion = guided_prediction(
            model, mode, video, motion, 600, text, null, noise_v, noise_m, scales
        )
    hook.remove()
    assert calls == [(4 if mode == "t2vm" else 3) * B]  # one batched call per step

    terms = direct_terms(model, mode, video, motion, 600, text, null, noise_v, noise_m)
    weights = {"video": scales.motion, "motion": scales.video}  # cross-modal weight of each generated modality
    for name, guided in (("video", guided_video), ("motion", guided_motion)):
        if name not in terms:
            assert guided is None
            continue
        if mode == "t2vm":  # N + w_t (C - N) + w_cross (C - D_other)
            null_term, text_term, dropped_term = terms[name]
            expected = null_term + scales.text * (text_term - null_term) + weights[name] * (text_term - dropped_term)
        else:  # Eq. 3: N + w_t (C - N) + w_cross (J - C)
            null_term, text_term, joint_term = terms[name]
            expected = null_term + scales.text * (text_term - null_term) + weights[name] * (joint_term - text_term)
        torch.testing.assert_close(guided, expected, atol=1e-5, rtol=1e-4)


def test_t2vm_guidance_with_the_motion_ahead_uses_its_own_timestep_in_every_motion_row():
    model = small_model().eval()
    video, motion, text = latents(0)
    noise_v, noise_m, null = latents(1)
    noise_v, noise_m = replace_initial(noise_v, video), replace_initial(noise_m, motion)
    scales = GuidanceScales(text=5.0, motion=1.7, video=2.3)
    with torch.no_grad():
        guided_video, guided_motion = guided_prediction(
            model, "t2vm", video, motion, 600, text, null, noise_v, noise_m, scales, motion_timestep=250
        )
        same_t = guided_prediction(model, "t2vm", video, motion, 600, text, null, noise_v, noise_m, scales)
    terms = direct_terms(model, "t2vm", video, motion, 600, text, null, noise_v, noise_m, t_m=250)
    for guided, (null_term, text_term, dropped_term), w in (
        (guided_video, terms["video"], scales.motion),
        (guided_motion, terms["motion"], scales.video),
    ):
        expected = null_term + scales.text * (text_term - null_term) + w * (text_term - dropped_term)
        torch.testing.assert_close(guided, expected, atol=1e-5, rtol=1e-4)
    # The motion's timestep reaches the network: a different t_m gives a different prediction.
    assert (guided_motion - same_t[1]).abs().max() > 1e-3
    with pytest.raises(ValueError, match="motion_timestep is for t2vm"):
        build_guidance_batch("tm2v", video, motion, 600, text, null, noise_v, noise_m, motion_timestep=250)


def test_guidance_combination_known_answers():
    outs = torch.arange(3 * B, dtype=torch.float32).reshape(3 * B, 1) ** 2  # rows: null, text, joint
    null, text, joint = outs.chunk(3)
    video, motion = combine_guidance("tm2v", outs, outs, GuidanceScales(text=1.0, motion=0.0))
    assert motion is None and torch.equal(video, text)
    video, _ = combine_guidance("tm2v", outs, outs, GuidanceScales(text=0.0, motion=0.0))
    assert torch.equal(video, null)
    _, motion = combine_guidance("tv2m", outs, outs, GuidanceScales(text=1.0, video=1.0))
    assert torch.equal(motion, joint)
    rows = torch.tensor([[1.0], [3.0], [10.0], [-4.0]]).repeat_interleave(B, 0)  # T2VM rows: N, C, Dv, Dm
    video, motion = combine_guidance("t2vm", rows, rows, GuidanceScales(text=2.0, motion=0.5, video=0.25))
    torch.testing.assert_close(video, torch.full((B, 1), 1 + 2 * (3 - 1) + 0.5 * (3 - 10.0)))
    torch.testing.assert_close(motion, torch.full((B, 1), 1 + 2 * (3 - 1) + 0.25 * (3 + 4.0)))
    # the video's own w_t (video_text) replaces w_t in the video's prediction only; the motion keeps `text`
    split = GuidanceScales(text=2.0, motion=0.5, video=0.25, video_text=0.5)
    video, motion_split = combine_guidance("t2vm", rows, rows, split)
    torch.testing.assert_close(video, torch.full((B, 1), 1 + 0.5 * (3 - 1) + 0.5 * (3 - 10.0)))
    assert torch.equal(motion_split, motion)
    video, _ = combine_guidance("tm2v", outs, outs, GuidanceScales(text=6.0, motion=0.0, video_text=1.0))
    assert torch.equal(video, text)
    _, motion = combine_guidance("tv2m", outs, outs, GuidanceScales(text=1.0, video=1.0, video_text=5.0))
    assert torch.equal(motion, joint)
    with pytest.raises(ValueError, match="unknown guidance mode"):
        build_guidance_batch("v2t", *latents()[:2], 0, latents()[2], latents()[2], *latents()[:2])

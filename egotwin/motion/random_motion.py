"""Procedural motions for tests and benchmarks: smooth random motion, arbitrary (extreme) rotations, a walk with turns.

They exercise the feature representations on any rotation, not on plausible human behaviour; training data comes from
EgoWorld and motion files.
"""

from __future__ import annotations

import math

import torch

from egotwin.body.builtin import builtin_rest_joints
from egotwin.body.rotations import axis_angle_to_matrix, quaternion_to_matrix, rotation_about_y
from egotwin.body.skeleton import JOINT_INDEX, NUM_JOINTS
from egotwin.data.constants import MOTION_FPS
from egotwin.motion.motion import Motion


def _smooth_signal(shape: tuple[int, ...], times: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """(*shape, T) sums of three random sinusoids (0.1 to 1.5 Hz) of unit total amplitude scale."""
    amplitude = torch.rand(*shape, 3, 1, generator=generator, dtype=torch.float64) / 3
    frequency = 0.1 + 1.4 * torch.rand(*shape, 3, 1, generator=generator, dtype=torch.float64)
    phase = 2 * math.pi * torch.rand(*shape, 3, 1, generator=generator, dtype=torch.float64)
    return (amplitude * torch.sin(2 * math.pi * frequency * times + phase)).sum(-2)


def smooth_random_motion(
    batch: int,
    num_frames: int,
    rotation_scale: float = 0.4,
    fps: float = MOTION_FPS,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Local rotations (B, T, 22, 3, 3) and trans (B, T, 3) of a body that turns and drifts across the floor while every
    joint rotates smoothly by up to about `rotation_scale` radians about random axes."""
    times = torch.arange(num_frames, dtype=torch.float64) / fps
    axis_angle = rotation_scale * _smooth_signal((batch, NUM_JOINTS, 3), times, generator).permute(0, 3, 1, 2)
    local = axis_angle_to_matrix(axis_angle)  # (B, T, 22, 3, 3)
    yaw0 = 2 * math.pi * torch.rand(batch, 1, generator=generator, dtype=torch.float64)
    yaw = yaw0 + 2.0 * _smooth_signal((batch,), times, generator)  # heading swings by up to ~2 rad
    local[:, :, 0] = rotation_about_y(yaw) @ local[:, :, 0]
    speed = 1.5 * torch.rand(batch, 1, 1, generator=generator, dtype=torch.float64)
    step = speed / fps * torch.stack((torch.sin(yaw), torch.zeros_like(yaw), torch.cos(yaw)), dim=-1)
    trans = torch.cumsum(step, dim=1) + 0.05 * _smooth_signal((batch, 3), times, generator).transpose(1, 2)
    return local.to(dtype), trans.to(dtype)


def extreme_random_motion(
    batch: int, num_frames: int, generator: torch.Generator | None = None, dtype: torch.dtype = torch.float32
) -> tuple[torch.Tensor, torch.Tensor]:
    """Local rotations (B, T, 22, 3, 3) drawn uniformly from SO(3) independently for every joint and frame, and
    trans (B, T, 3) uniform in a 10 m cube: no continuity, any angle up to pi."""
    quaternions = torch.randn(batch, num_frames, NUM_JOINTS, 4, generator=generator, dtype=torch.float64)
    trans = 10 * torch.rand(batch, num_frames, 3, generator=generator, dtype=torch.float64) - 5
    return quaternion_to_matrix(quaternions).to(dtype), trans.to(dtype)


def walking_motion(
    duration: float = 60.0, fps: float = MOTION_FPS, speed: float = 1.3, dtype: torch.dtype = torch.float32
) -> Motion:
    """A person walking at `speed` m/s for `duration` seconds, weaving left and right (heading swings of +-60 degrees
    with a 12 s period plus a slow full turn), legs and arms swinging at a 1 Hz stride."""
    times = torch.arange(int(round(duration * fps)) + 1, dtype=torch.float64) / fps
    yaw = math.radians(60) * torch.sin(2 * math.pi * times / 12) + 2 * math.pi * times / 45
    turn_rate = math.radians(60) * (2 * math.pi / 12) * torch.cos(2 * math.pi * times / 12) + 2 * math.pi / 45
    step = speed / fps * torch.stack((torch.sin(yaw), torch.zeros_like(yaw), torch.cos(yaw)), dim=-1)
    trans = torch.cumsum(step, dim=0)
    trans[:, 1] = 0.02 * torch.cos(4 * math.pi * times)  # the pelvis bobs twice per stride

    axis_angle = torch.zeros(len(times), NUM_JOINTS, 3, dtype=torch.float64)
    swing = torch.sin(2 * math.pi * times)
    x_axis = lambda name, angle: axis_angle[:, JOINT_INDEX[name], 0].copy_(angle)  # noqa: E731
    x_axis("left_hip", -0.45 * swing)
    x_axis("right_hip", 0.45 * swing)
    x_axis("left_knee", 0.6 * (1 + swing).clamp_min(0) / 2)
    x_axis("right_knee", 0.6 * (1 - swing).clamp_min(0) / 2)
    x_axis("left_shoulder", 0.3 * swing)
    x_axis("right_shoulder", -0.3 * swing)
    axis_angle[:, JOINT_INDEX["left_shoulder"], 2] = -1.2  # arms down from the T-pose
    axis_angle[:, JOINT_INDEX["right_shoulder"], 2] = 1.2
    axis_angle[:, JOINT_INDEX["head"], 1] = 0.3 * turn_rate  # look into the turn
    local = axis_angle_to_matrix(axis_angle)
    local[:, 0] = rotation_about_y(yaw) @ local[:, 0]
    return Motion(
        trans=trans.to(dtype),
        global_orient=local[:, 0].to(dtype),
        body_pose=local[:, 1:].to(dtype),
        rest_joints=builtin_rest_joints(dtype=dtype),
        fps=fps,
    )

"""Exact viewpoint alignment on EgoWorld: does a video show what its head camera sees?

EgoWorld knows the truth, so no estimator stands between the video and the head path: the clip's apartment is
rebuilt from its seed (`egotwin.world.replay`), and the head cameras being scored are rendered in it at the 41 video
frames, with the body's arms and hands where the scored motion puts them (as EgoWorld renders them), doors and carried
objects as the clip has them. Each video frame is then compared with renders of that frame's world:

- views: the head camera turned by yaw offsets over the full circle (every `yaw_step_deg`, positive = to the wearer's
  left, about the vertical through the camera centre) and pitched by `pitch_offsets_deg` (positive = up, about the
  camera's own x axis); offset (0, 0) is the head itself;
- still: frame 0's camera held for the whole clip (what a video that ignores the head shows).

Beside the scored video, three levels are read out the same way: another apartment's clip's video (chance), the still
render (a video that ignores the head) and the start-frame warp (frame 0's render carried along the head path by
depth, turning and walking; what frame 0 did not see in its mean colour: a video that follows the head exactly and
invents nothing, i.e. how far the start frame alone gets; a model can only beat it by knowing what apartments look
like beyond the start frame). Read-outs are also split by the share of a frame's pixels whose surface frame 0 saw
(`start_frame_reprojection`): how well a video keeps what it was shown, and how well it invents the rest.

Distance between two frames: both converted from sRGB to CIE Lab (D65, OpenCV), each channel blurred by a Gaussian of
`blur_sigma` pixels (OpenCV's kernel for it, 8 sigma + 1 wide; border reflected), then the mean over pixels of the
Euclidean Lab difference (CIE76 delta E).
With a video VAE given, every render path (41 frames) goes through its encode-decode round trip first, since the
generated video is decoded by it and the VAE shifts colours.

Read-outs, over the scored frames (frames 1.. where the head camera has turned at least `turned_deg` from frame 0's,
or its centre moved at least `moved_m`), pooled over clips:
- ViewDist: distance to the head render / median distance to the views at pitch 0 over all yaws. ~0 = the video
  shows what the head sees, ~1 = the head's direction explains the frame no better than a typical one.
- Head>Still: fraction of frames closer to the head render than to the still render.
- YawHit: fraction of frames whose best-matching view over the (yaw, pitch) grid is within `hit_deg` of the head's
  yaw; YawErr / PitchErr: mean absolute yaw / pitch offset of that best view, degrees. A video unrelated to the head
  still hits some frames (a uniform guess: the share of grid yaws within `hit_deg`), so read all of these against the
  unrelated-video level reported beside them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np
import torch

from egotwin.body.head_camera import HeadCameraRig
from egotwin.data.constants import NUM_VIDEO_FRAMES, VIDEO_FPS
from egotwin.eval.table import ALIGNMENT_COLUMNS
from egotwin.models.video_vae import round_trip_frames
from egotwin.motion.motion import Motion
from egotwin.world.generate import load_default_body
from egotwin.world.render import EgoRenderer
from egotwin.world.replay import ClipSource, ClipWorld, check_rebuilt, clip_source, rebuild_clip_world


@dataclass(frozen=True)
class AlignmentConfig:
    """The grid, the distance and the frames that count."""

    yaw_step_deg: float = 10.0
    """Spacing of the yaw offsets over the full circle (36 directions)."""
    pitch_offsets_deg: tuple[float, ...] = (-20.0, 0.0, 20.0)
    """Pitch offsets of the views (must hold 0); ViewDist uses pitch 0, the best-view read-out the whole grid."""
    blur_sigma: float = 2.0
    """Gaussian blur (pixels, on 64x64 frames) before the Lab distance: forgives a pixel of misplacement."""
    turned_deg: float = 20.0
    """A frame is scored when its head camera has turned at least this much from frame 0's (geodesic angle) ..."""
    moved_m: float = 0.5
    """... or its centre has moved at least this far."""
    hit_deg: float = 15.0
    """YawHit counts a best view within this yaw of the head."""

    def __post_init__(self) -> None:
        if not 0 < self.yaw_step_deg <= 180 or (360 / self.yaw_step_deg) % 1:
            raise ValueError(f"yaw_step_deg must divide 360, got {self.yaw_step_deg}")
        if 0.0 not in self.pitch_offsets_deg:
            raise ValueError(f"pitch_offsets_deg must hold 0, got {self.pitch_offsets_deg}")

    @property
    def yaws(self) -> np.ndarray:
        """(Y,) yaw offsets in degrees, in [-180, 180), increasing."""
        return np.sort((np.arange(0.0, 360.0, self.yaw_step_deg) + 180.0) % 360.0 - 180.0)

    @property
    def pitches(self) -> np.ndarray:
        return np.asarray(self.pitch_offsets_deg, dtype=np.float64)


# ----------------------------------------------------------------------------------------------------- geometry
def _rotation(axis: int, degrees: np.ndarray) -> np.ndarray:
    """(N, 3, 3) rotations by `degrees` (N,) about the x (0) or y (1) axis."""
    a = np.radians(np.asarray(degrees, dtype=np.float64))
    c, s = np.cos(a), np.sin(a)
    r = np.zeros((len(a), 3, 3))
    if axis == 1:
        r[:, 0, 0], r[:, 0, 2], r[:, 1, 1], r[:, 2, 0], r[:, 2, 2] = c, s, 1, -s, c
    else:
        r[:, 0, 0], r[:, 1, 1], r[:, 1, 2], r[:, 2, 1], r[:, 2, 2] = 1, c, -s, s, c
    return r


def offset_cameras(camera_to_world: np.ndarray, yaws_deg: np.ndarray, pitches_deg: np.ndarray) -> np.ndarray:
    """(T, 4, 4) OpenCV-axes cameras -> (P, Y, T, 4, 4): each turned by a world yaw about the vertical through its
    centre (positive to the left: +z towards +x) after pitching about its own x axis (positive up)."""
    cameras = np.asarray(camera_to_world, dtype=np.float64)
    yaw, pitch = _rotation(1, yaws_deg), _rotation(0, pitches_deg)
    out = np.broadcast_to(cameras, (len(pitch), len(yaw), *cameras.shape)).copy()
    out[..., :3, :3] = np.einsum("yij,tjk,pkl->pytil", yaw, cameras[:, :3, :3], pitch)
    return out


def scored_frames(camera_to_world: np.ndarray, config: AlignmentConfig = AlignmentConfig()) -> np.ndarray:
    """(T,) bool: frames after 0 whose camera has turned >= turned_deg or moved >= moved_m from frame 0's."""
    cameras = np.asarray(camera_to_world, dtype=np.float64)
    relative = np.einsum("ji,tjk->tik", cameras[0, :3, :3], cameras[:, :3, :3])
    angle = np.degrees(np.arccos(np.clip((np.trace(relative, axis1=1, axis2=2) - 1) / 2, -1.0, 1.0)))
    moved = np.linalg.norm(cameras[:, :3, 3] - cameras[0, :3, 3], axis=-1)
    scored = (angle >= config.turned_deg) | (moved >= config.moved_m)
    scored[0] = False
    return scored


def align_to_clip(motion: Motion, camera_to_world: np.ndarray, clip_motion: Motion) -> tuple[Motion, np.ndarray]:
    """A scored motion and its cameras moved into the clip's world frame.

    Generated motion lives in the canonical frame of its start pose (the clip's frame-0 pose), a clip's own motion in
    the world: both share frame 0's canonical frame, so the rigid map is inv(clip canonical) @ (motion canonical)
    (the identity for the clip's own motion)."""
    to_world = torch.linalg.inv(clip_motion.canonical_transform().double()) @ motion.canonical_transform().double()
    cameras = to_world.numpy() @ np.asarray(camera_to_world, dtype=np.float64)
    return motion.transformed(to_world.to(motion.trans.dtype)), cameras


# ---------------------------------------------------------------------------------------------------- rendering
class AlignmentRenderer:
    """Renders reference paths in rebuilt clip worlds: one EgoRenderer, whose scene is rebuilt only when the
    apartment changes (keep clips of one apartment together)."""

    def __init__(
        self, body, width: int = 64, height: int = 64, rig: HeadCameraRig | None = None, textured: bool = False
    ) -> None:
        self.renderer = EgoRenderer(body, width, height, rig or HeadCameraRig(), textured)
        self._apartment_seed: int | None = None

    def close(self) -> None:
        self.renderer.close()

    def check_intrinsics(self, intrinsics: np.ndarray) -> None:
        expected = self.renderer.intrinsics.numpy()
        if not np.allclose(np.asarray(intrinsics, dtype=np.float64), expected, rtol=1e-4, atol=1e-4):
            raise ValueError(
                f"the video's intrinsics {np.asarray(intrinsics).round(3).tolist()} are not the renderer's "
                f"{expected.round(3).tolist()} (a {self.renderer.width}x{self.renderer.height} head camera)"
            )

    def render_paths(
        self, world: ClipWorld, motion: Motion, camera_paths: np.ndarray, frames: np.ndarray | None = None
    ) -> np.ndarray:
        """Renders (N, T, H, W, 3) uint8 of camera paths (N, T, 4, 4) at video frames `frames` (T,) (default all 41)
        of `world`, the body posed by `motion` (world frame, 81 frames), with the world's doors and carried objects."""
        return self.render_paths_with_depth(world, motion, camera_paths, frames)[0]

    def render_paths_with_depth(
        self, world: ClipWorld, motion: Motion, camera_paths: np.ndarray, frames: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """`render_paths` and the depth of every pixel: (N, T, H, W) float32 metres along each camera's axis, 0
        where no surface is."""
        if self._apartment_seed != world.apartment.seed:
            self.renderer.set_apartment(world.apartment)
            self._apartment_seed = world.apartment.seed
        frames = np.arange(NUM_VIDEO_FRAMES) if frames is None else np.asarray(frames)
        paths = np.asarray(camera_paths, dtype=np.float64)
        n, t = paths.shape[:2]
        if t != len(frames):
            raise ValueError(f"camera paths have {t} frames but {len(frames)} frames were asked for")
        rotations, joints = motion.forward_kinematics()
        rotations, joints = rotations[2 * frames].double().numpy(), joints[2 * frames].double().numpy()
        objects = {name: poses[frames] for name, poses in world.object_poses(motion).items()}

        def tile(x: np.ndarray) -> np.ndarray:  # the same world state for every path
            return np.concatenate([x] * n)

        renders, depths, _ = self.renderer.render(
            tile(rotations),
            tile(joints),
            paths.reshape(n * t, 4, 4),
            tile(world.door_angles[frames]),
            {name: tile(poses) for name, poses in objects.items()},
        )
        return renders.reshape(n, t, *renders.shape[1:]), depths.reshape(n, t, *depths.shape[1:])


# ----------------------------------------------------------------------------------------------------- distance
def blurred_lab(frames: np.ndarray, sigma: float) -> np.ndarray:
    """(..., H, W, 3) uint8 sRGB -> float32 CIE Lab (L 0..100), each channel blurred by a Gaussian of `sigma` px."""
    flat = np.asarray(frames).reshape(-1, *frames.shape[-3:])
    out = np.empty(flat.shape, np.float32)
    for i, frame in enumerate(flat):
        lab = cv2.cvtColor(frame.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab)
        out[i] = cv2.GaussianBlur(lab, (0, 0), sigma, borderType=cv2.BORDER_REFLECT_101)
    return out.reshape(frames.shape)


def lab_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Mean CIE76 delta E over pixels of Lab frames (..., H, W, 3) (broadcast) -> (...)."""
    return np.sqrt(((a - b) ** 2).sum(-1)).mean((-2, -1))


@dataclass
class AlignmentReferences:
    """The renders one head path is scored against, kept as blurred Lab."""

    views: np.ndarray
    """(P, Y, T, H, W, 3) float32: the views at the pitch x yaw offsets of the head cameras."""
    still: np.ndarray
    """(T, H, W, 3) float32: frame 0's camera held."""
    head_frames: np.ndarray
    """(T, H, W, 3) uint8: the render at the head itself (through the VAE when one was given)."""
    still_frames: np.ndarray
    """(T, H, W, 3) uint8: the still render (through the VAE when one was given): the still-camera video."""
    head_depth: np.ndarray
    """(T, H, W) float32: the depth of the render at the head (metres along the camera's axis, 0 = no surface)."""
    scored: np.ndarray
    """(T,) bool: the frames that count (`scored_frames`)."""
    config: AlignmentConfig = field(default_factory=AlignmentConfig)


def make_references(
    renderer: AlignmentRenderer,
    world: ClipWorld,
    motion: Motion,
    camera_to_world: np.ndarray,
    vae=None,
    config: AlignmentConfig = AlignmentConfig(),
    frames: np.ndarray | None = None,
    vae_batch_size: int = 8,
) -> AlignmentReferences:
    """Render (and with `vae` round-trip) every reference path of a head path `camera_to_world` (T, 4, 4) in the
    world frame, the body posed by `motion` (world frame); `frames` picks the video frames (default all 41; with a
    VAE their number must be 4k + 1). `vae_batch_size` paths per VAE pass bounds the memory (1 in the demo)."""
    cameras = np.asarray(camera_to_world, dtype=np.float64)
    views = offset_cameras(cameras, config.yaws, config.pitches)
    p, y = views.shape[:2]
    paths = np.concatenate([views.reshape(p * y, *cameras.shape), np.broadcast_to(cameras[:1], cameras.shape)[None]])
    renders, depths = renderer.render_paths_with_depth(world, motion, paths, frames)
    if vae is not None:
        renders = round_trip_frames(vae, renders, vae_batch_size)
    lab = blurred_lab(renders, config.blur_sigma)
    head = int(np.flatnonzero(config.pitches == 0)[0]) * y + int(np.flatnonzero(config.yaws == 0)[0])
    return AlignmentReferences(
        views=lab[:-1].reshape(p, y, *lab.shape[1:]),
        still=lab[-1],
        head_frames=renders[head],
        still_frames=renders[-1],
        head_depth=depths[head],
        scored=scored_frames(cameras, config),
        config=config,
    )


def start_frame_reprojection(
    depth: np.ndarray, camera_to_world: np.ndarray, intrinsics: np.ndarray, tolerance: float = 0.05
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Where frame 0 saw the surface each pixel of each frame shows.

    Args:
        depth: (T, H, W) the frames' depth (metres along each camera's axis, 0 = no surface; `head_depth`).
        camera_to_world: (T, 4, 4) the cameras (OpenCV axes); intrinsics: (3, 3) or larger, shared.
        tolerance: how far (a share of the distance) frame 0's depth may differ from the point's and still be it.

    Returns:
        (T, H, W) float32 x and y in frame 0's image (for `cv2.remap`; -1 where the point is behind camera 0), and
        (T, H, W) bool seen: the point lies in front of camera 0, inside its image, and frame 0's depth at that pixel
        (nearest) is the point's own within `tolerance`, i.e. frame 0 saw this very point and nothing in front of it.
        Pixels without a surface are never seen. Translation counts: walking up to a wall is a zoom into frame 0.
    """
    depth = np.asarray(depth, dtype=np.float64)
    cameras = np.asarray(camera_to_world, dtype=np.float64)
    k = np.asarray(intrinsics, dtype=np.float64)[:3, :3]
    height, width = depth.shape[1:]
    u, v = np.meshgrid(np.arange(width, dtype=np.float64), np.arange(height, dtype=np.float64))
    rays = np.stack([u, v, np.ones_like(u)], -1) @ np.linalg.inv(k).T  # (H, W, 3), z = 1 in each camera's axes
    world = np.einsum("tij,thwj->thwi", cameras[:, :3, :3], rays * depth[..., None]) + cameras[:, None, None, :3, 3]
    in_start = np.einsum("ji,thwj->thwi", cameras[0, :3, :3], world - cameras[0, :3, 3])  # R_0^T (X - c_0)
    z = in_start[..., 2]
    front = (depth > 0) & (z > 1e-6)
    safe_z = np.where(front, z, 1.0)
    x = np.where(front, (in_start @ k[0]) / safe_z, -1.0)
    y = np.where(front, (in_start @ k[1]) / safe_z, -1.0)
    inside = front & (x >= -0.5) & (x <= width - 0.5) & (y >= -0.5) & (y <= height - 0.5)
    start_depth = depth[0][
        np.clip(np.round(y), 0, height - 1).astype(int), np.clip(np.round(x), 0, width - 1).astype(int)
    ]
    seen = inside & (start_depth > 0) & (np.abs(start_depth - z) <= tolerance * z)
    return x.astype(np.float32), y.astype(np.float32), seen


def start_frame_warp(
    references: AlignmentReferences, reprojection: tuple[np.ndarray, np.ndarray, np.ndarray]
) -> np.ndarray:
    """(T, H, W, 3) uint8: the start frame carried along the head path: frame t shows, at each pixel whose surface
    frame 0 saw (`reprojection`: `start_frame_reprojection` of the head render's depth), frame 0's colour of it (the
    head render of frame 0, through the VAE when the references went through it), and frame 0's mean colour
    elsewhere. A video that moves its view exactly with the head, turning and walking, and invents nothing it has not
    seen: how far the start frame alone gets (its level beside every read-out)."""
    start = references.head_frames[0]
    map_x, map_y, seen = reprojection
    fill = np.round(start.reshape(-1, 3).mean(0)).astype(np.uint8)
    out = np.empty_like(references.head_frames)
    for t in range(len(out)):
        warped = cv2.remap(start, map_x[t], map_y[t], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        out[t] = np.where(seen[t, ..., None], warped, fill)
    return out


# ------------------------------------------------------------------------------------------------------ scoring
def frame_scores(video: np.ndarray, references: AlignmentReferences) -> dict[str, np.ndarray]:
    """Per-frame read-outs of a video (T, H, W, 3) uint8 against its references, every frame (the caller keeps the
    scored ones): view_dist, head_beats_still (bool), best_yaw and best_pitch (degrees), distance (to the head)."""
    config = references.config
    if video.shape != references.still_frames.shape:
        raise ValueError(f"video of shape {video.shape} against references of shape {references.still_frames.shape}")
    lab = blurred_lab(video, config.blur_sigma)
    distances = lab_distance(lab, references.views)  # (P, Y, T)
    p0, y0 = int(np.flatnonzero(config.pitches == 0)[0]), int(np.flatnonzero(config.yaws == 0)[0])
    head = distances[p0, y0]
    best = distances.reshape(-1, distances.shape[-1]).argmin(0)
    return {
        "distance": head,
        "view_dist": head / np.maximum(np.median(distances[p0], axis=0), 1e-9),
        "head_beats_still": head < lab_distance(lab, references.still),
        "best_yaw": config.yaws[best % len(config.yaws)],
        "best_pitch": config.pitches[best // len(config.yaws)],
    }


def summarize_frames(per_frame: list[dict[str, np.ndarray]], scored: list[np.ndarray], hit_deg: float) -> dict:
    """The read-outs (ALIGNMENT_COLUMNS) pooled over the scored frames of several clips; NaN when none is scored."""
    pooled = {k: np.concatenate([f[k][s] for f, s in zip(per_frame, scored)]) for k in per_frame[0]}
    if len(pooled["view_dist"]) == 0:
        return {column: math.nan for column in ALIGNMENT_COLUMNS} | {"frames": 0}
    return {
        "ViewDist": float(pooled["view_dist"].mean()),
        "Head>Still": float(pooled["head_beats_still"].mean()),
        "YawHit": float((np.abs(pooled["best_yaw"]) <= hit_deg).mean()),
        "YawErr": float(np.abs(pooled["best_yaw"]).mean()),
        "PitchErr": float(np.abs(pooled["best_pitch"]).mean()),
        "frames": len(pooled["view_dist"]),
    }


def unrelated_partner(worlds: list[ClipWorld], index: int) -> int | None:
    """The next clip (cyclically) in another apartment: its video is this clip's chance level; None if there is none."""
    for step in range(1, len(worlds)):
        other = (index + step) % len(worlds)
        if worlds[other].apartment.seed != worlds[index].apartment.seed:
            return other
    return None


def alignment_metrics(
    samples: list[dict],
    worlds: list[ClipWorld],
    renderer: AlignmentRenderer,
    vae=None,
    config: AlignmentConfig = AlignmentConfig(),
) -> dict[str, float]:
    """The read-outs of a set of samples (dicts with frames (41, H, W, 3), motion, camera_to_world, intrinsics, as
    `python -m egotwin.eval` makes them) of the clips whose worlds are `worlds`, and beside each its levels
    "<column> (unrelated)" (the next clip in another apartment's sample video against these references) and
    "<column> (still camera)" (the still render as the video) and "<column> (start-frame warp)" (`start_frame_warp`);
    "alignment frames": the scored frames pooled; "ViewDist by second": the model's ViewDist per second of video;
    "ViewDist by seen share[ (<level>)]" (`view_dist_by_seen_share`) and "alignment frames by seen share"."""
    if len(samples) != len(worlds):
        raise ValueError(f"{len(samples)} samples but {len(worlds)} clip worlds")
    scores: dict[str, list] = {"model": [], "unrelated": [], "still camera": [], "start-frame warp": []}
    scored: dict[str, list] = {key: [] for key in scores}
    seen: dict[str, list] = {key: [] for key in scores}
    intrinsics = renderer.renderer.intrinsics.numpy()
    for i, (sample, world) in enumerate(zip(samples, worlds)):
        renderer.check_intrinsics(sample["intrinsics"])
        motion, cameras = align_to_clip(sample["motion"], sample["camera_to_world"], world.motion)
        references = make_references(renderer, world, motion, cameras, vae, config)
        partner = unrelated_partner(worlds, i)
        reprojection = start_frame_reprojection(references.head_depth, cameras, intrinsics)
        videos = {
            "model": sample["frames"],
            "still camera": references.still_frames,
            "start-frame warp": start_frame_warp(references, reprojection),
        }
        if partner is not None:
            videos["unrelated"] = samples[partner]["frames"]
        share = reprojection[2].mean((1, 2))  # of each frame's pixels, those showing surface frame 0 saw
        for key, video in videos.items():
            scores[key].append(frame_scores(np.asarray(video), references))
            scored[key].append(references.scored)
            seen[key].append(share)
    metrics: dict[str, float] = {}
    for key, per_frame in scores.items():
        if not per_frame:
            continue
        summary = summarize_frames(per_frame, scored[key], config.hit_deg)
        suffix = "" if key == "model" else f" ({key})"
        metrics.update({f"{column}{suffix}": summary[column] for column in ALIGNMENT_COLUMNS})
        metrics[f"ViewDist by seen share{suffix}"] = view_dist_by_seen_share(per_frame, scored[key], seen[key])
        if key == "model":
            metrics["alignment frames"] = summary["frames"]
            metrics["alignment frames by seen share"] = frames_by_seen_share(scored[key], seen[key])
            metrics["ViewDist by second"] = view_dist_by_second(per_frame, scored[key])
    return metrics


def view_dist_by_second(per_frame: list[dict[str, np.ndarray]], scored: list[np.ndarray]) -> list[float | None]:
    """ViewDist pooled over the scored frames of each second of video (frames 1-8, 9-16, ..., 33-40 at 8 fps; None
    for a second without scored frames): where in the clip the view is lost."""
    view_dist = np.stack([f["view_dist"] for f in per_frame])
    mask = np.stack(scored)
    out: list[float | None] = []
    for start in range(1, NUM_VIDEO_FRAMES, VIDEO_FPS):
        window = mask[:, start : start + VIDEO_FPS]
        out.append(float(view_dist[:, start : start + VIDEO_FPS][window].mean()) if window.any() else None)
    return out


SEEN_SHARE_EDGES = (1 / 3, 2 / 3)
"""Frames are split by the share of their pixels showing surface frame 0 saw: under 1/3, 1/3 to 2/3, at least 2/3."""


def _seen_share_bins(scored: list[np.ndarray], seen: list[np.ndarray]) -> list[np.ndarray]:
    mask, bins = np.stack(scored), np.digitize(np.stack(seen), SEEN_SHARE_EDGES)
    return [mask & (bins == b) for b in range(len(SEEN_SHARE_EDGES) + 1)]


def view_dist_by_seen_share(
    per_frame: list[dict[str, np.ndarray]], scored: list[np.ndarray], seen: list[np.ndarray]
) -> list[float | None]:
    """ViewDist pooled over the scored frames in each `SEEN_SHARE_EDGES` bin of `seen` (per clip (T,) shares of
    pixels showing surface frame 0 saw; None for an empty bin): how well a video keeps what it was shown (the last bin)
    and how well it invents what it was not (the first)."""
    view_dist = np.stack([f["view_dist"] for f in per_frame])
    return [float(view_dist[b].mean()) if b.any() else None for b in _seen_share_bins(scored, seen)]


def frames_by_seen_share(scored: list[np.ndarray], seen: list[np.ndarray]) -> list[int]:
    """The number of scored frames in each `SEEN_SHARE_EDGES` bin."""
    return [int(b.sum()) for b in _seen_share_bins(scored, seen)]


DEMO_CONFIG = AlignmentConfig(yaw_step_deg=30.0, pitch_offsets_deg=(0.0,))
"""A grid small enough for an interactive answer (13 render paths): ViewDist's median over 12 directions."""


@dataclass
class HeadView:
    """What a generated head would see in the start frame's apartment, and how well a video shows it."""

    frames: np.ndarray
    """(41, H, W, 3) uint8: the apartment rendered from the generated head cameras (through the VAE when given)."""
    view_dist: float | None
    """ViewDist of the video against these renders (None without a video or without scored frames)."""
    head_beats_still: float | None
    scored_frames: int


def what_the_head_sees(
    source: ClipSource,
    motion: Motion,
    camera_to_world: np.ndarray,
    video: np.ndarray | None = None,
    vae=None,
    rig: HeadCameraRig | None = None,
    config: AlignmentConfig = DEMO_CONFIG,
    vae_batch_size: int = 8,
) -> HeadView:
    """The demo's third panel: re-render the apartment of an EgoWorld start frame from generated head cameras.

    Args:
        source: the clip the start frame (and start pose) came from.
        motion: the generated motion (81 frames), in the canonical frame of its start pose (the pipeline's output).
        camera_to_world: (41, 4, 4) its head cameras, same frame (`EgoTwinPipelineOutput.camera_to_world`).
        video: (41, H, W, 3) uint8, the generated video to score (optional); renders take its size.
        vae: the video VAE the video was decoded by (the pipeline's `vae`): renders go through it first.
        rig: the head camera the model was trained with (`pipe.rig`; default `HeadCameraRig()`).
        vae_batch_size: reference paths per VAE pass (1 bounds the memory of an interactive answer).
    """
    body = load_default_body(source.body_height)
    world = rebuild_clip_world(source, torch.as_tensor(np.asarray(body.rest_joints), dtype=torch.float32))
    height, width = (64, 64) if video is None else np.asarray(video).shape[1:3]
    renderer = AlignmentRenderer(body, width, height, rig, source.textured)
    try:
        motion, cameras = align_to_clip(motion, camera_to_world, world.motion)
        if video is None:
            frames = renderer.render_paths(world, motion, cameras[None])
            return HeadView((round_trip_frames(vae, frames) if vae is not None else frames)[0], None, None, 0)
        references = make_references(renderer, world, motion, cameras, vae, config, vae_batch_size=vae_batch_size)
    finally:
        renderer.close()
    summary = summarize_frames([frame_scores(np.asarray(video), references)], [references.scored], config.hit_deg)
    scored = summary["frames"] > 0
    return HeadView(
        references.head_frames,
        summary["ViewDist"] if scored else None,
        summary["Head>Still"] if scored else None,
        summary["frames"],
    )


class ClipSetAlignment:
    """Scores samples of given clips of an EgoWorld clip set: their worlds rebuilt (and checked against the recorded
    doors) once, one renderer for all, made at the first call (at the samples' frame size)."""

    def __init__(self, root, records: list[dict], config: AlignmentConfig = AlignmentConfig()) -> None:
        """NotEgoWorldError when the set has no apartment seeds (user data) or was made by another EgoWorld version."""
        sources = [clip_source(root, record) for record in records]
        self.textured = sources[0].textured  # one run's setting: every clip of the set shares it
        self.body = load_default_body(sources[0].body_height)
        rest_joints = torch.as_tensor(np.asarray(self.body.rest_joints), dtype=torch.float32)
        self.worlds = [rebuild_clip_world(source, rest_joints) for source in sources]
        for world, record in zip(self.worlds, records):
            check_rebuilt(world, f"{root}/{record['path']}")
        self.config = config
        self.renderer: AlignmentRenderer | None = None

    def __call__(self, samples: list[dict], vae=None, rig: HeadCameraRig | None = None) -> dict[str, float]:
        """`alignment_metrics` of samples of these clips (in order), renders through `vae` when given."""
        if self.renderer is None:
            height, width = samples[0]["frames"].shape[1:3]
            self.renderer = AlignmentRenderer(self.body, width, height, rig, self.textured)
        return alignment_metrics(samples, self.worlds, self.renderer, vae, self.config)

    def close(self) -> None:
        if self.renderer is not None:
            self.renderer.close()
            self.renderer = None

"""Time of the visualizer on one 5 s clip, the part of the demo's budget that follows sampling: the 81-frame body
view at 320 x 320, the side-by-side mp4, the egocentric mp4 and the npz / BVH / glb exports.

    python -m benchmarks.bench_render [--clip DATA/test/CLIP_ID] [--size 320] [--repeats 3]

Uses an EgoWorld clip (the first of data/egoworld's test split, or one generated on the fly when there is none).
After one warm-up (GL context, shaders), prints the median over `--repeats` of the wall time and the CPU time (this
process with its threads, plus the ffmpeg encoders it starts) of each stage and of `export_all` as a whole. CPU time
is the figure to trust on a shared machine: wall time includes waiting for cores that other processes hold.
`--help` lists every setting.
"""

from __future__ import annotations

import dataclasses
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("PYOPENGL_PLATFORM", "egl")

from egotwin.config import parse_config  # noqa: E402
from egotwin.data.clip_format import read_clip, read_metadata  # noqa: E402
from egotwin.motion.bvh import save_bvh  # noqa: E402
from egotwin.render import compose_side_by_side, export_all, render_body_view, save_glb, write_egocentric  # noqa: E402

DEFAULT_DATA = Path("data/egoworld")


@dataclasses.dataclass(frozen=True)
class BenchRenderConfig:
    """Time of the visualizer on one 5 s clip: body view, side-by-side and egocentric mp4s, npz / BVH / glb."""

    clip: str = ""
    """An EgoWorld clip folder ('': the first test clip of data/egoworld, or one generated on the fly)."""
    size: int = 320
    """Body view size in pixels (square)."""
    repeats: int = 3
    """Timed runs of each stage (after one warm-up); the median is printed."""


def cpu_seconds() -> float:
    """CPU time of this process (all threads) and its finished children (ffmpeg)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def find_clip(clip: str, scratch: Path) -> Path:
    """The clip folder to time: `clip`, else data/egoworld's first test clip, else one generated into `scratch`."""
    if clip:
        return Path(clip)
    if (DEFAULT_DATA / "metadata.jsonl").exists():
        records = [r for r in read_metadata(DEFAULT_DATA) if r["path"].startswith("test/")] or read_metadata(
            DEFAULT_DATA
        )
        return DEFAULT_DATA / records[0]["path"]
    from egotwin.world.generate import generate

    record = generate(scratch / "world", 1, seed=0, workers=1, progress=False)[0]
    return scratch / "world" / record["path"]


def main(argv: list[str] | None = None) -> None:
    config = parse_config(BenchRenderConfig, argv, prog="python -m benchmarks.bench_render")
    if min(config.size, config.repeats) < 1:
        raise SystemExit("python -m benchmarks.bench_render: error: --size and --repeats must be positive")

    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        folder = find_clip(config.clip, scratch)
        clip = read_clip(folder)
        frames, motion, cameras, k = clip["frames"], clip["motion"], clip["camera_to_world"], clip["intrinsics"]
        caption = clip["caption"]
        width, height = frames.shape[2], frames.shape[1]
        print(f"clip {folder}: {len(frames)} frames {width}x{height}, {motion.num_frames} motion frames")
        size = (config.size, config.size)
        image_size = (width, height)

        stages = {
            "body view (render)": lambda: render_body_view(motion, k, size=size, image_size=image_size),
            "side-by-side mp4": lambda: compose_side_by_side(frames, body, scratch / "sbs.mp4", caption, "t2vm"),
            "egocentric mp4": lambda: write_egocentric(frames, scratch / "ego.mp4"),
            "npz": lambda: motion.save_npz(scratch / "motion.npz"),
            "bvh": lambda: save_bvh(motion, scratch / "motion.bvh"),
            "glb": lambda: save_glb(motion, scratch / "motion.glb"),
            "export_all (everything)": lambda: export_all(
                frames, motion, cameras, k, scratch / "all", caption=caption, mode="t2vm", size=config.size
            ),
        }
        body = render_body_view(motion, k, size=size, image_size=image_size)  # warm-up
        export_all(frames, motion, cameras, k, scratch / "warm", caption=caption, size=config.size)
        results = {name: ([], []) for name in stages}
        for _ in range(config.repeats):
            for name, stage in stages.items():
                wall, cpu = time.perf_counter(), cpu_seconds()
                stage()
                results[name][0].append(time.perf_counter() - wall)
                results[name][1].append(cpu_seconds() - cpu)
        print(f"median of {config.repeats} (after one warm-up), body view {config.size}x{config.size}:")
        print(f"{'stage':28s} {'wall s':>8s} {'cpu s':>8s}")
        for name, (walls, cpus) in results.items():
            print(f"{name:28s} {statistics.median(walls):8.3f} {statistics.median(cpus):8.3f}")
        print(f"load average: {' '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()

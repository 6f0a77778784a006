"""Command line of EgoWorld.

python -m egotwin.world generate --output_dir DIR --clips N [--seed S --workers W --width 64 --height 64
                                                           --turn_speed 120 --textured]
python -m egotwin.world preview DIR [--clips 8 --output PNG]

`python -m egotwin.world generate --help` lists every setting with its documentation.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path

from egotwin.config import parse_config, positional
from egotwin.data.constants import SPLITS

os.environ.setdefault("PYOPENGL_PLATFORM", "egl")  # headless rendering; must be set before pyrender is imported


@dataclasses.dataclass(frozen=True)
class GenerateConfig:
    """Generate EgoWorld clips into a folder (clip format: docs/clip_format.md); a stopped run resumes."""

    output_dir: str = ""
    """Folder the clips and metadata.jsonl are written to (required)."""
    clips: int = 0
    """How many clips to generate (required)."""
    seed: int = 0
    """Seed of the whole data set: the same seed and settings give the same clips."""
    workers: int = 1
    """Worker processes."""
    width: int = 64
    """Video width in pixels (at least 16)."""
    height: int = 64
    """Video height in pixels (at least 16)."""
    clips_per_apartment: int = 4
    """Clips recorded in one apartment before a new one is generated."""
    turn_speed: float = 120.0
    """Mean speed of whole-body turns, degrees per second (120 made the shipped model's data set)."""
    textured: bool = False
    """Procedural textures (wood, tiles, brick, plaster, stripes, checks) and posters; same clips otherwise."""


@dataclasses.dataclass(frozen=True)
class PreviewConfig:
    """Write a contact sheet PNG and an mp4 of a few clips of a generated folder."""

    data_root: str = positional(default="")
    """The generated clip folder (required)."""
    clips: int = 8
    """Clips on the contact sheet (the mp4 shows up to 4)."""
    output: str = ""
    """PNG path (default DATA_ROOT/preview.png; the mp4 goes next to it)."""
    scale: int = 2
    """Pixel magnification."""


def generate_command(argv: list[str]) -> None:
    config = parse_config(GenerateConfig, argv, prog="python -m egotwin.world generate")
    errors = [
        "--output_dir is required" if not config.output_dir else "",
        "--clips must be a positive number" if config.clips < 1 else "",
        "--width and --height must be at least 16" if min(config.width, config.height) < 16 else "",
        "--turn_speed must be positive" if not config.turn_speed > 0 else "",
    ]
    if any(errors):
        raise SystemExit("python -m egotwin.world generate: error: " + "; ".join(e for e in errors if e))
    from egotwin.world.generate import WorldConfig, generate

    world = WorldConfig(
        width=config.width,
        height=config.height,
        clips_per_apartment=config.clips_per_apartment,
        turn_speed_deg=config.turn_speed,
        textured=config.textured,
    )
    records = generate(Path(config.output_dir), config.clips, config.seed, config.workers, world)
    splits = {s: sum(r["split"] == s for r in records) for s in SPLITS}
    print(f"wrote {len(records)} clips to {config.output_dir} ({splits})")


def preview_command(argv: list[str]) -> None:
    config = parse_config(PreviewConfig, argv, prog="python -m egotwin.world preview")
    if not config.data_root:
        raise SystemExit("python -m egotwin.world preview: error: give the clip folder (DATA_ROOT)")
    from egotwin.world.preview import contact_sheet, preview_video

    root = Path(config.data_root)
    png = Path(config.output) if config.output else root / "preview.png"
    contact_sheet(root, png, num_clips=config.clips, scale=config.scale)
    mp4 = preview_video(root, png.with_suffix(".mp4"), num_clips=min(config.clips, 4), scale=config.scale)
    print(f"wrote {png} and {mp4}")


COMMANDS = {"generate": generate_command, "preview": preview_command}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] not in COMMANDS:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    COMMANDS[argv[0]](argv[1:])
    return 0


if __name__ == "__main__":
    sys.exit(main())

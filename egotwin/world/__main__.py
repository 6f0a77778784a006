"""Command line of EgoWorld.

python -m egotwin.world generate --out DIR --clips N --seed S --workers W [--width 64 --height 64] [--turn-speed 120]
python -m egotwin.world preview DIR [--clips 8] [--out DIR/preview.png]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("PYOPENGL_PLATFORM", "egl")  # headless rendering; must be set before pyrender is imported


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m egotwin.world", description="EgoWorld: synthetic egocentric text-video-motion clips"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    gen = sub.add_parser("generate", help="generate clips into a folder (clip format: docs/clip_format.md)")
    gen.add_argument("--out", required=True, type=Path)
    gen.add_argument("--clips", required=True, type=int)
    gen.add_argument("--seed", type=int, default=0)
    gen.add_argument("--workers", type=int, default=1)
    gen.add_argument("--width", type=int, default=64)
    gen.add_argument("--height", type=int, default=64)
    gen.add_argument("--clips-per-apartment", type=int, default=4)
    gen.add_argument("--turn-speed", type=float, default=None, help="mean speed of whole-body turns, deg/s (default 120)")
    pre = sub.add_parser("preview", help="write a contact sheet PNG and an mp4 of a few clips")
    pre.add_argument("root", type=Path)
    pre.add_argument("--clips", type=int, default=8)
    pre.add_argument(
        "--out", type=Path, default=None, help="PNG path (default ROOT/preview.png; the mp4 goes next to it)"
    )
    pre.add_argument("--scale", type=int, default=2)
    args = parser.parse_args(argv)

    if args.command == "generate":
        from egotwin.world.generate import WorldConfig, generate

        if args.width < 16 or args.height < 16:
            parser.error("--width and --height must be at least 16")
        if args.turn_speed is not None and not args.turn_speed > 0:
            parser.error("--turn-speed must be positive")
        config = WorldConfig(
            width=args.width, height=args.height, clips_per_apartment=args.clips_per_apartment,
            **({} if args.turn_speed is None else {"turn_speed_deg": args.turn_speed}),
        )
        records = generate(args.out, args.clips, args.seed, args.workers, config)
        splits = {s: sum(r["split"] == s for r in records) for s in ("train", "val", "test")}
        print(f"wrote {len(records)} clips to {args.out} ({splits})")
    else:
        from egotwin.world.preview import contact_sheet, preview_video

        png = args.out or args.root / "preview.png"
        contact_sheet(args.root, png, num_clips=args.clips, scale=args.scale)
        mp4 = preview_video(args.root, png.with_suffix(".mp4"), num_clips=min(args.clips, 4), scale=args.scale)
        print(f"wrote {png} and {mp4}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

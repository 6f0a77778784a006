"""EgoTwin demo: a Gradio app that generates an egocentric video and the wearer's whole-body motion.

    python app.py                                   # the shipped small model (assets/egotwin-tiny), CPU or CUDA
    python app.py --checkpoint runs/my_pipeline     # any folder saved by EgoTwinPipeline.save_pretrained
    EGOTWIN_CHECKPOINT=/models/egotwin-5b python app.py --device cuda --share

Runs unchanged on Hugging Face Spaces (which sets GRADIO_SERVER_NAME / GRADIO_SERVER_PORT; on ZeroGPU the sampling
call asks for the GPU through `spaces.GPU`). The page itself is `demo/ui.py`.
"""

from __future__ import annotations

import dataclasses
import faulthandler
import os
import signal
import sys
from pathlib import Path

from egotwin.config import parse_config

ROOT = Path(__file__).resolve().parent
DEFAULT_CHECKPOINT = ROOT / "assets" / "egotwin-tiny"
CHECKPOINT_ENV = "EGOTWIN_CHECKPOINT"
QUEUE_SIZE = 16
"""Visitors that may wait in line; one sampling runs at a time (it uses every core, or the whole GPU)."""


@dataclasses.dataclass(frozen=True)
class AppConfig:
    """EgoTwin demo: a Gradio app that generates an egocentric video and the wearer's whole-body motion."""

    checkpoint: str = ""
    """Pipeline folder (default: $EGOTWIN_CHECKPOINT, else assets/egotwin-tiny)."""
    device: str = ""
    """Torch device, e.g. cpu or cuda (default: cuda when present)."""
    dtype: str = "fp32"
    """Weight dtype: fp32, bf16 (on a GPU) or fp16."""
    share: bool = False
    """Also serve through a public gradio.live link."""
    port: int | None = None
    """Port (default: $GRADIO_SERVER_PORT or 7860)."""
    host: str = ""
    """Address to listen on (default: $GRADIO_SERVER_NAME or 127.0.0.1)."""
    steps: int = 50
    """Sampling steps the page starts with."""


def parse_args(argv: list[str] | None = None) -> AppConfig:
    """The app's settings from the command line, the checkpoint resolved to a path."""
    config = parse_config(AppConfig, argv, prog="python app.py")
    if config.dtype not in ("fp32", "bf16", "fp16"):
        raise SystemExit(f"python app.py: error: --dtype must be fp32, bf16 or fp16, got {config.dtype!r}")
    checkpoint = Path(config.checkpoint or os.environ.get(CHECKPOINT_ENV) or DEFAULT_CHECKPOINT)
    return dataclasses.replace(config, checkpoint=checkpoint)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if not (args.checkpoint / "model_index.json").is_file():
        sys.exit(
            f"No EgoTwin pipeline at {args.checkpoint}. Pass --checkpoint DIR (or set ${CHECKPOINT_ENV}) to a folder "
            "saved by EgoTwinPipeline.save_pretrained or `python -m training.build_pipeline`. (To see the app work "
            "before a trained model exists: `python -m training.build_pipeline --random --preset tiny --output_dir "
            "/tmp/random_pipe`, then `python app.py --checkpoint /tmp/random_pipe`; its videos are noise.)"
        )
    from demo.session import use_app_temp_dir

    use_app_temp_dir()  # before Gradio is imported: its cache goes into the app's own folder (demo/session.py)
    from demo.inputs import EXAMPLES_DIR, MAX_UPLOAD_BYTES
    from demo.runner import DemoRunner
    from demo.ui import build_demo

    # SIGTERM (what containers and Spaces send) stops the server like Ctrl+C: Gradio closes it, main returns, and
    # Python's exit handlers remove the app's folder, Gradio's cache included
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    if hasattr(signal, "SIGUSR1"):  # `kill -USR1 <pid>` prints every thread's stack: what a stuck app is waiting on
        faulthandler.register(signal.SIGUSR1, all_threads=True)
    from egotwin.pipelines.pipeline_egotwin import DTYPES

    runner = DemoRunner.from_checkpoint(args.checkpoint, device=args.device or None, torch_dtype=DTYPES[args.dtype])
    demo = build_demo(runner, default_steps=args.steps)
    demo.queue(max_size=QUEUE_SIZE, default_concurrency_limit=1)
    demo.launch(
        server_name=args.host or None,
        server_port=args.port,
        share=args.share,
        max_file_size=MAX_UPLOAD_BYTES,
        allowed_paths=[str(EXAMPLES_DIR)],
    )


if __name__ == "__main__":
    main()

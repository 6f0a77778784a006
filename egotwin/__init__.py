"""EgoTwin: one diffusion transformer that generates an egocentric video and the whole-body motion of its wearer.

    from egotwin import EgoTwinPipeline, Motion

The public names load lazily, so `import egotwin.data.constants` (or any light submodule) does not pull in torch,
diffusers or the renderer.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "EgoTwinPipeline": "egotwin.pipelines.pipeline_egotwin",
    "EgoTwinPipelineOutput": "egotwin.pipelines.pipeline_egotwin",
    "EgoTwinTransformer3DModel": "egotwin.models.transformer",
    "MotionVAE": "egotwin.models.motion_vae",
    "Motion": "egotwin.motion.motion",
    "ClipDataset": "egotwin.data.dataset",
    "read_clip": "egotwin.data.clip_format",
    "write_clip": "egotwin.data.clip_format",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'egotwin' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)

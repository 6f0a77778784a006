"""Visualisation of generated clips: the third-person body view, the side-by-side video and the exports
(mp4, SMPL-X npz, BVH, animated glb). Usable without Gradio."""

import os
import sys

# Headless offscreen rendering on Linux (Mesa through EGL) unless the caller chose a platform; PyOpenGL reads this
# once, when it is first imported, so it is set before pyrender is. macOS keeps its native context (it has no EGL).
# Without a loadable OpenGL at all, the body view draws with a software rasteriser (egotwin/render/raster.py).
if sys.platform != "darwin":
    os.environ.setdefault("PYOPENGL_PLATFORM", "egl")

from egotwin.render.body_view import BodyViewRenderer, render_body_view  # noqa: E402
from egotwin.render.compose import compose_side_by_side, write_egocentric  # noqa: E402
from egotwin.render.export import export_all  # noqa: E402
from egotwin.render.gltf import save_glb  # noqa: E402

__all__ = ["BodyViewRenderer", "compose_side_by_side", "export_all", "render_body_view", "save_glb", "write_egocentric"]

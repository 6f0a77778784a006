"""The package's layering: the public names, and what importing the sampling pipeline must not load."""

import subprocess
import sys

import egotwin
from egotwin.data import constants


def test_public_names_resolve():
    from egotwin import EgoTwinPipeline, Motion

    assert EgoTwinPipeline.__name__ == "EgoTwinPipeline" and Motion.__name__ == "Motion"
    assert set(egotwin.__all__) <= set(dir(egotwin))


def test_constants_agree_with_the_time_layout():
    assert constants.NUM_VIDEO_FRAMES == 41 and constants.NUM_MOTION_FRAMES == 81
    assert (constants.NUM_MOTION_FRAMES - 1) / constants.MOTION_FPS == (
        constants.NUM_VIDEO_FRAMES - 1
    ) / constants.VIDEO_FPS


def test_pipeline_import_does_not_load_the_world_generator_or_renderers():
    code = (
        "import sys, egotwin.pipelines; "
        "print(','.join(m for m in ('egotwin.world', 'trimesh', 'pyrender', 'OpenGL') if m in sys.modules))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == ""

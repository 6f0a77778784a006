"""The demo on a machine without OpenGL (issue 24): `python app.py` with PyOpenGL and pyrender made unimportable,
as on a bare Linux without Mesa's libEGL, starts, serves and generates, drawing the body view with the software
rasteriser (egotwin/render/raster.py). Also: importing the demo loads neither pyrender nor PyOpenGL."""

import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.bench_demo import AppServer
from demo.inputs import EXAMPLES_DIR

ROOT = Path(__file__).resolve().parent.parent
ADVANCED = (7, False, 2, 6.0, 1.5, 1.5, 0.0)  # seed, random seed, steps, w_t, w_m, w_v, motion lead
NO_OPENGL = '''
import sys


class NoOpenGL:
    """Refuses PyOpenGL and pyrender the way a machine without libEGL does: with an ImportError."""

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("OpenGL", "pyrender"):
            raise ImportError(f"Unable to load EGL library (no OpenGL on this test machine): {name}")
        return None


sys.meta_path.insert(0, NoOpenGL())
'''


@pytest.mark.slow
def test_importing_the_demo_loads_no_opengl():
    code = "import sys, app, demo.ui, demo.runner; print(sorted({'pyrender', 'OpenGL'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.slow
def test_app_generates_without_opengl(tiny_pipeline_dir, tmp_path):
    from gradio_client import Client, handle_file

    (tmp_path / "sitecustomize.py").write_text(NO_OPENGL)
    env = {"PYTHONPATH": f"{tmp_path}:{ROOT}", "PYOPENGL_PLATFORM": "egl"}
    with AppServer(tiny_pipeline_dir, steps=2, env=env) as server:
        client = Client(server.url, verbose=False)
        image = handle_file(str(EXAMPLES_DIR / "door.png"))
        video, *_, status, seed = client.predict(
            "t2vm", "go to the door", image, "standing", None, None, None, *ADVANCED, api_name="/generate"
        )
        assert Path(video).stat().st_size > 10_000 and seed == 7 and "T2VM" in status
        log = server.output()
        assert "the body view uses the software renderer" in log and "Unable to load EGL library" in log
        assert server.alive()

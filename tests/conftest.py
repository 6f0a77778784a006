import os

import pytest

# Headless rendering everywhere the tests run (Mesa llvmpipe through EGL).
os.environ.setdefault("PYOPENGL_PLATFORM", "egl")


@pytest.fixture(scope="session")
def tiny_pipeline_dir(tmp_path_factory):
    """A tiny random pipeline (test_pipeline.py's components) saved to a folder, for tests that start `app.py`."""
    import torch
    from test_pipeline import get_dummy_components

    from egotwin.models.transformer import EgoTwinTransformer3DModel
    from training.build_pipeline import random_pipeline

    folder = tmp_path_factory.mktemp("pipeline")
    components = get_dummy_components()
    torch.manual_seed(0)
    transformer = EgoTwinTransformer3DModel(**components["transformer"])
    random_pipeline(transformer, components["video_vae"], components["motion_vae"]).save_pretrained(folder)
    return folder

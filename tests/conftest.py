import os

# Headless rendering everywhere the tests run (Mesa llvmpipe through EGL).
os.environ.setdefault("PYOPENGL_PLATFORM", "egl")

#!/usr/bin/env bash
# One command from a fresh Debian/Ubuntu machine to a passing test suite (CI runs exactly this): system packages
# (Mesa EGL, Chromium for the browser test), the runtime packages, the `test` extra and the `nymeria` extra (so the
# Nymeria tests also check the projectaria-tools camera chain), then pytest with any of its arguments,
# e.g. `bash scripts/test.sh -m "not slow"`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install_system_deps.sh --browser
python -m pip install -q --disable-pip-version-check -r requirements.txt -e ".[test,nymeria]"
export PYOPENGL_PLATFORM=egl
python -m pytest "$@"

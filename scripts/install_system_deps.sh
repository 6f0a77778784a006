#!/usr/bin/env bash
# System packages EgoTwin needs on Debian/Ubuntu: Mesa's EGL + llvmpipe for headless rendering (pyrender with
# PYOPENGL_PLATFORM=egl). Video encoding uses the ffmpeg binary bundled in imageio-ffmpeg, so no system ffmpeg.
# `--browser` also installs Debian's Chromium, which the demo's browser test drives through Playwright
# (Playwright's own browser download needs network access that CI does not have).
set -euo pipefail
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends \
    libegl1 libegl-mesa0 libgl1 libgl1-mesa-dri libglx-mesa0 libgles2 >/dev/null
if [ "${1:-}" = "--browser" ]; then
    $SUDO apt-get install -y -qq --no-install-recommends chromium >/dev/null
    echo "chromium is installed at $(command -v chromium)"
fi
echo "system packages for headless rendering are installed"

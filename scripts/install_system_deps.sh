#!/usr/bin/env bash
# System packages EgoTwin needs on Debian/Ubuntu: Mesa's EGL + llvmpipe for headless rendering (pyrender with
# PYOPENGL_PLATFORM=egl). Video encoding uses the ffmpeg binary bundled in imageio-ffmpeg, so no system ffmpeg.
set -euo pipefail
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends \
    libegl1 libegl-mesa0 libgl1 libgl1-mesa-dri libglx-mesa0 libgles2 >/dev/null
echo "system packages for headless rendering are installed"

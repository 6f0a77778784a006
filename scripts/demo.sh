#!/usr/bin/env bash
# One command from a fresh Debian/Ubuntu machine to the demo: system packages (Mesa EGL for the body view; the app
# falls back to software rendering without them), the runtime Python packages, then `python app.py` with any of its
# flags, e.g. `bash scripts/demo.sh --checkpoint DIR --port 7860`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install_system_deps.sh
python -m pip install -q --disable-pip-version-check -r requirements.txt
exec python app.py "$@"

#!/usr/bin/env bash
# Install segattack (editable) into the active Python environment.
#   ./install.sh          the library and the `segattack` command
#   ./install.sh test     plus the test tools (pytest, hypothesis, ruff, mypy)
# An installed torch is kept as it is. Without one, torch 2.13.0 is installed first: on the project's
# build machines pip finds the CPU build on local disk; elsewhere install the torch build you want first.
set -euo pipefail
cd "$(dirname "$0")"
extras="${1:-}"
if ! python -c "import torch" 2>/dev/null; then
    python -m pip install "torch==2.13.0"
fi
python -m pip install -e ".${extras:+[$extras]}"

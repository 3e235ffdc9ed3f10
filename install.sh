#!/usr/bin/env bash
# Install segattack (editable) into the active Python environment.
#   ./install.sh          the library and the `segattack` command
#   ./install.sh docs     plus MkDocs, its Material theme and mkdocstrings: `mkdocs serve` shows the documentation site
#   ./install.sh test     plus the test tools (pytest, hypothesis, ruff, mypy), the documentation tools, adv-lib
#                         (without its dependencies: the reference of the minimal-norm attack's test) and, where
#                         it is missing and this script runs as root on a system with apt-get, Debian's `chromium`
#                         (the report test opens report.html in headless Chromium; without it that test is skipped)
# An installed torch is kept as it is. Without one, torch 2.13.0 is installed first: on the project's
# build machines pip finds the CPU build on local disk; elsewhere install the torch build you want first.
set -euo pipefail
cd "$(dirname "$0")"
extras="${1:-}"
if ! python -c "import torch" 2>/dev/null; then
    python -m pip install "torch==2.13.0"
fi
python -m pip install -e ".${extras:+[$extras]}"

install_chromium() {
    export DEBIAN_FRONTEND=noninteractive
    local apt=(apt-get install -y -qq --no-install-recommends -o Dpkg::Use-Pty=0 chromium)
    if ! "${apt[@]}" >/dev/null 2>&1; then
        apt-get update -qq >/dev/null 2>&1 || true
        if ! "${apt[@]}" >/dev/null 2>&1; then
            echo "install.sh: could not install chromium (the browser test will be skipped)" >&2
            return 0
        fi
    fi
    echo "install.sh: installed $(chromium --version 2>/dev/null || echo chromium)"
}

# adv-lib's alma_prox is the reference of tests/test_minimal_norm.py; its metadata requires torchvision and visdom,
# which the test never imports (it loads the two files it needs), so it is installed without its dependencies.
if [[ "$extras" == *test* ]]; then
    python -m pip install --no-deps "adv-lib==0.2.8"
fi

if [[ "$extras" == *test* ]] && ! command -v chromium >/dev/null 2>&1 \
        && command -v apt-get >/dev/null 2>&1 && [[ "$(id -u)" == 0 ]]; then
    install_chromium
fi

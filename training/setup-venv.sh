#!/usr/bin/env bash
# Makes training/.venv: Debian's python3 (torch 1.13, numpy) plus pycocotools from PyPI, which
# Debian does not package. train.py and evaluate.py run under it. Idempotent.
#   bash training/setup-venv.sh
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="$here/.venv"
if [ ! -x "$venv/bin/python" ]; then
    /usr/bin/python3 -m venv --system-site-packages "$venv"
fi
if ! "$venv/bin/python" -c "import torch, numpy, pycocotools" 2>/dev/null; then
    echo "setup-venv: pip install pycocotools into training/.venv" >&2
    "$venv/bin/python" -m pip install -q pycocotools
fi

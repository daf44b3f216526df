#!/usr/bin/env bash
# Installs what netnet needs on Debian 12 (idempotent): FFmpeg and OpenBLAS development files,
# the ffmpeg CLI (tests), PyTorch for the reference (Debian's python3-torch), and ONNX Runtime
# for the speed and parity comparisons (PyPI). Run as root or with sudo available.
set -euo pipefail

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

APT_PACKAGES=(pkg-config libavcodec-dev libavformat-dev libswscale-dev libavutil-dev libavfilter-dev
              libopenblas-dev libdnnl-dev ffmpeg python3-torch python3-numpy python3-pytest)
APT_PACKAGES+=(python3-torchvision)   # training/import_ssd.py's test: torchvision's SSD300-VGG16 as the source
APT_PACKAGES+=(python3-venv)   # training/.venv: Debian's torch + pycocotools from PyPI

# netnet serve's tests: a real RTSP server (GStreamer), curl as the HTTP client, systemd-analyze.
APT_PACKAGES+=(curl systemd gir1.2-gst-rtsp-server-1.0 python3-gi python3-gst-1.0 gstreamer1.0-plugins-base
               gstreamer1.0-plugins-good gstreamer1.0-plugins-bad)
# promtool checks /metrics (Tests/NetnetCLITests/ServeMetricsTests.swift); Debian ships it only in
# the server's package, which also enables prometheus.service where systemd runs.
APT_PACKAGES+=(prometheus)
# Durable delivery (#20): libmosquitto for the MQTT sink, the broker and its clients for the tests.
APT_PACKAGES+=(libmosquitto-dev mosquitto mosquitto-clients)
# The live view's test opens the page in a real headless browser.
APT_PACKAGES+=(chromium fonts-dejavu-core)
missing=()
for package in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ "${#missing[@]}" -gt 0 ]; then
    echo "install-deps: apt-get install ${missing[*]}" >&2
    $SUDO apt-get update -q
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# ONNX Runtime for the default python3 (the comparison scripts in training/ run under it).
if ! python3 -c "import onnxruntime, numpy, jsonschema" 2>/dev/null; then
    echo "install-deps: pip install onnxruntime numpy jsonschema" >&2
    python3 -m pip install -q onnxruntime numpy jsonschema || echo "install-deps: warning: onnxruntime not installed; ONNX comparisons will be skipped" >&2
fi

# The API fuzzer for the HTTP tests (scripts/.venv-api): schemathesis over docs/openapi.yaml.
if [ ! -x "$(dirname "$0")/.venv-api/bin/schemathesis" ]; then
    echo "install-deps: python3 -m venv scripts/.venv-api && pip install schemathesis" >&2
    (python3 -m venv "$(dirname "$0")/.venv-api" && "$(dirname "$0")/.venv-api/bin/pip" install -q schemathesis) \
        || echo "install-deps: warning: schemathesis not installed; the API fuzz test will be skipped" >&2
fi

# The training kit's environment (training/.venv): train.py, evaluate.py and their tests.
bash "$(dirname "$0")/../training/setup-venv.sh" || echo "install-deps: warning: training/.venv not set up; scoring tests will be skipped" >&2

if ! command -v swift >/dev/null; then
    echo "install-deps: swift is not on PATH; install Swift 6 (https://www.swift.org/install/linux/) first" >&2
    exit 1
fi

#!/usr/bin/env bash
# The test command: installs what is missing, builds, and runs every test suite.
#   bash scripts/test.sh
# Tests that need ../shared (real footage) skip themselves where it is absent.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
bash scripts/fetch-vtest.sh samples/vtest.avi   # the sample the annotate tests run on

echo "== Swift build (debug, with tests)"
swift build --build-tests
bin="$(swift build --show-bin-path)/netnet"

echo "== PyTorch reference and training kit tests (training/; the default model through $bin)"
python=/usr/bin/python3; [ -x training/.venv/bin/python ] && python=training/.venv/bin/python
NETNET="$bin" "$python" -m pytest -q -p no:cacheprovider training/tests

echo "== netnet detect --dump-heads vs ONNX Runtime on the reference's ONNX export (narrow width)"
if python3 -c "import onnxruntime" 2>/dev/null; then
    WIDTH=0.125 CLASSES=3 NETNET="$bin" bash scripts/parity-onnx.sh netnet-vgg16-300 netnet-vgg16-512 ssd-vgg16-300
else
    echo "skipped: onnxruntime is not installed for python3"
fi

echo "== Swift tests (XCTest and Swift Testing)"
swift test --skip-build

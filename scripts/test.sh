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
    WIDTH=0.125 CLASSES=3 NETNET="$bin" bash scripts/parity-onnx.sh netnet-vgg16-300 netnet-vgg16-512 ssd-vgg16-300 \
        netnet-vgg16-300:placement=nnem netnet-vgg16-300:gate=max+mean netnet-vgg16-300:gate=global:placement=nem13 \
        netnet-resnet101-512 ssd-resnet101-512
else
    echo "skipped: onnxruntime is not installed for python3"
fi

# Which instruction sets the GEMM libraries run here: oneDNN's ISA and OpenBLAS's core, as each
# library reports them for this environment.
isa_line() {
    local onednn openblas
    onednn="$(ONEDNN_VERBOSE=1 "$bin" bench --width 0.125 --frames 1 --warmup 0 --json 2>/dev/null | grep -o 'isa:[^,]*' | head -1 || true)"
    openblas="$(OPENBLAS_VERBOSE=2 "$bin" bench --width 0.125 --frames 1 --warmup 0 --gemm openblas --json 2>&1 >/dev/null | grep -o 'Core: .*' | head -1 || true)"
    echo "oneDNN ${onednn:-isa: unknown}; OpenBLAS ${openblas:-Core: unknown}"
}

# swift test, and where it fails, its failures once more at the end: CI keeps only the output's
# tail, where a long run's first failures are no longer. Its closing lines come last again.
swift_test() {
    local log status
    log="$(mktemp)"
    set +e
    swift test --skip-build "$@" 2>&1 | tee "$log"
    status=${PIPESTATUS[0]}
    set -e
    if [ "$status" -ne 0 ]; then
        echo "== the failures above, gathered (swift test exited $status)"
        grep -E -A3 'recorded an issue|error: |XCTAssert|Fatal error|Test Case .* failed' "$log" | grep -v '^--$' | head -150 || true
        echo "== swift test's closing lines, again"
        grep -E '^(✘|✔) Test run with|Executed [0-9]+ tests' "$log" | tail -3 || true
    fi
    rm -f "$log"
    return "$status"
}

echo "== Swift tests (XCTest and Swift Testing), pass 1: this CPU ($(isa_line))"
swift_test

# Pass 2: the numerics-sensitive suites as an AVX2-only CPU (Zen 3) runs them: oneDNN capped at
# AVX2, OpenBLAS on its Haswell kernels. On a CPU without AVX-512 this is the same ISA again.
export ONEDNN_MAX_CPU_ISA=AVX2 DNNL_MAX_CPU_ISA=AVX2 OPENBLAS_CORETYPE=Haswell
echo "== Swift tests, pass 2: kernels, engine goldens, annotate's comparisons, precision ($(isa_line))"
swift_test --filter NetnetKernelsTests --filter 'NetnetEngineTests\.GoldenTests' \
    --filter 'NetnetCLITests\.AnnotateTests/sameDetections' --filter 'NetnetCLITests\.PrecisionTests' \
    --filter 'NetnetCLITests\.DetectionMatchingTests'

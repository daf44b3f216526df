#!/usr/bin/env bash
# Speed of the Swift engine against ONNX Runtime on the same model, in the same run.
#   bash scripts/bench-vs-onnxruntime.sh [NETWORK…]      (default: netnet-vgg16-300 ssd-vgg16-300)
# Env: WIDTH (1), CLASSES (80), FRAMES (10), THREADS (2).
# Builds netnet in release mode, writes a random model per network, exports it to ONNX with the
# PyTorch reference, times both, and prints one line per network plus the ratio engine / ORT.
set -euo pipefail
cd "$(dirname "$0")/.."
networks=("$@")
[ "${#networks[@]}" -gt 0 ] || networks=(netnet-vgg16-300 ssd-vgg16-300)
width="${WIDTH:-1}"; classes="${CLASSES:-80}"; frames="${FRAMES:-10}"; threads="${THREADS:-2}"
work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT

swift build -c release --product netnet >&2
bin="$(swift build -c release --show-bin-path)/netnet"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
for network in "${networks[@]}"; do
    model="$work/$network.safetensors"
    "$bin" model init --network "$network" --width "$width" --num-classes "$classes" --seed 1 --head-init he --output "$model" >/dev/null
    /usr/bin/python3 training/export.py "$model" --onnx "$work/$network.onnx" >/dev/null
    swift_json="$("$bin" bench --model "$model" --frames "$frames" --warmup 2 --threads "$threads" --json)"
    ort_json="$(python3 training/ort_bench.py "$work/$network.onnx" --threads "$threads" --frames "$frames" --json)"
    python3 - "$network" "$swift_json" "$ort_json" <<'PY'
import json, sys
network, s, o = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
print(f"{network}: netnet {s['median_ms']:.1f} ms ({s['gflops']:.0f} GFLOP/s, peak RSS {s['peak_rss_mb']:.0f} MB) | "
      f"onnxruntime {o['median_ms']:.1f} ms | ratio netnet/ort {s['median_ms'] / o['median_ms']:.2f}")
PY
done

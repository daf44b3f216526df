#!/usr/bin/env bash
# Speed of the Swift engine against ONNX Runtime on the same model, in the same run.
#   bash scripts/bench-vs-onnxruntime.sh [NETWORK…]      (default: netnet-vgg16-300 ssd-vgg16-300)
# Env: WIDTH (1), CLASSES (80), FRAMES (10 per round), ROUNDS (3), THREADS (2),
#      CONVS ("auto": netnet's --conv choices to time, e.g. "im2col auto winograd").
# Builds netnet in release mode, writes a random model per network, exports it to ONNX with the
# PyTorch reference, times both, and prints one line per network plus the ratio engine / ORT.
set -euo pipefail
cd "$(dirname "$0")/.."
networks=("$@")
[ "${#networks[@]}" -gt 0 ] || networks=(netnet-vgg16-300 ssd-vgg16-300)
width="${WIDTH:-1}"; classes="${CLASSES:-80}"; frames="${FRAMES:-10}"; threads="${THREADS:-2}"; rounds="${ROUNDS:-3}"
read -r -a convs <<< "${CONVS:-auto}"
work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT

swift build -c release --product netnet >&2
bin="$(swift build -c release --show-bin-path)/netnet"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
for network in "${networks[@]}"; do
    model="$work/$network.safetensors"
    "$bin" model init --network "$network" --width "$width" --num-classes "$classes" --seed 1 --head-init he --output "$model" >/dev/null
    /usr/bin/python3 training/export.py "$model" --onnx "$work/$network.onnx" >/dev/null
    # Alternate the two engines over ROUNDS rounds so that a noisy neighbour on a shared machine
    # hits both alike; report each engine's median over the rounds.
    results=()
    for round in $(seq "$rounds"); do
        for conv in "${convs[@]}"; do
            results+=("$("$bin" bench --model "$model" --frames "$frames" --warmup 2 --threads "$threads" --conv "$conv" --json)")
        done
        results+=("$(python3 training/ort_bench.py "$work/$network.onnx" --threads "$threads" --frames "$frames" --json)")
    done
    python3 - "$network" "${results[@]}" <<'PY'
import json, statistics, sys
network, runs = sys.argv[1], [json.loads(r) for r in sys.argv[2:]]
ort = [r for r in runs if r.get("runtime") == "onnxruntime"]
m_ort = statistics.median(r["median_ms"] for r in ort)
fmt = lambda rs: ", ".join("%.0f" % r["median_ms"] for r in rs)
for conv in dict.fromkeys(r["conv"] for r in runs if "peak_rss_mb" in r):
    ours = [r for r in runs if "peak_rss_mb" in r and r["conv"] == conv]
    m_ours = statistics.median(r["median_ms"] for r in ours)
    print(f"{network} (--conv {conv}): netnet {m_ours:.1f} ms (rounds: {fmt(ours)}; "
          f"{max(r['gflops'] for r in ours):.0f} GFLOP/s best, peak RSS {max(r['peak_rss_mb'] for r in ours):.0f} MB) | "
          f"onnxruntime {m_ort:.1f} ms (rounds: {fmt(ort)}) | "
          f"ratio netnet/ort {m_ours / m_ort:.2f}")
PY
done

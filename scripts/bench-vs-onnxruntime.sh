#!/usr/bin/env bash
# Speed of the Swift engine against its peers on the same model, in the same run: ONNX Runtime
# (fp32) and, when `openvino` is installed for python3, OpenVINO fp32 and bf16.
#   bash scripts/bench-vs-onnxruntime.sh [NETWORK…]      (default: netnet-vgg16-300 ssd-vgg16-300)
# Env: WIDTH (1), CLASSES (80), FRAMES (10 per round), ROUNDS (3), THREADS (2),
#      CONVS ("auto": netnet's --conv choices to time in fp32, e.g. "im2col auto winograd"),
#      PRECISIONS ("fp32 bf16": netnet's --precision choices; bf16 runs with --conv auto),
#      GEMMS ("onednn": netnet's --gemm choices to time in fp32, e.g. "onednn openblas"),
#      PEERS ("onnxruntime openvino-f32 openvino-bf16"; OpenVINO is skipped with a note if missing).
# Builds netnet in release mode, writes a random model per network, exports it to ONNX with the
# PyTorch reference, times everything alternately, and prints one line per netnet configuration
# with each peer's median and the ratios (netnet / peer; the bf16 line is also compared with
# OpenVINO bf16). Before each round it prints bench/cross-core-probe.c's reading of how the
# two cores share data at that moment.
set -euo pipefail
cd "$(dirname "$0")/.."
networks=("$@")
[ "${#networks[@]}" -gt 0 ] || networks=(netnet-vgg16-300 ssd-vgg16-300)
width="${WIDTH:-1}"; classes="${CLASSES:-80}"; frames="${FRAMES:-10}"; threads="${THREADS:-2}"; rounds="${ROUNDS:-3}"
read -r -a convs <<< "${CONVS:-auto}"
read -r -a precisions <<< "${PRECISIONS:-fp32 bf16}"
read -r -a gemms <<< "${GEMMS:-onednn}"
read -r -a peers <<< "${PEERS:-onnxruntime openvino-f32 openvino-bf16}"
work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT

if ! python3 -c "import openvino" 2>/dev/null; then
    echo "note: openvino is not installed for python3 (python3 -m pip install openvino): OpenVINO not timed" >&2
    kept=(); for peer in "${peers[@]}"; do [[ "$peer" == openvino-* ]] || kept+=("$peer"); done; peers=("${kept[@]}")
fi

swift build -c release --product netnet >&2
bin="$(swift build -c release --show-bin-path)/netnet"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
# How the two cores share data at the start of each round (docs/performance.md: this VM's cores
# sometimes sit on different dies, and multi-threaded figures move with it).
probe="$work/cross-core-probe"
"${CC:-$(command -v cc || command -v clang)}" -O2 -pthread -o "$probe" bench/cross-core-probe.c
for network in "${networks[@]}"; do
    model="$work/$network.safetensors"
    "$bin" model init --network "$network" --width "$width" --num-classes "$classes" --seed 1 --head-init he --output "$model" >/dev/null
    /usr/bin/python3 training/export.py "$model" --onnx "$work/$network.onnx" >/dev/null
    # Alternate all engines over ROUNDS rounds so that a noisy neighbour on a shared machine
    # hits them alike; report each one's median over the rounds.
    results=()
    for round in $(seq "$rounds"); do
        echo "$network round $round at $(date -u +%T) UTC: $("$probe")"
        for precision in "${precisions[@]}"; do
            if [ "$precision" = fp32 ]; then run_convs=("${convs[@]}"); run_gemms=("${gemms[@]}"); else run_convs=(auto); run_gemms=(onednn); fi
            for gemm in "${run_gemms[@]}"; do
                for conv in "${run_convs[@]}"; do
                    results+=("$("$bin" bench --model "$model" --frames "$frames" --warmup 2 --threads "$threads" --conv "$conv" --precision "$precision" --gemm "$gemm" --json)")
                done
            done
        done
        for peer in "${peers[@]}"; do
            case "$peer" in
                onnxruntime) results+=("$(python3 training/ort_bench.py "$work/$network.onnx" --threads "$threads" --frames "$frames" --json)") ;;
                openvino-f32|openvino-bf16)
                    results+=("$(python3 training/openvino_bench.py "$work/$network.onnx" --precision "${peer#openvino-}" --threads "$threads" --frames "$frames" --json)") ;;
                *) echo "unknown peer '$peer'" >&2; exit 2 ;;
            esac
        done
    done
    python3 - "$network" "${results[@]}" <<'PY'
import json, statistics, sys
network, runs = sys.argv[1], [json.loads(r) for r in sys.argv[2:]]
fmt = lambda rs: ", ".join("%.0f" % r["median_ms"] for r in rs)
med = lambda rs: statistics.median(r["median_ms"] for r in rs)
peers = {}
for r in runs:
    if "peak_rss_mb" in r:
        continue
    name = "onnxruntime" if r["runtime"] == "onnxruntime" else "openvino-" + r["precision"]
    peers.setdefault(name, []).append(r)
for name, rs in peers.items():
    print(f"{network}: {name} {med(rs):.1f} ms (rounds: {fmt(rs)})")
ours = {}
for r in runs:
    if "peak_rss_mb" in r:
        ours.setdefault((r.get("precision", "fp32"), r.get("gemm", "openblas"), r["conv"]), []).append(r)
for (precision, gemm, conv), rs in ours.items():
    m = med(rs)
    ratios = "; ".join(f"/{name} {m / med(p):.2f}" for name, p in peers.items())
    print(f"{network} (--precision {precision} --gemm {gemm} --conv {conv}): netnet {m:.1f} ms (rounds: {fmt(rs)}; "
          f"{max(r['gflops'] for r in rs):.0f} GFLOP/s best, peak RSS {max(r['peak_rss_mb'] for r in rs):.0f} MB"
          + "".join(f"; Winograd {way} frames {sum(r.get('winograd_way_frames', {}).get(way, 0) for r in rs)}"
                    for way in ("shared", "parts") if any("winograd_way_frames" in r for r in rs))
          + ") | "
          f"ratio netnet{ratios}")
PY
done

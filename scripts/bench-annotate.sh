#!/usr/bin/env bash
# Pipeline throughput: `netnet annotate` with video output against the same model's
# inference-only speed (`netnet bench`), on samples/vtest.avi (795 frames, 768×576).
#   bash scripts/bench-annotate.sh [MODEL…]     (default: the bundled model, and random
#                                               netnet-vgg16-300 models at width 0.25 and 0.5)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/fetch-vtest.sh samples/vtest.avi
swift build -c release --product netnet >&2
bin="$(swift build -c release --show-bin-path)/netnet"
work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT
models=("$@")
if [ "${#models[@]}" -eq 0 ]; then
    models=(models/default.safetensors)
    for width in 0.25 0.5; do
        "$bin" model init --network netnet-vgg16-300 --width "$width" --classes person --head-init he \
            --output "$work/netnet-300-w$width.safetensors" >/dev/null
        models+=("$work/netnet-300-w$width.safetensors")
    done
fi
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
for model in "${models[@]}"; do
    infer_fps="$("$bin" bench --model "$model" --frames 30 --warmup 3 --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["fps"])')"
    start=$(date +%s.%N)
    "$bin" annotate samples/vtest.avi --model "$model" --output "$work/out.mp4" --json "$work/out.jsonl" --quiet 2>/dev/null
    end=$(date +%s.%N)
    json_start=$(date +%s.%N)
    "$bin" annotate samples/vtest.avi --model "$model" --json "$work/only.jsonl" --quiet 2>/dev/null
    json_end=$(date +%s.%N)
    python3 - "$model" "$infer_fps" "$start" "$end" "$json_start" "$json_end" <<'PY'
import sys
model, infer, s, e, js, je = sys.argv[1], float(sys.argv[2]), *map(float, sys.argv[3:])
video = 795 / (e - s); json_only = 795 / (je - js)
print(f"{model.split('/')[-1]}: inference-only {infer:.1f} fps | annotate --output+--json {video:.1f} fps ({video / infer:.0%}) | annotate --json only {json_only:.1f} fps ({json_only / infer:.0%})")
PY
done

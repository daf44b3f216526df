#!/usr/bin/env bash
# Pipeline throughput: `netnet annotate` with video output against the same model's
# inference-only speed, on samples/vtest.avi (795 frames, 768×576). Inference-only is measured
# two ways: `netnet bench` (one frame at a time on all cores, the engine's figure), and two
# `netnet bench --threads 1` processes at once (two frames at a time, one core each: what
# annotate's two inference workers could do with no decoding or encoding beside them).
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
bench_fps() { "$bin" bench --model "$1" --frames 30 --warmup 3 --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["fps"])'; }
pair_fps() {
    "$bin" bench --model "$1" --frames 30 --warmup 3 --threads 1 --kernel-threads 1 --json > "$work/pair1.json" &
    "$bin" bench --model "$1" --frames 30 --warmup 3 --threads 1 --kernel-threads 1 --json > "$work/pair2.json"
    wait
    python3 -c 'import json,sys; print(sum(json.load(open(f))["fps"] for f in sys.argv[1:]))' "$work/pair1.json" "$work/pair2.json"
}
timed() { local s e; s=$(date +%s.%N); "$@" >/dev/null 2>&1; e=$(date +%s.%N); python3 -c "print($e - $s)"; }
for model in "${models[@]}"; do
    # Inference-only speed measured before and after the two annotate runs, averaged, so that a
    # noisy neighbour on a shared machine is less likely to tilt the ratio.
    before="$(bench_fps "$model")"
    pair="$(pair_fps "$model")"
    video="$(timed "$bin" annotate samples/vtest.avi --model "$model" --output "$work/out.mp4" --json "$work/out.jsonl" --quiet)"
    json_only="$(timed "$bin" annotate samples/vtest.avi --model "$model" --json "$work/only.jsonl" --quiet)"
    after="$(bench_fps "$model")"
    python3 - "$model" "$before" "$after" "$pair" "$video" "$json_only" <<'PY'
import sys
model, before, after, pair, video_s, json_s = sys.argv[1], *map(float, sys.argv[2:])
infer = (before + after) / 2
video, json_only = 795 / video_s, 795 / json_s
print(f"{model.split('/')[-1]}: inference-only {infer:.1f} fps ({before:.1f} before, {after:.1f} after), "
      f"two single-thread processes {pair:.1f} fps | annotate --output+--json {video:.1f} fps ({video / infer:.0%}; "
      f"{video / pair:.0%} of two processes) | annotate --json only {json_only:.1f} fps ({json_only / infer:.0%})")
PY
done

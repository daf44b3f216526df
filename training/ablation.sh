#!/usr/bin/env bash
# The paper's ablation tables at our scale (docs/models.md): every variant with the same data
# (PETS09-S2L1 frames 1-500), schedule and budget (12 epochs of 32 steps at width 0.125, one class:
# person), each scored on frames 501-600 with pycocotools (AP, AP50, AP75, and APs/APm/APl with
# sizes at the frame's and at the network input's pixels).
#   table 1: ssd, nem-only, netnet                                       (seed 1)
#   table 2: the erasing gate: channel (netnet's), max, mean, max+mean, global   (seeds 1 and 2)
#   table 3: where the erasing modules sit: nem13+24 (netnet's), nem13, nem24, nnem (seeds 1 and 2)
# A run takes about 8 minutes on 2 idle CPU cores (table 1: ~25 min, table 2: ~80, table 3: ~65);
# a finished run's scores go to training/ablation/VARIANT/seedN.json (committed: the machines here
# keep nothing else between sessions), and a run with its scores there is not trained again, so it
# resumes across sessions; the tables share them: netnet's own row (channel gate, nem13+24) is one
# run for all three. Two processes with disjoint SEEDS (THREADS=1 each) use 2 cores better than one.
# DEVICE=cuda trains on a GPU where one is at hand.
#   [THREADS=N] [SEEDS="1 2"] [DEVICE=auto|cpu|cuda] bash training/ablation.sh 1|2|3 [OUT]   (OUT: runs/ablation)
#   [ABLATION_SCORES=DIR] bash training/ablation.sh 1|2|3 --table   (print the tables from the scores only)
set -euo pipefail
cd "$(dirname "$0")/.."
table="${1:-}"
declare -A network modules
case "$table" in
    1) variants=(ssd nem-only netnet); seeds="${SEEDS:-1}"
       network=([ssd]=ssd-vgg16-300)
       modules=([nem-only]='{"nnfm":false,"nem":true,"ntm":false}') ;;
    2) variants=(channel max mean max+mean global); seeds="${SEEDS:-1 2}"
       for v in max mean max+mean global; do modules[$v]="{\"gate\":\"$v\"}"; done ;;
    3) variants=(nem13+24 nem13 nem24 nnem); seeds="${SEEDS:-1 2}"
       for v in nem13 nem24 nnem; do modules[$v]="{\"placement\":\"$v\"}"; done ;;
    *) echo "usage: bash training/ablation.sh 1|2|3 [OUT|--table]   (the table of the paper to reproduce)" >&2; exit 2 ;;
esac
out="${2:-runs/ablation}"
scores="${ABLATION_SCORES:-training/ablation}"
# The run folder and the score file of a variant and seed; netnet's defaults under any table's
# name are one run.
run_name() {
    local variant="$1"
    case "$variant" in channel|nem13+24) variant=netnet ;; esac
    echo "$variant/seed$2"
}
epochs=12
common=(--width 0.125 --classes person --train pets09-train --val pets09-val --epochs "$epochs" --batch 16
        --lr 0.008 --warmup-epochs 2 --decay-at 0.67,0.87 --expand-max 2 --eval-every 6
        --threads "${THREADS:-2}" --device "${DEVICE:-auto}")
if [ "$out" != "--table" ]; then
    bash training/setup-venv.sh
    bash scripts/fetch-vtest.sh samples/vtest.avi
    for variant in "${variants[@]}"; do
        for seed in $seeds; do
            name="$(run_name "$variant" "$seed")"
            dir="$out/$name"
            [ -f "$scores/$name.json" ] && continue
            if ! { [ -f "$dir/model.safetensors" ] && [ "$(wc -l < "$dir/log.jsonl" 2>/dev/null || echo 0)" -ge "$epochs" ]; }; then
                resume=(); [ -f "$dir/checkpoint.pt" ] && resume=(--resume)
                extra=(); [ -n "${modules[$variant]:-}" ] && extra=(--modules "${modules[$variant]}")
                training/.venv/bin/python training/train.py --out "$dir" "${resume[@]}" --network "${network[$variant]:-netnet-vgg16-300}" \
                    "${extra[@]}" "${common[@]}" --seed "$seed"
            fi
            # Both size conventions of the same detections, with what made them, in one file.
            mkdir -p "$(dirname "$scores/$name.json")"
            for sizes in image input; do
                training/.venv/bin/python training/evaluate.py --model "$dir/model.safetensors" --data pets09-val --sizes "$sizes" --json
            done | /usr/bin/python3 -c 'import json, sys
image, net_input = (json.loads(line) for line in sys.stdin if line.strip())
print(json.dumps({"variant": sys.argv[1], "seed": int(sys.argv[2]), "epochs": int(sys.argv[3]),
                  "sizes_at_image": image, "sizes_at_input": net_input}, indent=1))' "$variant" "$seed" "$epochs" > "$scores/$name.json.tmp"
            mv "$scores/$name.json.tmp" "$scores/$name.json"
        done
    done
fi
# One row a run, then the mean over the seeds where there are several; a run not trained yet is
# a row saying so.
fmt='import json, sys
from pathlib import Path
key, variant, files = sys.argv[1], sys.argv[2], sys.argv[3:]
keys = ("AP", "AP50", "AP75", "APs", "APm", "APl")
f = lambda x: "n/a" if x is None else f"{x:.1f}"
rows = []
for path in files:
    seed = Path(path).stem.removeprefix("seed")
    if not Path(path).exists():
        print(f"| {variant} | {seed} | not trained yet |" + " |" * (len(keys) - 1))
        continue
    r = json.loads(Path(path).read_text())[key]
    rows.append(r)
    print(f"| {variant} | {seed} | " + " | ".join(f(r[k]) for k in keys) + " |")
if len(rows) > 1:
    mean = {k: None if any(r[k] is None for r in rows) else sum(r[k] for r in rows) / len(rows) for k in keys}
    print(f"| {variant} | mean | " + " | ".join(f(mean[k]) for k in keys) + " |")'
for sizes in image input; do
    echo
    echo "Sizes measured at the $sizes's pixels:"
    echo
    echo "| variant | seed | AP | AP50 | AP75 | APs | APm | APl |"
    echo "| --- | --- | --- | --- | --- | --- | --- | --- |"
    for variant in "${variants[@]}"; do
        files=()
        for seed in $seeds; do files+=("$scores/$(run_name "$variant" "$seed").json"); done
        /usr/bin/python3 -c "$fmt" "sizes_at_$sizes" "$variant" "${files[@]}"
    done
done

#!/usr/bin/env bash
# Our small Table 1 (docs/models.md): SSD vs NEM only vs NETNet at width 0.125, one class (person),
# the same data (PETS09-S2L1 frames 1-500), seed, schedule and budget (12 epochs), each scored on
# PETS09-S2L1 frames 501-600 with pycocotools. About 25 minutes on 2 idle CPU cores.
#   [THREADS=N] bash training/table1.sh [OUT]      (default OUT: runs/table1; finished runs are kept, so it resumes)
set -euo pipefail
cd "$(dirname "$0")/.."
bash training/setup-venv.sh
bash scripts/fetch-vtest.sh samples/vtest.avi
out="${1:-runs/table1}"
common=(--width 0.125 --classes person --train pets09-train --val pets09-val --epochs 12 --batch 16
        --lr 0.008 --warmup-epochs 2 --decay-at 0.67,0.87 --expand-max 2 --eval-every 6 --seed 1 --threads "${THREADS:-2}")
declare -A network=([ssd]=ssd-vgg16-300 [nem-only]=netnet-vgg16-300 [netnet]=netnet-vgg16-300)
declare -A modules=([ssd]='' [nem-only]='{"nnfm":false,"nem":true,"ntm":false}' [netnet]='')
for variant in ssd nem-only netnet; do
    dir="$out/$variant"
    if [ -f "$dir/model.safetensors" ] && [ "$(wc -l < "$dir/log.jsonl" 2>/dev/null || echo 0)" -ge 12 ]; then continue; fi
    resume=(); [ -f "$dir/checkpoint.pt" ] && resume=(--resume)
    extra=(); [ -n "${modules[$variant]}" ] && extra=(--modules "${modules[$variant]}")
    training/.venv/bin/python training/train.py --out "$dir" "${resume[@]}" --network "${network[$variant]}" \
        "${extra[@]}" "${common[@]}"
done
fmt='import json,sys; r=json.load(sys.stdin); v=sys.argv[1]; f=lambda x: "n/a" if x is None else f"{x:.1f}"; print(f"| {v} | " + " | ".join(f(r[k]) for k in ("AP","AP50","AP75","APs","APm","APl")) + " |")'
for sizes in image input; do
    echo
    echo "Sizes measured at the $sizes's pixels:"
    echo
    echo "| variant | AP | AP50 | AP75 | APs | APm | APl |"
    echo "| --- | --- | --- | --- | --- | --- | --- |"
    for variant in ssd nem-only netnet; do
        training/.venv/bin/python training/evaluate.py --model "$out/$variant/model.safetensors" --data pets09-val \
            --sizes "$sizes" --json | /usr/bin/python3 -c "$fmt" "$variant"
    done
done

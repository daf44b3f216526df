#!/usr/bin/env bash
# Trains the bundled default model (models/default.safetensors; docs/models.md): netnet-vgg16-300,
# width 0.125, one class (person), on PETS09-S2L1 frames 1-500 + TUD-Campus + COCO128's people,
# validated on PETS09-S2L1 frames 501-600. About an hour on 2 CPU cores. Resumable: run it again.
#   [THREADS=N] bash training/train_default.sh [OUT]      (default OUT: runs/default; THREADS: 2)
set -euo pipefail
cd "$(dirname "$0")/.."
bash training/setup-venv.sh
bash scripts/fetch-vtest.sh samples/vtest.avi
out="${1:-runs/default}"
resume=(); [ -f "$out/checkpoint.pt" ] && resume=(--resume)
training/.venv/bin/python training/train.py --out "$out" "${resume[@]}" \
    --network netnet-vgg16-300 --width 0.125 --classes person \
    --train pets09-train,tud-campus,coco128-person --val pets09-val \
    --epochs 25 --batch 16 --lr 0.008 --warmup-epochs 2 --decay-at 0.67,0.87 \
    --expand-max 2 --eval-every 5 --seed 1 --threads "${THREADS:-2}"
# The shipped file: the same tensors, with the model card's description in its metadata.
training/.venv/bin/python - "$out" <<'PY'
import sys
sys.path.insert(0, "training")
from netnet_ref import safetensors_io
out = sys.argv[1]
tensors, md = safetensors_io.read(f"{out}/model.safetensors")
md["description"] = ("person detector trained by training/train_default.sh on PETS09-S2L1 frames 1-500, "
                     "TUD-Campus and COCO128's people; CC BY-NC-SA 3.0 (docs/models.md)")
safetensors_io.write(f"{out}/default.safetensors", tensors, md)
print(f"wrote {out}/default.safetensors (install: cp {out}/default.safetensors models/)")
PY

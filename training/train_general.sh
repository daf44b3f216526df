#!/usr/bin/env bash
# Trains the candidate general default model (docs/models.md, "A model for cameras it has never
# seen"): netnet-vgg16-300, width 0.125, one class (person), on every source in ../shared/data
# except the two held out whole as unseen (tud-campus: a street-level camera; pennfudan: street
# and campus photos), overhead-store's valid split and one fifth of web-persons (kept back as
# those sources' checks). Validated during training on PETS09-S2L1 frames 501-600, the two unseen
# sources and overhead-store's valid split.
# Many hours on 2 CPU cores: resumable (run it again), and MINUTES stops it cleanly after an epoch.
#   [THREADS=N] [EPOCHS=E] [MINUTES=M] [SEED=S] [DEVICE=cpu|cuda] bash training/train_general.sh [OUT]   (OUT: runs/general)
# Fine-tuning a finished run with the teacher (docs/models.md, "The teacher"): INIT=CHECKPOINT
# starts from its weights on a new schedule (LR, WARMUP, DECAY_AT set it), TEACHER=FILE adds
# the teacher's missed people (training/teacher.py label over the same sets), TEACHER_LABEL_AT=T
# makes the confident ones labels. OCCLUDE=P pastes people in front of people (train.py --occlude).
set -euo pipefail
cd "$(dirname "$0")/.."
bash training/setup-venv.sh
bash scripts/fetch-vtest.sh samples/vtest.avi
out="${1:-runs/general}"
data="${NETNET_SHARED:-../shared}/data"
resume=(); [ -f "$out/checkpoint.pt" ] && resume=(--resume)
extra=()
[ -n "${INIT:-}" ] && extra+=(--init "$INIT")
[ -n "${TEACHER:-}" ] && extra+=(--teacher "$TEACHER")
[ -n "${TEACHER_LABEL_AT:-}" ] && extra+=(--teacher-label-at "$TEACHER_LABEL_AT")
[ -n "${OCCLUDE:-}" ] && extra+=(--occlude "$OCCLUDE")
train="pets09-train,pets09-train,coco128-person"
train+=",yolo:$data/retail-cctv@train,yolo:$data/indoor-cctv@train"
train+=",yolo:$data/caltech-street@train,yolo:$data/caltech-street@valid"
train+=",yolo:$data/web-persons@test#!0/5"
# The overhead view (heads and shoulders) is in no other source: its small train split counts twice.
train+=",yolo:$data/overhead-store@train,yolo:$data/overhead-store@train"
val="pets09-val,tud-campus,pennfudan:$data/pennfudan,yolo:$data/overhead-store@valid"
training/.venv/bin/python training/train.py --out "$out" "${resume[@]}" "${extra[@]}" \
    --network netnet-vgg16-300 --width 0.125 --classes person --alias 0=person \
    --train "$train" --val "$val" \
    --epochs "${EPOCHS:-16}" --batch 16 --lr "${LR:-0.008}" --warmup-epochs "${WARMUP:-1}" --decay-at "${DECAY_AT:-0.7,0.9}" \
    --expand-max 3 --eval-every "${EVAL_EVERY:-4}" --seed "${SEED:-1}" --threads "${THREADS:-2}" \
    --device "${DEVICE:-auto}" --max-minutes "${MINUTES:-0}"

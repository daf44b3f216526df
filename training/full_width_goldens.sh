#!/usr/bin/env bash
# Regenerate the full-width (width 1, 80 COCO classes, seed 1, golden init) netnet-vgg16-300 and
# netnet-vgg16-512 model + golden files into OUTDIR, in about a minute on 2 cores. They are big
# (300: 157 MB model + 21 MB golden; 512: 164 MB + 60 MB): never commit them. The golden forward
# runs in float64 with /usr/bin/python3 (torch); set NETNET_TORCH_PYTHON to use another one.
#     training/full_width_goldens.sh OUTDIR
set -euo pipefail
if [ $# -ne 1 ]; then
    echo "usage: $0 OUTDIR" >&2
    exit 2
fi
OUTDIR=$1
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PY=${NETNET_TORCH_PYTHON:-/usr/bin/python3}
mkdir -p "$OUTDIR"
for net in netnet-vgg16-300 netnet-vgg16-512; do
    "$PY" "$HERE/make_goldens.py" --network "$net" --width 1 --num-classes 80 --seed 1 \
        --golden-biases --out-dir "$OUTDIR"
done

#!/usr/bin/env bash
# Regenerate the full-width (width 1, 80 COCO classes, seed 1, golden init) netnet-vgg16-300,
# netnet-vgg16-512 and netnet-resnet101-512 model + golden files into OUTDIR (or only the
# networks named after it), in a few minutes on 2 cores. They are big (300: 157 MB model + 21 MB
# golden; 512: 164 MB + 60 MB; ResNet-101: ~270 MB + ~70 MB): never commit them. The golden forward
# runs in float64 with /usr/bin/python3 (torch); set NETNET_TORCH_PYTHON to use another one.
#     training/full_width_goldens.sh OUTDIR [NETWORK…]
set -euo pipefail
if [ $# -lt 1 ]; then
    echo "usage: $0 OUTDIR [NETWORK…]" >&2
    exit 2
fi
OUTDIR=$1
shift
networks=("$@")
[ "${#networks[@]}" -gt 0 ] || networks=(netnet-vgg16-300 netnet-vgg16-512 netnet-resnet101-512)
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PY=${NETNET_TORCH_PYTHON:-/usr/bin/python3}
mkdir -p "$OUTDIR"
for net in "${networks[@]}"; do
    "$PY" "$HERE/make_goldens.py" --network "$net" --width 1 --num-classes 80 --seed 1 \
        --golden-biases --out-dir "$OUTDIR"
done

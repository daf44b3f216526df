#!/usr/bin/env bash
# Full-width parity: regenerates goldens for netnet-vgg16-300, netnet-vgg16-512 and
# netnet-resnet101-512 (width 1,
# 80 classes, random weights) with the PyTorch reference, then checks the Swift engine on them
# level by level (max |err| / max |golden| ≤ 1e-4). About 2 minutes on 2 cores; needs ~1 GB disk.
#   bash scripts/parity-full-width.sh [WORKDIR]
set -euo pipefail
cd "$(dirname "$0")/.."
work="${1:-$(mktemp -d)}"
swift build -c release --product netnet >&2
bin="$(swift build -c release --show-bin-path)/netnet"
bash training/full_width_goldens.sh "$work"
status=0
for net in netnet-vgg16-300 netnet-vgg16-512 netnet-resnet101-512; do
    echo "== $net (width 1)"
    "$bin" parity --model "$work/$net-w1.safetensors" --golden "$work/$net-w1.golden.safetensors" || status=1
done
[ -n "${1:-}" ] || rm -rf "$work"
exit $status

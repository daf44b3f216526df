#!/usr/bin/env bash
# `netnet detect --dump-heads` against ONNX Runtime running the reference's ONNX export of the
# same model on the same input: loc and conf within 1e-4 relative.
#   bash scripts/parity-onnx.sh [NETWORK[:gate=G][:placement=P]…]   (default: netnet-vgg16-300 netnet-vgg16-512 netnet-resnet101-512)
#   e.g. netnet-vgg16-300:gate=global or netnet-vgg16-300:placement=nnem (the paper's Tables 2 and 3)
# Env: WIDTH (1), CLASSES (80), NETNET (a netnet binary; default: release build).
set -euo pipefail
cd "$(dirname "$0")/.."
networks=("$@")
[ "${#networks[@]}" -gt 0 ] || networks=(netnet-vgg16-300 netnet-vgg16-512 netnet-resnet101-512)
width="${WIDTH:-1}"; classes="${CLASSES:-80}"
work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT
if [ -z "${NETNET:-}" ]; then
    swift build -c release --product netnet >&2
    NETNET="$(swift build -c release --show-bin-path)/netnet"
fi
ffmpeg -loglevel error -f lavfi -i testsrc2=size=640x360 -frames:v 1 "$work/frame.png"
status=0
for variant in "${networks[@]}"; do
    IFS=: read -r network options <<<"$variant"
    extra=()
    IFS=: read -ra parts <<<"${options:-}"
    for part in "${parts[@]}"; do
        [ -n "$part" ] && extra+=("--${part%%=*}" "${part#*=}")
    done
    name="${variant//[:=+]/-}"
    model="$work/$name.safetensors"
    "$NETNET" model init --network "$network" --width "$width" --num-classes "$classes" --seed 3 --head-init he \
        "${extra[@]}" --output "$model" >/dev/null
    /usr/bin/python3 training/export.py "$model" --onnx "$work/$name.onnx" >/dev/null
    "$NETNET" detect --model "$model" --dump-heads "$work/heads-$name" "$work/frame.png" >/dev/null 2>&1
    echo "== $variant (width $width): --dump-heads vs ONNX Runtime"
    python3 training/check_heads_onnx.py --onnx "$work/$name.onnx" --heads "$work/heads-$name" || status=1
done
exit $status

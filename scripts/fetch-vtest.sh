#!/usr/bin/env bash
# Puts vtest.avi (PETS 2009 S2L1, 768×576, 795 frames: the camera of ../shared/data/pets09-s2l1)
# at samples/vtest.avi, taken from Debian's opencv-doc package, so that no binary video sits in git.
#   bash scripts/fetch-vtest.sh [DEST]
set -euo pipefail
cd "$(dirname "$0")/.."
dest="${1:-samples/vtest.avi}"
if [ -s "$dest" ]; then exit 0; fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$work" && apt-get download opencv-doc >/dev/null 2>&1) || {
    apt-get update -q >/dev/null && (cd "$work" && apt-get download opencv-doc >/dev/null)
}
dpkg-deb --fsys-tarfile "$work"/opencv-doc_*.deb |
    tar -x -C "$work" ./usr/share/doc/opencv-doc/examples/data/vtest.avi
mkdir -p "$(dirname "$dest")"
mv "$work/usr/share/doc/opencv-doc/examples/data/vtest.avi" "$dest"
echo "fetch-vtest: wrote $dest" >&2

#!/usr/bin/env bash
# One command from a fresh Debian 12 machine: install what is missing, build netnet (release),
# fetch the sample camera footage, and annotate it with the bundled default model.
#   bash scripts/quickstart.sh
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
bash scripts/fetch-vtest.sh samples/vtest.avi

echo "== building netnet (release)" >&2
swift build -c release --product netnet
bin="$(swift build -c release --show-bin-path)/netnet"

echo "== the bundled default model" >&2
"$bin" model info

echo "== annotate samples/vtest.avi → samples/vtest-annotated.mp4 + samples/vtest.jsonl" >&2
"$bin" annotate samples/vtest.avi --output samples/vtest-annotated.mp4 --json samples/vtest.jsonl
echo "== detect on the first frame of samples/vtest.avi" >&2
"$bin" detect --threshold 0.3 samples/vtest.avi

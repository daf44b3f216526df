#!/usr/bin/env bash
# Writes the example outputs in samples/ from real runs of netnet on the sample clip, so that no
# example line is written by hand:
#   samples/annotate.jsonl         `netnet annotate --every 2` on the clip's first 8 frames (netnet.frame/1)
#   samples/annotate-events.jsonl  its `--events` (netnet.event/1)
#   samples/serve.jsonl            `netnet serve` on the clip's first 14 frames, played as a looping
#                                  camera, until it has ended and reconnected once, then SIGTERM
#                                  (netnet.frame/1, netnet.event/1 and netnet.status/1)
#   bash scripts/make-samples.sh        (NETNET=path/to/netnet; default: the debug build)
# The tests (SamplesTests) check the lines against docs/schemas; run this again when a schema or
# the writers' format changes.
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${NETNET:-.build/debug/netnet}"
[ -x "$bin" ] || { echo "make-samples.sh: no netnet at $bin (swift build, or set NETNET)" >&2; exit 2; }
bin="$(realpath "$bin")"
bash scripts/fetch-vtest.sh samples/vtest.avi
work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT

# annotate: 8 frames, the network on every second (0, 2, 4, 6); tracks are confirmed at their
# third detected frame (4), so frames 5 and 7 hold the tracker's predictions with track ids.
ffmpeg -loglevel error -i samples/vtest.avi -frames:v 8 -c copy "$work/vtest.avi"
(cd "$work" && "$bin" annotate vtest.avi --every 2 --json annotate.jsonl --events annotate-events.jsonl --quiet)
mv "$work/annotate.jsonl" samples/annotate.jsonl
mv "$work/annotate-events.jsonl" samples/annotate-events.jsonl

# serve: 14 frames (1.4 s at the file's 10 fps) as stream "sample", every 3rd frame inferred
# (0, 3, 6, 9, 12: tracks confirmed from frame 6; a reconnect starts a new tracker).
ffmpeg -loglevel error -i samples/vtest.avi -frames:v 14 -c copy "$work/clip.avi"
cat > "$work/serve.conf" <<CONF
[global]
listen = 127.0.0.1:0
stdout = true
[stream sample]
url = $work/clip.avi
every = 3
CONF
"$bin" serve --config "$work/serve.conf" > "$work/serve.jsonl" 2> "$work/serve.log" &
pid=$!
for _ in $(seq 600); do
    # Streaming again after the clip ended, and a frame line since: one whole loop seen.
    if [ "$(grep -c '"state": "streaming"' "$work/serve.jsonl" || true)" -ge 2 ] &&
       tail -n 1 "$work/serve.jsonl" | grep -q '"schema": "netnet.frame/1"'; then
        break
    fi
    kill -0 "$pid" 2>/dev/null || { cat "$work/serve.log" >&2; exit 1; }
    sleep 0.1
done
kill -TERM "$pid"
wait "$pid" || { cat "$work/serve.log" >&2; exit 1; }
mv "$work/serve.jsonl" samples/serve.jsonl
wc -l samples/annotate.jsonl samples/annotate-events.jsonl samples/serve.jsonl >&2

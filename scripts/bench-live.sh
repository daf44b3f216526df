#!/usr/bin/env bash
# Live-view benchmark for `netnet serve` (not a test): does watching slow inference? One run, three
# phases of SECONDS_EACH on the same daemon: no viewer, then VIEWERS curl clients reading one
# stream's live.mjpeg plus one client that connects and never reads, then no viewer again (the
# two no-viewer phases show the host's own noise). STREAMS streams play the
# clip at its frame rate, more frames than the one inference thread can take, so inference runs
# flat out and any CPU the live pictures take shows as lost inference fps. Prints inference fps
# (all streams, from /metrics), resident memory, and the live figures (pictures encoded, skipped).
#
#   bash scripts/bench-live.sh                          # release build, samples/vtest.avi
#   NETNET=.build/debug/netnet SECONDS_EACH=20 bash scripts/bench-live.sh
#
# Everything listens on 127.0.0.1 only and stops by itself.
set -euo pipefail
cd "$(dirname "$0")/.."

NETNET="${NETNET:-.build/release/netnet}"
CLIP="${CLIP:-samples/vtest.avi}"
SECONDS_EACH="${SECONDS_EACH:-30}"
STREAMS="${STREAMS:-16}"
VIEWERS="${VIEWERS:-20}"
[ -x "$NETNET" ] || { echo "bench-live: no $NETNET (swift build -c release, or NETNET=.build/debug/netnet)" >&2; exit 2; }
[ -f "$CLIP" ] || { echo "bench-live: no $CLIP (bash scripts/fetch-vtest.sh)" >&2; exit 2; }

work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    [ -n "${serve:-}" ] && kill "$serve" 2>/dev/null || true
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

# The clip looped (no re-encoding), so no stream reaches its end during the run.
ffmpeg -loglevel error -y -stream_loop 5 -i "$CLIP" -c copy "$work/clip.mkv"
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
{
    printf '[global]\nlisten = 127.0.0.1:%s\nlive_fps = 5\nlive_width = 640\n' "$port"
    for i in $(seq 1 "$STREAMS"); do printf '[stream s%s]\nurl = %s/clip.mkv\n' "$i" "$work"; done
} > "$work/bench.conf"
"$NETNET" serve --config "$work/bench.conf" > /dev/null 2> "$work/serve.log" &
serve=$!
base="http://127.0.0.1:$port"

metric() {   # the sum of a family's samples (optionally those matching a label filter)
    curl -s "$base/metrics" | awk -v name="$1" -v filter="${2:-}" \
        'index($0, name) == 1 && (filter == "" || index($0, filter)) { sum += $NF } END { printf "%d\n", sum }'
}
rss_mb() { awk '/^VmRSS:/ { printf "%.1f\n", $2 / 1024 }' "/proc/$serve/status"; }

for _ in $(seq 1 120); do
    [ "$(metric netnet_frames_inferred_total)" -gt 0 ] 2>/dev/null && break
    sleep 0.5
done
sleep 20   # warm-up: every stream connected, the model's buffers allocated

measure() {   # inference fps over SECONDS_EACH, and the RSS at its end
    local before after
    before=$(metric netnet_frames_inferred_total)
    sleep "$SECONDS_EACH"
    after=$(metric netnet_frames_inferred_total)
    echo "$(( (after - before) )) $(rss_mb)"
}

read -r frames0 rss0 < <(measure)

for _ in $(seq 1 "$VIEWERS"); do
    curl -s -o /dev/null "$base/api/streams/s1/live.mjpeg" &
    pids+=($!)
done
python3 - "$port" <<'EOF' &
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"GET /api/streams/s1/live.mjpeg HTTP/1.1\r\nHost: bench\r\n\r\n")
time.sleep(100000)   # never reads
EOF
pids+=($!)
sleep 5
encoded0=$(metric netnet_live_frames_encoded_total)
skipped0=$(metric netnet_live_frames_skipped_total)
read -r frames1 rss1 < <(measure)
viewers=$(metric netnet_live_viewers)
encoded=$(( $(metric netnet_live_frames_encoded_total) - encoded0 ))
skipped=$(( $(metric netnet_live_frames_skipped_total) - skipped0 ))
for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
pids=()
sleep 3
read -r frames2 rss2 < <(measure)

fps0=$(awk -v f="$frames0" -v s="$SECONDS_EACH" 'BEGIN { printf "%.2f", f / s }')
fps1=$(awk -v f="$frames1" -v s="$SECONDS_EACH" 'BEGIN { printf "%.2f", f / s }')
fps2=$(awk -v f="$frames2" -v s="$SECONDS_EACH" 'BEGIN { printf "%.2f", f / s }')
echo "load average at the end (other work on the host shows here): $(cut -d' ' -f1-3 /proc/loadavg)"
echo "netnet serve, $STREAMS streams of $CLIP at its frame rate, ${SECONDS_EACH} s per phase ($NETNET)"
printf '%-34s %10s %9s %26s\n' "phase" "inference" "RSS" "live pictures"
printf '%-34s %6s fps %6s MB %26s\n' "no viewer" "$fps0" "$rss0" "-"
printf '%-34s %6s fps %6s MB %26s\n' "$VIEWERS readers + 1 that never reads" "$fps1" "$rss1" \
    "$encoded encoded, $skipped skipped"
printf '%-34s %6s fps %6s MB %26s\n' "no viewer again" "$fps2" "$rss2" "-"
echo "viewers counted while watched: $viewers; inference fps watched against the mean of the others: $(awk -v a="$fps0" -v b="$fps1" -v c="$fps2" 'BEGIN { printf "%+.1f %%", (b - (a + c) / 2) / ((a + c) / 2) * 100 }')"
kill -TERM "$serve"
wait "$serve" || true
serve=

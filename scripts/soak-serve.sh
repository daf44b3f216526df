#!/usr/bin/env bash
# Soak benchmark for `netnet serve` (not a test): two streams on 127.0.0.1 — GStreamer's RTSP
# server (scripts/rtsp-server.py) and ffmpeg serving MPEG-TS over TCP — for DURATION seconds with
# DISCONNECTS forced disconnects (the servers are killed in turn and restarted). Prints resident
# memory over time, the growth after warm-up, the reconnects /metrics counts against the forced
# disconnects and the connecting events a curl SSE client saw, and the exit status of SIGTERM.
#
#   bash scripts/soak-serve.sh                     # 600 s, 20 disconnects, release build
#   DURATION=120 DISCONNECTS=6 bash scripts/soak-serve.sh
#   NETNET=.build/debug/netnet bash scripts/soak-serve.sh
#
# Part of the way through it also attacks the daemon: at 1/4 and 1/2 an HTTP flood (FLOOD idle
# connections, default 3000, held 20 s: more than the connection cap), at 3/4 a descriptor
# squeeze (prlimit lowers the running daemon's soft RLIMIT_NOFILE to SQUEEZE, default 200, for 20 s,
# while FLOOD/3 idle connections press on it). After each, /healthz must answer.
#
# Exit status 0 when: no crash, RSS growth after the first flood under 10 MB, every forced disconnect
# reconnected and counted (reconnects_total = connecting transitions - 1 for each stream),
# /healthz answers after the flood and the squeeze, the JSON lines files hold whole lines with
# no seq gap in any stream and no file-sink drop, and SIGTERM exits 0. Everything listens on
# 127.0.0.1 only and stops by itself.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION="${DURATION:-600}"
DISCONNECTS="${DISCONNECTS:-20}"
WARMUP="${WARMUP:-60}"
FLOOD="${FLOOD:-3000}"
SQUEEZE="${SQUEEZE:-200}"
NETNET="${NETNET:-.build/release/netnet}"
if [ ! -x "$NETNET" ]; then
    echo "soak: building release" >&2
    swift build -c release --product netnet >&2
fi
for tool in ffmpeg curl /usr/bin/python3; do command -v "$tool" >/dev/null || { echo "soak: $tool missing" >&2; exit 1; }; done

work="$(mktemp -d /tmp/netnet-soak.XXXXXX)"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    [ -f "$work/tcp.pid" ] && kill "$(cat "$work/tcp.pid")" 2>/dev/null || true
    [ -n "${rtsp_pid:-}" ] && kill "$rtsp_pid" 2>/dev/null || true
    wait 2>/dev/null || true
    echo "soak: files in $work" >&2
}
trap cleanup EXIT

port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
RTSP_PORT="$(port)"; TCP_PORT="$(port)"

# A 2 s clip, and a long one looped from it without re-encoding for the RTSP server.
ffmpeg -loglevel error -y -f lavfi -i testsrc=size=640x360:rate=10 -t 2 -c:v libx264 -g 10 -pix_fmt yuv420p "$work/short.mp4"
ffmpeg -loglevel error -y -stream_loop $(( DURATION / 2 + 60 )) -i "$work/short.mp4" -c copy "$work/long.mp4"

start_rtsp() {
    /usr/bin/python3 scripts/rtsp-server.py "$RTSP_PORT" cam "$work/long.mp4" >>"$work/rtsp.log" 2>&1 &
    rtsp_pid=$!
}
start_rtsp
# ffmpeg's TCP listener serves one client and exits when it goes; the loop restarts it.
( while [ ! -f "$work/stop" ]; do
      ffmpeg -loglevel error -re -stream_loop -1 -i "$work/short.mp4" -c copy -f mpegts "tcp://127.0.0.1:$TCP_PORT?listen=1" &
      echo $! >"$work/tcp.pid"
      wait $! || true
      sleep 0.2
  done ) >>"$work/tcp.log" 2>&1 &
tcp_loop=$!
pids+=("$tcp_loop")
sleep 1

cat >"$work/netnet.conf" <<EOF
[global]
listen = 127.0.0.1:0
json_lines = $work/events.jsonl
json_lines_max_bytes = 8M
json_lines_keep = 2
stall_timeout = 5
open_timeout = 5
backoff_base = 0.5
backoff_cap = 4
[stream rtsp]
url = rtsp://127.0.0.1:$RTSP_PORT/cam
[stream tcp]
url = tcp://127.0.0.1:$TCP_PORT
EOF

"$NETNET" serve --config "$work/netnet.conf" 2>"$work/serve.log" &
serve=$!
pids+=("$serve")
for _ in $(seq 100); do grep -q "listening on" "$work/serve.log" && break; sleep 0.2; done
HTTP="$(sed -n 's/.*listening on \(http:[^,]*\),.*/\1/p' "$work/serve.log" | head -1)"
[ -n "$HTTP" ] || { echo "soak: the daemon did not start" >&2; cat "$work/serve.log" >&2; exit 1; }
curl -sS -N --max-time $(( DURATION + 30 )) -o "$work/events.sse" "$HTTP/api/events" &
pids+=("$!")
echo "soak: $NETNET on $HTTP, rtsp://127.0.0.1:$RTSP_PORT/cam and tcp://127.0.0.1:$TCP_PORT, ${DURATION}s, $DISCONNECTS disconnects"

rss() { awk '/VmRSS/ {print $2}' "/proc/$serve/status"; }
# flood N SECONDS: holds N idle connections to the API for SECONDS; prints how many the server
# answered 503, closed without a word, or left open.
flood() {
    /usr/bin/python3 - "$HTTP" "$1" "$2" <<'PY'
import socket, sys, time
url, n, hold = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
host, port = url.split("//")[1].split(":")
socks = []
for _ in range(n):
    try:
        s = socket.create_connection((host, int(port)), timeout=2); s.setblocking(False); socks.append(s)
    except OSError:
        pass
end = time.time() + hold
state = {}
while time.time() < end:
    for i, s in enumerate(socks):
        if i in state: continue
        try:
            b = s.recv(512)
            state[i] = "refused" if b.startswith(b"HTTP/1.1 503") else "closed"
        except BlockingIOError:
            pass
        except OSError:
            state[i] = "closed"
    time.sleep(0.2)
v = list(state.values())
print(f"connected {len(socks)}, refused {v.count('refused')}, closed by the server {v.count('closed')}, still open {len(socks) - len(v)}")
PY
}
healthz() { curl -sS --max-time 5 "$HTTP/healthz" 2>/dev/null || true; }
flood_at=$(( DURATION / 4 )); flood2_at=$(( DURATION / 2 )); squeeze_at=$(( 3 * DURATION / 4 ))
flooded=0; flooded2=0; squeezed=0; attack_ok=1; after_flood=""
: >"$work/attacks.txt"
interval=$(( DURATION / (DISCONNECTS + 1) ))
start=$(date +%s)
next_kill=$(( start + interval ))
forced_rtsp=0; forced_tcp=0; k=0
: >"$work/rss.txt"
while :; do
    now=$(date +%s); t=$(( now - start ))
    [ "$t" -ge "$DURATION" ] && break
    kill -0 "$serve" 2>/dev/null || { echo "soak: CRASH: the daemon died at ${t}s" >&2; tail -5 "$work/serve.log" >&2; exit 1; }
    echo "$t $(rss)" >>"$work/rss.txt"
    if [ "$now" -ge "$next_kill" ] && [ "$k" -lt "$DISCONNECTS" ]; then
        if [ $(( k % 2 )) -eq 0 ]; then
            kill -9 "$rtsp_pid"; wait "$rtsp_pid" 2>/dev/null || true
            sleep 1; start_rtsp; forced_rtsp=$(( forced_rtsp + 1 ))
        else
            kill -9 "$(cat "$work/tcp.pid")" || true; forced_tcp=$(( forced_tcp + 1 ))
        fi
        k=$(( k + 1 )); next_kill=$(( next_kill + interval ))
    fi
    if [ "$flooded" -eq 0 ] && [ "$t" -ge "$flood_at" ]; then
        flooded=1
        echo "t=${t}s HTTP flood ($FLOOD idle, 20 s): $(flood "$FLOOD" 20)" | tee -a "$work/attacks.txt"
        h="$(healthz)"; echo "  /healthz after the flood: ${h:-no answer}; RSS $(rss) kB" | tee -a "$work/attacks.txt"
        [ "$h" = ok ] || attack_ok=0
        after_flood="$(rss)"
    fi
    if [ "$flooded2" -eq 0 ] && [ "$t" -ge "$flood2_at" ]; then
        flooded2=1
        echo "t=${t}s second HTTP flood ($FLOOD idle, 20 s): $(flood "$FLOOD" 20)" | tee -a "$work/attacks.txt"
        h="$(healthz)"; echo "  /healthz after the second flood: ${h:-no answer}; RSS $(rss) kB" | tee -a "$work/attacks.txt"
        [ "$h" = ok ] || attack_ok=0
    fi
    if [ "$squeezed" -eq 0 ] && [ "$t" -ge "$squeeze_at" ]; then
        squeezed=1
        old_limit="$(prlimit --pid "$serve" --nofile --output SOFT,HARD --noheadings | awk '{print $1":"$2}')"
        # The soft limit only: raising a hard limit back needs CAP_SYS_RESOURCE.
        prlimit --pid "$serve" --nofile="$SQUEEZE:${old_limit#*:}"
        echo "t=${t}s descriptor squeeze (limit $SQUEEZE, was $old_limit; $(( FLOOD / 3 )) idle, 20 s): $(flood $(( FLOOD / 3 )) 20)" | tee -a "$work/attacks.txt"
        prlimit --pid "$serve" --nofile="$old_limit"
        h="$(healthz)"; echo "  /healthz after the squeeze: ${h:-no answer}; RSS $(rss) kB" | tee -a "$work/attacks.txt"
        [ "$h" = ok ] || attack_ok=0
    fi
    sleep 5
done
sleep 10   # let the last reconnect settle
metrics="$(curl -sS --max-time 5 "$HTTP/metrics")"
kill -TERM "$serve"
t0=$(date +%s%N)
status=0; wait "$serve" || status=$?
stop_ms=$(( ($(date +%s%N) - t0) / 1000000 ))
touch "$work/stop"
kill "$rtsp_pid" 2>/dev/null || true

echo "== resident memory (kB), every 60 s"
awk '$1 % 60 < 5' "$work/rss.txt" | awk '{printf "  t=%4ds  %7d kB\n", $1, $2}'
base=$(awk -v w="$WARMUP" '$1 >= w {print $2; exit}' "$work/rss.txt")
last=$(tail -1 "$work/rss.txt" | awk '{print $2}')
peak=$(awk -v w="$WARMUP" '$1 >= w && $2 > m {m = $2} END {print m}' "$work/rss.txt")
growth=$(( last - base ))
echo "RSS after warm-up (${WARMUP}s): $base kB; at the end: $last kB; peak $peak kB; growth $growth kB"

ok=1
# The first flood raises the heap's high-water mark (3000 connections' buffers; malloc keeps the
# pages): growth is measured from after it, so that a second flood, the squeeze and the
# disconnects must not add to it. The growth from the warm-up is printed too.
if [ -n "$after_flood" ]; then
    echo "RSS after the first flood: $after_flood kB; growth since: $(( last - after_flood )) kB (from the warm-up: $growth kB)"
    growth=$(( last - after_flood ))
fi
[ "$growth" -lt 10240 ] || { echo "FAIL: RSS grew by $growth kB (limit 10240)"; ok=0; }
for id in rtsp tcp; do
    forced=$([ "$id" = rtsp ] && echo $forced_rtsp || echo $forced_tcp)
    reconnects=$(echo "$metrics" | sed -n "s/^netnet_reconnects_total{stream=\"$id\"} //p")
    connecting=$(echo "$metrics" | sed -n "s/^netnet_state_transitions_total{stream=\"$id\",state=\"connecting\"} //p")
    inferred=$(echo "$metrics" | sed -n "s/^netnet_frames_inferred_total{stream=\"$id\"} //p")
    dropped=$(echo "$metrics" | sed -n "s/^netnet_frames_dropped_total{stream=\"$id\"} //p")
    seen=$(grep -c "\"stream\": \"$id\", \"time\": \"[^\"]*\", \"state\": \"connecting\"" "$work/events.sse" || true)
    state=$(echo "$metrics" | sed -n "s/^netnet_stream_state{stream=\"$id\",state=\"\([a-z_]*\)\"} 1$/\1/p")
    echo "stream $id: forced disconnects $forced, reconnects_total $reconnects, connecting transitions $connecting, connecting events seen by SSE $seen, frames inferred $inferred, dropped $dropped, final state $state"
    [ "$reconnects" -ge "$forced" ] || { echo "FAIL: $id: $reconnects reconnects for $forced forced disconnects"; ok=0; }
    [ "$reconnects" -eq $(( connecting - 1 )) ] || { echo "FAIL: $id: reconnects_total $reconnects != connecting transitions - 1"; ok=0; }
    [ "$seen" -eq "$connecting" ] || echo "note: $id: SSE saw $seen connecting events of $connecting"
    [ "$state" = streaming ] || { echo "FAIL: $id ends in state $state"; ok=0; }
done
[ "$attack_ok" -eq 1 ] || { echo "FAIL: /healthz did not answer after an attack"; ok=0; }
echo "$metrics" | grep -E '^netnet_http_connections_(refused|timed_out|accepted)|^netnet_events_dropped_total|^netnet_sink_up'
file_drops=$(echo "$metrics" | sed -n 's/^netnet_events_dropped_total{sink="file"} //p')
[ "${file_drops:-0}" -eq 0 ] || { echo "FAIL: the file sink dropped $file_drops events"; ok=0; }
# Whole lines, and per stream no seq missing or repeated (frame, event and status lines share one
# counter: docs/json-lines.md), over the rotated files oldest first.
/usr/bin/python3 - "$work/events.jsonl" <<'PY' || ok=0
import json, os, sys
path = sys.argv[1]
files = [f"{path}.{k}" for k in (2, 1) if os.path.exists(f"{path}.{k}")] + [path]
seqs, gaps, lines = {}, 0, 0
for f in files:
    data = open(f, "rb").read()
    if data and not data.endswith(b"\n"): print(f"FAIL: {f} does not end on a complete line"); sys.exit(1)
    for line in data.splitlines():
        r = json.loads(line); lines += 1
        seqs.setdefault(r["stream"], []).append(r["seq"])
last = {}
for stream, numbers in seqs.items():
    numbers.sort()
    repeated = len(numbers) - len(set(numbers))
    missing = (numbers[-1] - numbers[0] + 1) - len(set(numbers))
    if repeated or missing: gaps += 1; print(f"seq gap in {stream}: {missing} missing, {repeated} repeated between {numbers[0]} and {numbers[-1]}")
    last[stream] = numbers[-1]
print(f"JSON lines: {lines} lines in {len(files)} files, last seq {last}, seq gaps {gaps}")
sys.exit(1 if gaps else 0)
PY
echo "SIGTERM: exit status $status after ${stop_ms} ms"
[ "$status" -eq 0 ] || ok=0
tail -c 1 "$work/events.jsonl" | od -An -c | grep -q '\\n' && echo "events.jsonl ends on a complete line" || { echo "FAIL: events.jsonl does not end with a newline"; ok=0; }
[ "$ok" -eq 1 ] && echo "soak: PASS" || { echo "soak: FAIL"; exit 1; }

#!/usr/bin/env bash
# Durable-delivery benchmark (not a test; docs/delivery.md, "Measured"). Two parts, one run:
#
#  1. Records per second through the spool and an MQTT sink (`netnet bench --delivery`): RECORDS
#     frame-sized lines (700 B) handed over as fast as one thread can, with spool_fsync 0.5 (the
#     default) and 0 (fdatasync every record), with the sink down (the spool alone) and with a QoS 1 sink on a local
#     mosquitto; what one hand-over costs the record path (median, p99, max).
#  2. The frame pipeline's speed with a sink that is down or slow: `annotate samples/vtest.avi`
#     with no sink, with a sink whose broker is down (refused), and with one behind a proxy that
#     passes 16 KiB/s towards the broker (a slow link: the spool grows). The fps is annotate's own
#     summary (frames over the pipeline's time; the drain after it is not counted). Runs are
#     interleaved ROUNDS times, so the host's own drift shows in the spread.
#
#   bash scripts/bench-delivery.sh                      # release build
#   NETNET=.build/debug/netnet RECORDS=20000 ROUNDS=1 bash scripts/bench-delivery.sh
#
# Everything listens on 127.0.0.1 only and stops by itself.
set -euo pipefail
cd "$(dirname "$0")/.."

NETNET="${NETNET:-.build/release/netnet}"
CLIP="${CLIP:-samples/vtest.avi}"
RECORDS="${RECORDS:-100000}"
ROUNDS="${ROUNDS:-3}"
[ -x "$NETNET" ] || { echo "bench-delivery: no $NETNET (swift build -c release, or NETNET=.build/debug/netnet)" >&2; exit 2; }
[ -f "$CLIP" ] || { echo "bench-delivery: no $CLIP (bash scripts/fetch-vtest.sh)" >&2; exit 2; }
command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ] || { echo "bench-delivery: needs mosquitto (apt install mosquitto)" >&2; exit 2; }

work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

broker=$(free_port)
printf 'listener %s 127.0.0.1\nallow_anonymous true\nmax_queued_messages 0\nmax_inflight_messages 0\n' "$broker" > "$work/mosquitto.conf"
/usr/sbin/mosquitto -c "$work/mosquitto.conf" >/dev/null 2>&1 &
pids+=($!)
# A slow link: bytes towards the broker at 16 KiB/s, the answers at full speed.
slow=$(free_port)
python3 - "$slow" "$broker" <<'EOF' &
import socket, sys, threading, time
listen, target = int(sys.argv[1]), int(sys.argv[2])
def pump(src, dst, rate):
    try:
        while True:
            data = src.recv(4096 if rate else 65536)
            if not data: break
            dst.sendall(data)
            if rate: time.sleep(len(data) / rate)
    except OSError: pass
    for s in (src, dst):
        try: s.shutdown(socket.SHUT_RDWR)
        except OSError: pass
server = socket.socket(); server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("127.0.0.1", listen)); server.listen(8)
while True:
    client, _ = server.accept()
    upstream = socket.create_connection(("127.0.0.1", target))
    threading.Thread(target=pump, args=(client, upstream, 16384), daemon=True).start()
    threading.Thread(target=pump, args=(upstream, client, 0), daemon=True).start()
EOF
pids+=($!)
dead=$(free_port)   # nothing listens there: the sink is refused for the whole run
sleep 0.5

echo "== records per second through the spool and an MQTT sink ($(nproc) cores, $RECORDS records) =="
for fsync in 0.5 0; do
    n=$RECORDS
    [ "$fsync" = 0 ] && n=$((RECORDS / 10))   # one fdatasync a record: fewer records, same figure
    echo "-- spool_fsync $fsync, the sink down (the spool alone):"
    "$NETNET" bench --delivery --records "$n" --spool-fsync "$fsync" --spool "$work/spool" --sink "mqtt://127.0.0.1:$dead/bench" --drain-timeout 0 2>/dev/null
    echo "-- spool_fsync $fsync, a QoS 1 sink on mosquitto:"
    "$NETNET" bench --delivery --records "$n" --spool-fsync "$fsync" --spool "$work/spool" --sink "mqtt://127.0.0.1:$broker/bench"
done

echo "== annotate $CLIP: pipeline fps with no sink, a sink that is down, a slow sink ($ROUNDS rounds) =="
declare -A fps
for round in $(seq 1 "$ROUNDS"); do
    for case in none down slow; do
        rm -rf "$work/a-spool"
        args=()
        case $case in
            down) args=(--sink "mqtt://127.0.0.1:$dead/bench" --spool "$work/a-spool" --drain-timeout 0) ;;
            slow) args=(--sink "mqtt://127.0.0.1:$slow/bench" --spool "$work/a-spool" --drain-timeout 0) ;;
        esac
        line=$("$NETNET" annotate "$CLIP" --json /dev/null ${args[@]+"${args[@]}"} 2>&1 | grep -E '^netnet: [0-9]+ frames' | tail -1)
        value=$(sed -E 's/.* ([0-9.]+) fps.*/\1/' <<<"$line")
        fps[$case]="${fps[$case]:-} $value"
        echo "round $round, sink $case: $line"
    done
done
for case in none down slow; do echo "fps, sink $case:${fps[$case]}"; done

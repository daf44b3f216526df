#!/usr/bin/env bash
# Waits for this VM's cross-die state and measures what it costs, for docs/performance.md:
#   bash bench/cross-die-watch.sh MODEL [SECONDS]     (default 600 s; bf16)
# Reads bench/cross-core-probe.c every 2 s. At each reading of the cross-die state (the
# two-core barrier above 300 ns), and at the first two normal readings for comparison, prints one
# line: single-thread `bench` pinned to vCPU 0 and to vCPU 1 alone, then both at once (two
# processes), then the two-thread bench with each Winograd way, and the probe's barrier after.
# Alone and at once show the cores' own speed and their shared memory; two-thread shows what the
# threads of one process hand each other.
set -euo pipefail
cd "$(dirname "$0")/.."
model="${1:?usage: cross-die-watch.sh MODEL [SECONDS]}"; seconds="${2:-600}"
[ -f "$model" ] || { echo "cross-die-watch.sh: no model file '$model'" >&2; exit 2; }
swift build -c release --product netnet >&2
bin="$(swift build -c release --show-bin-path)/netnet"
work="$(mktemp -d)"; trap 'rm -rf "$work"' EXIT
"${CC:-$(command -v cc || command -v clang)}" -O2 -pthread -o "$work/probe" bench/cross-core-probe.c
barrier() { "$work/probe" | sed -E 's/^barrier ([0-9]+) ns.*/\1/'; }
median() { grep median | tr -s ' ' | cut -d' ' -f2; }
single() { taskset -c "$1" "$bin" bench --model "$model" --precision bf16 --frames 3 --warmup 1 --threads 1 --kernel-threads 1 2>&1 | median; }
end=$((SECONDS + seconds)); normal=0
while [ "$SECONDS" -lt "$end" ]; do
    before=$(barrier)
    state=normal; [ "$before" -gt 300 ] && state=cross-die
    if [ "$state" = normal ]; then
        [ "$normal" -ge 2 ] && { sleep 2; continue; }
        normal=$((normal + 1))
    fi
    alone0=$(single 0); alone1=$(single 1)
    single 0 > "$work/at-once-0" & single 1 > "$work/at-once-1"; wait
    line="$(date -u +%T) $state (barrier $before ns): single-thread alone $alone0 / $alone1 ms, at once $(cat "$work/at-once-0") / $(cat "$work/at-once-1") ms"
    for way in parts shared; do
        line="$line, two-thread $way $("$bin" bench --model "$model" --precision bf16 --frames 5 --warmup 1 --winograd-way "$way" 2>&1 | median) ms"
    done
    echo "$line (barrier after $(barrier) ns)"
done

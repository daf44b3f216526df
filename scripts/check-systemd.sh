#!/usr/bin/env bash
# Checks systemd/netnet.service: `systemd-analyze verify` must pass and
# `systemd-analyze security --offline=true` must rate it at most 2.5 (docs/operations.md quotes it).
#   bash scripts/check-systemd.sh [path/to/netnet]
# verify checks that ExecStart's binary exists, so the unit is checked with /usr/local/bin/netnet
# replaced by the given (default: the debug build's) binary; nothing else is changed.
set -euo pipefail
cd "$(dirname "$0")/.."
binary="${1:-$(swift build --show-bin-path)/netnet}"
[ -x "$binary" ] || { echo "check-systemd: $binary not found (swift build first)" >&2; exit 1; }
command -v systemd-analyze >/dev/null || { echo "check-systemd: systemd-analyze not installed" >&2; exit 1; }
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
sed "s#/usr/local/bin/netnet#$(realpath "$binary")#g" systemd/netnet.service > "$tmp/netnet.service"
echo "== systemd-analyze verify ($(systemd-analyze --version | head -1))"
systemd-analyze verify "$tmp/netnet.service"
echo "verify: OK"
echo "== systemd-analyze security --offline=true"
report="$(systemd-analyze security --offline=true --no-pager "$tmp/netnet.service")"
echo "$report" | grep -E '^✗' || true
score="$(echo "$report" | sed -n 's/.*Overall exposure level for netnet.service: \([0-9.]*\).*/\1/p')"
echo "exposure: $score (limit 2.5)"
awk -v s="$score" 'BEGIN { exit !(s != "" && s <= 2.5) }' || { echo "check-systemd: exposure $score is over 2.5" >&2; exit 1; }

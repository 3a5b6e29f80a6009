#!/usr/bin/env bash
# HTTP benchmark of one raft-kv node: GET and POST of 128-byte values over
# KEYS random keys, at 16 and 64 connections, with wrk.
#
#   bench/http/run.sh [path/to/raft-kv] [seconds]
#
# Starts its own server on a free port with a fresh data directory
# (--sync group unless SYNC is set), preloads the keys, runs the four
# measurements and stops the server. Build a release binary first
# (cmake --preset release && cmake --build --preset release).
set -euo pipefail

BIN=${1:-build/bin/raft-kv}
DURATION=${2:-10}
SYNC=${SYNC:-group}
export KEYS=${KEYS:-10000}
HERE=$(cd "$(dirname "$0")" && pwd)

WORK=$(mktemp -d)
SERVER_PID=
cleanup() {
  if [[ -n "$SERVER_PID" ]]; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

"$BIN" --data "$WORK/data" --http 127.0.0.1:0 --ready-file "$WORK/ready" \
  --sync "$SYNC" --log-level warn &
SERVER_PID=$!
for _ in $(seq 1 200); do
  [[ -s "$WORK/ready" ]] && break
  kill -0 "$SERVER_PID" 2>/dev/null || { echo "raft-kv exited" >&2; exit 1; }
  sleep 0.05
done
[[ -s "$WORK/ready" ]] || { echo "raft-kv did not start" >&2; exit 1; }
ADDR=$(cat "$WORK/ready")
URL="http://$ADDR"
echo "raft-kv at $URL, sync=$SYNC, keys=$KEYS, $(nproc) CPUs, $(date -u +%Y-%m-%dT%H:%MZ)"

wrk -t1 -c16 -d60s -s "$HERE/preload.lua" "$URL" > /dev/null
curl -sf "$URL/key$((KEYS - 1))" > /dev/null || { echo "preload incomplete" >&2; exit 1; }

# Server CPU time (user + system) in clock ticks, from /proc.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$SERVER_PID/stat"; }
TICKS_PER_SEC=$(getconf CLK_TCK)

for kind in get post; do
  for conns in 16 64; do
    echo
    echo "== $kind, $conns connections: wrk -t1 -c$conns -d${DURATION}s --latency -s bench/http/$kind.lua"
    before=$(cpu_ticks)
    out=$(wrk -t1 -c"$conns" -d"${DURATION}s" --latency -s "$HERE/$kind.lua" "$URL")
    after=$(cpu_ticks)
    echo "$out" | grep -E "Requests/sec|^ +(50|90|99)%|Latency  |non-2xx|Socket errors"
    requests=$(echo "$out" | awk '/requests in/ {print $1}')
    awk -v t=$((after - before)) -v hz="$TICKS_PER_SEC" -v n="$requests" \
      'BEGIN { printf "server CPU per request: %.1f us\n", t / hz * 1e6 / n }'
  done
done

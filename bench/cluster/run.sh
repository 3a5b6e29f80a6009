#!/usr/bin/env bash
# Side-by-side benchmark of a 3-node raft-kv cluster and a 3-member etcd
# (Debian's etcd-server, 3.4, through its JSON gateway), both on 127.0.0.1,
# with wrk: writes and linearizable reads of 128-byte values over KEYS random
# keys, at 1, 16 and 64 connections, against each cluster's leader.
#
#   bench/cluster/run.sh [seconds per point]      (default 10)
#
# Environment:
#   RAFT_KV   the raft-kv binary (default build/bin/raft-kv; a release build)
#   KEYS      keys preloaded and used (default 100000)
#   CONNS     connection counts (default "1 16 64")
#   TMPDIR    where the data directories go (both systems fsync there)
#
# Installs etcd (bench/cluster/install-etcd.sh) when missing, starts both
# clusters with fresh data directories on free ports, preloads both, runs the
# points interleaved (raft-kv, then etcd, at each point) so that drift on a
# shared machine affects both alike, prints a markdown table and stops every
# process it started. etcd keeps its defaults, fsync included; raft-kv runs
# with its defaults.
set -euo pipefail

DURATION=${1:-10}
RAFT_KV=${RAFT_KV:-build/bin/raft-kv}
export KEYS=${KEYS:-100000}
CONNS=${CONNS:-"1 16 64"}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
HTTP_LUA="$ROOT/bench/http"

[[ -x "$RAFT_KV" ]] || { echo "no raft-kv binary at $RAFT_KV (set RAFT_KV)" >&2; exit 1; }
command -v wrk >/dev/null || { echo "wrk is missing (scripts/install-deps.sh installs it)" >&2; exit 1; }
command -v curl >/dev/null || { echo "curl is missing (scripts/install-deps.sh installs it)" >&2; exit 1; }
"$HERE/install-etcd.sh"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/rkv-cluster-bench.XXXXXX")
PIDS=()
WRK_PID=
stop_pids() {
  local pid
  for pid in "$@"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "$@"; do
    for _ in $(seq 1 100); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
      echo "pid $pid did not stop on SIGTERM in 10 s; killing it" >&2
      kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
  done
}
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [[ -n "$WRK_PID" ]]; then stop_pids "$WRK_PID"; fi
  if ((${#PIDS[@]})); then stop_pids "${PIDS[@]}"; fi
  if ((rc != 0)); then
    for log in "$WORK"/*.log; do
      [[ -s "$log" ]] || continue
      echo "--- last lines of $(basename "$log")" >&2
      tail -n 15 "$log" >&2
    done
  fi
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# PORT= a free TCP port on 127.0.0.1: random in 20000-59999, nothing listening,
# not handed out before in this run.
USED_PORTS=" "
PORT=
free_port() {
  local p
  while :; do
    p=$((20000 + RANDOM % 40000))
    [[ "$USED_PORTS" == *" $p "* ]] && continue
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      USED_PORTS+="$p "
      PORT=$p
      return
    fi
  done
}

# The first string or number field NAME of the JSON on stdin: json_field NAME
json_field() { grep -o "\"$1\":\"\{0,1\}[^\",}]*" | head -n 1 | sed 's/.*:"\{0,1\}//'; }

wait_until() { # seconds description command...
  local secs=$1 what=$2
  shift 2
  local i
  for ((i = 0; i < secs * 10; i++)); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  echo "timed out after ${secs}s waiting for $what" >&2
  return 1
}

# ---------------------------------------------------------------- etcd

ETCD_C=() ETCD_P=()
for i in 1 2 3; do
  free_port; ETCD_C[i]=$PORT
  free_port; ETCD_P[i]=$PORT
done
ETCD_INITIAL="m1=http://127.0.0.1:${ETCD_P[1]},m2=http://127.0.0.1:${ETCD_P[2]},m3=http://127.0.0.1:${ETCD_P[3]}"
for i in 1 2 3; do
  etcd --name "m$i" --data-dir "$WORK/etcd-m$i" \
    --listen-client-urls "http://127.0.0.1:${ETCD_C[i]}" \
    --advertise-client-urls "http://127.0.0.1:${ETCD_C[i]}" \
    --listen-peer-urls "http://127.0.0.1:${ETCD_P[i]}" \
    --initial-advertise-peer-urls "http://127.0.0.1:${ETCD_P[i]}" \
    --initial-cluster "$ETCD_INITIAL" --initial-cluster-state new \
    --initial-cluster-token "bench-$$" \
    --logger zap --log-level warn > "$WORK/etcd-m$i.log" 2>&1 &
  PIDS+=($!)
done
etcd_healthy() { curl -sf "http://127.0.0.1:${ETCD_C[$1]}/health" | grep -q '"health":"true"'; }
for i in 1 2 3; do wait_until 30 "etcd member m$i to be healthy" etcd_healthy "$i"; done

etcd_leader_url() {
  local i status member leader
  for i in 1 2 3; do
    status=$(curl -sf -X POST -d '{}' "http://127.0.0.1:${ETCD_C[i]}/v3/maintenance/status") || continue
    member=$(json_field member_id <<< "$status")
    leader=$(json_field leader <<< "$status")
    if [[ -n "$member" && "$member" == "$leader" ]]; then
      echo "http://127.0.0.1:${ETCD_C[i]}"
      return 0
    fi
  done
  return 1
}
wait_until 30 "an etcd leader" etcd_leader_url
ETCD_URL=$(etcd_leader_url)

# ------------------------------------------------------------- raft-kv

RKV_HTTP=() RKV_PEER=()
CLUSTER=1
RKV_HELP=$("$RAFT_KV" --help 2>&1 || true)
if [[ "$RKV_HELP" != *--initial-cluster* ]]; then
  CLUSTER=0
  echo "NOTE: $RAFT_KV has no cluster mode (no --initial-cluster); measuring ONE raft-kv node" >&2
fi
if ((CLUSTER)); then
  RKV_NODES=(1 2 3)
else
  RKV_NODES=(1)
fi
for i in "${RKV_NODES[@]}"; do
  free_port; RKV_HTTP[i]=$PORT
  free_port; RKV_PEER[i]=$PORT
done
if ((CLUSTER)); then
  RKV_INITIAL="1=127.0.0.1:${RKV_PEER[1]},2=127.0.0.1:${RKV_PEER[2]},3=127.0.0.1:${RKV_PEER[3]}"
  RKV_CLUSTER_HTTP="1=127.0.0.1:${RKV_HTTP[1]},2=127.0.0.1:${RKV_HTTP[2]},3=127.0.0.1:${RKV_HTTP[3]}"
fi
for i in "${RKV_NODES[@]}"; do
  mkdir -p "$WORK/raft-kv/node$i"
  args=(--data "$WORK/raft-kv/node$i" --http "127.0.0.1:${RKV_HTTP[i]}"
        --ready-file "$WORK/raft-kv/node$i/ready" --log-level warn)
  if ((CLUSTER)); then
    args+=(--id "$i" --peer-listen "127.0.0.1:${RKV_PEER[i]}"
           --initial-cluster "$RKV_INITIAL" --cluster-http "$RKV_CLUSTER_HTTP")
  fi
  "$RAFT_KV" "${args[@]}" > "$WORK/raft-kv-node$i.log" 2>&1 &
  PIDS+=($!)
done
rkv_ready() { [[ -s "$WORK/raft-kv/node$1/ready" ]]; }
for i in "${RKV_NODES[@]}"; do wait_until 30 "raft-kv node $i to be ready" rkv_ready "$i"; done

rkv_leader_url() {
  local i leader
  if ((!CLUSTER)); then
    echo "http://127.0.0.1:${RKV_HTTP[1]}"
    return 0
  fi
  for i in 1 2 3; do
    leader=$(curl -sf "http://127.0.0.1:${RKV_HTTP[i]}/v1/cluster" | json_field leader) || continue
    if [[ "$leader" =~ ^[123]$ ]]; then
      echo "http://127.0.0.1:${RKV_HTTP[leader]}"
      return 0
    fi
  done
  return 1
}
wait_until 30 "a raft-kv leader" rkv_leader_url
RKV_URL=$(rkv_leader_url)
VALUE128=$(printf 'x%.0s' $(seq 1 128))
rkv_write_ok() { curl -sf -X POST -d "{\"value\":\"$VALUE128\"}" "$RKV_URL/key0" | grep -q '"success":true'; }
wait_until 30 "a first raft-kv write on the leader" rkv_write_ok

# ---------------------------------------------------------------- info

RKV_VERSION=$("$RAFT_KV" --version 2>&1 | head -n 1)
ETCD_VERSION=$(etcd --version 2>&1 | sed -n 's/^etcd Version: //p')
CPU_MODEL=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
FS=$(df -T "$WORK" | awk 'NR == 2 {print $2}')
MACHINE="$(nproc) CPUs ($CPU_MODEL), $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo) RAM, Linux $(uname -r), data on $FS"
echo "raft-kv: $RKV_VERSION ($((${#RKV_NODES[@]})) node(s)), leader $RKV_URL"
echo "etcd: $ETCD_VERSION (3 members), leader $ETCD_URL"
echo "wrk: $(wrk -v 2>&1 | head -n 1 | awk '{print $2}')"
echo "machine: $MACHINE"
echo "start: $(date -u +%Y-%m-%dT%H:%M:%SZ), load $(cut -d' ' -f1-3 /proc/loadavg), $DURATION s per point, $KEYS keys"

# ------------------------------------------------------------- preload

echo
echo "preloading $KEYS keys with 128-byte values into each cluster..."
# wrk's preload scripts stop their thread once done, but wrk itself runs for
# its whole -d; so it runs in the background until the check passes, then
# gets SIGINT. preload NAME CHECK URL LUA [VAR=VALUE...]
WRK_PID=
preload() {
  local name=$1 check=$2 url=$3 lua=$4
  shift 4
  # Line-buffered, so that a failure the script prints is seen at once.
  env "$@" stdbuf -oL wrk -t1 -c64 -d600s -s "$lua" "$url" > "$WORK/preload-$name.log" 2>&1 &
  WRK_PID=$!
  local i
  for ((i = 0; i < 3000; i++)); do
    if "$check"; then break; fi
    kill -0 "$WRK_PID" 2>/dev/null || { echo "$name preload: wrk exited early" >&2; return 1; }
    grep -q '^preload: HTTP' "$WORK/preload-$name.log" && break
    sleep 0.2
  done
  kill -INT "$WRK_PID" 2>/dev/null || true
  wait "$WRK_PID" 2>/dev/null || true
  WRK_PID=
  if grep -q '^preload: HTTP' "$WORK/preload-$name.log"; then
    echo "$name preload failed:" >&2
    grep '^preload: HTTP' "$WORK/preload-$name.log" | head -n 3 >&2
    return 1
  fi
  "$check" || { echo "$name preload did not finish in 600 s" >&2; return 1; }
}

t0=$SECONDS
rkv_last_key() { curl -sf -o /dev/null "$RKV_URL/key$((KEYS - 1))"; }
preload raft-kv rkv_last_key "$RKV_URL" "$HTTP_LUA/preload.lua"
# Keys are written in order: with the last one there, every key was sent;
# one still in flight on another connection when wrk stopped may be lost, so
# write any of the last 256 that are missing.
for ((k = KEYS - 256; k < KEYS; k++)); do
  ((k < 0)) && continue
  code=$(curl -s -o /dev/null -w '%{http_code}' "$RKV_URL/key$k")
  if [[ "$code" != 200 ]]; then
    curl -sf -X POST -d "{\"value\":\"$VALUE128\"}" "$RKV_URL/key$k" > /dev/null
  fi
done
for k in 0 $((KEYS / 2)) $((KEYS - 1)); do
  curl -sf "$RKV_URL/key$k" | grep -q "\"value\":\"$VALUE128\"" ||
    { echo "raft-kv preload incomplete: key$k missing" >&2; exit 1; }
done
echo "raft-kv: $KEYS keys in $((SECONDS - t0)) s"

t0=$SECONDS
range_all="{\"key\":\"$(printf key | base64)\",\"range_end\":\"$(printf kez | base64)\",\"count_only\":true}"
etcd_count() { curl -sf -X POST -d "$range_all" "$ETCD_URL/v3/kv/range" | json_field count; }
etcd_all_keys() { [[ "$(etcd_count)" == "$KEYS" ]]; }
preload etcd etcd_all_keys "$ETCD_URL" "$HERE/etcd.lua" ETCD_OP=preload
got=$(curl -sf -X POST -d "{\"key\":\"$(printf "key$((KEYS - 1))" | base64)\"}" "$ETCD_URL/v3/kv/range" | json_field value)
[[ "$got" == "$(printf '%s' "$VALUE128" | base64 -w0)" ]] ||
  { echo "etcd preload: key$((KEYS - 1)) holds '$got', not the 128-byte value" >&2; exit 1; }
echo "etcd: $KEYS keys in $((SECONDS - t0)) s"

# -------------------------------------------------------------- points

# CPU time (user + system, clock ticks) of a set of PIDs, from /proc.
cpu_ticks() {
  local pid sum=0 t
  for pid in "$@"; do
    t=$(awk '{print $14 + $15}' "/proc/$pid/stat")
    sum=$((sum + t))
  done
  echo "$sum"
}
HZ=$(getconf CLK_TCK)
ETCD_PIDS=("${PIDS[@]:0:3}")
RKV_PIDS=("${PIDS[@]:3}")

# wrk latency ("850.00us", "1.23ms", "1.02s", "1.50m") in ms.
to_ms() {
  awk -v v="$1" 'BEGIN {
    n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
    if (u == "us") n /= 1000; else if (u == "s") n *= 1000; else if (u == "m") n *= 60000
    printf "%.2f", n }'
}

RESULTS="$WORK/results.tsv"
: > "$RESULTS"
# point SYSTEM OP CONNS URL LUA [VAR=VALUE...]: one wrk run, one row.
point() {
  local system=$1 op=$2 conns=$3 url=$4 lua=$5
  shift 5
  local pids
  if [[ "$system" == etcd ]]; then pids=("${ETCD_PIDS[@]}"); else pids=("${RKV_PIDS[@]}"); fi
  local before after out
  before=$(cpu_ticks "${pids[@]}")
  out=$(env "$@" wrk -t1 -c"$conns" -d"${DURATION}s" --latency -s "$lua" "$url")
  after=$(cpu_ticks "${pids[@]}")
  echo "$out" > "$WORK/$system-$op-$conns.out"
  local rps p50 p99 requests status errs cpu
  rps=$(awk '/^Requests\/sec:/ {printf "%.0f", $2}' <<< "$out")
  p50=$(to_ms "$(awk '$1 == "50%" {print $2}' <<< "$out")")
  p99=$(to_ms "$(awk '$1 == "99%" {print $2}' <<< "$out")")
  requests=$(awk '/requests in/ {print $1}' <<< "$out")
  status=$(sed -n 's/^non-2xx or errors: \([0-9]*\) status, \([0-9]*\) read, \([0-9]*\) write, \([0-9]*\) timeout$/\1/p' <<< "$out")
  errs=$(sed -n 's/^non-2xx or errors: [0-9]* status, \([0-9]*\) read, \([0-9]*\) write, \([0-9]*\) timeout$/\1 \2 \3/p' <<< "$out" |
    awk '{print $1 + $2 + $3}')
  local connect
  connect=$(sed -n 's/^ *Socket errors: connect \([0-9]*\),.*/\1/p' <<< "$out")
  errs=$((errs + ${connect:-0}))
  cpu=$(awk -v t=$((after - before)) -v hz="$HZ" -v n="${requests:-0}" \
    'BEGIN { if (n > 0) printf "%.0f", t / hz * 1e6 / n; else print "-" }')
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' \
    "$system" "$op" "$conns" "$rps" "$p50" "$p99" "$cpu" "${status:-?}" "$errs" >> "$RESULTS"
  printf '%-8s %-20s c=%-3s %8s req/s  p50 %7s ms  p99 %7s ms  CPU/req %5s us  non-2xx %s  errors %s\n' \
    "$system" "$op" "$conns" "$rps" "$p50" "$p99" "$cpu" "${status:-?}" "$errs"
}

RKV_NAME=raft-kv
((CLUSTER)) || RKV_NAME="raft-kv (1 node)"
echo
for conns in $CONNS; do
  point "$RKV_NAME" write "$conns" "$RKV_URL" "$HTTP_LUA/post.lua"
  point etcd write "$conns" "$ETCD_URL" "$HERE/etcd.lua" ETCD_OP=put
done
for conns in $CONNS; do
  point "$RKV_NAME" "read (linearizable)" "$conns" "$RKV_URL" "$HTTP_LUA/get.lua"
  point etcd "read (linearizable)" "$conns" "$ETCD_URL" "$HERE/etcd.lua" ETCD_OP=range
done
for conns in $CONNS; do
  point "$RKV_NAME" "read (stale)" "$conns" "$RKV_URL" "$HERE/raft-kv-get.lua" CONSISTENCY=stale
  point etcd "read (serializable)" "$conns" "$ETCD_URL" "$HERE/etcd.lua" ETCD_OP=serializable
done
END=$(date -u +%Y-%m-%dT%H:%M:%SZ)
# A leader change during the run would mean some points ran against a follower.
RKV_URL_END=$(rkv_leader_url || echo none)
ETCD_URL_END=$(etcd_leader_url || echo none)
[[ "$RKV_URL_END" == "$RKV_URL" ]] ||
  echo "WARNING: the raft-kv leader moved during the run ($RKV_URL -> $RKV_URL_END)" >&2
[[ "$ETCD_URL_END" == "$ETCD_URL" ]] ||
  echo "WARNING: the etcd leader moved during the run ($ETCD_URL -> $ETCD_URL_END)" >&2

# ---------------------------------------------------------------- table

echo
echo "Machine: $MACHINE. raft-kv $RKV_VERSION, etcd $ETCD_VERSION, wrk -t1 -d${DURATION}s; $KEYS keys, 128-byte values; end $END, load $(cut -d' ' -f1-3 /proc/loadavg)."
echo
echo "| system | op | connections | req/s | p50 (ms) | p99 (ms) | cluster CPU/request (µs) | non-2xx / errors |"
echo "|---|---|--:|--:|--:|--:|--:|---|"
invalid=0
while IFS=$'\t' read -r system op conns rps p50 p99 cpu status errs; do
  flag="$status / $errs"
  if [[ "$status" != 0 || "$errs" != 0 ]]; then
    flag="**$status / $errs: INVALID**"
    invalid=$((invalid + 1))
  fi
  echo "| $system | $op | $conns | $rps | $p50 | $p99 | $cpu | $flag |"
done < "$RESULTS"
if ((invalid)); then
  echo
  echo "$invalid point(s) had non-2xx replies or socket errors and are not valid measurements." >&2
fi

# The same points side by side: the rows come in pairs, raft-kv then etcd.
echo
echo "| op | connections | raft-kv req/s | etcd req/s | raft-kv ÷ etcd | p50 raft-kv / etcd (ms) | p99 raft-kv / etcd (ms) | CPU/request raft-kv / etcd (µs) |"
echo "|---|--:|--:|--:|--:|--:|--:|--:|"
awk -F'\t' '
  NR % 2 == 1 { split($0, r, "\t"); next }
  {
    op = (r[2] == $2) ? $2 : "read, " substr(r[2], 7, length(r[2]) - 7) " / " substr($2, 7, length($2) - 7)
    ok = (r[8] == 0 && r[9] == 0 && $8 == 0 && $9 == 0) ? "" : " (INVALID: non-2xx or errors)"
    printf "| %s%s | %s | %s | %s | %.1f× | %s / %s | %s / %s | %s / %s |\n",
      op, ok, $3, r[4], $4, ($4 > 0 ? r[4] / $4 : 0), r[5], $5, r[6], $6, r[7], $7
  }' "$RESULTS"
echo
echo "Writes: raft-kv POST /{key}, etcd POST /v3/kv/put. Reads: raft-kv GET /{key} (linearizable,"
echo "the default) and GET /{key}?consistency=stale (the node's applied state); etcd POST /v3/kv/range"
echo "(linearizable, the default) and with \"serializable\":true (the member's local state)."
echo "All against each cluster's leader."

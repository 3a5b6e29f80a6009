#!/usr/bin/env bash
# Side-by-side benchmark of a 3-node raft-kv cluster and a 3-member etcd
# (Debian's etcd-server, 3.4, through its JSON gateway), both on 127.0.0.1,
# with raft-kv-bench, which speaks both APIs and measures both alike: writes,
# linearizable reads and a 50/50 mix of 128-byte values over KEYS uniformly
# chosen keys, at 1, 16, 64 and 256 connections, against each cluster's
# leader, each point REPEAT times; the table shows the medians.
#
#   bench/cluster/run.sh [seconds per point]      (default 10)
#
# Environment:
#   RAFT_KV       the raft-kv binary (default build/bin/raft-kv; a release build)
#   RAFT_KV_BENCH the load generator (default build/bin/raft-kv-bench)
#   KEYS          keys preloaded and used (default 100000)
#   CONNS         connection counts (default "1 16 64 256")
#   OPS           loads (default "write read mix"; also "stale")
#   REPEAT        runs per point; the medians are shown (default 3)
#   RKV_API       raft-kv (the v1 routes, default) or raft-kv-json (the original ones)
#   OUT           a directory for results.tsv and every run's JSON (default: kept only on failure)
#   TMPDIR        where the data directories go (both systems fsync there)
#
# Installs etcd (bench/cluster/install-etcd.sh) when missing, starts both
# clusters with fresh data directories on free ports, preloads both, runs the
# points interleaved (raft-kv, then etcd, at each point) so that drift on a
# shared machine affects both alike, prints a markdown table and stops every
# process it started. etcd keeps its defaults, fsync included; raft-kv runs
# with its defaults. Needs no network: everything is on 127.0.0.1.
set -euo pipefail

DURATION=${1:-10}
RAFT_KV=${RAFT_KV:-build/bin/raft-kv}
export KEYS=${KEYS:-100000}
CONNS=${CONNS:-"1 16 64 256"}
OPS=${OPS:-"write read mix"}
REPEAT=${REPEAT:-3}
RKV_API=${RKV_API:-raft-kv}
RAFT_KV_BENCH=${RAFT_KV_BENCH:-build/bin/raft-kv-bench}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)

[[ -x "$RAFT_KV" ]] || { echo "no raft-kv binary at $RAFT_KV (set RAFT_KV)" >&2; exit 1; }
[[ -x "$RAFT_KV_BENCH" ]] || { echo "no raft-kv-bench binary at $RAFT_KV_BENCH (set RAFT_KV_BENCH)" >&2; exit 1; }
command -v curl >/dev/null || { echo "curl is missing (scripts/install-deps.sh installs it)" >&2; exit 1; }
"$HERE/install-etcd.sh"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/rkv-cluster-bench.XXXXXX")
PIDS=()
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
rkv_write_ok() { curl -sf -X PUT -d x "$RKV_URL/v1/kv/probe" | grep -q '"revision"'; }
wait_until 30 "a first raft-kv write on the leader" rkv_write_ok

# ---------------------------------------------------------------- info

RKV_VERSION=$("$RAFT_KV" --version 2>&1 | head -n 1 | sed "s/^raft-kv //")
ETCD_VERSION=$(etcd --version 2>&1 | sed -n 's/^etcd Version: //p')
CPU_MODEL=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
FS=$(df -T "$WORK" | awk 'NR == 2 {print $2}')
MACHINE="$(nproc) CPUs ($CPU_MODEL), $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo) RAM, Linux $(uname -r), data on $FS"
echo "raft-kv: $RKV_VERSION ($((${#RKV_NODES[@]})) node(s)), leader $RKV_URL"
echo "etcd: $ETCD_VERSION (3 members), leader $ETCD_URL"
echo "load: $("$RAFT_KV_BENCH" --version 2>&1 | head -n 1)"
echo "machine: $MACHINE"
echo "start: $(date -u +%Y-%m-%dT%H:%M:%SZ), load $(cut -d' ' -f1-3 /proc/loadavg), $DURATION s per point, $REPEAT runs each, $KEYS keys"

# ------------------------------------------------------------- preload

echo
echo "preloading $KEYS keys with 128-byte values into each cluster..."
RKV_HOST=${RKV_URL#http://}
ETCD_HOST=${ETCD_URL#http://}
bench() { "$RAFT_KV_BENCH" --threads 1 --keys "$KEYS" --value-size 128 "$@"; }
t0=$SECONDS
bench --api "$RKV_API" -e "$RKV_HOST" --preload --duration 0 -c 64 > "$WORK/preload-raft-kv.log" 2>&1 ||
  { cat "$WORK/preload-raft-kv.log" >&2; exit 1; }
echo "raft-kv: $KEYS keys in $((SECONDS - t0)) s"
t0=$SECONDS
bench --api etcd -e "$ETCD_HOST" --preload --duration 0 -c 64 > "$WORK/preload-etcd.log" 2>&1 ||
  { cat "$WORK/preload-etcd.log" >&2; exit 1; }
range_all="{\"key\":\"$(printf key | base64)\",\"range_end\":\"$(printf kez | base64)\",\"count_only\":true}"
count=$(curl -sf -X POST -d "$range_all" "$ETCD_URL/v3/kv/range" | json_field count)
[[ "$count" == "$KEYS" ]] || { echo "etcd preload: $count keys, not $KEYS" >&2; exit 1; }
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

RESULTS="$WORK/results.tsv"
: > "$RESULTS"
# point SYSTEM OP CONNS RUN: one raft-kv-bench run, one row:
# system op conns run ok/s p50 p99 cpu/request(us) errors
point() {
  local system=$1 op=$2 conns=$3 run=$4
  local args=(-c "$conns" --duration "$DURATION" --seed "$run")
  case "$op" in
    write) args+=(--read-ratio 0) ;;
    read) args+=(--read-ratio 1) ;;
    mix) args+=(--read-ratio 0.5) ;;
    stale) args+=(--read-ratio 1 --consistency stale) ;;
  esac
  local pids host api
  if [[ "$system" == etcd ]]; then
    pids=("${ETCD_PIDS[@]}") host=$ETCD_HOST api=etcd
  else
    pids=("${RKV_PIDS[@]}") host=$RKV_HOST api=$RKV_API
  fi
  local json="$WORK/$system-$op-$conns-$run.json"
  local before after
  before=$(cpu_ticks "${pids[@]}")
  bench --api "$api" -e "$host" "${args[@]}" --json "$json" > "$WORK/$system-$op-$conns-$run.out" 2>&1 ||
    { cat "$WORK/$system-$op-$conns-$run.out" >&2; exit 1; }
  after=$(cpu_ticks "${pids[@]}")
  local summary rps p50 p99 requests errs cpu
  summary=$(grep -o '"summary":{[^}]*}' "$json")
  rps=$(json_field ok_per_s <<< "$summary")
  p50=$(json_field p50_ms <<< "$summary")
  p99=$(json_field p99_ms <<< "$summary")
  requests=$(json_field requests <<< "$summary")
  errs=$(json_field errors <<< "$summary")
  cpu=$(awk -v t=$((after - before)) -v hz="$HZ" -v n="${requests:-0}" \
    'BEGIN { if (n > 0) printf "%.0f", t / hz * 1e6 / n; else print "-" }')
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' \
    "$system" "$op" "$conns" "$run" "$rps" "$p50" "$p99" "$cpu" "$errs" >> "$RESULTS"
  printf '%-8s %-6s c=%-3s run %s %9s ok/s  p50 %8s ms  p99 %8s ms  CPU/req %5s us  errors %s\n' \
    "$system" "$op" "$conns" "$run" "$rps" "$p50" "$p99" "$cpu" "$errs"
}

echo
# Interleaved: raft-kv then etcd at each point, so drift on a shared
# machine affects both alike.
for op in $OPS; do
  for conns in $CONNS; do
    for ((run = 1; run <= REPEAT; run++)); do
      point raft-kv "$op" "$conns" "$run"
      point etcd "$op" "$conns" "$run"
    done
  done
done
END=$(date -u +%Y-%m-%dT%H:%M:%SZ)
# A leader change during the run would mean some points ran against a follower.
RKV_URL_END=$(rkv_leader_url || echo none)
ETCD_URL_END=$(etcd_leader_url || echo none)
[[ "$RKV_URL_END" == "$RKV_URL" ]] ||
  echo "WARNING: the raft-kv leader moved during the run ($RKV_URL -> $RKV_URL_END)" >&2
[[ "$ETCD_URL_END" == "$ETCD_URL" ]] ||
  echo "WARNING: the etcd leader moved during the run ($ETCD_URL -> $ETCD_URL_END)" >&2
if [[ -n "${OUT:-}" ]]; then
  mkdir -p "$OUT"
  cp "$RESULTS" "$WORK"/*.json "$OUT"/
fi

# ---------------------------------------------------------------- table

echo
echo "Machine: $MACHINE. raft-kv $RKV_VERSION (api $RKV_API), etcd $ETCD_VERSION; raft-kv-bench, 1 thread, ${DURATION} s per run, median of $REPEAT runs; $KEYS keys (uniform), 128-byte values; end $END."
echo
echo "| load | connections | raft-kv ops/s | etcd ops/s | raft-kv ÷ etcd | p50 raft-kv / etcd (ms) | p99 raft-kv / etcd (ms) | CPU/op raft-kv / etcd (µs) |"
echo "|---|--:|--:|--:|--:|--:|--:|--:|"
# Medians per (system, op, conns) of each column, then one row per point.
awk -F'\t' -v ops="$OPS" -v conns_list="$CONNS" '
  function median(key, col,   n, i, j, t, a) {
    n = count[key]
    for (i = 1; i <= n; i++) a[i] = val[key, i, col] + 0
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
    return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
  }
  {
    key = $1 SUBSEP $2 SUBSEP $3
    n = ++count[key]
    for (c = 5; c <= 8; c++) val[key, n, c] = $c
    errors[key] += $9
  }
  END {
    split(ops, O, " "); split(conns_list, C, " ")
    name["write"] = "writes"; name["read"] = "linearizable reads"; name["mix"] = "50/50 mix"; name["stale"] = "stale / serializable reads"
    for (o = 1; o in O; o++) for (c = 1; c in C; c++) {
      r = "raft-kv" SUBSEP O[o] SUBSEP C[c]; e = "etcd" SUBSEP O[o] SUBSEP C[c]
      if (!(r in count) || !(e in count)) continue
      rr = median(r, 5); er = median(e, 5)
      bad = (errors[r] + errors[e] > 0) ? " (errors: " errors[r] " / " errors[e] ")" : ""
      printf "| %s%s | %s | %.0f | %.0f | %.1f× | %.2f / %.2f | %.2f / %.2f | %.0f / %.0f |\n",
        name[O[o]], bad, C[c], rr, er, (er > 0 ? rr / er : 0), median(r, 6), median(e, 6),
        median(r, 7), median(e, 7), median(r, 8), median(e, 8)
    }
  }' "$RESULTS"
echo
echo "Writes: raft-kv PUT /v1/kv/{key} (raw body), etcd POST /v3/kv/put. Reads: raft-kv GET /v1/kv/{key}"
echo "(linearizable, the default), etcd POST /v3/kv/range (linearizable, the default). Each request waits"
echo "for its reply (closed loop); a 404 for a key not written counts as a read. All against each leader."
echo "CPU/op: user + system time of the three server processes per request."

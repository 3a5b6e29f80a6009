#!/usr/bin/env bash
# Re-plants known Raft bugs, one at a time, and shows which seed of the
# simulator catches each (docs/testing.md, "Planted bugs").
#
#   tests/sim/planted/run.sh                 every patch in this directory
#   tests/sim/planted/run.sh 2-vote-*.patch  just these
#   SEEDS=1..20000 tests/sim/planted/run.sh   a longer sweep per patch
#
# Each patch is applied to a copy of the tracked files of the working tree (the checkout itself is
# never touched), raft-kv-sim is built there, and the sweep runs with fixed
# and with swarm fault rates until the first failure. Exit status: 0 if every
# patch was caught, 1 otherwise.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
seeds="${SEEDS:-1..3000}"
jobs="${JOBS:-2}"
patches=("$@")
if [ ${#patches[@]} -eq 0 ]; then
  patches=("$here"/*.patch)
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# The tracked files of the working tree (with their uncommitted changes).
mkdir -p "$work/base"
(cd "$root" && git ls-files -z --cached |
   tar --null --ignore-failed-read -T - -cf - 2>/dev/null) | tar -xf - -C "$work/base"

printf '%-42s %-40s %s\n' "planted bug" "fixed rates" "swarm"
missed=0
for patch in "${patches[@]}"; do
  patch="$(cd "$(dirname "$patch")" && pwd)/$(basename "$patch")"
  name="$(basename "$patch" .patch)"
  tree="$work/$name"
  cp -a "$work/base" "$tree"
  (cd "$tree" && git apply "$patch")
  cmake -S "$tree" -B "$tree/build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
        -DRKV_BUILD_BENCH=OFF >/dev/null
  cmake --build "$tree/build" --target raft-kv-sim -j "$jobs" >/dev/null
  results=()
  for mode in "" "--swarm"; do
    out="$("$tree/build/bin/raft-kv-sim" --seeds "$seeds" --jobs "$jobs" $mode 2>&1 || true)"
    first="$(printf '%s\n' "$out" | grep -m1 '^FAIL seed' || true)"
    if [ -n "$first" ]; then
      seed="$(printf '%s\n' "$first" | sed -E 's/^FAIL seed ([0-9]+).*/\1/')"
      what="$(printf '%s\n' "$first" | sed -E 's/^FAIL seed [0-9]+: (at [0-9.]+ s: )?//; s/:.*//' | cut -c1-24)"
      if [[ "$what" == "the process aborted"* ]]; then
        what="assert $(printf '%s\n' "$out" | grep -m1 '^assertion failed' | sed -E 's/^assertion failed: (.*) at .*/\1/' | cut -c1-40)"
      fi
      results+=("seed $seed ($what)")
    else
      results+=("not caught in $seeds")
      missed=1
    fi
  done
  printf '%-42s %-40s %s\n' "$name" "${results[0]}" "${results[1]}"
  rm -rf "$tree"
done
exit $missed

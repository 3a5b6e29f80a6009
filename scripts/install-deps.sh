#!/usr/bin/env bash
# Installs the Debian 12 packages raft-kv needs to build, test and benchmark.
# Idempotent: it asks apt only for what is missing, and runs `apt-get update`
# only when something is. Uses sudo when not run as root. Nothing is fetched
# from anywhere but the configured Debian mirrors.
set -euo pipefail

packages=(
  # toolchain
  g++ cmake ninja-build ccache pkg-config make
  # libraries (see docs/architecture.md for what each is used for)
  libboost1.81-dev libboost-json1.81-dev libboost-url1.81-dev
  libabsl-dev libspdlog-dev libfmt-dev libcli11-dev libtomlplusplus-dev libisal-dev
  # tests and benchmarks
  libgtest-dev libgmock-dev libbenchmark-dev curl wrk procps
  # the embedded stores the engine benchmark compares against (benchmark only)
  liblmdb-dev librocksdb-dev libleveldb-dev
)

missing=()
for p in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
  [ "$status" = "installed" ] || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "install-deps: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
  sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
# libboost1.81-dev conflicts with the 1.74 -dev packages; apt removes those.
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"

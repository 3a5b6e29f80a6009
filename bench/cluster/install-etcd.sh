#!/usr/bin/env bash
# Installs Debian's etcd (etcd-server, etcd-client: 3.4 on Debian 12) for the
# cluster benchmark, only when missing; uses sudo when not root. The benchmark
# starts its own etcd members, so the packaged system service is stopped and
# disabled: with systemd through systemctl, without it (containers) by
# stopping an etcd the package's scripts may have started on 2379.
# Not part of scripts/install-deps.sh: `make test` never needs etcd.
set -euo pipefail

packages=(etcd-server etcd-client)

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "install-etcd: need root or sudo" >&2; exit 1; }
  sudo="sudo"
fi

missing=()
for p in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
  [ "$status" = "installed" ] || missing+=("$p")
done

if [ ${#missing[@]} -gt 0 ]; then
  echo "install-etcd: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"

  # Keep the system service off: the benchmark runs its own members.
  if [ -d /run/systemd/system ]; then
    $sudo systemctl disable --now etcd >/dev/null 2>&1 || true
  else
    # No systemd: policy-rc.d usually keeps the service from starting (as in
    # containers), but if the package's init script did start it, stop it.
    # The packaged etcd runs as the user etcd; ours run as the caller.
    if pgrep -x -u etcd etcd >/dev/null 2>&1; then
      echo "install-etcd: stopping the packaged etcd service"
      $sudo /etc/init.d/etcd stop >/dev/null 2>&1 || true
      for pid in $(pgrep -x -u etcd etcd || true); do
        $sudo kill -TERM "$pid" || true
      done
    fi
  fi
fi

command -v etcd >/dev/null || { echo "install-etcd: etcd not found after install" >&2; exit 1; }

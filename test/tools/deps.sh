#!/usr/bin/env bash
# Prepares this machine for the tests, the one set-up step of `make test` and
# .ci/run: installs the Debian packages the tests use (one `apt-get install`
# of what is missing, nothing at all when everything is present) and mounts
# bpffs and tracefs when they are not mounted.
#
# Not root, or not Debian: stops with one message naming what is missing and
# how to install it, so a run can never pass by quietly skipping tests.
set -euo pipefail

# The one list of the Debian packages the tests use.
packages=(
  make git ca-certificates          # make, .ci/run on a clean clone
  clang llvm libbpf-dev bpftool     # eBPF objects (make generate, test bundles), bpftool comparisons
  iproute2 nftables ethtool         # network namespaces and veths, the nftables baseline, GRO on veths
  docker-registry                   # the e2e suite's real OCI registry
  libseccomp-dev pkg-config         # the real-node suite
  iptables conntrack busybox-static # the real-node suite
)
mounts=(
  "/sys/fs/bpf bpf"
  "/sys/kernel/tracing tracefs"
)

fail() {
  printf 'make test cannot run on this machine: %s\n' "$1" >&2
  exit 1
}

if ! command -v dpkg-query >/dev/null || ! command -v apt-get >/dev/null; then
  fail "it needs Debian: it installs the packages the tests use with apt-get, and this machine has no $(command -v dpkg-query >/dev/null && echo apt-get || echo dpkg-query).
On Debian 12, as root: make test (it installs them: ${packages[*]})"
fi

# One dpkg-query for all (one per package costs 30 ms); it prints
# nothing and exits non-zero for a package it has never heard of.
installed=" $(dpkg-query -W -f='${Package}=${Status}\n' "${packages[@]}" 2>/dev/null |
  sed -n 's/=install ok installed$//p' | tr '\n' ' ' || true) "
missing=()
for pkg in "${packages[@]}"; do
  [[ $installed == *" $pkg "* ]] || missing+=("$pkg")
done
unmounted=()
for m in "${mounts[@]}"; do
  read -r dir fs <<<"$m"
  mountpoint -q "$dir" || unmounted+=("$fs at $dir")
done

if [[ $(id -u) != 0 ]]; then
  what="it needs root (eBPF, network namespaces, bpffs)"
  how="Run it as root: sudo make test"
  if ((${#missing[@]})); then
    what+=" and the Debian packages ${missing[*]}"
    how+=" (installs them), or first: sudo apt-get install -y --no-install-recommends ${missing[*]}"
  fi
  if ((${#unmounted[@]})); then
    what+="; $(IFS=,; echo "${unmounted[*]}" | sed 's/,/, /g') not mounted"
  fi
  fail "$what.
$how"
fi

if ((${#missing[@]})); then
  echo "installing Debian packages the tests need: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
for m in "${mounts[@]}"; do
  read -r dir fs <<<"$m"
  if ! mountpoint -q "$dir"; then
    echo "mounting $fs at $dir"
    mount -t "$fs" "$fs" "$dir"
  fi
done

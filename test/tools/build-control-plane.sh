#!/usr/bin/env bash
# Builds a real control plane for tests (etcd, kube-apiserver, kubectl) from the
# Go module proxy into $OUT, offline from any other download site, through the
# shim module of k8s-shim.sh. A version stamp makes a second run a no-op.
set -euo pipefail

K8S_VERSION=${K8S_VERSION:-v1.37.1}
ETCD_VERSION=${ETCD_VERSION:-v3.7.0}
OUT=${1:?usage: build-control-plane.sh OUTDIR}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
stamp="$OUT/.version"
want="kubernetes=$K8S_VERSION etcd=$ETCD_VERSION"
if [[ -f $stamp && $(cat "$stamp") == "$want" && -x $OUT/kube-apiserver && -x $OUT/etcd && -x $OUT/kubectl ]]; then
  echo "control plane $want already built in $OUT"
  exit 0
fi

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=k8s-shim.sh
source "$here/k8s-shim.sh"
shim=$(mktemp -d)
trap 'rm -rf "$shim"' EXIT
cd "$shim"
k8s_shim "$K8S_VERSION" "$ETCD_VERSION"
k8s_build "$K8S_VERSION" "$OUT" kube-apiserver kubectl
go build -trimpath -ldflags "-s -w" -o "$OUT/etcd" go.etcd.io/etcd/server/v3
echo "$want" > "$stamp"
echo "built $want into $OUT"

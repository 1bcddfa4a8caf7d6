#!/usr/bin/env bash
# Builds what a real Kubernetes node needs, from the Go module proxy only, into
# $OUT: kubelet, kube-controller-manager, kube-scheduler and kube-proxy (same
# Kubernetes version and shim as build-control-plane.sh), containerd v2 with
# ctr and the runc shim, runc (cgo, seccomp: needs Debian's libseccomp-dev),
# and the CNI plugins the test cluster uses (in $OUT/cni). A version stamp
# makes a second run a no-op.
set -euo pipefail

K8S_VERSION=${K8S_VERSION:-v1.37.1}
ETCD_VERSION=${ETCD_VERSION:-v3.7.0}
CONTAINERD_VERSION=${CONTAINERD_VERSION:-v2.4.2}
RUNC_VERSION=${RUNC_VERSION:-v1.5.3}
CNI_VERSION=${CNI_VERSION:-v1.10.0}
OUT=${1:?usage: build-node.sh OUTDIR}
mkdir -p "$OUT/cni"
OUT=$(cd "$OUT" && pwd)
stamp="$OUT/.version"
want="kubernetes=$K8S_VERSION containerd=$CONTAINERD_VERSION runc=$RUNC_VERSION cni=$CNI_VERSION"
components=(kubelet kube-controller-manager kube-scheduler kube-proxy)
binaries=("${components[@]}" containerd ctr containerd-shim-runc-v2 runc cni/bridge cni/host-local cni/loopback cni/portmap)
built() { local b; for b in "${binaries[@]}"; do [[ -x $OUT/$b ]] || return 1; done; }
if [[ -f $stamp && $(cat "$stamp") == "$want" ]] && built; then
  echo "node components $want already built in $OUT"
  exit 0
fi
if ! pkg-config --exists libseccomp 2>/dev/null; then
  echo "runc needs libseccomp's headers: apt-get install libseccomp-dev pkg-config" >&2
  exit 1
fi

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=k8s-shim.sh
source "$here/k8s-shim.sh"
shim=$(mktemp -d)
trap 'rm -rf "$shim"' EXIT
cd "$shim"
k8s_shim "$K8S_VERSION" "$ETCD_VERSION"
k8s_build "$K8S_VERSION" "$OUT" "${components[@]}"

cd "$OUT"
GOBIN=$OUT go install "github.com/containerd/containerd/v2/cmd/containerd@$CONTAINERD_VERSION" \
  "github.com/containerd/containerd/v2/cmd/ctr@$CONTAINERD_VERSION" \
  "github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2@$CONTAINERD_VERSION"
GOBIN=$OUT CGO_ENABLED=1 go install -tags seccomp "github.com/opencontainers/runc@$RUNC_VERSION"
for p in main/bridge ipam/host-local main/loopback meta/portmap; do
  GOBIN=$OUT/cni go install "github.com/containernetworking/plugins/plugins/$p@$CNI_VERSION"
done
echo "$want" > "$stamp"
echo "built $want into $OUT"

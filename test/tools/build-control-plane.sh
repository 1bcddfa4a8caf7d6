#!/usr/bin/env bash
# Builds a real control plane for tests (etcd, kube-apiserver, kubectl) from the
# Go module proxy into $OUT, offline from any other download site.
#
# k8s.io/kubernetes cannot be `go install`ed: its go.mod replaces every staging
# module with a local path. We generate a tiny shim module that requires it and
# replaces each staging module with its published k8s.io/<name> v0.<minor>.<patch>.
# A version stamp makes a second run a no-op.
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

staging_version="v0.${K8S_VERSION#v1.}"
shim=$(mktemp -d)
trap 'rm -rf "$shim"' EXIT
cd "$shim"

modfile=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
[[ -f $modfile ]] || { echo "cannot download k8s.io/kubernetes@$K8S_VERSION go.mod" >&2; exit 1; }

{
  echo "module bpfleet.local/controlplane"
  echo
  echo "go $(go env GOVERSION | sed 's/^go\([0-9]*\.[0-9]*\).*/\1/')"
  echo
  echo "require ("
  echo "	k8s.io/kubernetes $K8S_VERSION"
  echo "	go.etcd.io/etcd/server/v3 $ETCD_VERSION"
  echo ")"
  echo
  echo "replace ("
  sed -n '/^replace (/,/^)/p' "$modfile" | grep -o 'k8s.io/[a-z0-9-]* =>' | sed 's/ =>//' |
    while read -r m; do echo "	$m => $m $staging_version"; done
  echo ")"
  echo
  echo "tool ("
  echo "	k8s.io/kubernetes/cmd/kube-apiserver"
  echo "	k8s.io/kubernetes/cmd/kubectl"
  echo "	go.etcd.io/etcd/server/v3"
  echo ")"
} > go.mod

go mod tidy

commit=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/.*"Sum": "\(.*\)".*/\1/p' | head -1)
minor=${K8S_VERSION#v1.}; minor=${minor%%.*}
ldflags=""
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
  ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done

go build -trimpath -ldflags "-s -w $ldflags" -o "$OUT/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver
go build -trimpath -ldflags "-s -w $ldflags" -o "$OUT/kubectl" k8s.io/kubernetes/cmd/kubectl
go build -trimpath -ldflags "-s -w" -o "$OUT/etcd" go.etcd.io/etcd/server/v3
echo "$want" > "$stamp"
echo "built $want into $OUT (commit sum $commit)"

# Sourced by build-control-plane.sh and build-node.sh: the shim module that
# builds Kubernetes components from the Go module proxy.
#
# k8s.io/kubernetes cannot be `go install`ed: its go.mod replaces every staging
# module with a local path. k8s_shim writes a tiny module into the current
# directory that requires it and replaces each staging module with its
# published k8s.io/<name> v0.<minor>.<patch>; every component of both scripts
# is a tool of it, so both resolve the same module graph.

# k8s_shim K8S_VERSION ETCD_VERSION
k8s_shim() {
  local k8s=$1 etcd=$2 modfile staging="v0.${1#v1.}"
  modfile=$(go mod download -json "k8s.io/kubernetes@$k8s" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
  [[ -f $modfile ]] || { echo "cannot download k8s.io/kubernetes@$k8s go.mod" >&2; return 1; }
  {
    echo "module bpfleet.local/controlplane"
    echo
    echo "go $(go env GOVERSION | sed 's/^go\([0-9]*\.[0-9]*\).*/\1/')"
    echo
    echo "require ("
    echo "	k8s.io/kubernetes $k8s"
    echo "	go.etcd.io/etcd/server/v3 $etcd"
    echo ")"
    echo
    echo "replace ("
    sed -n '/^replace (/,/^)/p' "$modfile" | grep -o 'k8s.io/[a-z0-9-]* =>' | sed 's/ =>//' |
      while read -r m; do echo "	$m => $m $staging"; done
    echo ")"
    echo
    echo "tool ("
    for c in kube-apiserver kubectl kube-controller-manager kube-scheduler kubelet kube-proxy; do
      echo "	k8s.io/kubernetes/cmd/$c"
    done
    echo "	go.etcd.io/etcd/server/v3"
    echo ")"
  } > go.mod
  go mod tidy
}

# k8s_build K8S_VERSION OUTDIR COMPONENT... builds cmd/COMPONENT of
# k8s.io/kubernetes with the version stamped as a release build would.
k8s_build() {
  local k8s=$1 out=$2 minor pkg ldflags="" c
  shift 2
  minor=${k8s#v1.}; minor=${minor%%.*}
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $pkg.gitVersion=$k8s -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
    ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  done
  for c in "$@"; do
    go build -trimpath -ldflags "-s -w $ldflags" -o "$out/$c" "k8s.io/kubernetes/cmd/$c"
  done
}

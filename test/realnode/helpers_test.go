package realnode

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/bpfleet/bpfleet/api/v1alpha1"
	"github.com/bpfleet/bpfleet/bpf/xdpfilter"
	"github.com/bpfleet/bpfleet/nodeagent/bpffs"
	"github.com/bpfleet/bpfleet/test/support/envtest"
	"github.com/bpfleet/bpfleet/test/support/livetraffic/death"
	"github.com/bpfleet/bpfleet/test/support/netns"
	"github.com/bpfleet/bpfleet/test/support/registry/testbundle"
)

const (
	// agentBPFFS is the pin root config/agent/daemonset.yaml gives the agent.
	agentBPFFS   = "/sys/fs/bpf/bpfleet"
	deathPort    = 9999
	keyPassword  = "realnode-test"
	policyName   = "realnode"
	bundleRepo   = "bundles"
	applyTimeout = time.Minute
)

var deathPattern = []byte("DEATH")

// run runs a command and fails the test with its output on error.
func (e *env) run(t testing.TB, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), "COSIGN_PASSWORD="+keyPassword, "BPFLEET_LAYOUT="+filepath.Join(e.tmp, "layout"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// kubectl runs kubectl as cluster admin and fails the test on error.
func (e *env) kubectl(t testing.TB, args ...string) string {
	t.Helper()
	out, err := e.c.Kubectl(context.Background(), args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// apply writes manifest to a file and kubectl-applies it.
func (e *env) apply(t testing.TB, manifest string) {
	t.Helper()
	f := filepath.Join(t.TempDir(), "manifest.yaml")
	if err := os.WriteFile(f, []byte(manifest), 0o644); err != nil {
		t.Fatal(err)
	}
	e.kubectl(t, "apply", "-f", f)
}

// trust makes the suite's cosign key pair and a BundleTrustPolicy that
// admits the registry's bundles signed by it, once.
func (e *env) trust(t testing.TB) {
	t.Helper()
	if e.key != "" {
		return
	}
	dir := filepath.Join(e.tmp, "keys")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	e.run(t, e.bpfleetBin, "bundle", "generate-key-pair", "--output-dir", dir)
	pub, err := os.ReadFile(filepath.Join(dir, "cosign.pub"))
	if err != nil {
		t.Fatal(err)
	}
	indented := "        " + strings.ReplaceAll(strings.TrimSpace(string(pub)), "\n", "\n        ")
	e.apply(t, fmt.Sprintf(`apiVersion: bpfleet.io/v1alpha1
kind: BundleTrustPolicy
metadata: {name: %s}
spec:
  images: ["%s/%s/*"]
  keys:
    - name: realnode
      publicKey: |
%s
`, policyName, e.c.RegistryNodeHost, bundleRepo, indented))
	e.key = filepath.Join(dir, "cosign.key")
}

// pushBundle builds dir's bundle with the bpfleet CLI, pushes it to the
// cluster's registry and signs the pushed digest, as a bundle author does.
// It returns the reference pods use (the registry on the node's address).
func (e *env) pushBundle(t testing.TB, dir, name, version string) string {
	t.Helper()
	e.trust(t)
	ref := fmt.Sprintf("%s/%s/%s:%s", e.c.RegistryHost, bundleRepo, name, version)
	e.run(t, e.bpfleetBin, "bundle", "build", dir, "-t", ref)
	out := e.run(t, e.bpfleetBin, "bundle", "push", ref)
	lines := strings.Fields(out)
	byDigest := lines[len(lines)-1]
	if !strings.Contains(byDigest, "@sha256:") {
		t.Fatalf("bundle push printed no digest: %s", out)
	}
	e.run(t, e.bpfleetBin, "bundle", "sign", "--key", e.key, byDigest)
	return strings.Replace(ref, e.c.RegistryHost, e.c.RegistryNodeHost, 1)
}

// waitAttached waits until the node reports every attach point of the
// BpfProgram name Attached (want of them), and returns them.
func (e *env) waitAttached(t testing.TB, name string, want int, timeout time.Duration) []v1.ProgramState {
	t.Helper()
	var got []v1.ProgramState
	envtest.Eventually(t, timeout, func() error {
		got = e.entries(t, name)
		attached := 0
		for _, p := range got {
			switch p.State {
			case v1.PhaseAttached:
				attached++
			case v1.PhaseFailed:
				return fmt.Errorf("%s failed on %s: %s: %s", name, p.AttachPoint, p.Reason, p.Message)
			}
		}
		if attached != want {
			return fmt.Errorf("%s: %d of %d attach points Attached: %+v", name, attached, want, got)
		}
		return nil
	})
	return got
}

// entries are the node's status rows of the BpfProgram name.
func (e *env) entries(t testing.TB, name string) []v1.ProgramState {
	t.Helper()
	var s v1.BpfNodeState
	if err := e.client.Get(context.Background(), client.ObjectKey{Name: e.c.NodeName}, &s); err != nil {
		return nil
	}
	var out []v1.ProgramState
	for _, p := range s.Status.Programs {
		if p.BpfProgram == name {
			out = append(out, p)
		}
	}
	return out
}

func (e *env) uid(t testing.TB, name string) types.UID {
	t.Helper()
	var p v1.BpfProgram
	if err := e.client.Get(context.Background(), client.ObjectKey{Name: name}, &p); err != nil {
		t.Fatal(err)
	}
	return p.UID
}

// deleteProgram deletes a BpfProgram at the end of the test and waits until
// the node reports it no more.
func (e *env) deleteProgram(t testing.TB, name string) {
	t.Helper()
	t.Cleanup(func() {
		_ = e.client.Delete(context.Background(), &v1.BpfProgram{ObjectMeta: metaName(name)})
		envtest.Eventually(t, time.Minute, func() error {
			if n := len(e.entries(t, name)); n > 0 {
				return fmt.Errorf("node still reports %d rows of %s", n, name)
			}
			return nil
		})
	})
}

// filter is the packet-of-death filter on an interface of the node: a veth
// whose node end (in the host's namespace, where the agent pod lives) runs
// the filter, and whose other end, in a namespace of the test's, sends.
type filter struct {
	name      string
	nodeIface string
	src       *netns.NS
	veth      *netns.Veth
	uid       types.UID
	id        uint32
}

var filterSubnet byte

// filterEntries is the YAML list of spec.mapEntries items (indented for
// spec) of the filter's rule set, its index included, in the order they
// must be written.
func filterEntries(t testing.TB, rules ...xdpfilter.Rule) string {
	t.Helper()
	entries, err := xdpfilter.RuleSet(rules).Entries()
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, en := range entries {
		key, value := en.Hex()
		fmt.Fprintf(&b, "    - {map: %s, key: \"%s\", value: \"%s\"}\n", en.Map, key, value)
	}
	return b.String()
}

// newFilter applies the shipped xdp-pod-filter bundle to a new interface of
// the node and waits until it is Attached. It returns with the time from
// apply to Attached.
func (e *env) newFilter(t testing.TB, name string) (*filter, time.Duration) {
	t.Helper()
	filterSubnet++
	src := netns.New(t)
	nodeAddr := fmt.Sprintf("198.19.%d.1/30", 100+filterSubnet)
	srcAddr := fmt.Sprintf("198.19.%d.2/30", 100+filterSubnet)
	veth := netns.NewVeth(t, nil, nodeAddr, src, srcAddr)
	ref := e.pushBundle(t, filepath.Join(repoDir, "bpf", "xdpfilter"), xdpfilter.BundleName, "0.1.0")
	entries := filterEntries(t, xdpfilter.Rule{Action: xdpfilter.ActionDrop, Protocol: xdpfilter.ProtocolUDP, DstPort: deathPort, Pattern: deathPattern})
	e.deleteProgram(t, name)
	began := time.Now()
	e.apply(t, fmt.Sprintf(`apiVersion: bpfleet.io/v1alpha1
kind: BpfProgram
metadata: {name: %s}
spec:
  bundle: {image: %s}
  programs:
    - name: %s
      xdp: {interfaces: {names: [%s]}, mode: native}
  mapEntries:
%s`, name, ref, xdpfilter.ProgramName, veth.A, entries))
	rows := e.waitAttached(t, name, 1, applyTimeout)
	took := time.Since(began)
	return &filter{name: name, nodeIface: veth.A, src: src, veth: veth, uid: e.uid(t, name), id: rows[0].ID}, took
}

// path is the filter's packet-of-death stream: from the test's namespace to
// the node's interface.
func (f *filter) path(t testing.TB) death.Path {
	nodeAddr := netip.MustParsePrefix(mustAddr(t, f.veth.A, nil)).Addr()
	srcAddr := netip.MustParsePrefix(mustAddr(t, f.veth.B, f.src)).Addr()
	return death.Path{
		SourceIface: f.veth.B,
		SourceEnter: func(fn func() error) error { return f.src.Do(t, fn) },
		FilterIface: f.veth.A,
		Src:         srcAddr, Dst: nodeAddr, Port: deathPort, Pattern: deathPattern,
		HitsPin: func() string { return bpffs.Layout{Root: agentBPFFS}.Map(f.uid, xdpfilter.HitsMap) },
	}
}

func mustAddr(t testing.TB, dev string, ns *netns.NS) string {
	t.Helper()
	args := []string{"-4", "-o", "addr", "show", "dev", dev}
	if ns != nil {
		args = append([]string{"-n", ns.Name}, args...)
	}
	out := netns.Run(t, "ip", args...)
	f := strings.Fields(out)
	for i, w := range f {
		if w == "inet" && i+1 < len(f) {
			return f[i+1]
		}
	}
	t.Fatalf("no IPv4 address on %s: %s", dev, out)
	return ""
}

// bundleVersion copies the bundle directory src with its version set to
// version: the same programs as another release, so another digest.
func bundleVersion(t testing.TB, src, version string) string {
	t.Helper()
	dir := t.TempDir()
	if err := testbundle.CopyWithVersion(src, dir, version); err != nil {
		t.Fatal(err)
	}
	return dir
}

package dataplane_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/go-logr/logr/testr"
	"k8s.io/apimachinery/pkg/types"

	"github.com/bpfleet/bpfleet/api/v1alpha1"
	"github.com/bpfleet/bpfleet/nodeagent/bpffs"
	"github.com/bpfleet/bpfleet/nodeagent/dataplane"
	"github.com/bpfleet/bpfleet/test/support/kernelprog"
	"github.com/bpfleet/bpfleet/test/support/netns"
	"github.com/bpfleet/bpfleet/test/support/privileged"
)

// env is one simulated node: a test-unique pin root and state dir, and a
// network namespace (nsA) holding veth end A, whose peer B sits in nsB.
type env struct {
	root, state string
	nsA, nsB    *netns.NS
	veth        *netns.Veth
	opts        dataplane.Options
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func newEnv(t testing.TB) *env {
	t.Helper()
	privileged.RequireBPFFS(t)
	privileged.RequireCommand(t, "ip")
	e := &env{root: "/sys/fs/bpf/bpfleet-test-" + randHex(6), state: t.TempDir()}
	t.Cleanup(func() { _ = os.RemoveAll(e.root) })
	e.nsA, e.nsB = netns.New(t), netns.New(t)
	e.veth = netns.NewVeth(t, e.nsA, "10.77.0.1/24", e.nsB, "10.77.0.2/24")
	e.opts = dataplane.Options{
		BPFFSRoot: e.root,
		StateDir:  e.state,
		NetNS:     filepath.Join("/var/run/netns", e.nsA.Name),
		Log:       testr.NewWithInterface(t, testr.Options{}),
		BootID:    "boot-1",
	}
	return e
}

// open starts a Dataplane on the env, closed at the end of the test.
func (e *env) open(t testing.TB, mod ...func(*dataplane.Options)) *dataplane.Dataplane {
	t.Helper()
	opts := e.opts
	for _, m := range mod {
		m(&opts)
	}
	d, err := dataplane.New(context.Background(), opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = d.Close() })
	return d
}

func bundle(t testing.TB, digest string, obj []byte) *kernelprog.Bundle {
	t.Helper()
	b, err := kernelprog.NewBundle(digest, obj)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// xdpDesired is a BpfProgram running xdp_filter on the env's veth A.
func (e *env) xdpDesired(t *testing.T, uid, digest string, obj []byte, mode v1alpha1.XDPMode) apiDesired {
	return apiDesired{
		Name: "filter-" + uid, UID: types.UID(uid), Generation: 1, Digest: digest,
		Bundle: bundle(t, digest, obj),
		Spec: v1alpha1.BpfProgramSpec{
			Programs: []v1alpha1.ProgramAttachment{{
				Name: kernelprog.XDPFilter,
				XDP:  &v1alpha1.XDPAttach{Interfaces: v1alpha1.InterfaceSelector{Names: []string{e.veth.A}}, Mode: mode},
			}},
			MapEntries: []v1alpha1.MapEntry{{Map: "deny", Key: portKey(9999), Value: "01"}},
		},
	}
}

// portKey is a deny-map key: a UDP port as a host-order (little endian) u16.
func portKey(port uint16) string {
	return hex.EncodeToString([]byte{byte(port), byte(port >> 8)})
}

// one returns the only state of uid, failing otherwise.
func one(t *testing.T, states []dataplane.ProgramState, uid string) dataplane.ProgramState {
	t.Helper()
	var out []dataplane.ProgramState
	for _, s := range states {
		if string(s.UID) == uid {
			out = append(out, s)
		}
	}
	if len(out) != 1 {
		t.Fatalf("want 1 state for %s, got %d: %+v", uid, len(out), out)
	}
	return out[0]
}

func wantAttached(t testing.TB, s dataplane.ProgramState) {
	t.Helper()
	if s.State != dataplane.StateAttached || s.ID == 0 || s.LinkID == 0 {
		t.Fatalf("want Attached with program and link ids, got %s/%s (id %d, link %d): %s", s.State, s.Reason, s.ID, s.LinkID, s.Message)
	}
}

// counter reads counters[idx] of a BpfProgram through its map pin.
func (e *env) counter(t *testing.T, uid string, idx uint32) uint64 {
	t.Helper()
	m, err := ebpf.LoadPinnedMap(bpffs.Layout{Root: e.root}.Map(types.UID(uid), "counters"), nil)
	if err != nil {
		t.Fatalf("open counters: %v", err)
	}
	defer m.Close()
	var v uint64
	if err := m.Lookup(idx, &v); err != nil {
		t.Fatalf("read counter: %v", err)
	}
	return v
}

func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// sendUDP sends n datagrams from nsB to 10.77.0.1:port.
func (e *env) sendUDP(t *testing.T, port, n int) {
	t.Helper()
	err := e.nsB.Do(t, func() error {
		c, err := net.Dial("udp4", net.JoinHostPort("10.77.0.1", strconv.Itoa(port)))
		if err != nil {
			return err
		}
		defer c.Close()
		for i := 0; i < n; i++ {
			// Without a listener ICMP port unreachable comes back and the
			// next write reports it: not a send failure.
			if _, err := c.Write([]byte("bpfleet")); err != nil && !errors.Is(err, syscall.ECONNREFUSED) {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("send UDP: %v", err)
	}
}

package dataplane_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/types"

	"github.com/bpfleet/bpfleet/api/v1alpha1"
	"github.com/bpfleet/bpfleet/nodeagent/dataplane"
	"github.com/bpfleet/bpfleet/test/support/bpfbench"
	"github.com/bpfleet/bpfleet/test/support/kernelprog"
)

// TestConstants rewrites .rodata before load: enabled=false turns the filter
// into a pass-through; a changed constant reloads behind the same link.
func TestConstants(t *testing.T) {
	e := newEnv(t)
	uid := "const-" + randHex(4)
	ds := e.xdpDesired(t, uid, "sha256:v1", kernelprog.Object, v1alpha1.XDPModeNative)
	d := e.open(t)
	on := one(t, d.Apply(ctx, parsed(ds)), uid)
	wantAttached(t, on)
	if again := one(t, d.Apply(ctx, parsed(ds)), uid); again.ID != on.ID || again.LinkID != on.LinkID {
		t.Fatalf("Apply is not idempotent: program %d -> %d, link %d -> %d", on.ID, again.ID, on.LinkID, again.LinkID)
	}

	ds.Spec.Constants = []v1alpha1.Constant{{Name: "enabled", Value: "false"}, {Name: "drop_action", Value: "0x1"}, {Name: "marker", Value: "0x01020304"}}
	off := one(t, d.Apply(ctx, parsed(ds)), uid)
	wantAttached(t, off)
	if off.LinkID != on.LinkID || off.ID == on.ID {
		t.Fatalf("constants change: want same link %d and a new program, got link %d program %d -> %d", on.LinkID, off.LinkID, on.ID, off.ID)
	}
	// Passed packets draw ICMP port unreachable, which fails every other
	// write: 6 writes put at least 3 packets on the wire.
	e.sendUDP(t, 9999, 6)
	if runs, drops := e.counter(t, uid, 0), e.counter(t, uid, 1); runs < 3 || drops != 0 {
		t.Fatalf("enabled=false: want runs and no drops, got %d runs %d drops", runs, drops)
	}

	for _, tc := range []struct {
		name string
		c    v1alpha1.Constant
	}{
		{name: "unknown variable", c: v1alpha1.Constant{Name: "nope", Value: "1"}},
		{name: "too big", c: v1alpha1.Constant{Name: "drop_action", Value: "0x100000000"}},
		{name: "not a bool", c: v1alpha1.Constant{Name: "enabled", Value: "2"}},
		{name: "wrong byte count", c: v1alpha1.Constant{Name: "marker", Value: "0x0102"}},
	} {
		bad := ds
		bad.Spec.Constants = []v1alpha1.Constant{tc.c}
		st := one(t, d.Apply(ctx, parsed(bad)), uid)
		if st.State != dataplane.StateFailed || st.Reason != v1alpha1.ReasonInvalidConstant || st.ID != off.ID || st.LinkID != off.LinkID {
			t.Fatalf("%s: want Failed/InvalidConstant with program %d kept, got %s/%s program %d: %s", tc.name, off.ID, st.State, st.Reason, st.ID, st.Message)
		}
		t.Logf("%s: %s", tc.name, st.Message)
	}
}

// TestPrimaryInterface attaches to the interface of the default route.
func TestPrimaryInterface(t *testing.T) {
	e := newEnv(t)
	e.nsA.Exec(t, "ip", "route", "add", "default", "via", "10.77.0.2")
	uid := "primary-" + randHex(4)
	ds := e.xdpDesired(t, uid, "sha256:v1", kernelprog.Object, v1alpha1.XDPModeGeneric)
	ds.Spec.Programs[0].XDP.Interfaces = v1alpha1.InterfaceSelector{Primary: true}
	d := e.open(t)
	st := one(t, d.Apply(ctx, parsed(ds)), uid)
	wantAttached(t, st)
	if st.AttachPoint != "xdp-generic/"+e.veth.A {
		t.Fatalf("attached to %s, want the default route's %s", st.AttachPoint, e.veth.A)
	}
}

// Generous bounds for TestReadoptTen, some 10-20× what a loaded 2-core VM
// measures (≈0.2 s and ≈0.1 s); BenchmarkReadoptTen reports the figures.
const (
	maxLoadTen    = 5 * time.Second
	maxReadoptTen = 2 * time.Second
)

// TestReadoptTen measures a restart with ten BpfPrograms (tcx, all on one
// interface): nothing is reloaded or re-attached, and both the first load
// and the re-adopt stay within generous bounds.
func TestReadoptTen(t *testing.T) {
	e := newEnv(t)
	loadTime, readopt := readoptTen(t, e)
	t.Logf("10 programs: first load+attach %s, re-adopt after restart (New + Apply) %s", loadTime, readopt)
	if loadTime > maxLoadTen {
		t.Errorf("first load+attach of 10 programs took %s, bound %s", loadTime, maxLoadTen)
	}
	if readopt > maxReadoptTen {
		t.Errorf("re-adopting 10 pinned programs took %s, bound %s: a restarted agent must not stall", readopt, maxReadoptTen)
	}
}

// BenchmarkReadoptTen is TestReadoptTen repeated: the re-adopt of ten
// pinned programs by a restarted dataplane, against the first load and
// attach of the same ten in the same round.
func BenchmarkReadoptTen(b *testing.B) {
	e := newEnv(b)
	var loads, readopts []float64
	for b.Loop() {
		loadTime, readopt := readoptTen(b, e, func(o *dataplane.Options) { o.Log = logr.Discard() })
		loads = append(loads, float64(loadTime.Microseconds())/1000)
		readopts = append(readopts, float64(readopt.Microseconds())/1000)
	}
	b.ReportMetric(bpfbench.Median(readopts), "ms-readopt-10-programs")
	b.ReportMetric(bpfbench.Median(loads), "ms-load-attach-10-programs")
}

// readoptTen loads and attaches ten tcx programs, closes the dataplane as a
// killed agent would leave it, and re-adopts them with a new one; it checks
// that nothing was reloaded, removes the ten, and returns both durations.
func readoptTen(tb testing.TB, e *env, mod ...func(*dataplane.Options)) (loadTime, readopt time.Duration) {
	tb.Helper()
	var desired []apiDesired
	for i := 0; i < 10; i++ {
		uid := fmt.Sprintf("ten-%d-%s", i, randHex(3))
		desired = append(desired, apiDesired{
			Name: uid, UID: types.UID(uid), Digest: "sha256:v1", Bundle: bundle(tb, "sha256:v1", kernelprog.Object),
			Spec: v1alpha1.BpfProgramSpec{Programs: []v1alpha1.ProgramAttachment{{Name: kernelprog.TCCount,
				TC: &v1alpha1.TCAttach{Interfaces: v1alpha1.InterfaceSelector{Names: []string{e.veth.A}}, Direction: v1alpha1.TCIngress}}}},
		})
	}
	d := e.open(tb, mod...)
	start := time.Now()
	first := d.Apply(ctx, parsed(desired...))
	loadTime = time.Since(start)
	if len(first) != 10 {
		tb.Fatalf("want 10 states, got %d", len(first))
	}
	for _, s := range first {
		wantAttached(tb, s)
	}
	_ = d.Close()

	start = time.Now()
	d = e.open(tb, mod...)
	again := d.Apply(ctx, parsed(desired...))
	readopt = time.Since(start)
	for i, s := range again {
		wantAttached(tb, s)
		if s.ID != first[i].ID || s.LinkID != first[i].LinkID {
			tb.Fatalf("%s reloaded: program %d -> %d, link %d -> %d", s.BpfProgram, first[i].ID, s.ID, first[i].LinkID, s.LinkID)
		}
	}
	if left := d.Apply(ctx, nil); len(left) != 0 {
		tb.Fatalf("remove the ten: %d states left", len(left))
	}
	_ = d.Close()
	return loadTime, readopt
}

package dataplane_test

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/types"

	"github.com/bpfleet/bpfleet/api/v1alpha1"
	"github.com/bpfleet/bpfleet/nodeagent/attach"
	"github.com/bpfleet/bpfleet/nodeagent/bpffs"
	"github.com/bpfleet/bpfleet/nodeagent/dataplane"
	"github.com/bpfleet/bpfleet/nodeagent/netwatch"
	"github.com/bpfleet/bpfleet/test/support/kernelprog"
	"github.com/bpfleet/bpfleet/test/support/netns"
	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
)

// simulatedPod is a network namespace standing for a pod's, with a veth
// whose pod end is eth0-like; it returns the pod's scope as the agent
// would resolve it.
func simulatedPod(t *testing.T, name, addr, peerAddr string) (attach.PodScope, *netns.NS, *netns.Veth) {
	t.Helper()
	pod, peer := netns.New(t), netns.New(t)
	v := netns.NewVeth(t, pod, addr, peer, peerAddr)
	nl := netwatch.NewNetlink(filepath.Join("/var/run/netns", pod.Name))
	ifaces, err := nl.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	return attach.PodScope{Name: name, Netns: nl, Interfaces: ifaces}, pod, v
}

// TestXDPInPods attaches inside the network namespaces of the selected
// pods only, never to the node's interface of the same name, and detaches
// and unpins when a pod goes.
func TestXDPInPods(t *testing.T) {
	e := newEnv(t)
	d := e.open(t)
	web1, ns1, v1 := simulatedPod(t, "team-a/web-1", "10.78.1.1/24", "10.78.1.2/24")
	web2, ns2, v2 := simulatedPod(t, "team-a/web-2", "10.78.2.1/24", "10.78.2.2/24")

	uid := "11111111-2222-4333-8444-" + randHex(6)
	des := e.xdpDesired(t, uid, "sha256:v1", kernelprog.Object, v1alpha1.XDPModeGeneric)
	// The same interface name in every pod; the node (nsA) has none of it.
	des.Spec.Programs[0].XDP.Interfaces.Names = []string{v1.A, v2.A, e.veth.A}
	des.Spec.Programs[0].XDP.Pods = &v1alpha1.PodSelector{}
	des.Pods = map[string][]attach.PodScope{kernelprog.XDPFilter: {web1, web2}}

	// One row for the program, however many pods it runs in.
	s := one(t, d.Apply(context.Background(), parsed(des)), uid)
	wantPodRow(t, s, "xdp-generic/pods", 2, 0)
	if netns.XDPProgramID(t, ns1, v1.A) == 0 || netns.XDPProgramID(t, ns2, v2.A) == 0 {
		t.Fatal("XDP not attached inside the pods' namespaces")
	}
	if id := netns.XDPProgramID(t, e.nsA, e.veth.A); id != 0 {
		t.Fatalf("a pod target attached to the node's %s (prog %d)", e.veth.A, id)
	}

	// web-2 goes: its link is detached and unpinned, web-1's stays.
	des.Pods = map[string][]attach.PodScope{kernelprog.XDPFilter: {web1}}
	wantPodRow(t, one(t, d.Apply(context.Background(), parsed(des)), uid), "xdp-generic/pods", 1, 0)
	if netns.XDPProgramID(t, ns2, v2.A) != 0 {
		t.Fatal("web-2 still has the program attached")
	}
	pins, err := bpffs.Layout{Root: e.root}.Links(types.UID(uid))
	if err != nil || len(pins) != 1 {
		t.Fatalf("link pins %v (%v), want web-1's only", pins, err)
	}

	// No pod left: the program stays loaded, ready, and says so.
	des.Pods = map[string][]attach.PodScope{kernelprog.XDPFilter: nil}
	s = one(t, d.Apply(context.Background(), parsed(des)), uid)
	if s.State != dataplane.StateAttached || s.Reason != v1alpha1.ReasonNoPodsOnNode || s.ID == 0 {
		t.Fatalf("no pods: %s/%s id %d: %s", s.State, s.Reason, s.ID, s.Message)
	}
	if netns.XDPProgramID(t, ns1, v1.A) != 0 {
		t.Fatal("web-1 still has the program attached")
	}
}

// TestCgroupInPods attaches a cgroup_skb program to each selected pod's
// cgroup (a directory the test makes in the real cgroup v2 tree), and to
// no other cgroup.
func TestCgroupInPods(t *testing.T) {
	e := newEnv(t)
	d := e.open(t)
	base := filepath.Join(attach.CgroupRoot(), "bpfleet-test-"+randHex(6))
	pod1, pod2 := filepath.Join(base, "pod1"), filepath.Join(base, "pod2")
	for _, dir := range []string{pod1, pod2} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { _ = os.Remove(pod1); _ = os.Remove(pod2); _ = os.Remove(base) })

	uid := "11111111-2222-4333-8444-" + randHex(6)
	des := apiDesired{
		Name: "count-" + uid, UID: types.UID(uid), Generation: 1, Digest: "sha256:v1",
		Bundle: bundle(t, "sha256:v1", kernelprog.Object),
		Spec: v1alpha1.BpfProgramSpec{Programs: []v1alpha1.ProgramAttachment{{
			Name: kernelprog.CgroupSKB, Cgroup: &v1alpha1.CgroupAttach{Pods: &v1alpha1.PodSelector{}, AttachType: "egress"},
		}}},
		Pods: map[string][]attach.PodScope{kernelprog.CgroupSKB: {{Name: "team-a/web-1", CgroupDir: pod1}, {Name: "team-a/web-2", CgroupDir: pod2}}},
	}
	wantPodRow(t, one(t, d.Apply(context.Background(), parsed(des)), uid), "cgroup/pods", 2, 0)
	for _, dir := range []string{pod1, pod2, base} {
		q, err := link.QueryPrograms(link.QueryOptions{Target: mustOpen(t, dir), Attach: ebpf.AttachCGroupInetEgress})
		if err != nil {
			t.Fatal(err)
		}
		want := 1
		if dir == base {
			want = 0
		}
		if len(q.Programs) != want {
			t.Errorf("%s has %d egress programs, want %d", dir, len(q.Programs), want)
		}
	}
}

func mustOpen(t *testing.T, path string) int {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Close() })
	return int(f.Fd())
}

// wantPodRow checks the one row of a program that targets pods.
func wantPodRow(t *testing.T, s dataplane.ProgramState, point string, attached, failed int32) {
	t.Helper()
	if s.AttachPoint != point || s.Pods == nil || s.Pods.Attached != attached || s.Pods.Failed != failed || s.ID == 0 {
		t.Fatalf("row %s %s/%s id %d pods %+v, want %s with %d attached, %d failed", s.AttachPoint, s.State, s.Reason, s.ID, s.Pods, point, attached, failed)
	}
	if failed == 0 && s.State != dataplane.StateAttached {
		t.Fatalf("row %s is %s/%s: %s", point, s.State, s.Reason, s.Message)
	}
}

// TestPodRowReportsFailures: a pod whose interface cannot take the program
// shows in the program's one row as a count and a recent failure, and the
// other pods stay attached.
func TestPodRowReportsFailures(t *testing.T) {
	e := newEnv(t)
	d := e.open(t)
	web1, _, v1 := simulatedPod(t, "team-a/web-1", "10.78.3.1/24", "10.78.3.2/24")
	uid := "11111111-2222-4333-8444-" + randHex(6)
	des := e.xdpDesired(t, uid, "sha256:v1", kernelprog.Object, v1alpha1.XDPModeGeneric)
	des.Spec.Programs[0].XDP.Interfaces.Names = []string{v1.A, "ghost0"}
	des.Spec.Programs[0].XDP.Pods = &v1alpha1.PodSelector{}
	// A pod whose listed interface vanished before the attach.
	ghost := web1
	ghost.Name = "team-a/ghost"
	ghost.Interfaces = []netwatch.Interface{{Name: "ghost0", Index: 99999}}
	des.Pods = map[string][]attach.PodScope{kernelprog.XDPFilter: {web1, ghost}}
	s := one(t, d.Apply(context.Background(), parsed(des)), uid)
	if s.State != dataplane.StateFailed || s.Pods == nil || s.Pods.Attached != 1 || s.Pods.Failed != 1 ||
		len(s.Pods.RecentFailures) != 1 || !strings.Contains(s.Pods.RecentFailures[0], "team-a/ghost") {
		t.Fatalf("row %s/%s pods %+v: %s", s.State, s.Reason, s.Pods, s.Message)
	}
}

// TestTCInPods attaches a tcx program inside the selected pod's network
// namespace, never on the node's interface of the same name.
func TestTCInPods(t *testing.T) {
	e := newEnv(t)
	d := e.open(t)
	web, ns, v := simulatedPod(t, "team-a/web-1", "10.78.4.1/24", "10.78.4.2/24")
	uid := "11111111-2222-4333-8444-" + randHex(6)
	des := apiDesired{
		Name: "count-" + uid, UID: types.UID(uid), Generation: 1, Digest: "sha256:v1",
		Bundle: bundle(t, "sha256:v1", kernelprog.Object),
		Spec: v1alpha1.BpfProgramSpec{Programs: []v1alpha1.ProgramAttachment{{
			Name: kernelprog.TCCount, TC: &v1alpha1.TCAttach{Interfaces: v1alpha1.InterfaceSelector{Names: []string{v.A, e.veth.A}},
				Direction: v1alpha1.TCIngress, Pods: &v1alpha1.PodSelector{}},
		}}},
		Pods: map[string][]attach.PodScope{kernelprog.TCCount: {web}},
	}
	wantPodRow(t, one(t, d.Apply(context.Background(), parsed(des)), uid), "tcx-ingress/pods", 1, 0)
	count := func(n *netns.NS, dev string) int {
		var got int
		err := n.Do(t, func() error {
			ifc, err := net.InterfaceByName(dev)
			if err != nil {
				return err
			}
			r, err := link.QueryPrograms(link.QueryOptions{Target: ifc.Index, Attach: ebpf.AttachTCXIngress})
			if err != nil {
				return err
			}
			got = len(r.Programs)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	if count(ns, v.A) != 1 {
		t.Fatal("no tcx program inside the pod's namespace")
	}
	if count(e.nsA, e.veth.A) != 0 {
		t.Fatal("a pod target attached to the node's interface")
	}
}

package realnode

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/bpfleet/bpfleet/api/v1alpha1"
	"github.com/bpfleet/bpfleet/bpf/exectrace"
	"github.com/bpfleet/bpfleet/bpf/xdpfilter"
	"github.com/bpfleet/bpfleet/nodeagent/bpffs"
	"github.com/bpfleet/bpfleet/operator/podprogram"
	"github.com/bpfleet/bpfleet/test/support/envtest"
	"github.com/bpfleet/bpfleet/test/support/netns"
)

// tenantNamespace makes a namespace labelled team=<name> for the test, and
// a namespace trust policy admitting the suite's signed bundles there.
func (e *env) tenantNamespace(t testing.TB, name string) {
	t.Helper()
	e.trust(t)
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"team": name}}}
	if err := e.client.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.client.Delete(context.Background(), ns) })
	var cluster v1.BundleTrustPolicy
	if err := e.client.Get(ctx, client.ObjectKey{Name: policyName}, &cluster); err != nil {
		t.Fatal(err)
	}
	pol := &v1.BundleTrustPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "realnode-ns-" + name},
		Spec: v1.BundleTrustPolicySpec{Images: cluster.Spec.Images, Keys: cluster.Spec.Keys,
			NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"team": name}}},
	}
	if err := e.client.Create(ctx, pol); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.client.Delete(context.Background(), pol) })
}

// podIn runs a long-sleeping busybox pod in namespace ns.
func (e *env) podIn(t testing.TB, ns, name string, labels map[string]string) *corev1.Pod {
	t.Helper()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: labels},
		Spec: corev1.PodSpec{
			TerminationGracePeriodSeconds: new(int64),
			Containers:                    []corev1.Container{{Name: "main", Image: e.c.WorkloadImage, Command: []string{"sleep", "3600"}}},
		},
	}
	if err := e.client.Create(context.Background(), pod); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.client.Delete(context.Background(), pod) })
	return pod
}

// waitRunning waits until pod runs and has an IP, and returns when the
// test saw it running.
func (e *env) waitRunning(t *testing.T, pod *corev1.Pod) time.Time {
	t.Helper()
	envtest.Eventually(t, 2*time.Minute, func() error {
		if err := e.client.Get(context.Background(), client.ObjectKeyFromObject(pod), pod); err != nil {
			return err
		}
		if pod.Status.Phase != corev1.PodRunning || pod.Status.PodIP == "" {
			return fmt.Errorf("pod %s is %s", pod.Name, pod.Status.Phase)
		}
		return nil
	})
	return time.Now()
}

// podXDP is the XDP program id on eth0 inside pod's network namespace (0:
// none), read with the node's ip through the pod's main process.
func (e *env) podXDP(t testing.TB, pod *corev1.Pod) uint32 {
	t.Helper()
	pid := e.containerPID(t, pod, "main")
	out := e.run(t, "nsenter", "-t", strconv.Itoa(pid), "-n", "ip", "-d", "link", "show", "eth0")
	f := strings.Fields(out)
	for i, w := range f {
		if (w == "prog/xdp" || w == "prog/xdpgeneric" || w == "prog/xdpdrv") && i+2 < len(f) && f[i+1] == "id" {
			id, err := strconv.Atoi(f[i+2])
			if err != nil {
				t.Fatal(err)
			}
			return uint32(id)
		}
	}
	return 0
}

// sendDeath sends n packets of death from the node to pod's IP.
func sendDeath(t *testing.T, pod *corev1.Pod, n int) {
	t.Helper()
	c, err := net.Dial("udp4", net.JoinHostPort(pod.Status.PodIP, strconv.Itoa(deathPort)))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for range n {
		_, _ = c.Write(deathPattern) // refusals (no listener) come back as errors; the packets went out
	}
}

// dropped is how many packets of death rule 0 of the program dropped, in
// every pod it is attached in.
func dropped(t *testing.T, uid string) uint64 {
	t.Helper()
	m, err := ebpf.LoadPinnedMap(bpffs.Layout{Root: agentBPFFS}.Map(types.UID(uid), xdpfilter.HitsMap), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	var per []xdpfilter.Counter
	if err := m.Lookup(uint32(0), &per); err != nil {
		t.Fatal(err)
	}
	var sum uint64
	for _, c := range per {
		sum += c.Packets
	}
	return sum
}

// TestPodTargetsOnRealPods: an application team's BpfPodProgram attaches
// the packet-of-death filter in its own pods labelled app=web, on real
// pods of the real node: their traffic is filtered, a pod of another
// label or another namespace is untouched though it carries the label, a
// pod created later is covered within a second of running, and a deleted
// pod leaves no pin, record or link.
func TestPodTargetsOnRealPods(t *testing.T) {
	e := requireSuite(t)
	ctx := context.Background()
	e.tenantNamespace(t, "team-a")
	e.tenantNamespace(t, "team-b")
	ref := e.pushBundle(t, filepath.Join(repoDir, "bpf", "xdpfilter"), xdpfilter.BundleName, "0.1.0")
	entries := filterEntries(t, xdpfilter.Rule{Action: xdpfilter.ActionDrop, Protocol: xdpfilter.ProtocolUDP, DstPort: deathPort, Pattern: deathPattern})
	webA := e.podIn(t, "team-a", "web", map[string]string{"app": "web"})
	dbA := e.podIn(t, "team-a", "db", map[string]string{"app": "db"})
	webB := e.podIn(t, "team-b", "web", map[string]string{"app": "web"})
	for _, p := range []*corev1.Pod{webA, dbA, webB} {
		e.waitRunning(t, p)
	}

	e.apply(t, fmt.Sprintf(`apiVersion: bpfleet.io/v1alpha1
kind: BpfPodProgram
metadata: {name: web-filter, namespace: team-a}
spec:
  bundle: {image: %s}
  programs:
    - name: %s
      xdp: {interfaces: {names: [eth0]}, mode: native, pods: {selector: {matchLabels: {app: web}}}}
  mapEntries:
%s`, ref, xdpfilter.ProgramName, entries))
	kept := podprogram.ProgramName("team-a", "web-filter")
	t.Cleanup(func() {
		_ = e.client.Delete(context.Background(), &v1.BpfPodProgram{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "web-filter"}})
		envtest.Eventually(t, time.Minute, func() error {
			if n := len(e.entries(t, kept)); n > 0 {
				return fmt.Errorf("node still reports %d rows of %s", n, kept)
			}
			return nil
		})
	})
	rows := e.waitPodRow(t, kept, "xdp/pods", 1, applyTimeout)
	uid := string(e.uid(t, kept))
	if e.podXDP(t, webA) != rows[0].ID {
		t.Fatalf("team-a/web's eth0 does not run program %d", rows[0].ID)
	}
	for _, p := range []*corev1.Pod{dbA, webB} {
		if id := e.podXDP(t, p); id != 0 {
			t.Fatalf("%s/%s runs XDP program %d; it is not selected", p.Namespace, p.Name, id)
		}
	}
	before := dropped(t, uid)
	sendDeath(t, webB, 50)
	sendDeath(t, dbA, 50)
	time.Sleep(200 * time.Millisecond)
	if got := dropped(t, uid) - before; got != 0 {
		t.Fatalf("%d packets of death to unselected pods were dropped by the tenant's filter", got)
	}
	sendDeath(t, webA, 50)
	envtest.Eventually(t, 5*time.Second, func() error {
		if got := dropped(t, uid) - before; got != 50 {
			return fmt.Errorf("dropped %d of 50 packets of death to team-a/web", got)
		}
		return nil
	})

	// A pod created later is covered within a second of running.
	later := e.podIn(t, "team-a", "web-later", map[string]string{"app": "web"})
	running := e.waitRunning(t, later)
	var covered time.Duration
	envtest.Eventually(t, 10*time.Second, func() error {
		if e.podXDP(t, later) == 0 {
			return fmt.Errorf("team-a/web-later not covered yet")
		}
		covered = time.Since(running)
		return nil
	})
	t.Logf("pod seen running → filter attached in it: %s (0 means before the test saw it running)", covered.Round(time.Millisecond))
	if covered > time.Second {
		t.Errorf("a new pod was covered %s after it ran, want within 1s", covered)
	}
	e.waitPodRow(t, kept, "xdp/pods", 2, 10*time.Second)

	// A deleted pod leaves no pin, record or link.
	if err := e.client.Delete(ctx, later); err != nil {
		t.Fatal(err)
	}
	e.waitPodRow(t, kept, "xdp/pods", 1, time.Minute)
	envtest.Eventually(t, time.Minute, func() error {
		pins, err := bpffs.Layout{Root: agentBPFFS}.Links(types.UID(uid))
		if err != nil {
			return err
		}
		for _, p := range pins {
			if strings.Contains(p, "web-later") {
				return fmt.Errorf("pin %s left", p)
			}
		}
		return nil
	})
	if n := recordsMentioning(t, "web-later"); n > 0 {
		t.Errorf("%d agent records still name web-later", n)
	}
}

// waitPodRow waits until the node reports the BpfProgram name as one
// Attached row at point (KIND/pods) counting attached points in pods, and
// returns it.
func (e *env) waitPodRow(t *testing.T, name, point string, attached int32, timeout time.Duration) []v1.ProgramState {
	t.Helper()
	var rows []v1.ProgramState
	envtest.Eventually(t, timeout, func() error {
		rows = e.entries(t, name)
		if len(rows) != 1 {
			return fmt.Errorf("%s: %d rows, want 1: %+v", name, len(rows), rows)
		}
		r := rows[0]
		if r.AttachPoint != point || r.State != v1.PhaseAttached || r.Pods == nil || r.Pods.Attached != attached {
			return fmt.Errorf("%s at %q is %s/%s pods %+v, want %s with %d attached: %s", name, r.AttachPoint, r.State, r.Reason, r.Pods, point, attached, r.Message)
		}
		return nil
	})
	return rows
}

// recordsMentioning counts the agent's state files that contain s.
func recordsMentioning(t *testing.T, s string) int {
	t.Helper()
	n := 0
	_ = filepath.WalkDir("/var/lib/bpfleet", func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		if b, err := os.ReadFile(path); err == nil && strings.Contains(string(b), s) {
			n++
		}
		return nil
	})
	return n
}

// podProgram applies a BpfPodProgram running one program of the kernelprog
// bundle ref, deleted at the end of the test, and returns the name of the
// BpfProgram the operator keeps for it.
func (e *env) podProgram(t *testing.T, ns, name, ref, program string) string {
	t.Helper()
	e.apply(t, fmt.Sprintf("apiVersion: bpfleet.io/v1alpha1\nkind: BpfPodProgram\nmetadata: {name: %s, namespace: %s}\nspec:\n  bundle: {image: %s}\n  programs:\n    - %s\n", name, ns, ref, program))
	kept := podprogram.ProgramName(ns, name)
	t.Cleanup(func() {
		_ = e.client.Delete(context.Background(), &v1.BpfPodProgram{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}})
		envtest.Eventually(t, time.Minute, func() error {
			if n := len(e.entries(t, kept)); n > 0 {
				return fmt.Errorf("node still reports %d rows of %s", n, kept)
			}
			return nil
		})
	})
	return kept
}

// TestPodCgroupAndContainerUprobe: a cgroup program on one pod's cgroup
// counts that pod's traffic and not a busier neighbour's; a uprobe on a
// binary that exists only in one container's filesystem counts its calls
// there, and not those of a copy of it on the node.
func TestPodCgroupAndContainerUprobe(t *testing.T) {
	e := requireSuite(t)
	e.tenantNamespace(t, "team-c")
	ref := e.pushBundle(t, e.kernelprogBundle(t), "realnode-hooks", "0.1.0")
	host, _, _ := strings.Cut(e.c.RegistryNodeHost, ":")
	sender := func(name string, labels map[string]string, script string) *corev1.Pod {
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: "team-c", Name: name, Labels: labels},
			Spec: corev1.PodSpec{TerminationGracePeriodSeconds: new(int64),
				Containers: []corev1.Container{{Name: "main", Image: e.c.WorkloadImage, Command: []string{"/bin/sh", "-c", script}}}},
		}
		if err := e.client.Create(context.Background(), pod); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = e.client.Delete(context.Background(), pod) })
		e.waitRunning(t, pod)
		return pod
	}
	// The talker pings the node exactly 20 times once told to; its
	// neighbour pings without pause all along.
	talker := sender("talker", map[string]string{"app": "talker"}, fmt.Sprintf("while [ ! -e /tmp/go ]; do sleep 0.1; done; ping -c 20 -i 0.05 %s; sleep 3600", host))
	sender("noisy", map[string]string{"app": "noisy"}, fmt.Sprintf("while true; do ping -c 10 -i 0.01 %s >/dev/null; done", host))
	app := sender("app", map[string]string{"app": "app"}, "while true; do [ -x /tmp/target ] && /tmp/target; sleep 0.2; done")

	t.Run("cgroup", func(t *testing.T) {
		kept := e.podProgram(t, "team-c", "talker-egress", ref, `{name: cgroup_egress, cgroup: {pods: {selector: {matchLabels: {app: talker}}}, attachType: egress}}`)
		e.waitPodRow(t, kept, "cgroup/pods", 1, applyTimeout)
		before := e.counter(t, kept)
		time.Sleep(time.Second)
		if got := e.counter(t, kept) - before; got != 0 {
			t.Fatalf("counted %d packets before the talker sent any: its neighbour's are counted", got)
		}
		pid := e.containerPID(t, talker, "main")
		if err := os.WriteFile(fmt.Sprintf("/proc/%d/root/tmp/go", pid), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		envtest.Eventually(t, 10*time.Second, func() error {
			if got := e.counter(t, kept) - before; got != 20 {
				return fmt.Errorf("counted %d egress packets of team-c/talker, want its 20 pings", got)
			}
			return nil
		})
		time.Sleep(time.Second)
		if got := e.counter(t, kept) - before; got != 20 {
			t.Fatalf("counted %d egress packets, want the talker's 20 and nothing of its neighbour", got)
		}
	})

	t.Run("uprobe", func(t *testing.T) {
		bin := e.uprobeTarget(t)
		data, err := os.ReadFile(bin)
		if err != nil {
			t.Fatal(err)
		}
		pid := e.containerPID(t, app, "main")
		if err := os.WriteFile(fmt.Sprintf("/proc/%d/root/tmp/target", pid), data, 0o755); err != nil {
			t.Fatal(err)
		}
		kept := e.podProgram(t, "team-c", "app-probe", ref,
			`{name: uprobe_count, uprobe: {path: /tmp/target, symbol: main.target, containers: {pods: {selector: {matchLabels: {app: app}}}, names: [main]}}}`)
		e.waitPodRow(t, kept, "uprobe/pods", 1, applyTimeout)
		envtest.Eventually(t, 10*time.Second, func() error {
			if n := e.counter(t, kept); n < 3 {
				return fmt.Errorf("uprobe counted %d calls in the container", n)
			}
			return nil
		})
		before := e.counter(t, kept)
		for range 5 {
			e.run(t, bin) // the same program, from the node's filesystem
		}
		// The container keeps calling it (5 a second); the node's 5 calls
		// must not show: compare with the container's own rate.
		time.Sleep(time.Second)
		got := e.counter(t, kept) - before
		t.Logf("calls counted in the second after 5 calls on the node: %d (the container makes ~5)", got)
		if got > 8 {
			t.Errorf("counted %d calls: the node's copy of the binary is probed too", got)
		}
	})
}

// TestTenantProgramRefusedOnTheNode: a BpfProgram carrying spec.tenant that
// names a node interface (as if written around the operator) is refused by
// the agent with TenancyViolation, and nothing is attached.
func TestTenantProgramRefusedOnTheNode(t *testing.T) {
	e := requireSuite(t)
	ref := e.pushBundle(t, filepath.Join(repoDir, "bpf", "xdpfilter"), xdpfilter.BundleName, "0.1.0")
	src := netns.New(t)
	veth := netns.NewVeth(t, nil, "", src, "")
	name := "realnode-tenant-escape"
	e.deleteProgram(t, name)
	e.apply(t, fmt.Sprintf(`apiVersion: bpfleet.io/v1alpha1
kind: BpfProgram
metadata: {name: %s}
spec:
  bundle: {image: %s}
  tenant: {namespace: default, name: escape}
  programs:
    - name: %s
      xdp: {interfaces: {names: [%s]}}
`, name, ref, xdpfilter.ProgramName, veth.A))
	envtest.Eventually(t, applyTimeout, func() error {
		rows := e.entries(t, name)
		if len(rows) == 0 || rows[0].Reason != v1.ReasonTenancyViolation {
			return fmt.Errorf("rows %+v, want reason %s", rows, v1.ReasonTenancyViolation)
		}
		return nil
	})
	if id := netns.XDPProgramID(t, nil, veth.A); id != 0 {
		t.Fatalf("the node's %s runs XDP program %d for a tenant", veth.A, id)
	}
}

// TestTracerFilteredByPods: exec-trace in a BpfPodProgram selecting the
// pods labelled app=web sees their execs only: the agent keeps the
// bundle's pod filter filled, so another pod's execs and the host's are
// dropped in the kernel and never reach the agent's log.
func TestTracerFilteredByPods(t *testing.T) {
	e := requireSuite(t)
	ctx := context.Background()
	e.tenantNamespace(t, "team-d")
	ref := e.pushBundle(t, filepath.Join(repoDir, "bpf", "exectrace"), exectrace.BundleName, "0.1.0")
	web := e.podIn(t, "team-d", "web", map[string]string{"app": "web"})
	db := e.podIn(t, "team-d", "db", map[string]string{"app": "db"})
	e.waitRunning(t, web)
	e.waitRunning(t, db)
	kept := e.podProgram(t, "team-d", "exec-web", ref,
		fmt.Sprintf("{name: %s, tracepoint: {group: %s, name: %s, pods: {selector: {matchLabels: {app: web}}}}}\n  events: {enabled: true}",
			exectrace.ProgramName, exectrace.TracepointGroup, exectrace.TracepointName))
	e.waitAttached(t, kept, 1, applyTimeout)
	time.Sleep(2 * time.Second) // the agent's reader starts within a second of Attached

	e.kubectl(t, "exec", "-n", "team-d", "db", "--", "/bin/true")
	if out, err := exec.Command("/bin/true").CombinedOutput(); err != nil {
		t.Fatalf("run on the host: %v: %s", err, out)
	}
	e.kubectl(t, "exec", "-n", "team-d", "web", "--", "/bin/true")
	seen := func() (web, others int) {
		agent, err := e.agentPod(ctx)
		if err != nil {
			t.Fatal(err)
		}
		logs := e.kubectl(t, "logs", "-n", namespace, agent.Name, "-c", "agent", "--since=2m")
		sc := bufio.NewScanner(strings.NewReader(logs))
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			var l eventLine
			if json.Unmarshal(sc.Bytes(), &l) != nil || l.BpfProgram != kept {
				continue
			}
			if l.Namespace == "team-d" && l.Pod == "web" {
				web++
			} else {
				others++
				t.Logf("event outside the selected pods: host=%v %s/%s %v", l.Host, l.Namespace, l.Pod, l.Record["filename"])
			}
		}
		return web, others
	}
	envtest.Eventually(t, 20*time.Second, func() error {
		if w, _ := seen(); w == 0 {
			return fmt.Errorf("no event of team-d/web's exec yet")
		}
		return nil
	})
	time.Sleep(2 * time.Second)
	if w, others := seen(); others != 0 {
		t.Fatalf("%d events passed the pod filter from outside team-d/web (%d from it)", others, w)
	}
}

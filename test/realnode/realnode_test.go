package realnode

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/bpfleet/bpfleet/api/scheme"
	v1 "github.com/bpfleet/bpfleet/api/v1alpha1"
	"github.com/bpfleet/bpfleet/test/support/envtest"
	"github.com/bpfleet/bpfleet/test/support/livetraffic/death"
	"github.com/bpfleet/bpfleet/test/support/netns"
)

func metaName(name string) metav1.ObjectMeta { return metav1.ObjectMeta{Name: name} }

// TestInstall: kubectl apply -k of config/default with only the images (and
// this registry's plain-HTTP flags) overlaid brings the operator Deployment
// (two replicas, leader election) and the agent DaemonSet to Ready.
func TestInstall(t *testing.T) {
	e := requireSuite(t)
	if err := e.installed(context.Background(), e.agentImages[0]); err != nil {
		t.Fatal(err)
	}
	t.Logf("cluster bring-up %s (the SIGKILLed harness before it: %s); kubectl apply -k to every pod Ready: %s",
		e.bringUp.Round(10*time.Millisecond), e.killedHarnessUp.Round(10*time.Millisecond), e.installReady.Round(10*time.Millisecond))
	for _, m := range e.c.Timings {
		t.Logf("  %-70s %s", m.Name, m.Since.Round(10*time.Millisecond))
	}
	// The operator elected one leader.
	var lease coordinationv1.Lease
	envtest.Eventually(t, time.Minute, func() error {
		l, err := e.operatorLease(context.Background())
		if err == nil {
			lease = *l
		}
		return err
	})
	t.Logf("operator leader: %s", *lease.Spec.HolderIdentity)
}

// TestLeastPrivilege: the agent container runs with exactly the capabilities
// in config/agent/daemonset.yaml, under the runtime's default seccomp filter,
// with no_new_privs; the operator with none at all.
func TestLeastPrivilege(t *testing.T) {
	e := requireSuite(t)
	ctx := context.Background()
	pod, err := e.agentPod(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sc := pod.Spec.Containers[0].SecurityContext
	var want []string
	for _, c := range sc.Capabilities.Add {
		want = append(want, "CAP_"+string(c))
	}
	status := e.containerStatus(t, pod, "agent")
	if got := capNames(t, status["CapEff"]); strings.Join(got, ",") != strings.Join(sortedCopy(want), ",") {
		t.Errorf("agent effective capabilities %v, want exactly %v", got, sortedCopy(want))
	}
	if got := capNames(t, status["CapBnd"]); strings.Join(got, ",") != strings.Join(sortedCopy(want), ",") {
		t.Errorf("agent bounding set %v, want exactly %v", got, sortedCopy(want))
	}
	if status["Seccomp"] != "2" {
		t.Errorf("agent seccomp mode %q, want 2 (filter: the runtime's default profile)", status["Seccomp"])
	}
	if status["NoNewPrivs"] != "1" {
		t.Errorf("agent NoNewPrivs %q, want 1", status["NoNewPrivs"])
	}
	var ops corev1.PodList
	if err := e.client.List(ctx, &ops, client.InNamespace(namespace), client.MatchingLabels{"app.kubernetes.io/name": operatorDep}); err != nil {
		t.Fatal(err)
	}
	for i := range ops.Items {
		st := e.containerStatus(t, &ops.Items[i], "operator")
		if got := capNames(t, st["CapEff"]); len(got) != 0 || st["Seccomp"] != "2" || !strings.HasPrefix(st["Uid"], "65532") {
			t.Errorf("operator %s: capabilities %v, seccomp %s, uid %s; want none, 2, 65532", ops.Items[i].Name, got, st["Seccomp"], st["Uid"])
		}
	}
	t.Logf("agent: CapEff %v, seccomp filter, no_new_privs; every attach test below ran under it", capNames(t, status["CapEff"]))
}

// TestConfinementWithRealTokens: the agent pod's own service-account token,
// as the kubelet issued and mounted it, may write its own node's
// BpfNodeState and nothing else: another node's is refused by the admission
// policy, and any BpfProgram write by RBAC.
func TestConfinementWithRealTokens(t *testing.T) {
	e := requireSuite(t)
	ctx := context.Background()
	pod, err := e.agentPod(ctx)
	if err != nil {
		t.Fatal(err)
	}
	token := e.podToken(t, pod)
	cfg := rest.AnonymousClientConfig(e.c.Config)
	cfg.BearerToken = token
	agent, err := client.New(cfg, client.Options{Scheme: scheme.New()})
	if err != nil {
		t.Fatal(err)
	}
	// The claims the admission policy reads come from the kubelet.
	claims := tokenClaims(t, token)
	if claims.Kubernetes.Node.Name != e.c.NodeName || claims.Kubernetes.Pod.Name != pod.Name {
		t.Fatalf("token claims node %q pod %q, want %q %q", claims.Kubernetes.Node.Name, claims.Kubernetes.Pod.Name, e.c.NodeName, pod.Name)
	}

	var own v1.BpfNodeState
	envtest.Eventually(t, time.Minute, func() error {
		return agent.Get(ctx, client.ObjectKey{Name: e.c.NodeName}, &own)
	})
	if err := agent.Status().Update(ctx, &own); err != nil {
		t.Errorf("agent writes its own BpfNodeState status: %v", err)
	}
	other := &v1.BpfNodeState{ObjectMeta: metaName("some-other-node")}
	err = agent.Create(ctx, other)
	if err == nil {
		_ = e.client.Delete(ctx, other)
		t.Fatal("agent created another node's BpfNodeState")
	}
	if !apierrors.IsInvalid(err) && !apierrors.IsForbidden(err) {
		t.Errorf("creating another node's BpfNodeState: %v, want refused by the admission policy", err)
	}
	t.Logf("another node's BpfNodeState: %v", err)
	prog := &v1.BpfProgram{ObjectMeta: metaName("agent-may-not")}
	prog.Spec.Bundle.Image = e.c.RegistryNodeHost + "/x/y:1"
	prog.Spec.Programs = []v1.ProgramAttachment{{Name: "p", Tracepoint: &v1.TracepointAttach{Group: "syscalls", Name: "sys_enter_getppid"}}}
	if err := agent.Create(ctx, prog); !apierrors.IsForbidden(err) {
		t.Errorf("agent creating a BpfProgram: %v, want Forbidden", err)
	}
	var targets v1.BpfProgramTargetList
	if err := agent.List(ctx, &targets); err != nil {
		t.Fatalf("agent lists BpfProgramTargets (it must read them): %v", err)
	}
	var programs v1.BpfProgramList
	if err := agent.List(ctx, &programs); !apierrors.IsForbidden(err) {
		t.Errorf("agent listing BpfPrograms: %v, want Forbidden (it reads their targets)", err)
	}
	prog.ResourceVersion = ""
	// One the admin made: the agent may read its target, never write the
	// program's status.
	prog.Name = "realnode-confinement"
	if err := e.client.Create(ctx, prog); err != nil {
		t.Fatal(err)
	}
	e.deleteProgram(t, prog.Name)
	// The first test after the install: the operator may still be
	// electing its leader and syncing its caches.
	envtest.Eventually(t, time.Minute, func() error {
		return agent.Get(ctx, client.ObjectKey{Name: prog.Name}, &v1.BpfProgramTarget{})
	})
	var mine v1.BpfProgram
	if err := e.client.Get(ctx, client.ObjectKey{Name: prog.Name}, &mine); err != nil {
		t.Fatal(err)
	}
	patch := client.MergeFrom(mine.DeepCopy())
	mine.Status.ResolvedDigest = "sha256:" + strings.Repeat("0", 64)
	if err := agent.Status().Patch(ctx, &mine, patch); !apierrors.IsForbidden(err) {
		t.Errorf("agent patching BpfProgram %s status: %v, want Forbidden", mine.Name, err)
	}
}

// TestPacketOfDeath: a signed bundle, a trust policy and a BpfProgram put
// the packet-of-death filter on an interface of the node; the agent pod
// loads it, traffic shows packets of death dropped and good ones delivered,
// and kubectl shows what the agent pod wrote.
func TestPacketOfDeath(t *testing.T) {
	e := requireSuite(t)
	f, took := e.newFilter(t, "realnode-pod-filter")
	t.Logf("BpfProgram apply → Attached on the real node: %s", took.Round(time.Millisecond))
	c := death.During(t, f.path(t), func(func()) { time.Sleep(4 * time.Second) })
	t.Logf("traffic: %s", c)
	c.Check(t)

	out := e.kubectlPlugin(t, "status", f.name, "-o", "json")
	if !strings.Contains(out, fmt.Sprintf(`"id": %d`, f.id)) && !strings.Contains(out, fmt.Sprintf(`"id":%d`, f.id)) {
		t.Errorf("kubectl bpf status lacks program id %d:\n%s", f.id, out)
	}
	states := e.kubectl(t, "get", "bpfnodestates", "-o", "wide")
	if !strings.Contains(states, e.c.NodeName) {
		t.Errorf("kubectl get bpfnodestates lacks %s:\n%s", e.c.NodeName, states)
	}
	progs := e.kubectl(t, "get", "bpfprograms", f.name)
	if !strings.Contains(progs, "1/1") {
		t.Errorf("kubectl get bpfprograms: want 1/1 nodes attached:\n%s", progs)
	}
	t.Logf("kubectl get bpfprograms:\n%s", progs)
}

func (e *env) kubectlPlugin(t testing.TB, args ...string) string {
	t.Helper()
	return e.run(t, e.kubectlBPF, append(args, "--kubeconfig", e.c.Kubeconfig)...)
}

// TestAgentPodDeletedUnderTraffic: the agent pod is deleted while the
// in-kernel source sends; the DaemonSet's new pod re-adopts the pinned
// program through the hostPath pins. No packet of death gets through, no
// good packet is lost, the program id stays.
func TestAgentPodDeletedUnderTraffic(t *testing.T) {
	e := requireSuite(t)
	f, _ := e.newFilter(t, "realnode-pod-delete")
	ctx := context.Background()
	c := death.During(t, f.path(t), func(func()) {
		time.Sleep(time.Second)
		old, err := e.agentPod(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := e.client.Delete(ctx, old); err != nil {
			t.Fatal(err)
		}
		envtest.Eventually(t, 2*time.Minute, func() error {
			p, err := e.agentPod(ctx)
			if err != nil {
				return err
			}
			if p.UID == old.UID {
				return fmt.Errorf("old agent pod %s still ready", old.Name)
			}
			return nil
		})
		e.waitReadopted(t, f)
		time.Sleep(time.Second)
	})
	t.Logf("agent pod deleted and replaced under in-kernel traffic: %s", c)
	c.Check(t)
}

// TestRollingUpdateUnderTraffic: a DaemonSet rolling update to another agent
// image, then back, under traffic: each new agent pod re-adopts the program.
func TestRollingUpdateUnderTraffic(t *testing.T) {
	e := requireSuite(t)
	f, _ := e.newFilter(t, "realnode-rolling")
	ctx := context.Background()
	c := death.During(t, f.path(t), func(func()) {
		for _, image := range []string{e.agentImages[1], e.agentImages[0]} {
			time.Sleep(time.Second)
			e.kubectl(t, "-n", namespace, "set", "image", "daemonset/"+agentDS, "agent="+image, "mount-filesystems="+image)
			if err := e.waitInstalled(ctx, image, 2*time.Minute); err != nil {
				t.Fatal(err)
			}
			e.waitReadopted(t, f)
		}
		time.Sleep(time.Second)
	})
	t.Logf("rolling update to %s and back under in-kernel traffic: %s", e.agentImages[1], c)
	c.Check(t)
}

// waitReadopted waits until the new agent pod has run for a few seconds
// and checks the filter was re-adopted, not reloaded: the kernel still runs
// the original program id on the interface, and the node reports it.
func (e *env) waitReadopted(t testing.TB, f *filter) {
	t.Helper()
	time.Sleep(3 * time.Second) // the new agent's first reconcile
	envtest.Eventually(t, time.Minute, func() error {
		rows := e.entries(t, f.name)
		if len(rows) != 1 || rows[0].State != v1.PhaseAttached {
			return fmt.Errorf("rows %+v", rows)
		}
		if rows[0].ID != f.id {
			t.Fatalf("program reloaded: status id %d → %d", f.id, rows[0].ID)
		}
		return nil
	})
	if id := netns.XDPProgramID(t, nil, f.nodeIface); id != f.id {
		t.Fatalf("program reloaded: kernel runs id %d on %s, was %d", id, f.nodeIface, f.id)
	}
}

// TestAttachKindsFromPod: the agent pod attaches each kind of hook it
// supports here, and each one fires: tcx on an interface of the node, a
// tracepoint, a uprobe on a binary of the host (outside the agent's
// image), and a cgroup program on a running pod's cgroup.
func TestAttachKindsFromPod(t *testing.T) {
	e := requireSuite(t)
	ref := e.pushBundle(t, e.kernelprogBundle(t), "realnode-hooks", "0.1.0")
	target := e.uprobeTarget(t)
	cgroupPath := e.workloadPodCgroup(t)
	veth := e.countedVeth(t)
	tests := []struct {
		name   string
		attach string
		fire   func(t *testing.T)
	}{
		{"tcx", fmt.Sprintf(`{name: tc_count, tc: {interfaces: {names: [%s]}, direction: ingress}}`, veth.A),
			func(t *testing.T) { veth.ping(t) }},
		{"tracepoint", `{name: tp_getppid, tracepoint: {group: syscalls, name: sys_enter_getppid}}`,
			func(t *testing.T) { _ = os.Getppid() }},
		{"uprobe", fmt.Sprintf(`{name: uprobe_count, uprobe: {path: %q, symbol: main.target}}`, target),
			func(t *testing.T) { e.run(t, target) }},
		{"cgroup", fmt.Sprintf(`{name: cgroup_egress, cgroup: {path: %q, attachType: egress}}`, cgroupPath),
			func(t *testing.T) { time.Sleep(2 * time.Second) }}, // the pod sends every 200 ms
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name := "realnode-" + tt.name
			e.deleteProgram(t, name)
			e.apply(t, fmt.Sprintf("apiVersion: bpfleet.io/v1alpha1\nkind: BpfProgram\nmetadata: {name: %s}\nspec:\n  bundle: {image: %s}\n  programs:\n    - %s\n", name, ref, tt.attach))
			rows := e.waitAttached(t, name, 1, applyTimeout)
			before := e.counter(t, name)
			tt.fire(t)
			envtest.Eventually(t, 10*time.Second, func() error {
				if after := e.counter(t, name); after <= before {
					return fmt.Errorf("%s on %s: counter %d, did not fire", rows[0].Program, rows[0].AttachPoint, after)
				}
				return nil
			})
			t.Logf("%s: %s id %d fired (%d runs)", rows[0].AttachPoint, rows[0].Type, rows[0].ID, e.counter(t, name)-before)
		})
	}
}

// TestOperatorFailover: deleting the leading operator pod hands leadership
// to the other replica, and a rollout in progress completes.
func TestOperatorFailover(t *testing.T) {
	e := requireSuite(t)
	ctx := context.Background()
	f, _ := e.newFilter(t, "realnode-failover")
	v2 := e.pushBundle(t, bundleVersion(t, filepath.Join(repoDir, "bpf", "xdpfilter"), "0.2.0"), "xdp-pod-filter", "0.2.0")
	lease, err := e.operatorLease(ctx)
	if err != nil {
		t.Fatal(err)
	}
	leader := *lease.Spec.HolderIdentity
	var p v1.BpfProgram
	if err := e.client.Get(ctx, client.ObjectKey{Name: f.name}, &p); err != nil {
		t.Fatal(err)
	}
	oldDigest := p.Status.ResolvedDigest
	p.Spec.Bundle.Image = v2
	p.Spec.Rollout = v1.RolloutSpec{Strategy: v1.RolloutWaves, Waves: []int32{50, 100}, PauseSeconds: 5}
	if err := e.client.Update(ctx, &p); err != nil {
		t.Fatal(err)
	}
	// Kill the leader as soon as it has taken up the new spec.
	envtest.Eventually(t, time.Minute, func() error {
		if err := e.client.Get(ctx, client.ObjectKey{Name: f.name}, &p); err != nil {
			return err
		}
		if p.Status.ObservedGeneration != p.Generation {
			return fmt.Errorf("generation %d not observed yet", p.Generation)
		}
		return nil
	})
	podName, _, _ := strings.Cut(leader, "_")
	if err := e.client.Delete(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: podName}}, client.GracePeriodSeconds(0)); err != nil {
		t.Fatalf("delete leader pod %s: %v", podName, err)
	}
	began := time.Now()
	var newLeader string
	envtest.Eventually(t, 2*time.Minute, func() error {
		l, err := e.operatorLease(ctx)
		if err != nil {
			return err
		}
		if newLeader = *l.Spec.HolderIdentity; newLeader == leader || newLeader == "" {
			return fmt.Errorf("leader still %s", leader)
		}
		return nil
	})
	t.Logf("leadership %s → %s in %s", leader, newLeader, time.Since(began).Round(10*time.Millisecond))
	envtest.Eventually(t, 2*time.Minute, func() error {
		if err := e.client.Get(ctx, client.ObjectKey{Name: f.name}, &p); err != nil {
			return err
		}
		rows := e.entries(t, f.name)
		if p.Status.ResolvedDigest == oldDigest || len(rows) != 1 || rows[0].Digest != p.Status.ResolvedDigest || rows[0].State != v1.PhaseAttached {
			return fmt.Errorf("rollout not complete: digest %s, rows %+v, rollout %+v", p.Status.ResolvedDigest, rows, p.Status.Rollout)
		}
		if p.Status.Rollout != nil && p.Status.Rollout.StableDigest != p.Status.ResolvedDigest {
			return fmt.Errorf("stable digest %s, want %s", p.Status.Rollout.StableDigest, p.Status.ResolvedDigest)
		}
		return nil
	})
	t.Logf("rollout to %s completed under the new leader, %s after the failover", p.Status.ResolvedDigest[:19], time.Since(began).Round(10*time.Millisecond))
}

func (e *env) operatorLease(ctx context.Context) (*coordinationv1.Lease, error) {
	var leases coordinationv1.LeaseList
	if err := e.client.List(ctx, &leases, client.InNamespace(namespace)); err != nil {
		return nil, err
	}
	for i := range leases.Items {
		l := &leases.Items[i]
		if l.Spec.HolderIdentity != nil && *l.Spec.HolderIdentity != "" && strings.HasPrefix(*l.Spec.HolderIdentity, operatorDep) {
			return l, nil
		}
	}
	return nil, fmt.Errorf("no operator lease held in %s (%d leases)", namespace, len(leases.Items))
}

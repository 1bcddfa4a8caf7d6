package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/bpfleet/bpfleet/api/v1alpha1"
	"github.com/bpfleet/bpfleet/test/support/manifests"
	"github.com/bpfleet/bpfleet/test/support/netns"
	"github.com/bpfleet/bpfleet/test/support/privileged"
	"github.com/bpfleet/bpfleet/test/support/procstat"
	"github.com/bpfleet/bpfleet/test/support/registry"
	"github.com/bpfleet/bpfleet/test/support/registry/testbundle"
	"github.com/bpfleet/bpfleet/test/support/selfexec"
)

// agentRSS runs the real agent process with n BpfPrograms of the test
// bundle, each attaching its own load of a tracepoint program (spread over
// a few syscall tracepoints), waits until
// its BpfNodeState reports all n attached, lets it resync a few times
// (cache hits, status), and returns its resident set in KiB.
func agentRSS(tb testing.TB, n int) int64 {
	tb.Helper()
	privileged.RequireBPFFS(tb)
	ctx := context.Background()
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	id := hex.EncodeToString(b)
	node := "rss-" + id
	root := "/sys/fs/bpf/bpfleet-rss-" + id
	tb.Cleanup(func() { _ = os.RemoveAll(root) })
	ns := netns.New(tb)

	reg := registry.Start(tb, registry.Options{})
	ref, digest := testbundle.Push(tb, reg, "ebpf/rss", "v1", testbundle.Source{})
	policy := &v1alpha1.BundleTrustPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "rss-" + id},
		Spec:       v1alpha1.BundleTrustPolicySpec{Images: []string{reg.Host + "/ebpf/*"}, AllowUnsigned: true},
	}
	nodeObj := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: node, Labels: map[string]string{"bpfleet.io/rss": id}}}
	for _, o := range []client.Object{policy, nodeObj} {
		if err := env.Client.Create(ctx, o); err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { _ = env.Client.Delete(context.Background(), o) })
	}
	tb.Cleanup(func() {
		_ = env.Client.Delete(context.Background(), &v1alpha1.BpfNodeState{ObjectMeta: metav1.ObjectMeta{Name: node}})
	})
	for i := range n {
		p := &v1alpha1.BpfProgram{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("rss-%s-%03d", id, i)},
			Spec: v1alpha1.BpfProgramSpec{
				Bundle:       v1alpha1.BundleSource{Image: ref},
				Programs:     []v1alpha1.ProgramAttachment{{Name: testbundle.TracepointProgram, Tracepoint: &v1alpha1.TracepointAttach{Group: "syscalls", Name: tracepoints[i%len(tracepoints)]}}},
				NodeSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"bpfleet.io/rss": id}},
			},
		}
		if err := env.Client.Create(ctx, p); err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { _ = env.Client.Delete(context.Background(), p) })
		// What the operator would write: the digest to run.
		p.Status.ObservedGeneration = p.Generation
		p.Status.ResolvedDigest = digest
		meta.SetStatusCondition(&p.Status.Conditions, metav1.Condition{Type: v1alpha1.ConditionSignatureVerified,
			Status: metav1.ConditionTrue, Reason: v1alpha1.ReasonVerified, ObservedGeneration: p.Generation})
		p.Status.Rollout = &v1alpha1.RolloutStatus{TargetDigest: digest, StableDigest: digest}
		if err := env.Client.Status().Update(ctx, p); err != nil {
			tb.Fatal(err)
		}
	}

	proc := selfexec.Start(tb, []string{"BPFLEET_AGENT_TEST_MAIN=1", "KUBECONFIG=" + env.Kubeconfig},
		"--node-name", node, "--bpffs-root", root, "--state-dir", tb.TempDir(),
		"--netns", "/var/run/netns/"+ns.Name, "--resync-interval", "1s",
		"--metrics-bind-address", "0", "--health-probe-bind-address", "0", "--unmanaged-interval", "-1s")

	deadline := time.Now().Add(time.Minute)
	for {
		state := &v1alpha1.BpfNodeState{}
		err := env.Client.Get(ctx, types.NamespacedName{Name: node}, state)
		if err == nil && int(state.Status.Summary.Attached) == n && len(state.Status.Programs) == n {
			break
		}
		select {
		case <-proc.Done():
			tb.Fatalf("agent exited: %v\n%s", proc.Err(), proc.Output())
		default:
		}
		if time.Now().After(deadline) {
			var failed []string
			for _, r := range state.Status.Programs {
				if r.State != v1alpha1.PhaseAttached && len(failed) < 3 {
					failed = append(failed, r.BpfProgram+": "+r.Reason+": "+r.Message)
				}
			}
			tb.Fatalf("%d programs not all attached after a minute (%v, summary %+v, first not attached %q)\n%s", n, err, state.Status.Summary, failed, proc.Tail(10))
		}
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(3 * time.Second) // three resyncs: every bundle looked up again
	sample, err := procstat.Read(proc.Pid)
	if err != nil {
		tb.Fatal(err)
	}
	return sample.RSSKiB
}

// TestAgentRSSWithPrograms runs the real agent process with 10 and with
// 100 programs attached and checks its resident memory stays within half
// the memory limit config/agent sets: the limit leaves room for loading a
// large bundle on top of what runs.
func TestAgentRSSWithPrograms(t *testing.T) {
	limit := manifests.MemoryLimit(t, "config/agent/daemonset.yaml", "agent")
	for _, n := range rssPrograms {
		rss := agentRSS(t, n)
		t.Logf("agent RSS with %d programs: %d MiB (limit %s)", n, rss/1024, resource.NewQuantity(limit*1024, resource.BinarySI))
		if rss > limit/2 {
			t.Errorf("agent RSS with %d programs is %d MiB, over half its %d MiB limit", n, rss/1024, limit/1024)
		}
	}
}

// BenchmarkAgentRSS reports the agent's resident memory with 0, 10 and 100
// programs (one process each, measured in the same run).
func BenchmarkAgentRSS(b *testing.B) {
	for _, n := range []int{0, 10, 100} {
		b.Run(fmt.Sprintf("programs=%d", n), func(b *testing.B) {
			var rss int64
			for b.Loop() {
				rss = agentRSS(b, n)
			}
			b.ReportMetric(float64(rss)/1024, "rss-MiB")
		})
	}
}

// tracepoints spread the programs: the kernel takes at most 64 programs
// on one tracepoint (BPF_TRACE_MAX_PROGS).
var tracepoints = []string{"sys_enter_openat", "sys_enter_close", "sys_enter_getpid", "sys_enter_newfstatat"}

// rssPrograms are the fleet sizes TestAgentRSSWithPrograms measures.
var rssPrograms = []int{10, 100}

package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/bpfleet/bpfleet/api/v1alpha1"
	"github.com/bpfleet/bpfleet/test/support/netns"
	"github.com/bpfleet/bpfleet/test/support/privileged"
	"github.com/bpfleet/bpfleet/test/support/procstat"
	"github.com/bpfleet/bpfleet/test/support/selfexec"
)

// TestAgentBinary runs the real agent process against the API server: it
// reports its node in a BpfNodeState, then writes nothing while idle, and
// its idle CPU and RSS stay within generous bounds.
func TestAgentBinary(t *testing.T) {
	privileged.RequireBPFFS(t)
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	node := "bin-" + hex.EncodeToString(b)
	root := "/sys/fs/bpf/bpfleet-test-" + hex.EncodeToString(b)
	t.Cleanup(func() { _ = os.RemoveAll(root) })
	ns := netns.New(t)
	ctx := context.Background()
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: node}}
	if err := env.Client.Create(ctx, n); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), n) })

	proc := selfexec.Start(t, []string{"BPFLEET_AGENT_TEST_MAIN=1", "KUBECONFIG=" + env.Kubeconfig},
		"--node-name", node, "--bpffs-root", root, "--state-dir", t.TempDir(),
		"--netns", "/var/run/netns/"+ns.Name, "--resync-interval", "1s",
		"--metrics-bind-address", "0", "--health-probe-bind-address", "0")

	state := &v1alpha1.BpfNodeState{}
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := env.Client.Get(ctx, types.NamespacedName{Name: node}, state)
		if err == nil && state.Status.Kernel.Release != "" {
			break
		}
		select {
		case <-proc.Done():
			t.Fatalf("agent exited: %v\n%s", proc.Err(), proc.Output())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no BpfNodeState with a kernel after 30s (%v)\n%s", err, proc.Output())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if state.Status.AgentVersion == "" {
		t.Errorf("agentVersion not reported")
	}

	time.Sleep(time.Second)
	if err := env.Client.Get(ctx, types.NamespacedName{Name: node}, state); err != nil {
		t.Fatal(err)
	}
	before := state.ResourceVersion
	s0 := sampleProcess(t, proc.Pid)
	const window = 5 * time.Second
	time.Sleep(window)
	s1 := sampleProcess(t, proc.Pid)
	used := s1.CPU - s0.CPU
	if err := env.Client.Get(ctx, types.NamespacedName{Name: node}, state); err != nil {
		t.Fatal(err)
	}
	if state.ResourceVersion != before {
		t.Errorf("idle agent wrote its BpfNodeState: %s → %s", before, state.ResourceVersion)
	}
	share := float64(used) / float64(window)
	t.Logf("agent process idle (resync 1s, no programs): CPU %s over %s (%.2f%% of a core), RSS %d MiB",
		used, window, share*100, s1.RSSKiB/1024)
	if share > maxIdleCPU {
		t.Errorf("idle agent used %.1f%% of a core, bound %.0f%%", share*100, maxIdleCPU*100)
	}
	if s1.RSSKiB > maxIdleRSSKiB {
		t.Errorf("idle agent RSS %d MiB, bound %d MiB", s1.RSSKiB/1024, maxIdleRSSKiB/1024)
	}
}

// Generous bounds on the idle agent (resync every second, no program):
// several times what a 2-core VM measures, so only a leak or a busy loop
// trips them.
const (
	maxIdleCPU    = 0.10       // of one core
	maxIdleRSSKiB = 256 * 1024 // 256 MiB
)

func sampleProcess(t *testing.T, pid int) procstat.Sample {
	t.Helper()
	s, err := procstat.Read(pid)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

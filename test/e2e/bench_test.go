package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/bpfleet/bpfleet/api/scheme"
	v1 "github.com/bpfleet/bpfleet/api/v1alpha1"
	"github.com/bpfleet/bpfleet/bpf/xdpfilter"
	"github.com/bpfleet/bpfleet/cmd/localenv"
	"github.com/bpfleet/bpfleet/nodeagent/dataplane"
	"github.com/bpfleet/bpfleet/nodeagent/metrics"
	"github.com/bpfleet/bpfleet/test/support/privileged"
)

// BenchmarkApplyToAttached measures, on one node, the time from creating a
// BpfProgram to the node reporting it Attached — resolve, verify, rollout,
// pull, verify again, load, attach, pin, status write — against the baseline
// of doing only the load and attach by hand with bpftool, alternating the two
// in the same run. The first apply, which also pulls the bundle into the
// node's cache and verifies its signature from the registry, is reported on
// its own; the ratio is over the median of at least five rounds after it.
//
// Each apply is split into the agent's phases, read as the growth of its
// bpfleet_agent_phase_seconds sums during that apply: verify, pull, load,
// attach, the rest of the kernel work (pin, map entries, bookkeeping), the
// status write, and what remains — the operator's resolve, verify and
// rollout plus watch and queue latencies. bpftool's two commands are timed
// apart to match.
func BenchmarkApplyToAttached(b *testing.B) {
	if env == nil {
		privileged.SkipOrFail(b, "end-to-end environment not running: %v", envErr)
	}
	e := env
	bpftool := privileged.RequireCommand(b, "bpftool")
	n := e.Nodes[0]
	obj := filepath.Join(repoDir, "bpf", "xdpfilter", xdpfilter.ObjectFile)
	var bpfleet, manual, bpftoolLoad, bpftoolAttach []float64
	phases := map[string][]float64{}
	ctx := context.Background()
	rounds := max(b.N, 5) + 1
	var first float64
	wc, err := client.NewWithWatch(e.Config, client.Options{Scheme: scheme.New()})
	if err != nil {
		b.Fatal(err)
	}
	for i := 0; i < rounds; i++ {
		p, err := e.FilterProgram(fmt.Sprintf("bench-apply-%d", i))
		if err != nil {
			b.Fatal(err)
		}
		p.Spec.NodeSelector.MatchLabels = map[string]string{"kubernetes.io/hostname": n.Name}
		before := phaseSums(b, n.Name)
		// A watch, not a poll: the apply ends when the API server has the
		// node's report, not at the next poll.
		attached := watchEntry(b, wc, n.Name, p.Name, func(s *v1.ProgramState) bool { return s != nil && s.State == v1.PhaseAttached })
		start := time.Now()
		if err := e.Client.Create(ctx, p); err != nil {
			b.Fatal(err)
		}
		if err := <-attached; err != nil {
			b.Fatal(err)
		}
		took := float64(time.Since(start).Microseconds()) / 1000
		if i == 0 {
			first = took
		} else {
			bpfleet = append(bpfleet, took)
			for phase, ms := range applyPhases(before, statusObserved(b, n.Name, before), took) {
				phases[phase] = append(phases[phase], ms)
			}
		}
		if err := e.Client.Delete(ctx, p); err != nil {
			b.Fatal(err)
		}
		waitEntry(b, e, n.Name, p.Name, func(s *v1.ProgramState) bool { return s == nil })
		// The operator releases the finalizer NodeStateDelay after the
		// node's report: wait for it, so that the next round does not
		// share the machine with this one's teardown.
		waitGone(b, e, p)
		// Its deletion wakes every agent and the operator once more; let
		// that pass before bpftool's turn, as before the next apply.
		time.Sleep(settle)

		// nsenter, not `ip netns exec`: the latter mounts a fresh /sys in
		// which /sys/fs/bpf is no bpffs.
		pin := fmt.Sprintf("/sys/fs/bpf/bench-%s-%d", n.Name, i)
		start = time.Now()
		runCmd(b, bpftool, "prog", "load", obj, pin, "type", "xdp")
		loaded := time.Now()
		b.Cleanup(func() { _ = os.Remove(pin) }) // also when a step below fails
		runCmd(b, "nsenter", "--net=/var/run/netns/"+n.NetNS, bpftool, "net", "attach", "xdpdrv", "pinned", pin, "dev", n.Interface)
		manual = append(manual, float64(time.Since(start).Microseconds())/1000)
		bpftoolLoad = append(bpftoolLoad, float64(loaded.Sub(start).Microseconds())/1000)
		bpftoolAttach = append(bpftoolAttach, float64(time.Since(loaded).Microseconds())/1000)
		runCmd(b, "nsenter", "--net=/var/run/netns/"+n.NetNS, bpftool, "net", "detach", "xdpdrv", "dev", n.Interface)
		_ = os.Remove(pin)
		time.Sleep(settle)
	}
	mb, mm := median(bpfleet), median(manual)
	b.ReportMetric(first, "ms-first-apply-to-attached")
	b.ReportMetric(mb, "ms-apply-to-attached")
	b.ReportMetric(mm, "ms-bpftool-load-attach")
	b.ReportMetric(mb/mm, "bpfleet/bpftool")
	for _, phase := range applyPhaseNames {
		b.ReportMetric(median(phases[phase]), "ms-"+phase)
	}
	b.ReportMetric(median(bpftoolLoad), "ms-bpftool-load")
	b.ReportMetric(median(bpftoolAttach), "ms-bpftool-attach")
}

// settle is the pause between the steps of a round, so that neither side
// shares the machine with the other's teardown.
const settle = 200 * time.Millisecond

// applyPhaseNames are the parts applyPhases splits an apply into, in order.
var applyPhaseNames = []string{"agent-verify", "agent-pull", "agent-load", "agent-attach", "agent-pin-and-rest", "agent-status", "operator-and-queues"}

// applyPhases splits one apply of total ms into the agent's phases, from
// the growth of its phase-seconds sums; the remainder is the operator's and
// the queues'.
func applyPhases(before, after map[string]float64, total float64) map[string]float64 {
	d := func(phase string) float64 { return (after[phase] - before[phase]) * 1000 }
	out := map[string]float64{
		"agent-verify":       d(metrics.PhaseVerify),
		"agent-pull":         d(metrics.PhasePull),
		"agent-load":         d(dataplane.PhaseLoad),
		"agent-attach":       d(dataplane.PhaseAttach),
		"agent-pin-and-rest": d(metrics.PhaseApply) - d(dataplane.PhaseLoad) - d(dataplane.PhaseAttach),
		"agent-status":       d(metrics.PhaseStatus),
	}
	agent := 0.0
	for _, ms := range out {
		agent += ms
	}
	out["operator-and-queues"] = total - agent
	return out
}

// statusObserved returns the agent's phase sums once its status write of
// this apply is recorded: the watch can see the report before the agent
// has had the API server's answer and timed the write.
func statusObserved(b *testing.B, node string, before map[string]float64) map[string]float64 {
	b.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		after := phaseSums(b, node)
		if after[metrics.PhaseStatus] > before[metrics.PhaseStatus] || time.Now().After(deadline) {
			return after
		}
		time.Sleep(time.Millisecond)
	}
}

// phaseSums reads the node agent's bpfleet_agent_phase_seconds sums, in
// seconds by phase, from the process's metrics registry (the agents of the
// local environment run in this process).
func phaseSums(b *testing.B, node string) map[string]float64 {
	b.Helper()
	families, err := crmetrics.Registry.Gather()
	if err != nil {
		b.Fatal(err)
	}
	sums := map[string]float64{}
	for _, f := range families {
		if f.GetName() != "bpfleet_agent_phase_seconds" {
			continue
		}
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["node"] == node {
				sums[labels["phase"]] += m.GetHistogram().GetSampleSum()
			}
		}
	}
	return sums
}

func waitEntry(b *testing.B, e *localenv.Env, node, program string, cond func(*v1.ProgramState) bool) {
	b.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), 5*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		var s v1.BpfNodeState
		if err := e.Client.Get(ctx, client.ObjectKey{Name: node}, &s); err != nil {
			return false, client.IgnoreNotFound(err)
		}
		return cond(entry(s, program)), nil
	})
	if err != nil {
		b.Fatalf("wait for %s on %s: %v", program, node, err)
	}
}

// watchEntry starts watching node's BpfNodeState and returns a channel that
// yields nil once its entry of program meets cond (or an error after a
// minute, or when the watch ends).
func watchEntry(b *testing.B, wc client.WithWatch, node, program string, cond func(*v1.ProgramState) bool) <-chan error {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	w, err := wc.Watch(ctx, &v1.BpfNodeStateList{}, client.MatchingFields{"metadata.name": node})
	if err != nil {
		cancel()
		b.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		defer cancel()
		defer w.Stop()
		for ev := range w.ResultChan() {
			if s, ok := ev.Object.(*v1.BpfNodeState); ok && cond(entry(*s, program)) {
				done <- nil
				return
			}
		}
		done <- fmt.Errorf("watch for %s on %s ended: %w", program, node, ctx.Err())
	}()
	return done
}

func waitGone(b *testing.B, e *localenv.Env, p *v1.BpfProgram) {
	b.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), 5*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		err := e.Client.Get(ctx, client.ObjectKeyFromObject(p), &v1.BpfProgram{})
		return apierrors.IsNotFound(err), client.IgnoreNotFound(err)
	})
	if err != nil {
		b.Fatalf("wait for %s to be gone: %v", p.Name, err)
	}
}

func runCmd(b *testing.B, name string, args ...string) {
	b.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		b.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

// Package metrics holds the node agent's Prometheus collectors: one Agent
// per node agent, registered under the label node=<node> (on
// controller-runtime's metrics registry, which the agent serves). Several
// agents may run in one process (local mode, e2e suites), each with its own
// collectors and its dataplane as the Source of its scrape-time collector.
package metrics

import (
	"fmt"
	"strconv"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/prometheus/client_golang/prometheus"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/bpfleet/bpfleet/api/v1alpha1"
)

// Phases of bringing a program to its desired state, as observed by the
// reconciler (label phase of PhaseSeconds). The kernel part of apply is split
// further by the dataplane itself (dataplane.PhaseLoad, PhaseAttach, through
// its Options.Observe).
const (
	PhasePull   = "pull"
	PhaseVerify = "verify"
	PhaseApply  = "apply"
	PhaseStatus = "status"
)

// Agent is one node agent's collectors. Register puts them on a registerer
// that adds the label node=<node> to every series, so several agents in one
// process (local mode, the e2e suites) each own theirs and Unregister drops
// exactly one agent's series. A nil *Agent records nothing (reconcilers built
// without Run, as the scale simulation builds them).
type Agent struct {
	node         string
	reg          prometheus.Registerer
	collectors   []prometheus.Collector
	phaseSeconds *prometheus.HistogramVec
	failures     *prometheus.CounterVec
	statusWrites *prometheus.CounterVec
	unmanaged    *prometheus.GaugeVec

	mu sync.Mutex
	// unmanagedTypes are the program types SetUnmanaged has exported.
	unmanagedTypes map[string]bool
}

// Source gives the scrape-time collector a node's programs.
type Source struct {
	// Snapshot returns the node's program states; the dataplane's Snapshot.
	Snapshot func() []v1alpha1.ProgramState
	// MetricMaps returns the pinned paths, by map name, of the metric maps
	// that bundle digest declares for BpfProgram uid; nil exports none.
	MetricMaps func(uid types.UID, digest string) map[string]string
}

// NewAgent makes node's collectors; they record from now on, and are
// exported once registered.
func NewAgent(node string) *Agent {
	return &Agent{
		node: node,
		phaseSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "bpfleet_agent_phase_seconds",
			Help:    "Duration of the node agent's reconcile phases: pull (bundle into the node cache), verify (cosign signature and trust policy), apply (load, attach, pin, map entries in the kernel), within it load (one bundle: maps, programs, map entries) and attach (one attach or Link.Update), status (BpfNodeState write).",
			Buckets: []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30},
		}, []string{"phase"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bpfleet_agent_failures_total",
			Help: "Failures of the node agent by reason: PullFailed and VerifyFailed per attempt, kernel-side reasons (LoadFailed, VerifierRejected, AttachFailed, ...) per program entry that turned Failed.",
		}, []string{"reason"}),
		statusWrites: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bpfleet_agent_status_writes_total",
			Help: "BpfNodeState writes by the node agent; flat at steady state.",
		}, []string{"kind"}),
		unmanaged: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "bpfleet_unmanaged_programs",
			Help: "eBPF programs in the node's kernel that bpfleet did not load, by program type (bpftool's names), as of the agent's last inventory.",
		}, []string{"type"}),
		unmanagedTypes: map[string]bool{},
	}
}

// Register exports the agent's collectors, and its programs read from src
// at scrape time, on reg (controller-runtime's registry when nil) under the
// label node=<node>. Call it once.
func (a *Agent) Register(src Source, reg prometheus.Registerer) error {
	if reg == nil {
		reg = crmetrics.Registry
	}
	a.reg = prometheus.WrapRegistererWith(prometheus.Labels{"node": a.node}, reg)
	a.collectors = []prometheus.Collector{a.phaseSeconds, a.failures, a.statusWrites, a.unmanaged, &snapshotCollector{src: src}}
	for i, c := range a.collectors {
		if err := a.reg.Register(c); err != nil {
			for _, done := range a.collectors[:i] {
				a.reg.Unregister(done)
			}
			a.collectors = nil
			return fmt.Errorf("register metrics of node %s: %w", a.node, err)
		}
	}
	return nil
}

// Unregister removes every series of the agent.
func (a *Agent) Unregister() {
	if a == nil || a.reg == nil {
		return
	}
	for _, c := range a.collectors {
		a.reg.Unregister(c)
	}
}

// ObservePhase records how long a reconcile phase (Phase*, or the
// dataplane's load and attach) took.
func (a *Agent) ObservePhase(phase string, took time.Duration) {
	if a != nil {
		a.phaseSeconds.WithLabelValues(phase).Observe(took.Seconds())
	}
}

// AddFailures counts n failures for reason.
func (a *Agent) AddFailures(reason string, n int) {
	if a != nil {
		a.failures.WithLabelValues(reason).Add(float64(n))
	}
}

// StatusWritten counts one BpfNodeState write of kind create or status.
func (a *Agent) StatusWritten(kind string) {
	if a != nil {
		a.statusWrites.WithLabelValues(kind).Inc()
	}
}

// SetUnmanaged sets the unmanaged program counts to byType: types counted
// before and absent now drop to zero, so a rate() or alert sees them go.
func (a *Agent) SetUnmanaged(byType map[string]int32) {
	if a == nil {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for t := range a.unmanagedTypes {
		if _, ok := byType[t]; !ok {
			a.unmanaged.WithLabelValues(t).Set(0)
		}
	}
	for t, n := range byType {
		a.unmanagedTypes[t] = true
		a.unmanaged.WithLabelValues(t).Set(float64(n))
	}
}

var (
	programLabels = []string{"bpf_program", "program", "attach_point"}

	descPrograms = prometheus.NewDesc("bpfleet_programs",
		"Managed program entries on the node by state and reason.",
		[]string{"state", "reason"}, nil)
	descRunCount = prometheus.NewDesc("bpfleet_program_run_count_total",
		"Times the program ran (kernel run-time statistics; needs --stats).",
		programLabels, nil)
	descRunTime = prometheus.NewDesc("bpfleet_program_run_time_seconds_total",
		"Total time the program ran (kernel run-time statistics; needs --stats).",
		programLabels, nil)
	descMapValue = prometheus.NewDesc("bpfleet_map_value",
		"Values of the metric maps a bundle declares (ebpf_exporter style): per key, each 64-bit field of the value, summed over CPUs for per-CPU maps.",
		[]string{"bpf_program", "map", "key", "field"}, nil)
	descInfo = prometheus.NewDesc("bpfleet_program_info",
		"One series per managed program entry, carrying its kernel id, tag and digest.",
		append(append([]string{}, programLabels...), "id", "tag", "type", "digest"), nil)
)

// snapshotCollector reads one node's program states at scrape time:
// nothing is cached between scrapes.
type snapshotCollector struct {
	src Source
}

func (c *snapshotCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descPrograms
	ch <- descRunCount
	ch <- descRunTime
	ch <- descInfo
	ch <- descMapValue
}

func (c *snapshotCollector) Collect(ch chan<- prometheus.Metric) {
	if c.src.Snapshot == nil {
		return
	}
	states := c.src.Snapshot()
	collectNode(ch, states)
	if c.src.MetricMaps != nil {
		collectMaps(ch, states, c.src.MetricMaps)
	}
}

type stateKey struct{ state, reason string }

func collectNode(ch chan<- prometheus.Metric, states []v1alpha1.ProgramState) {
	counts := map[stateKey]int{}
	seen := map[[3]string]bool{}
	for _, s := range states {
		counts[stateKey{string(s.State), s.Reason}]++
		key := [3]string{s.BpfProgram, s.Program, s.AttachPoint}
		if seen[key] || s.ID == 0 {
			continue
		}
		seen[key] = true
		labels := []string{s.BpfProgram, s.Program, s.AttachPoint}
		ch <- prometheus.MustNewConstMetric(descInfo, prometheus.GaugeValue, 1,
			append(labels, strconv.FormatUint(uint64(s.ID), 10), s.Tag, s.Type, s.Digest)...)
		if s.RunCount > 0 || s.RunTimeNs > 0 {
			ch <- prometheus.MustNewConstMetric(descRunCount, prometheus.CounterValue, float64(s.RunCount), labels...)
			ch <- prometheus.MustNewConstMetric(descRunTime, prometheus.CounterValue, float64(s.RunTimeNs)/1e9, labels...)
		}
	}
	for k, n := range counts {
		ch <- prometheus.MustNewConstMetric(descPrograms, prometheus.GaugeValue, float64(n), k.state, k.reason)
	}
}

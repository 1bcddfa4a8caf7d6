// Package metrics holds the node agent's Prometheus collectors, registered
// once on controller-runtime's metrics registry. Several agents may run in
// one process (bpfleet local, e2e suites): every series carries a node label
// and each agent registers its dataplane as a Source for the scrape-time
// collector, removing it when it stops.
package metrics

import (
	"strconv"
	"sync"

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

var (
	// PhaseSeconds is how long each reconcile phase took.
	PhaseSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "bpfleet_agent_phase_seconds",
		Help:    "Duration of the node agent's reconcile phases: pull (bundle into the node cache), verify (cosign signature and trust policy), apply (load, attach, pin, map entries in the kernel), within it load (one bundle: maps, programs, map entries) and attach (one attach or Link.Update), status (BpfNodeState write).",
		Buckets: []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30},
	}, []string{"node", "phase"})

	// Failures counts failed attempts by reason (PullFailed, VerifyFailed,
	// and the dataplane's per-program reasons on a transition to Failed).
	Failures = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "bpfleet_agent_failures_total",
		Help: "Failures of the node agent by reason: PullFailed and VerifyFailed per attempt, kernel-side reasons (LoadFailed, VerifierRejected, AttachFailed, ...) per program entry that turned Failed.",
	}, []string{"node", "reason"})

	// StatusWrites counts BpfNodeState writes (create and status patch).
	StatusWrites = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "bpfleet_agent_status_writes_total",
		Help: "BpfNodeState writes by the node agent; flat at steady state.",
	}, []string{"node", "kind"})

	// Unmanaged counts the programs in the node's kernel that bpfleet did
	// not load, by program type; see SetUnmanaged.
	Unmanaged = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "bpfleet_unmanaged_programs",
		Help: "eBPF programs in the node's kernel that bpfleet did not load, by program type (bpftool's names), as of the agent's last inventory.",
	}, []string{"node", "type"})

	snapshots = &snapshotCollector{sources: map[string]Source{}}

	registerOnce sync.Once
)

// Source gives the scrape-time collector a node's programs.
type Source struct {
	// Snapshot returns the node's program states; the dataplane's Snapshot.
	Snapshot func() []v1alpha1.ProgramState
	// MetricMaps returns the pinned paths, by map name, of the metric maps
	// that bundle digest declares for BpfProgram uid; nil exports none.
	MetricMaps func(uid types.UID, digest string) map[string]string
}

// Register adds node's source to the collectors (registering them on
// controller-runtime's registry on first use) and returns a function that
// removes it again.
func Register(node string, src Source) (unregister func()) {
	registerOnce.Do(func() {
		crmetrics.Registry.MustRegister(PhaseSeconds, Failures, StatusWrites, Unmanaged, snapshots)
	})
	snapshots.mu.Lock()
	snapshots.sources[node] = src
	snapshots.mu.Unlock()
	return func() {
		snapshots.mu.Lock()
		delete(snapshots.sources, node)
		snapshots.mu.Unlock()
		PhaseSeconds.DeletePartialMatch(prometheus.Labels{"node": node})
		Failures.DeletePartialMatch(prometheus.Labels{"node": node})
		StatusWrites.DeletePartialMatch(prometheus.Labels{"node": node})
		unmanagedMu.Lock()
		Unmanaged.DeletePartialMatch(prometheus.Labels{"node": node})
		delete(unmanagedTypes, node)
		unmanagedMu.Unlock()
	}
}

// SetUnmanaged sets node's unmanaged program counts to byType: types counted
// before and absent now drop to zero, so a rate() or alert sees them go.
func SetUnmanaged(node string, byType map[string]int32) {
	unmanagedMu.Lock()
	defer unmanagedMu.Unlock()
	seen := unmanagedTypes[node]
	if seen == nil {
		seen = map[string]bool{}
		unmanagedTypes[node] = seen
	}
	for t := range seen {
		if _, ok := byType[t]; !ok {
			Unmanaged.WithLabelValues(node, t).Set(0)
		}
	}
	for t, n := range byType {
		seen[t] = true
		Unmanaged.WithLabelValues(node, t).Set(float64(n))
	}
}

var (
	unmanagedMu    sync.Mutex
	unmanagedTypes = map[string]map[string]bool{}
)

var (
	programLabels = []string{"node", "bpf_program", "program", "attach_point"}

	descPrograms = prometheus.NewDesc("bpfleet_programs",
		"Managed program entries on the node by state and reason.",
		[]string{"node", "state", "reason"}, nil)
	descRunCount = prometheus.NewDesc("bpfleet_program_run_count_total",
		"Times the program ran (kernel run-time statistics; needs --stats).",
		programLabels, nil)
	descRunTime = prometheus.NewDesc("bpfleet_program_run_time_seconds_total",
		"Total time the program ran (kernel run-time statistics; needs --stats).",
		programLabels, nil)
	descMapValue = prometheus.NewDesc("bpfleet_map_value",
		"Values of the metric maps a bundle declares (ebpf_exporter style): per key, each 64-bit field of the value, summed over CPUs for per-CPU maps.",
		[]string{"node", "bpf_program", "map", "key", "field"}, nil)
	descInfo = prometheus.NewDesc("bpfleet_program_info",
		"One series per managed program entry, carrying its kernel id, tag and digest.",
		append(append([]string{}, programLabels...), "id", "tag", "type", "digest"), nil)
)

// snapshotCollector reads every registered node's program states at scrape
// time: nothing is cached between scrapes.
type snapshotCollector struct {
	mu      sync.Mutex
	sources map[string]Source
}

func (c *snapshotCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descPrograms
	ch <- descRunCount
	ch <- descRunTime
	ch <- descInfo
	ch <- descMapValue
}

func (c *snapshotCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	sources := make(map[string]Source, len(c.sources))
	for n, s := range c.sources {
		sources[n] = s
	}
	c.mu.Unlock()
	for node, src := range sources {
		states := src.Snapshot()
		collectNode(ch, node, states)
		if src.MetricMaps != nil {
			collectMaps(ch, node, states, src.MetricMaps)
		}
	}
}

type stateKey struct{ state, reason string }

func collectNode(ch chan<- prometheus.Metric, node string, states []v1alpha1.ProgramState) {
	counts := map[stateKey]int{}
	seen := map[[3]string]bool{}
	for _, s := range states {
		counts[stateKey{string(s.State), s.Reason}]++
		key := [3]string{s.BpfProgram, s.Program, s.AttachPoint}
		if seen[key] || s.ID == 0 {
			continue
		}
		seen[key] = true
		labels := []string{node, s.BpfProgram, s.Program, s.AttachPoint}
		ch <- prometheus.MustNewConstMetric(descInfo, prometheus.GaugeValue, 1,
			append(labels, strconv.FormatUint(uint64(s.ID), 10), s.Tag, s.Type, s.Digest)...)
		if s.RunCount > 0 || s.RunTimeNs > 0 {
			ch <- prometheus.MustNewConstMetric(descRunCount, prometheus.CounterValue, float64(s.RunCount), labels...)
			ch <- prometheus.MustNewConstMetric(descRunTime, prometheus.CounterValue, float64(s.RunTimeNs)/1e9, labels...)
		}
	}
	for k, n := range counts {
		ch <- prometheus.MustNewConstMetric(descPrograms, prometheus.GaugeValue, float64(n), node, k.state, k.reason)
	}
}

package scale_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/rest"
)

// reqKey is one row of apiserver_request_total summed over codes, scopes
// and versions.
type reqKey struct {
	Verb, Resource, Subresource string
}

func (k reqKey) String() string {
	if k.Subresource != "" {
		return k.Verb + " " + k.Resource + "/" + k.Subresource
	}
	return k.Verb + " " + k.Resource
}

// apiCounts are counters read from the API server's own /metrics.
type apiCounts struct {
	// Requests is apiserver_request_total by verb, resource, subresource.
	Requests map[reqKey]float64
	// Refused is the part of Requests answered 409, 429 or 5xx: attempts
	// that stored nothing (client-go retries a 429 by itself).
	Refused map[reqKey]float64
	// WatchEvents is apiserver_watch_events_total by resource: events the
	// server sent to watchers.
	WatchEvents map[string]float64
	// Conflicts counts 409 answers; Throttled 429 (API Priority and
	// Fairness rejected the request); Timeouts 504.
	Conflicts, Throttled, Timeouts float64
	// Watches is apiserver_longrunning_requests{verb="WATCH"} now: open
	// watches; WatchesBy the same by resource.
	Watches   float64
	WatchesBy map[string]float64
	// NodeStateEtcdUpdates and NodeStateEtcdSeconds are the count and sum
	// of etcd_request_duration_seconds{operation="update",
	// resource="bpfnodestates"}: how long the API server waited on etcd to
	// store BpfNodeState writes.
	NodeStateEtcdUpdates, NodeStateEtcdSeconds float64
	// NodeStateWriteBytes is the sum of apiserver_request_body_size_bytes
	// for bpfnodestates (the bodies of the agents' writes), and
	// NodeStateWatchBytes of apiserver_watch_events_sizes (what the server
	// sent to BpfNodeState watchers).
	NodeStateWriteBytes, NodeStateWatchBytes float64
}

// etcdUpdateMean is the mean time etcd took per stored BpfNodeState write.
func (c apiCounts) etcdUpdateMean() time.Duration {
	if c.NodeStateEtcdUpdates == 0 {
		return 0
	}
	return time.Duration(c.NodeStateEtcdSeconds / c.NodeStateEtcdUpdates * float64(time.Second))
}

// scrape reads the API server's /metrics through cfg.
func scrape(ctx context.Context, cfg *rest.Config) (apiCounts, error) {
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return apiCounts{}, fmt.Errorf("create discovery client: %w", err)
	}
	raw, err := dc.RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return apiCounts{}, fmt.Errorf("get /metrics: %w", err)
	}
	return parseCounts(raw)
}

func parseCounts(raw []byte) (apiCounts, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(raw))
	if err != nil {
		return apiCounts{}, fmt.Errorf("parse /metrics: %w", err)
	}
	c := apiCounts{Requests: map[reqKey]float64{}, Refused: map[reqKey]float64{}, WatchEvents: map[string]float64{}, WatchesBy: map[string]float64{}}
	if f := fams["apiserver_request_total"]; f != nil {
		for _, m := range f.GetMetric() {
			l := labels(m.GetLabel())
			if l["resource"] == "" {
				continue // non-resource requests (/metrics, /healthz, discovery)
			}
			key := reqKey{l["verb"], l["resource"], l["subresource"]}
			c.Requests[key] += m.GetCounter().GetValue()
			if code := l["code"]; code == "409" || code == "429" || strings.HasPrefix(code, "5") {
				c.Refused[key] += m.GetCounter().GetValue()
			}
			switch l["code"] {
			case "409":
				c.Conflicts += m.GetCounter().GetValue()
			case "429":
				c.Throttled += m.GetCounter().GetValue()
			case "504":
				c.Timeouts += m.GetCounter().GetValue()
			}
		}
	}
	if f := fams["apiserver_longrunning_requests"]; f != nil {
		for _, m := range f.GetMetric() {
			if l := labels(m.GetLabel()); l["verb"] == "WATCH" {
				c.Watches += m.GetGauge().GetValue()
				c.WatchesBy[l["resource"]] += m.GetGauge().GetValue()
			}
		}
	}
	if f := fams["etcd_request_duration_seconds"]; f != nil {
		for _, m := range f.GetMetric() {
			if l := labels(m.GetLabel()); l["operation"] == "update" && l["resource"] == "bpfnodestates" {
				c.NodeStateEtcdUpdates += float64(m.GetHistogram().GetSampleCount())
				c.NodeStateEtcdSeconds += m.GetHistogram().GetSampleSum()
			}
		}
	}
	for name, sum := range map[string]*float64{"apiserver_request_body_size_bytes": &c.NodeStateWriteBytes, "apiserver_watch_events_sizes": &c.NodeStateWatchBytes} {
		for _, m := range fams[name].GetMetric() {
			if labels(m.GetLabel())["resource"] == "bpfnodestates" {
				*sum += m.GetHistogram().GetSampleSum()
			}
		}
	}
	if f := fams["apiserver_watch_events_total"]; f != nil {
		for _, m := range f.GetMetric() {
			l := labels(m.GetLabel())
			c.WatchEvents[l["resource"]] += m.GetCounter().GetValue()
		}
	}
	return c, nil
}

func labels[T interface {
	GetName() string
	GetValue() string
}](pairs []T) map[string]string {
	out := make(map[string]string, len(pairs))
	for _, p := range pairs {
		out[p.GetName()] = p.GetValue()
	}
	return out
}

// sub returns c − before.
func (c apiCounts) sub(before apiCounts) apiCounts {
	d := apiCounts{Requests: map[reqKey]float64{}, Refused: map[reqKey]float64{}, WatchEvents: map[string]float64{}, Conflicts: c.Conflicts - before.Conflicts,
		Throttled: c.Throttled - before.Throttled, Timeouts: c.Timeouts - before.Timeouts, Watches: c.Watches, WatchesBy: c.WatchesBy,
		NodeStateEtcdUpdates: c.NodeStateEtcdUpdates - before.NodeStateEtcdUpdates, NodeStateEtcdSeconds: c.NodeStateEtcdSeconds - before.NodeStateEtcdSeconds,
		NodeStateWriteBytes: c.NodeStateWriteBytes - before.NodeStateWriteBytes, NodeStateWatchBytes: c.NodeStateWatchBytes - before.NodeStateWatchBytes}
	for k, v := range c.Requests {
		if v -= before.Requests[k]; v != 0 {
			d.Requests[k] = v
		}
	}
	for k, v := range c.Refused {
		if v -= before.Refused[k]; v != 0 {
			d.Refused[k] = v
		}
	}
	for k, v := range c.WatchEvents {
		if v -= before.WatchEvents[k]; v != 0 {
			d.WatchEvents[k] = v
		}
	}
	return d
}

// writeVerbs are the verbs that change stored state.
var writeVerbs = map[string]bool{"POST": true, "PUT": true, "PATCH": true, "DELETE": true, "APPLY": true, "DELETECOLLECTION": true}

// fleetResources are the resources bpfleet's components write: their
// writes are what the idle goal counts (the API server renews its own
// leases on its own).
var fleetResources = map[string]bool{"bpfnodestates": true, "bpfprograms": true, "bundletrustpolicies": true, "events": true, "nodes": true}

// writes sums write requests whose resource passes keep.
func (c apiCounts) writes(keep func(resource string) bool) float64 {
	var n float64
	for k, v := range c.Requests {
		if writeVerbs[k.Verb] && keep(k.Resource) {
			n += v
		}
	}
	return n
}

// acceptedWrites sums write requests whose resource passes keep, less
// those refused (409, 429, 5xx): the writes the API server stored.
func (c apiCounts) acceptedWrites(keep func(resource string) bool) float64 {
	n := c.writes(keep)
	for k, v := range c.Refused {
		if writeVerbs[k.Verb] && keep(k.Resource) {
			n -= v
		}
	}
	return n
}

// byVerb sums requests by verb for resources passing keep.
func (c apiCounts) byVerb(keep func(resource string) bool) map[string]float64 {
	out := map[string]float64{}
	for k, v := range c.Requests {
		if keep(k.Resource) {
			out[k.Verb] += v
		}
	}
	return out
}

// rows returns the non-zero request counters, largest first.
func (c apiCounts) rows() []reqKey {
	keys := make([]reqKey, 0, len(c.Requests))
	for k := range c.Requests {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if c.Requests[keys[i]] != c.Requests[keys[j]] {
			return c.Requests[keys[i]] > c.Requests[keys[j]]
		}
		return keys[i].String() < keys[j].String()
	})
	return keys
}

func anyResource(string) bool     { return true }
func fleetResource(r string) bool { return fleetResources[r] }
func nodeStateOnly(r string) bool { return r == "bpfnodestates" }
func eventOnly(r string) bool     { return r == "events" }

// selfCPU is this process's user+system time.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// controlPlanePIDs finds this process's children named etcd and
// kube-apiserver: the control plane envtest started for this package, not
// another package's running at the same time.
func controlPlanePIDs() (map[string]int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("list /proc: %w", err)
	}
	self := os.Getpid()
	out := map[string]int{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		open, end := bytes.IndexByte(stat, '('), bytes.LastIndexByte(stat, ')')
		if open < 0 || end < open {
			continue
		}
		comm := string(stat[open+1 : end])
		f := strings.Fields(string(stat[end+1:]))
		if len(f) < 2 {
			continue
		}
		if ppid, _ := strconv.Atoi(f[1]); ppid != self {
			continue
		}
		if comm == "etcd" || comm == "kube-apiserver" {
			out[comm] = pid
		}
	}
	if len(out) != 2 {
		return out, fmt.Errorf("found %v among this process's children, want etcd and kube-apiserver", out)
	}
	return out, nil
}

// percentile returns the p-th percentile (0..100) of sorted durations, by
// the nearest-rank method.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(float64(len(sorted))*p/100+0.999999) - 1
	rank = max(0, min(rank, len(sorted)-1))
	return sorted[rank]
}

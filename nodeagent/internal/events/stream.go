package events

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/perf"
	"github.com/cilium/ebpf/ringbuf"
	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/bpfleet/bpfleet/api/v1alpha1"
	"github.com/bpfleet/bpfleet/bundles/format"
	"github.com/bpfleet/bpfleet/nodeagent/metrics"
)

// Schema names the JSON line format; a change that breaks readers bumps it.
const Schema = "bpfleet.io/events/v1"

// DefaultRateLimit is the events per second per output when the spec says 0.
const DefaultRateLimit = 1000

// Metrics are one agent's per-program event counters. Each agent
// registers its own under its node label, so several agents in one process
// need no bookkeeping.
type Metrics struct {
	read, dropped, bytes *prometheus.CounterVec
	reg                  prometheus.Registerer
}

// NewMetrics returns counters registered nowhere yet.
func NewMetrics() *Metrics {
	return &Metrics{
		read: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bpfleet_events_read_total", Help: "Event records read from programs' outputs.",
		}, []string{"bpfprogram", "output"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bpfleet_events_dropped_total", Help: "Event records lost: by the kernel (output full, as the program counts them), or by the agent (over the rate limit, undecodable, or not taken by a slow stream consumer).",
		}, []string{"bpfprogram", "output", "reason"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bpfleet_events_bytes_total", Help: "Bytes of event records read.",
		}, []string{"bpfprogram", "output"}),
	}
}

// Register exports the counters on reg (controller-runtime's registry, the
// agent's /metrics, when nil) under the label node=<node>. Call it once.
func (m *Metrics) Register(node string, reg prometheus.Registerer) error {
	if reg == nil {
		reg = crmetrics.Registry
	}
	m.reg = prometheus.WrapRegistererWith(prometheus.Labels{"node": node}, reg)
	cs := []prometheus.Collector{m.read, m.dropped, m.bytes}
	for i, c := range cs {
		if err := m.reg.Register(c); err != nil {
			for _, done := range cs[:i] {
				m.reg.Unregister(done)
			}
			m.reg = nil
			return fmt.Errorf("register event metrics of node %s: %w", node, err)
		}
	}
	return nil
}

// Unregister removes the counters from the registry they were registered on.
func (m *Metrics) Unregister() {
	if m == nil || m.reg == nil {
		return
	}
	for _, c := range []prometheus.Collector{m.read, m.dropped, m.bytes} {
		m.reg.Unregister(c)
	}
}

// Source is what the Streamer needs of the agent.
type Source struct {
	// Programs lists the BpfPrograms (the agent's cache).
	Programs func(ctx context.Context) ([]v1alpha1.BpfProgram, error)
	// Loaded is what the node runs now (the dataplane's snapshot).
	Loaded func() []v1alpha1.ProgramState
	// Bundle returns a cached bundle by digest.
	Bundle func(ctx context.Context, digest string) (*format.Bundle, error)
	// MapPin is the path of a program's pinned map.
	MapPin func(uid types.UID, name string) string
	// Pod returns a pod of this node by UID; nil when unknown.
	Pod func(ctx context.Context, uid string) *corev1.Pod
}

// Streamer reads the outputs of every loaded program whose spec asks for
// events, and writes one JSON line per record to Out. It never writes to the
// API server, and a slow Out slows only the readers.
type Streamer struct {
	Node    string
	Source  Source
	Cgroups *CgroupIndex
	Out     io.Writer
	Log     logr.Logger
	// Every is how often the set of readers is brought up to date; zero
	// means 1 s.
	Every time.Duration
	// ProcRoot is the node's /proc (the agent runs with hostPID), read for
	// a record's pid when the cgroup v2 hierarchy holds no containers;
	// empty means /proc.
	ProcRoot string
	// Metrics counts events read and lost; nil: counters registered
	// nowhere.
	Metrics *Metrics

	stdout      chan stdoutLine // lines for Out, written by one goroutine
	stdoutOnce  sync.Once
	metricsOnce sync.Once
	readers     map[readerKey]*reader
	hub         hub
	// outputsOf remembers each digest's outputs: a digest's manifest never
	// changes, and Sync runs every second.
	outputsOf map[string][]format.Output
	pods      podCache
}

func (s *Streamer) procRoot() string {
	if s.ProcRoot == "" {
		return "/proc"
	}
	return s.ProcRoot
}

// outputs are the declared outputs of the bundle digest.
func (s *Streamer) outputs(ctx context.Context, digest string) ([]format.Output, error) {
	if o, ok := s.outputsOf[digest]; ok {
		return o, nil
	}
	b, err := s.Source.Bundle(ctx, digest)
	if err != nil {
		return nil, err
	}
	if s.outputsOf == nil {
		s.outputsOf = map[string][]format.Output{}
	}
	s.outputsOf[digest] = b.Manifest.Outputs
	return b.Manifest.Outputs, nil
}

// podCache keeps pods looked up by UID for a few seconds, so a busy output
// does not read the node's pods once per event.
type podCache struct {
	mu   sync.Mutex
	byID map[string]cachedPod
}

type cachedPod struct {
	pod *corev1.Pod
	at  time.Time
}

const podCacheTTL = 5 * time.Second

// get returns the pod uid, from the cache when the cached copy is recent and
// knows the container (a pod seen before its container started is read
// again).
func (c *podCache) get(ctx context.Context, uid, containerID string, lookup func(context.Context, string) *corev1.Pod) *corev1.Pod {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.byID[uid]; ok && time.Since(e.at) < podCacheTTL && (containerID == "" || containerName(e.pod, containerID) != "") {
		return e.pod
	}
	if c.byID == nil || len(c.byID) > 4096 {
		c.byID = map[string]cachedPod{}
	}
	p := lookup(ctx, uid)
	c.byID[uid] = cachedPod{pod: p, at: time.Now()}
	return p
}

type readerKey struct {
	uid    types.UID
	digest string
	output string
	spec   string // rate limit and fields, so a spec change restarts it
}

// Start runs until ctx ends (a controller-runtime Runnable).
func (s *Streamer) Start(ctx context.Context) error {
	every := s.Every
	if every == 0 {
		every = time.Second
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if err := s.Sync(ctx); err != nil {
			s.Log.Error(err, "sync event readers")
		}
		select {
		case <-ctx.Done():
			s.closeAll()
			return nil
		case <-t.C:
		}
	}
}

// Sync starts a reader per wanted output and stops those no longer wanted.
func (s *Streamer) Sync(ctx context.Context) error {
	if s.readers == nil {
		s.readers = map[readerKey]*reader{}
	}
	progs, err := s.Source.Programs(ctx)
	if err != nil {
		return fmt.Errorf("list programs: %w", err)
	}
	byUID := map[types.UID]*v1alpha1.BpfProgram{}
	for i := range progs {
		if ev := progs[i].Spec.Events; ev != nil && ev.Enabled {
			byUID[progs[i].UID] = &progs[i]
		}
	}
	want := map[readerKey]*v1alpha1.BpfProgram{}
	for _, st := range s.Source.Loaded() {
		p, ok := byUID[st.UID]
		if !ok || st.State != v1alpha1.PhaseAttached || st.Digest == "" {
			continue
		}
		outputs, err := s.outputs(ctx, st.Digest)
		if err != nil {
			continue
		}
		for _, o := range outputs {
			spec := fmt.Sprint(p.Spec.Events.RateLimit, p.Spec.Events.Fields)
			want[readerKey{st.UID, st.Digest, o.Map, spec}] = p
		}
	}
	var errs []error
	for k, r := range s.readers {
		if _, ok := want[k]; !ok {
			r.close()
			delete(s.readers, k)
		}
	}
	for k, p := range want {
		if _, ok := s.readers[k]; ok {
			continue
		}
		r, err := s.open(ctx, k, p)
		if err != nil {
			errs = append(errs, fmt.Errorf("read %s/%s: %w", p.Name, k.output, err))
			continue
		}
		s.readers[k] = r
	}
	programs := map[string]bool{}
	for k, r := range s.readers {
		programs[r.program] = true
		if err := r.countKernelDrops(s.metrics(), s.Source.MapPin(k.uid, r.drops.Map)); err != nil {
			errs = append(errs, fmt.Errorf("read kernel drops of %s/%s: %w", r.program, k.output, err))
		}
	}
	s.hub.forget(programs)
	return errors.Join(errs...)
}

func (s *Streamer) closeAll() {
	for k, r := range s.readers {
		r.close()
		delete(s.readers, k)
	}
}

// recordSource is the reader of a ring buffer or a perf event array.
type recordSource interface {
	// next returns the next record, and how many records the kernel lost
	// before it (a perf buffer's lost-samples notice has no record).
	next() (raw []byte, lost uint64, err error)
	Close() error
}

type ringSource struct {
	rd  *ringbuf.Reader
	rec ringbuf.Record
}

func (r *ringSource) next() ([]byte, uint64, error) {
	err := r.rd.ReadInto(&r.rec)
	return r.rec.RawSample, 0, err
}

func (r *ringSource) Close() error { return r.rd.Close() }

type perfSource struct {
	rd  *perf.Reader
	rec perf.Record
}

func (p *perfSource) next() ([]byte, uint64, error) {
	err := p.rd.ReadInto(&p.rec)
	return p.rec.RawSample, p.rec.LostSamples, err
}

func (p *perfSource) Close() error { return p.rd.Close() }

// PerfBufferSize is the per-CPU buffer of a perf event array output.
const PerfBufferSize = 256 << 10

// newSource reads the ring buffer or perf event array m.
func newSource(m *ebpf.Map) (recordSource, error) {
	switch m.Type() {
	case ebpf.RingBuf:
		rd, err := ringbuf.NewReader(m)
		if err != nil {
			return nil, fmt.Errorf("read ring buffer: %w", err)
		}
		return &ringSource{rd: rd}, nil
	case ebpf.PerfEventArray:
		rd, err := perf.NewReader(m, PerfBufferSize)
		if err != nil {
			return nil, fmt.Errorf("read perf event array: %w", err)
		}
		return &perfSource{rd: rd}, nil
	}
	return nil, fmt.Errorf("%w: %s is a %s", ErrNotAnOutput, m.String(), m.Type())
}

// reader is one output of one loaded program.
type reader struct {
	rd              recordSource
	m               *ebpf.Map
	done            chan struct{}
	program, output string
	// drops is the programs' counter of records the kernel could not
	// write to the output; counted is what was added to the metric.
	drops   format.DropCounter
	counted uint64
}

// countKernelDrops adds the growth of the output's kernel drop counter
// (pinned at pin) to bpfleet_events_dropped_total{reason="kernel"}.
func (r *reader) countKernelDrops(m *Metrics, pin string) error {
	if r.drops == (format.DropCounter{}) {
		return nil
	}
	values, err := metrics.ReadMap(pin)
	if err != nil {
		return err
	}
	key := strconv.FormatUint(uint64(r.drops.Index), 10)
	for _, v := range values {
		if v.Key != key || len(v.Fields) == 0 {
			continue
		}
		n := v.Fields[0]
		if n < r.counted { // the map was made again: a new count
			r.counted = 0
		}
		m.dropped.WithLabelValues(r.program, r.output, "kernel").Add(float64(n - r.counted))
		r.counted = n
		return nil
	}
	return fmt.Errorf("%s has no key %s", r.drops.Map, key)
}

func (r *reader) close() {
	_ = r.rd.Close()
	<-r.done
	_ = r.m.Close()
}

func (s *Streamer) open(ctx context.Context, k readerKey, p *v1alpha1.BpfProgram) (*reader, error) {
	b, err := s.Source.Bundle(ctx, k.digest)
	if err != nil {
		return nil, err
	}
	var out *format.Output
	for i := range b.Manifest.Outputs {
		if b.Manifest.Outputs[i].Map == k.output {
			out = &b.Manifest.Outputs[i]
		}
	}
	mp, ok := b.Manifest.Map(k.output)
	if out == nil || !ok {
		return nil, fmt.Errorf("bundle %s declares no output %s", k.digest, k.output)
	}
	obj, err := b.Object(mp.Object)
	if err != nil {
		return nil, err
	}
	spec, err := btf.LoadSpecFromReader(bytes.NewReader(obj))
	if err != nil {
		return nil, fmt.Errorf("load BTF of %s: %w", mp.Object, err)
	}
	var st *btf.Struct
	if err := spec.TypeByName(out.Record, &st); err != nil {
		return nil, fmt.Errorf("find record %s: %w", out.Record, err)
	}
	full, err := NewDecoder(st)
	if err != nil {
		return nil, err
	}
	kept, err := full.Keep(p.Spec.Events.Fields)
	if err != nil {
		return nil, err
	}
	// Read-write: the reader moves the ring's consumer position.
	m, err := ebpf.LoadPinnedMap(s.Source.MapPin(k.uid, k.output), nil)
	if err != nil {
		return nil, fmt.Errorf("open pinned %s: %w", k.output, err)
	}
	rd, err := newSource(m)
	if err != nil {
		_ = m.Close()
		return nil, fmt.Errorf("output %s: %w", k.output, err)
	}
	limit := int(p.Spec.Events.RateLimit)
	if limit == 0 {
		limit = DefaultRateLimit
	}
	r := &reader{rd: rd, m: m, done: make(chan struct{}), program: p.Name, output: k.output, drops: out.Drops}
	w := &writer{s: s, program: p.Name, output: k.output, full: full, kept: kept, bucket: newBucket(limit)}
	go func() {
		defer close(r.done)
		w.loop(ctx, rd)
	}()
	return r, nil
}

// writer turns one reader's records into lines.
type writer struct {
	s               *Streamer
	program, output string
	full, kept      *Decoder
	bucket          *bucket
	line            []byte
}

func (w *writer) loop(ctx context.Context, rd recordSource) {
	m := w.s.metrics()
	read := m.read.WithLabelValues(w.program, w.output)
	bytesRead := m.bytes.WithLabelValues(w.program, w.output)
	overLimit := m.dropped.WithLabelValues(w.program, w.output, "rate-limit")
	undecodable := m.dropped.WithLabelValues(w.program, w.output, "undecodable")
	kernel := m.dropped.WithLabelValues(w.program, w.output, "kernel")
	for {
		raw, lost, err := rd.next()
		if err != nil {
			return // closed
		}
		if lost > 0 {
			kernel.Add(float64(lost))
		}
		if len(raw) == 0 {
			continue
		}
		read.Inc()
		bytesRead.Add(float64(len(raw)))
		if !w.bucket.take(time.Now()) {
			overLimit.Inc()
			continue
		}
		id := w.identity(ctx, raw)
		line, err := w.format(id, raw)
		if err != nil {
			undecodable.Inc()
			continue
		}
		kept := w.s.hub.publish(w.program, w.output, id, line)
		w.s.toStdout(w.program, kept)
	}
}

// StdoutQueue is how many lines may wait for Out (a slow log pipe) before
// more are dropped, counted with reason "stdout": a slow Out never delays
// the readers or the stream consumers.
const StdoutQueue = QueueLength

type stdoutLine struct {
	program string
	line    Line
}

// toStdout queues l for Out, or drops and counts it when Out is
// StdoutQueue lines behind.
func (s *Streamer) toStdout(program string, l Line) {
	s.stdoutOnce.Do(func() {
		s.stdout = make(chan stdoutLine, StdoutQueue)
		go func() {
			for sl := range s.stdout {
				_, _ = s.Out.Write(sl.line.Data)
			}
		}()
	})
	select {
	case s.stdout <- stdoutLine{program, l}:
	default:
		s.metrics().dropped.WithLabelValues(program, l.Output, "stdout").Inc()
	}
}

// format is the JSON line of one record:
//
//	{"schema":"bpfleet.io/events/v1","time":"…","node":"…","bpfProgram":"…",
//	 "output":"…","host":false,"namespace":"…","pod":"…","podUID":"…",
//	 "container":"…","containerID":"…","labels":{…},"record":{…}}
//
// A record of a process outside every pod has "host":true and no pod keys.
func (w *writer) format(id identity, raw []byte) ([]byte, error) {
	b := append(w.line[:0], `{"schema":"`+Schema+`","time":`...)
	b = appendJSONString(b, []byte(time.Now().UTC().Format(time.RFC3339Nano)))
	b = append(b, `,"node":`...)
	b = appendJSONString(b, []byte(w.s.Node))
	b = append(b, `,"bpfProgram":`...)
	b = appendJSONString(b, []byte(w.program))
	b = append(b, `,"output":`...)
	b = appendJSONString(b, []byte(w.output))
	b = id.appendJSON(b)
	b = append(b, `,"record":`...)
	b, err := w.kept.AppendJSON(b, raw)
	if err != nil {
		return nil, err
	}
	b = append(b, '}', '\n')
	w.line = b
	return b, nil
}

// identity is who caused a record: a pod's container, or the host.
type identity struct {
	Container
	inPod     bool
	pod       *corev1.Pod
	container string
}

// Namespace and Pod name the pod; empty for the host or an unknown pod.
func (id identity) Namespace() string {
	if id.pod == nil {
		return ""
	}
	return id.pod.Namespace
}

// Pod is the pod's name; empty for the host or an unknown pod.
func (id identity) Pod() string {
	if id.pod == nil {
		return ""
	}
	return id.pod.Name
}

func (w *writer) identity(ctx context.Context, raw []byte) identity {
	var id identity
	if cg, ok := w.full.Uint(raw, "cgroup_id"); ok && w.s.Cgroups != nil {
		id.Container, id.inPod = w.s.Cgroups.Lookup(cg)
	}
	if !id.inPod && (w.s.Cgroups == nil || w.s.Cgroups.NoContainers()) {
		if pid, ok := w.full.Uint(raw, "pid"); ok && pid > 0 {
			id.Container, id.inPod = ContainerOfPID(w.s.procRoot(), uint32(pid))
		}
	}
	if !id.inPod {
		return id
	}
	id.pod = w.s.pods.get(ctx, id.PodUID, id.ContainerID, w.s.Source.Pod)
	if id.ContainerID != "" {
		id.container = containerName(id.pod, id.ContainerID)
	}
	return id
}

// containerName is the name of pod's container with runtime id cid; "" when
// the pod is nil or does not list it (yet).
func containerName(pod *corev1.Pod, cid string) string {
	if pod == nil {
		return ""
	}
	for _, cs := range append(pod.Status.InitContainerStatuses, pod.Status.ContainerStatuses...) {
		if strings.HasSuffix(cs.ContainerID, "://"+cid) {
			return cs.Name
		}
	}
	return ""
}

func (id identity) appendJSON(b []byte) []byte {
	if !id.inPod {
		return append(b, `,"host":true`...)
	}
	b = append(b, `,"host":false,"podUID":`...)
	b = appendJSONString(b, []byte(id.PodUID))
	if id.ContainerID != "" {
		b = append(b, `,"containerID":`...)
		b = appendJSONString(b, []byte(id.ContainerID))
	}
	if id.pod == nil {
		return b
	}
	b = append(b, `,"namespace":`...)
	b = appendJSONString(b, []byte(id.pod.Namespace))
	b = append(b, `,"pod":`...)
	b = appendJSONString(b, []byte(id.pod.Name))
	if id.container != "" {
		b = append(b, `,"container":`...)
		b = appendJSONString(b, []byte(id.container))
	}
	if len(id.pod.Labels) > 0 {
		b = append(b, `,"labels":{`...)
		first := true
		for k, v := range id.pod.Labels {
			if !first {
				b = append(b, ',')
			}
			first = false
			b = appendJSONString(b, []byte(k))
			b = append(b, ':')
			b = appendJSONString(b, []byte(v))
		}
		b = append(b, '}')
	}
	return b
}

// bucket is a token bucket of rate tokens a second, burst one second's.
type bucket struct {
	rate   float64
	tokens float64
	last   time.Time
}

func newBucket(rate int) *bucket { return &bucket{rate: float64(rate), tokens: float64(rate)} }

func (b *bucket) take(now time.Time) bool {
	if !b.last.IsZero() {
		b.tokens = min(b.rate, b.tokens+now.Sub(b.last).Seconds()*b.rate)
	}
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// metrics returns s.Metrics, made (registered nowhere) on first use when
// nil.
func (s *Streamer) metrics() *Metrics {
	s.metricsOnce.Do(func() {
		if s.Metrics == nil {
			s.Metrics = NewMetrics()
		}
	})
	return s.Metrics
}

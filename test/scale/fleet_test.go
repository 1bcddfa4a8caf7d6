package scale_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/go-logr/logr"
	"golang.org/x/sync/singleflight"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	crcache "sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/yaml"

	"github.com/bpfleet/bpfleet/api/scheme"
	"github.com/bpfleet/bpfleet/api/v1alpha1"
	"github.com/bpfleet/bpfleet/bundles/build"
	"github.com/bpfleet/bpfleet/bundles/cache"
	"github.com/bpfleet/bpfleet/bundles/format"
	"github.com/bpfleet/bpfleet/bundles/remote"
	"github.com/bpfleet/bpfleet/bundles/signing"
	"github.com/bpfleet/bpfleet/bundles/trust"
	"github.com/bpfleet/bpfleet/nodeagent/controller"
	"github.com/bpfleet/bpfleet/operator"
	"github.com/bpfleet/bpfleet/test/scale/simkernel"
	"github.com/bpfleet/bpfleet/test/support/envtest"
	"github.com/bpfleet/bpfleet/test/support/registry"
)

// Names the simulated fleet uses.
const (
	fleetLabel    = "bpfleet.io/scale"
	bundlePath    = "scale/exectrace"
	programName   = "exec_trace"
	keyPassword   = "scale"
	agentSA       = "bpfleet-agent"
	agentNS       = "bpfleet-system"
	agentUserName = "system:serviceaccount:" + agentNS + ":" + agentSA
)

// fleetConfig is what a fleet is started with.
type fleetConfig struct {
	nodes         int
	loadLatency   time.Duration
	attachLatency time.Duration
	resync        time.Duration
	// shared runs the agents in the shared-informer mode (shared_test.go),
	// group nodes per manager; otherwise one manager per node.
	shared bool
	group  int
}

// fleet is a running simulated fleet: the operator, N agents with
// simulated kernels, a registry with signed bundles and a watcher.
type fleet struct {
	cfg fleetConfig
	// admin reads and writes as cluster admin, without client-side throttling.
	admin    client.Client
	adminCfg *rest.Config
	agentCfg *rest.Config
	reg      *registry.Registry
	repo     string
	remote   remote.Options
	keyPath  string
	// digests by tag.
	digests map[string]string

	bundles  *cache.Cache
	fetches  atomic.Int64
	verifies atomic.Int64
	memo     *controller.VerifyMemo
	nodes    []*simNode
	// sharedKinds are the GroupVersionKinds read from the shared cache in
	// the shared-informer mode.
	sharedKinds sync.Map
	failOn      atomic.Pointer[string]
	watch       *watcher
	stopFuncs   []func()
}

// simNode is one simulated node and its agent.
type simNode struct {
	name    string
	dp      *simkernel.Dataplane
	failing bool
}

// newFleet sets up the registry, key, trust policy, bundles, operator and
// watcher; startAgents starts the nodes.
func newFleet(t testing.TB, cfg fleetConfig) *fleet {
	t.Helper()
	ctx := context.Background()
	cfg.shared = cfg.shared || *flagShared
	if cfg.group == 0 {
		cfg.group = *flagGroup
	}
	f := &fleet{cfg: cfg, digests: map[string]string{}}
	t.Cleanup(f.stop)

	f.adminCfg = rest.CopyConfig(env.Config)
	f.adminCfg.QPS, f.adminCfg.Burst = 2000, 4000
	var err error
	if f.admin, err = client.New(f.adminCfg, client.Options{Scheme: env.Scheme}); err != nil {
		t.Fatalf("create admin client: %v", err)
	}
	f.agentCfg = agentConfig(t, f.admin)

	f.reg = registry.Start(t, registry.Options{})
	f.repo = f.reg.Repository(bundlePath)
	f.remote = remote.Options{PlainHTTP: true, Timeout: 30 * time.Second}
	keyDir := t.TempDir()
	priv, pub, err := signing.GenerateKeyPair(keyDir, []byte(keyPassword))
	if err != nil {
		t.Fatalf("generate key pair: %v", err)
	}
	f.keyPath = priv
	pem, err := os.ReadFile(pub)
	if err != nil {
		t.Fatal(err)
	}
	for _, tag := range []string{"v1", "v2", "v3"} {
		f.digests[tag] = f.pushSigned(t, tag)
	}
	policy := &v1alpha1.BundleTrustPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "scale"},
		Spec: v1alpha1.BundleTrustPolicySpec{
			Images: []string{f.repo},
			Keys:   []v1alpha1.TrustedKey{{Name: "scale", PublicKey: string(pem)}},
		},
	}
	if err := f.admin.Create(ctx, policy); err != nil {
		t.Fatalf("create trust policy: %v", err)
	}
	f.onStop(func() { _ = f.admin.Delete(context.Background(), policy) })

	// One bundle cache and one verification memo for the whole process:
	// a node pays a download and a signature check once per digest, so
	// does the simulated fleet, once for all nodes (singleflight).
	// Not t.TempDir: its cleanup would run before f.stop stops the agents
	// still writing into the cache ("directory not empty").
	cacheDir, err := os.MkdirTemp("", "bpfleet-scale-cache-")
	if err != nil {
		t.Fatal(err)
	}
	f.onStop(func() { _ = os.RemoveAll(cacheDir) }) // after the agents, which stop first
	if f.bundles, err = cache.Open(cacheDir, countingFetcher{remote.New(f.remote), &f.fetches}); err != nil {
		t.Fatalf("open bundle cache: %v", err)
	}
	f.memo = &controller.VerifyMemo{Verifier: &sharedVerifier{
		// The policy holds its key inline: no Secret to read.
		v:     &trust.Verifier{Remote: f.remote},
		count: &f.verifies,
	}}

	f.startOperator(t)
	f.watch = startWatcher(t, f.adminCfg)
	f.onStop(f.watch.stop)
	return f
}

func (f *fleet) onStop(fn func()) { f.stopFuncs = append(f.stopFuncs, fn) }

func (f *fleet) stop() {
	for i := len(f.stopFuncs) - 1; i >= 0; i-- {
		f.stopFuncs[i]()
	}
	f.stopFuncs = nil
}

// pushSigned builds the shipped exec-trace bundle with version tag (so
// every tag is a distinct digest), pushes it and signs it.
func (f *fleet) pushSigned(t testing.TB, tag string) string {
	t.Helper()
	ctx := context.Background()
	root, err := envtest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(root, "bpf", "exectrace")
	dir := t.TempDir()
	obj, err := os.ReadFile(filepath.Join(src, "exectrace_bpfel.o"))
	if err != nil {
		t.Fatalf("read shipped object: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "exectrace_bpfel.o"), obj, 0o644); err != nil {
		t.Fatal(err)
	}
	spec, err := os.ReadFile(filepath.Join(src, build.SpecFile))
	if err != nil {
		t.Fatal(err)
	}
	spec = []byte(strings.Replace(string(spec), "version: 0.1.0", "version: 0.1.0-"+tag, 1))
	if err := os.WriteFile(filepath.Join(dir, build.SpecFile), spec, 0o644); err != nil {
		t.Fatal(err)
	}
	layout := t.TempDir()
	res, err := build.Build(ctx, dir, build.Options{LayoutDir: layout, Tag: tag})
	if err != nil {
		t.Fatalf("build bundle %s: %v", tag, err)
	}
	digest, err := remote.New(f.remote).Push(ctx, layout, f.repo+":"+tag)
	if err != nil {
		t.Fatalf("push %s: %v", tag, err)
	}
	if digest != res.Digest {
		t.Fatalf("pushed %s, built %s", digest, res.Digest)
	}
	if err := signing.Sign(ctx, f.repo+"@"+digest, f.keyPath, []byte(keyPassword), f.remote); err != nil {
		t.Fatalf("sign %s: %v", tag, err)
	}
	return digest
}

// agentConfig impersonates a service account bound to the agent's
// generated ClusterRole (config/rbac/agent): every simulated agent is
// authorized and classified by API Priority and Fairness (service-accounts
// flow schema, workload-low) like a DaemonSet pod, with client-go's
// controller-runtime defaults of 20 QPS, burst 30 per agent.
func agentConfig(t testing.TB, admin client.Client) *rest.Config {
	t.Helper()
	root, err := envtest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(root, "config", "rbac", "agent", "role.yaml"))
	if err != nil {
		t.Fatalf("read the agent's ClusterRole: %v", err)
	}
	var role rbacv1.ClusterRole
	if err := yaml.Unmarshal(data, &role); err != nil {
		t.Fatalf("decode the agent's ClusterRole: %v", err)
	}
	ctx := context.Background()
	if err := admin.Create(ctx, &role); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("create ClusterRole: %v", err)
	}
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "bpfleet-agent-scale"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: agentNS, Name: agentSA}},
	}
	if err := admin.Create(ctx, binding); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("create ClusterRoleBinding: %v", err)
	}
	cfg := rest.CopyConfig(env.Config)
	cfg.Impersonate = rest.ImpersonationConfig{
		UserName: agentUserName,
		Groups:   []string{"system:serviceaccounts", "system:serviceaccounts:" + agentNS, "system:authenticated"},
	}
	cfg.QPS, cfg.Burst = 20, 30
	return cfg
}

// startOperator runs the real operator (operator.Setup) in this process,
// as cluster admin, like bpfleet local does.
func (f *fleet) startOperator(t testing.TB) {
	t.Helper()
	cfg := rest.CopyConfig(env.Config)
	cfg.QPS, cfg.Burst = 20, 30
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 scheme.New(),
		Cache:                  operator.CacheOptions(),
		Logger:                 logr.Discard(),
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		// A benchmark run with -count builds a fleet, and its operator, per run.
		Controller: config.Controller{SkipNameValidation: ptr.To(true)},
	})
	if err != nil {
		t.Fatalf("create operator manager: %v", err)
	}
	if err := operator.Setup(context.Background(), mgr, operator.Options{Remote: f.remote}); err != nil {
		t.Fatalf("set up operator: %v", err)
	}
	f.run("operator", mgr)
}

// run starts mgr until the fleet stops.
func (f *fleet) run(what string, mgr ctrl.Manager) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	f.onStop(func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			fmt.Fprintf(os.Stderr, "%s: %v\n", what, err)
		}
	})
}

// nodeName is the i-th simulated node's name.
func nodeName(i int) string { return fmt.Sprintf("sim-node-%04d", i) }

// startAgents creates the Node objects and starts one agent per node: the
// real reconciler in its own manager, whose cache is scoped to the node
// with controller.CacheOptions exactly as controller.Run scopes it, or with
// -scale.shared the same reconcilers sharing the cluster-wide informers
// (startShared). Every tenth node fails digests given to failDigest.
func (f *fleet) startAgents(t testing.TB) {
	t.Helper()
	ctx := context.Background()
	sem := make(chan struct{}, 32)
	errs := make(chan error, f.cfg.nodes)
	for i := range f.cfg.nodes {
		sem <- struct{}{}
		go func() {
			defer func() { <-sem }()
			n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: nodeName(i), Labels: map[string]string{
				fleetLabel:                    "true",
				"kubernetes.io/hostname":      nodeName(i),
				"kubernetes.io/os":            "linux",
				"topology.kubernetes.io/zone": fmt.Sprintf("zone-%d", i%3),
			}}}
			if err := f.admin.Create(ctx, n); err != nil && !apierrors.IsAlreadyExists(err) {
				errs <- fmt.Errorf("create node %s: %w", n.Name, err)
				return
			}
			errs <- nil
		}()
	}
	for range f.cfg.nodes {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	for i := range f.cfg.nodes {
		n := &simNode{name: nodeName(i), failing: i%10 == 0}
		n.dp = simkernel.New(simkernel.Options{
			Node:          n.name,
			LoadLatency:   f.cfg.loadLatency,
			AttachLatency: f.cfg.attachLatency,
			Fail: func(digest string) bool {
				bad := f.failOn.Load()
				return n.failing && bad != nil && *bad == digest
			},
		})
		f.nodes = append(f.nodes, n)
	}
	if f.cfg.shared {
		f.startShared(t)
		return
	}
	for _, n := range f.nodes {
		mgr, err := ctrl.NewManager(f.agentCfg, ctrl.Options{
			Scheme:                 scheme.New(),
			Logger:                 logr.Discard(),
			Cache:                  controller.CacheOptions(n.name),
			Metrics:                metricsserver.Options{BindAddress: "0"},
			HealthProbeBindAddress: "0",
		})
		if err != nil {
			t.Fatalf("create manager of %s: %v", n.name, err)
		}
		r := f.reconciler(n, mgr.GetClient(), mgr.GetEventRecorder("bpfleet-agent"))
		if err := r.SetupWithManager(ctx, mgr); err != nil {
			t.Fatalf("set up agent of %s: %v", n.name, err)
		}
		f.run("agent "+n.name, mgr)
	}
}

// reconciler is node n's agent: the real reconciler, set up as
// controller.Run sets it up, on the simulated kernel.
func (f *fleet) reconciler(n *simNode, c client.Client, rec events.EventRecorder) *controller.Reconciler {
	return &controller.Reconciler{
		Client:    c,
		NodeName:  n.name,
		Dataplane: n.dp,
		Bundles:   f.bundles,
		Verifier:  f.memo,
		Recorder:  rec,
		Version:   "scale",
		Written:   &controller.WrittenStatus{}, // as controller.Run sets it
		Triggers:  controller.Triggers{ResyncInterval: f.cfg.resync},
	}
}

// failDigest makes every tenth node fail to load digest.
func (f *fleet) failDigest(digest string) { f.failOn.Store(&digest) }

// failingNodes is how many nodes fail failDigest's digest.
func (f *fleet) failingNodes() int {
	n := 0
	for _, s := range f.nodes {
		if s.failing {
			n++
		}
	}
	return n
}

// newProgram is a BpfProgram attaching the exec-trace tracepoint on every
// fleet node from image.
func newProgram(name, image string, rollout v1alpha1.RolloutSpec) *v1alpha1.BpfProgram {
	return &v1alpha1.BpfProgram{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: v1alpha1.BpfProgramSpec{
			Bundle: v1alpha1.BundleSource{Image: image},
			Programs: []v1alpha1.ProgramAttachment{{
				Name:       programName,
				Tracepoint: &v1alpha1.TracepointAttach{Group: "sched", Name: "sched_process_exec"},
			}},
			NodeSelector: &metav1.LabelSelector{MatchLabels: map[string]string{fleetLabel: "true"}},
			Rollout:      rollout,
		},
	}
}

// countingFetcher counts registry downloads of the shared cache.
type countingFetcher struct {
	cache.Fetcher
	n *atomic.Int64
}

func (c countingFetcher) Fetch(ctx context.Context, repository, digest string) (*format.Bundle, error) {
	c.n.Add(1)
	return c.Fetcher.Fetch(ctx, repository, digest)
}

// sharedVerifier lets the simulated nodes of this process share one
// signature check per digest and policy set. controller.VerifyMemo
// remembers successes but does not merge concurrent checks (one agent
// never verifies concurrently); a thousand simulated agents would.
type sharedVerifier struct {
	v     controller.Verifier
	g     singleflight.Group
	count *atomic.Int64
}

func (s *sharedVerifier) Verify(ctx context.Context, repository, digest string, policies []v1alpha1.BundleTrustPolicy) (trust.Result, error) {
	keys := make([]string, 0, len(policies))
	for _, p := range policies {
		keys = append(keys, fmt.Sprintf("%s/%s/%d", p.Name, p.UID, p.Generation))
	}
	sort.Strings(keys)
	res, err, _ := s.g.Do(repository+"@"+digest+" "+strings.Join(keys, ","), func() (any, error) {
		s.count.Add(1)
		return s.v.Verify(context.WithoutCancel(ctx), repository, digest, policies)
	})
	if err != nil {
		return trust.Result{}, err
	}
	return res.(trust.Result), nil
}

// watcher keeps the latest BpfNodeStates and BpfPrograms from one informer
// each (two watches on the API server, as an observer would hold) and
// timestamps, per node, when a goal is first met.
type watcher struct {
	cache  crcache.Cache
	cancel context.CancelFunc

	mu       sync.Mutex
	states   map[string]*v1alpha1.BpfNodeState
	programs map[string]*v1alpha1.BpfProgram
	trackers []*tracker
}

// tracker records when each node first meets goal, from start.
type tracker struct {
	goal  func(*v1alpha1.BpfNodeState) bool
	start time.Time
	at    map[string]time.Duration
}

func startWatcher(t testing.TB, cfg *rest.Config) *watcher {
	t.Helper()
	c, err := crcache.New(cfg, crcache.Options{Scheme: env.Scheme})
	if err != nil {
		t.Fatalf("create watcher cache: %v", err)
	}
	w := &watcher{cache: c, states: map[string]*v1alpha1.BpfNodeState{}, programs: map[string]*v1alpha1.BpfProgram{}}
	ctx, cancel := context.WithCancel(context.Background())
	w.cancel = cancel
	for _, obj := range []client.Object{&v1alpha1.BpfNodeState{}, &v1alpha1.BpfProgram{}} {
		inf, err := c.GetInformer(ctx, obj)
		if err != nil {
			t.Fatalf("get informer: %v", err)
		}
		if _, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
			AddFunc:    w.observe,
			UpdateFunc: func(_, o any) { w.observe(o) },
			DeleteFunc: w.forget,
		}); err != nil {
			t.Fatalf("add event handler: %v", err)
		}
	}
	go func() { _ = c.Start(ctx) }()
	if !c.WaitForCacheSync(ctx) {
		t.Fatal("watcher cache did not sync")
	}
	return w
}

func (w *watcher) stop() { w.cancel() }

func (w *watcher) observe(obj any) {
	now := time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	switch o := obj.(type) {
	case *v1alpha1.BpfNodeState:
		w.states[o.Name] = o
		for _, tr := range w.trackers {
			if _, ok := tr.at[o.Name]; !ok && tr.goal(o) {
				tr.at[o.Name] = now.Sub(tr.start)
			}
		}
	case *v1alpha1.BpfProgram:
		w.programs[o.Name] = o
	}
}

func (w *watcher) forget(obj any) {
	if d, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	switch o := obj.(type) {
	case *v1alpha1.BpfNodeState:
		delete(w.states, o.Name)
	case *v1alpha1.BpfProgram:
		delete(w.programs, o.Name)
	}
}

// track starts timing goal from now; nodes already meeting it count at 0.
func (w *watcher) track(goal func(*v1alpha1.BpfNodeState) bool) *tracker {
	tr := &tracker{goal: goal, start: time.Now(), at: map[string]time.Duration{}}
	w.mu.Lock()
	defer w.mu.Unlock()
	for name, s := range w.states {
		if goal(s) {
			tr.at[name] = 0
		}
	}
	w.trackers = append(w.trackers, tr)
	return tr
}

// untrack stops timing tr and returns its per-node times, sorted.
func (w *watcher) untrack(tr *tracker) []time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	for i, x := range w.trackers {
		if x == tr {
			w.trackers = append(w.trackers[:i], w.trackers[i+1:]...)
			break
		}
	}
	out := make([]time.Duration, 0, len(tr.at))
	for _, d := range tr.at {
		out = append(out, d)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// met returns how many nodes met tr's goal so far.
func (w *watcher) met(tr *tracker) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(tr.at)
}

// nodesWhere counts the BpfNodeStates meeting cond now.
func (w *watcher) nodesWhere(cond func(*v1alpha1.BpfNodeState) bool) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, s := range w.states {
		if cond(s) {
			n++
		}
	}
	return n
}

// anyState returns one BpfNodeState, nil if none.
func (w *watcher) anyState() *v1alpha1.BpfNodeState {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, s := range w.states {
		return s
	}
	return nil
}

// program returns the latest BpfProgram name, nil if unseen.
func (w *watcher) program(name string) *v1alpha1.BpfProgram {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.programs[name]
}

// programsWhere counts the BpfPrograms meeting cond now.
func (w *watcher) programsWhere(cond func(*v1alpha1.BpfProgram) bool) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, p := range w.programs {
		if cond(p) {
			n++
		}
	}
	return n
}

// waitFor polls cond (which reads the watcher, not the API server) until it
// holds, and returns how long it took since start; it fails the test after
// timeout with what describe says.
func waitFor(t testing.TB, start time.Time, timeout time.Duration, describe func() string, cond func() bool, every time.Duration) time.Duration {
	t.Helper()
	deadline := start.Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not reached after %s: %s", timeout, describe())
		}
		time.Sleep(every)
	}
	return time.Since(start)
}

// entriesOf returns the entries of program name in s.
func entriesOf(s *v1alpha1.BpfNodeState, name string) []v1alpha1.ProgramState {
	var out []v1alpha1.ProgramState
	for _, e := range s.Status.Programs {
		if e.BpfProgram == name {
			out = append(out, e)
		}
	}
	return out
}

// attachedAt tells whether every entry of program name in s is Attached at digest.
func attachedAt(name, digest string) func(*v1alpha1.BpfNodeState) bool {
	return func(s *v1alpha1.BpfNodeState) bool {
		es := entriesOf(s, name)
		if len(es) == 0 {
			return false
		}
		for _, e := range es {
			if e.State != v1alpha1.PhaseAttached || e.Digest != digest || e.Reason != v1alpha1.ReasonAttached {
				return false
			}
		}
		return true
	}
}

// heapInUse returns the live Go heap after a GC.
func heapInUse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// createPrograms creates BpfPrograms prefix-NNN for NNN in [from, to), of
// the fleet's bundle at v1, 16 at a time, as a user applying many at once.
func (f *fleet) createPrograms(t testing.TB, prefix string, from, to int) {
	t.Helper()
	var g errgroup.Group
	g.SetLimit(16)
	for i := from; i < to; i++ {
		g.Go(func() error {
			return f.admin.Create(context.Background(), newProgram(fmt.Sprintf("%s-%03d", prefix, i), f.repo+":v1", v1alpha1.RolloutSpec{}))
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatalf("create BpfProgram: %v", err)
	}
}

// rollTo runs change and waits until every node runs program name Attached
// at digest and the program is Ready with every node attached and done
// (nil: nothing more; called on every poll); it returns the wall time and
// the per-node times.
func (f *fleet) rollTo(t testing.TB, name, digest string, timeout time.Duration, change func(), done func(*v1alpha1.BpfProgram) bool) (time.Duration, []time.Duration) {
	t.Helper()
	n := len(f.nodes)
	tr := f.watch.track(attachedAt(name, digest))
	start := time.Now()
	change()
	took := waitFor(t, start, timeout, func() string {
		return fmt.Sprintf("%d of %d nodes attached at %s; program %s", f.watch.met(tr), n, digest, describe(f.watch.program(name)))
	}, func() bool {
		p := f.watch.program(name)
		if p == nil {
			return false
		}
		// done first: it may time a step on the way (TestFleet's admission).
		extra := done == nil || done(p)
		return extra && f.watch.met(tr) == n && ready(p) && p.Status.Nodes.Attached == int32(n)
	}, 10*time.Millisecond)
	return took, f.watch.untrack(tr)
}

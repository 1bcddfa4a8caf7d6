package scale_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	eventsv1client "k8s.io/client-go/kubernetes/typed/events/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	crcache "sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/bpfleet/bpfleet/api/scheme"
	"github.com/bpfleet/bpfleet/nodeagent/controller"
)

// The shared-informer mode (-scale.shared) of the simulation: what a real
// agent's cache holds splits in two by controller.CacheOptions. The kinds
// it scopes to the node (ByObject: today its Node, BpfNodeState and Pods)
// get one cache per simulated node with exactly those options; every other
// kind the agent reads (BpfPrograms, BundleTrustPolicies, Namespaces, and
// whatever cluster-wide kind the agent reads later) comes from one cache for
// the whole process. The reconciler, its controller, its client (own rate
// limiter), its event broadcaster and its ticker stay one per node; the
// controllers of -scale.group nodes share one manager and its HTTP
// connection.
//
// So the API server holds the node-scoped watches of every node but one
// watch per cluster-wide kind instead of one per node, and sends every
// BpfProgram event once instead of N times: the figures of this mode must
// add that fan-out back (SCALE.md, "Item 3: 5,000 nodes").

// splitCache routes reads and informers to the node's own cache for the
// kinds in nodeKinds and to the process's shared cache for the rest.
type splitCache struct {
	node, shared crcache.Cache
	nodeKinds    map[schema.GroupKind]bool
	scheme       *runtime.Scheme
	// sharedKinds records the kinds read from the shared cache.
	sharedKinds *sync.Map
}

// newSplitCache builds node's own cache from controller.CacheOptions(node)
// and a router in front of it and shared.
func newSplitCache(cfg *rest.Config, node string, shared crcache.Cache, sharedKinds *sync.Map, httpClient *http.Client, mapper meta.RESTMapper) (*splitCache, error) {
	s := scheme.New()
	opts := controller.CacheOptions(node)
	opts.Scheme, opts.HTTPClient, opts.Mapper = s, httpClient, mapper
	kinds := map[schema.GroupKind]bool{}
	for obj := range opts.ByObject {
		gvk, err := apiutil.GVKForObject(obj, s)
		if err != nil {
			return nil, fmt.Errorf("kind of %T: %w", obj, err)
		}
		kinds[gvk.GroupKind()] = true
	}
	own, err := crcache.New(cfg, opts)
	if err != nil {
		return nil, fmt.Errorf("create the cache of %s: %w", node, err)
	}
	return &splitCache{node: own, shared: shared, nodeKinds: kinds, scheme: s, sharedKinds: sharedKinds}, nil
}

// sharedCacheOptions are controller.CacheOptions without the node-scoped
// kinds: what every simulated node reads cluster-wide.
func sharedCacheOptions() crcache.Options {
	opts := controller.CacheOptions("")
	opts.ByObject = nil
	opts.Scheme = scheme.New()
	return opts
}

func (c *splitCache) pick(obj runtime.Object) crcache.Cache {
	gvk, err := apiutil.GVKForObject(obj, c.scheme)
	if err != nil {
		return c.shared
	}
	gvk.Kind = strings.TrimSuffix(gvk.Kind, "List")
	return c.pickKind(gvk)
}

func (c *splitCache) pickKind(gvk schema.GroupVersionKind) crcache.Cache {
	if c.nodeKinds[gvk.GroupKind()] {
		return c.node
	}
	c.sharedKinds.Store(gvk, true)
	return c.shared
}

func (c *splitCache) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	return c.pick(obj).Get(ctx, key, obj, opts...)
}

func (c *splitCache) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	return c.pick(list).List(ctx, list, opts...)
}

func (c *splitCache) GetInformer(ctx context.Context, obj client.Object, opts ...crcache.InformerGetOption) (crcache.Informer, error) {
	return c.pick(obj).GetInformer(ctx, obj, opts...)
}

func (c *splitCache) GetInformerForKind(ctx context.Context, gvk schema.GroupVersionKind, opts ...crcache.InformerGetOption) (crcache.Informer, error) {
	return c.pickKind(gvk).GetInformerForKind(ctx, gvk, opts...)
}

func (c *splitCache) RemoveInformer(ctx context.Context, obj client.Object) error {
	return c.pick(obj).RemoveInformer(ctx, obj)
}

// Start runs the node's own cache; the fleet runs the shared one.
func (c *splitCache) Start(ctx context.Context) error { return c.node.Start(ctx) }

func (c *splitCache) WaitForCacheSync(ctx context.Context) bool {
	return c.shared.WaitForCacheSync(ctx) && c.node.WaitForCacheSync(ctx)
}

func (c *splitCache) IndexField(ctx context.Context, obj client.Object, field string, extract client.IndexerFunc) error {
	return c.pick(obj).IndexField(ctx, obj, field, extract)
}

// NeedLeaderElection: the node's cache runs without leader election, as
// the manager's own cache does.
func (c *splitCache) NeedLeaderElection() bool { return false }

// nodeManager is the group's manager as one node's agent sees it: its
// cache and client are the node's.
type nodeManager struct {
	ctrl.Manager
	cache  *splitCache
	client client.Client
}

func (m nodeManager) GetCache() crcache.Cache  { return m.cache }
func (m nodeManager) GetClient() client.Client { return m.client }

// startShared starts the agents of f.nodes in the shared-informer mode.
func (f *fleet) startShared(t testing.TB) {
	t.Helper()
	shared, err := crcache.New(f.agentCfg, sharedCacheOptions())
	if err != nil {
		t.Fatalf("create the shared cache: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = shared.Start(ctx) }()
	f.onStop(func() { cancel(); <-done })

	group := max(f.cfg.group, 1)
	var mgr ctrl.Manager
	for i, n := range f.nodes {
		if i%group == 0 {
			if mgr, err = ctrl.NewManager(f.agentCfg, ctrl.Options{
				Scheme:                 scheme.New(),
				Logger:                 logr.Discard(),
				Metrics:                metricsserver.Options{BindAddress: "0"},
				HealthProbeBindAddress: "0",
				// Thousands of informers list at once on a shared 2-core
				// machine: the default 2 minutes for a cache to sync stops
				// the group's controllers, and the run, at 5,000 nodes.
				Controller: config.Controller{CacheSyncTimeout: 15 * time.Minute},
			}); err != nil {
				t.Fatalf("create manager of group %d: %v", i/group, err)
			}
		}
		// One connection per node, as each agent has its own: the API
		// server serves at most 100 streams per HTTP/2 connection, and the
		// client queues a node's watches behind its neighbours' otherwise.
		hc, err := rest.HTTPClientFor(f.agentCfg)
		if err != nil {
			t.Fatalf("create the HTTP client of %s: %v", n.name, err)
		}
		sc, err := newSplitCache(f.agentCfg, n.name, shared, &f.sharedKinds, hc, mgr.GetRESTMapper())
		if err != nil {
			t.Fatal(err)
		}
		if err := mgr.Add(sc); err != nil {
			t.Fatalf("add the cache of %s: %v", n.name, err)
		}
		c, err := client.New(f.agentCfg, client.Options{
			HTTPClient: hc,
			Scheme:     mgr.GetScheme(),
			Mapper:     mgr.GetRESTMapper(),
			Cache:      &client.CacheOptions{Reader: sc},
		})
		if err != nil {
			t.Fatalf("create the client of %s: %v", n.name, err)
		}
		// One event broadcaster per node, as each agent has its own.
		evc, err := eventsv1client.NewForConfigAndClient(f.agentCfg, hc)
		if err != nil {
			t.Fatalf("create the event client of %s: %v", n.name, err)
		}
		b := events.NewBroadcaster(&events.EventSinkImpl{Interface: evc})
		if err := b.StartRecordingToSinkWithContext(ctx); err != nil {
			t.Fatalf("start the events of %s: %v", n.name, err)
		}
		f.onStop(b.Shutdown)
		r := f.reconciler(n, c, b.NewRecorder(mgr.GetScheme(), "bpfleet-agent"))
		if err := r.SetupWithManager(ctx, nodeManager{Manager: mgr, cache: sc, client: c}); err != nil {
			t.Fatalf("set up agent of %s: %v", n.name, err)
		}
		// A group starts once its nodes are set up, while the next group
		// is set up: the nodes start in steps, as with one manager each.
		if i%group == group-1 || i == len(f.nodes)-1 {
			f.run(fmt.Sprintf("agents %d–%d", i/group*group, i), mgr)
		}
	}
}

// sharedResources are the API resources of the kinds the simulated nodes
// read from the shared cache so far.
func (f *fleet) sharedResources() []string {
	var out []string
	f.sharedKinds.Range(func(k, _ any) bool {
		gvk := k.(schema.GroupVersionKind)
		if m, err := f.admin.RESTMapper().RESTMapping(gvk.GroupKind(), gvk.Version); err == nil {
			out = append(out, m.Resource.Resource)
		}
		return true
	})
	return out
}

// mode describes how the agents run, for the report.
func (f *fleet) mode() string {
	if f.cfg.shared {
		return fmt.Sprintf("shared-informer mode: %d nodes per manager, per-node caches of what controller.CacheOptions scopes to the node, one cache of the cluster-wide kinds for all nodes", f.cfg.group)
	}
	return "one manager and node-scoped cache each"
}

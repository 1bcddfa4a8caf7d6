package scale_test

import (
	"context"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	crcache "sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/bpfleet/bpfleet/api/scheme"
	"github.com/bpfleet/bpfleet/api/v1alpha1"
	"github.com/bpfleet/bpfleet/nodeagent/controller"
)

// BenchmarkAgentReads measures the cache reads of one agent reconcile (its
// Node and BpfNodeState by name, every BpfProgram and BundleTrustPolicy),
// each a deep copy out of the cache, from a cache built with
// controller.CacheOptions ("shipped") and from the same cache keeping
// managedFields ("managedFields kept", the agent's cache before it dropped
// them). The objects carry the managedFields a fleet gives them: a Node
// created by one client and labelled by another, a BpfNodeState whose
// status the agent wrote, a BpfProgram with the operator's status.
func BenchmarkAgentReads(b *testing.B) {
	ctx := context.Background()
	c, err := client.New(env.Config, client.Options{Scheme: env.Scheme})
	if err != nil {
		b.Fatal(err)
	}
	const node = "bench-reads-node"
	objs := []client.Object{
		&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: node, Labels: map[string]string{fleetLabel: "true", "kubernetes.io/hostname": node}}},
		&v1alpha1.BpfNodeState{ObjectMeta: metav1.ObjectMeta{Name: node}},
		newProgram("bench-reads", "registry.invalid/x:v1", v1alpha1.RolloutSpec{}),
	}
	for _, o := range objs {
		if err := c.Create(ctx, o); err != nil {
			b.Fatalf("create %T: %v", o, err)
		}
		b.Cleanup(func() { _ = c.Delete(context.Background(), o) })
	}
	// Writes by other managers, as in a fleet: each adds managedFields.
	patch := client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"labels":{"topology.kubernetes.io/zone":"zone-1"}}}`))
	if err := c.Patch(ctx, objs[0], patch, client.FieldOwner("kubelet")); err != nil {
		b.Fatal(err)
	}
	st := objs[1].(*v1alpha1.BpfNodeState)
	st.Status = v1alpha1.BpfNodeStateStatus{Kernel: v1alpha1.KernelInfo{Release: "6.18.0"}, Programs: []v1alpha1.ProgramState{{
		BpfProgram: "bench-reads", Program: programName, AttachPoint: "tracepoint/sched/sched_process_exec",
		State: v1alpha1.PhaseAttached, Reason: v1alpha1.ReasonAttached, Digest: "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
	}}}
	if err := c.Status().Update(ctx, st, client.FieldOwner("bpfleet-agent")); err != nil {
		b.Fatal(err)
	}
	p := objs[2].(*v1alpha1.BpfProgram)
	p.Status.Nodes = v1alpha1.NodeCounts{Selected: 1, Attached: 1}
	if err := c.Status().Update(ctx, p, client.FieldOwner("bpfleet-operator")); err != nil {
		b.Fatal(err)
	}

	kept := controller.CacheOptions(node)
	kept.DefaultTransform = nil
	for _, tc := range []struct {
		name string
		opts crcache.Options
	}{{"managedFields kept", kept}, {"shipped", controller.CacheOptions(node)}} {
		b.Run(tc.name, func(b *testing.B) {
			opts := tc.opts
			opts.Scheme = scheme.New()
			cache, err := crcache.New(env.Config, opts)
			if err != nil {
				b.Fatal(err)
			}
			ctx, cancel := context.WithCancel(ctx)
			defer cancel()
			go func() { _ = cache.Start(ctx) }()
			if !cache.WaitForCacheSync(ctx) {
				b.Fatal("cache did not start")
			}
			read := func() {
				var n corev1.Node
				var s v1alpha1.BpfNodeState
				var ps v1alpha1.BpfProgramList
				var pol v1alpha1.BundleTrustPolicyList
				for _, err := range []error{
					cache.Get(ctx, client.ObjectKey{Name: node}, &n),
					cache.Get(ctx, client.ObjectKey{Name: node}, &s),
					cache.List(ctx, &ps),
					cache.List(ctx, &pol),
				} {
					if err != nil {
						b.Fatal(err)
					}
				}
				if len(s.Status.Programs) != 1 || len(ps.Items) == 0 {
					b.Fatalf("cache holds %d rows, %d programs", len(s.Status.Programs), len(ps.Items))
				}
			}
			read() // waits for the informers to sync
			b.ReportAllocs()
			for b.Loop() {
				read()
			}
		})
	}
}

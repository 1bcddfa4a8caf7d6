package controller

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/bpfleet/bpfleet/api/v1alpha1"
	"github.com/bpfleet/bpfleet/bundles/cache"
	"github.com/bpfleet/bpfleet/bundles/format"
	"github.com/bpfleet/bpfleet/nodeagent/attach"
	"github.com/bpfleet/bpfleet/nodeagent/bpffs"
	"github.com/bpfleet/bpfleet/nodeagent/internal/events"
	"github.com/bpfleet/bpfleet/nodeagent/internal/reviewauth"
)

// newStreamer reads the event outputs of the programs that ask for it, and
// writes them to opts.EventsOut tagged with the pods of this node.
func newStreamer(opts Options, c client.Reader, dp Kernel, bundles *cache.Cache, layout bpffs.Layout, m *events.Metrics) *events.Streamer {
	return &events.Streamer{
		Node:    opts.NodeName,
		Metrics: m,
		Cgroups: &events.CgroupIndex{Root: attach.CgroupRoot()},
		Out:     opts.EventsOut,
		Log:     opts.Log.WithName("events"),
		Source: events.Source{
			Programs: func(ctx context.Context) ([]v1alpha1.BpfProgram, error) {
				return listPrograms(ctx, c)
			},
			Loaded: dp.Snapshot,
			Bundle: func(ctx context.Context, digest string) (*format.Bundle, error) {
				return bundles.Lookup(ctx, digest)
			},
			MapPin: layout.Map,
			Pod: func(ctx context.Context, uid string) *corev1.Pod {
				var pods corev1.PodList
				if err := c.List(ctx, &pods); err != nil {
					return nil
				}
				for i := range pods.Items {
					if pods.Items[i].UID == types.UID(uid) {
						return &pods.Items[i]
					}
				}
				return nil
			},
		},
	}
}

// newEventServer streams events to callers the API server says may get the
// BpfProgram.
func newEventServer(opts Options, cfg *rest.Config, c client.Reader, s *events.Streamer) (*events.Server, error) {
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("create review client: %w", err)
	}
	return &events.Server{
		Addr:     opts.EventsAddr,
		Streamer: s,
		Reviewer: &reviewauth.Reviewer{Client: cs},
		Log:      opts.Log.WithName("events"),
		Program: func(ctx context.Context, name string) (*v1alpha1.BpfProgram, error) {
			return getProgram(ctx, c, name)
		},
	}, nil
}

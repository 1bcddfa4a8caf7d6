package controller

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/bpfleet/bpfleet/api/hooks"
	"github.com/bpfleet/bpfleet/api/v1alpha1"
	"github.com/bpfleet/bpfleet/nodeagent/attach"
	"github.com/bpfleet/bpfleet/nodeagent/internal/pods"
	"github.com/bpfleet/bpfleet/nodeagent/netwatch"
)

// How soon to look again for a selected pod that has no process yet: soon
// while it is young (so a new pod is covered within a second of its
// sandbox starting), less often once it has been waiting a while (an image
// pull, a crash loop).
const (
	podRetryYoung = 200 * time.Millisecond
	podRetryOld   = 2 * time.Second
	podYoung      = time.Minute
)

// resolvePods fills in, for every desired program with pod targets, the
// pods of this node each of its attach blocks selects, found in the cgroup
// tree and /proc. It returns how soon to look again when a selected pod
// has not started yet (0: no need).
func (r *Reconciler) resolvePods(ctx context.Context, desired []Desired, now time.Time) time.Duration {
	if r.Pods == nil {
		return 0
	}
	logger := log.FromContext(ctx)
	var onNode []corev1.Pod
	listed := false
	var retry time.Duration
	for i := range desired {
		d := &desired[i]
		var filter []uint64
		filtered := false
		for j := range d.Spec.Programs {
			pa := &d.Spec.Programs[j]
			target := pa.PodTargets()
			if target == nil {
				continue
			}
			if !listed {
				var list corev1.PodList
				if err := r.Client.List(ctx, &list); err != nil {
					logger.Error(err, "list pods of the node")
					return podRetryOld
				}
				onNode, listed = list.Items, true
			}
			picked, err := pods.Select(target, d.Spec.Tenant, onNode, r.namespaceLabels(ctx))
			if err != nil {
				logger.Info("cannot evaluate a pod selector; no pod selected", "bpfProgram", d.Name, "program", pa.Name, "error", err.Error())
				continue
			}
			if pa.Tracepoint != nil || pa.RawTracepoint != nil {
				// Filtered in the kernel: the containers' cgroup ids.
				filtered = true
				for _, pod := range picked {
					filter = append(filter, r.containerCgroups(&pod)...)
				}
				continue
			}
			if d.Pods == nil {
				d.Pods = map[string][]attach.PodScope{}
			}
			// Per-interface kinds attach in the pod's network namespace.
			needNetns := attach.PerInterface(attach.Kind(hooks.Kind(*pa)))
			scopes := make([]attach.PodScope, 0, len(picked))
			for _, pod := range picked {
				if needNetns && pod.Spec.HostNetwork {
					// Never a network target: its interfaces are the node's.
					continue
				}
				s, err := r.podScope(&pod, needNetns)
				switch {
				case errors.Is(err, pods.ErrNotRunning), errors.Is(err, pods.ErrHostNetwork):
					// Not started, or its sandbox not in its own network
					// namespace yet (the spec says it is not hostNetwork).
					wait := podRetryOld
					if now.Sub(pod.CreationTimestamp.Time) < podYoung {
						wait = podRetryYoung
					}
					if retry == 0 || wait < retry {
						retry = wait
					}
					continue
				case err != nil:
					logger.Info("pod target skipped", "bpfProgram", d.Name, "program", pa.Name, "pod", pod.Namespace+"/"+pod.Name, "error", err.Error())
					continue
				}
				scopes = append(scopes, s)
			}
			d.Pods[pa.Name] = scopes
		}
		if filtered {
			setPodFilter(&d.Spec, filter)
		}
	}
	return retry
}

// containerCgroups are the cgroup v2 ids of pod's containers on this node
// (none while it has not started).
func (r *Reconciler) containerCgroups(pod *corev1.Pod) []uint64 {
	p, err := r.Pods.Pod(string(pod.UID))
	if err != nil {
		return nil
	}
	ids := make([]uint64, 0, len(p.Containers))
	for _, c := range p.Containers {
		ids = append(ids, c.CgroupID)
	}
	return ids
}

// setPodFilter turns the bundle's pod filter on in spec and fills it with
// ids: the constant, and one map entry per cgroup id (written and removed
// without a reload as pods come and go, as spec.mapEntries are).
func setPodFilter(spec *v1alpha1.BpfProgramSpec, ids []uint64) {
	spec.Constants = append(spec.Constants, v1alpha1.Constant{Name: v1alpha1.PodFilterConstant, Value: "1"})
	slices.Sort(ids)
	ids = slices.Compact(ids)
	for _, id := range ids {
		var key [8]byte
		binary.LittleEndian.PutUint64(key[:], id) // host byte order on the little-endian targets bpfleet builds for
		spec.MapEntries = append(spec.MapEntries, v1alpha1.MapEntry{Map: v1alpha1.PodFilterMap, Key: hex.EncodeToString(key[:]), Value: "01", Encoding: v1alpha1.MapEncodingHex})
	}
}

// podScope finds pod on this node: its cgroup and running containers, and
// with needNetns its network namespace and the interfaces in it.
func (r *Reconciler) podScope(pod *corev1.Pod, needNetns bool) (attach.PodScope, error) {
	p, err := r.Pods.Pod(string(pod.UID))
	if err != nil {
		return attach.PodScope{}, err
	}
	s := attach.PodScope{Name: pod.Namespace + "/" + pod.Name, CgroupDir: p.Dir}
	for _, cs := range pod.Status.ContainerStatuses {
		if cs.State.Running == nil {
			continue
		}
		_, id, _ := strings.Cut(cs.ContainerID, "://")
		c, ok := p.Container(id)
		if !ok {
			continue
		}
		root, _, err := r.Pods.Root(c)
		if err != nil {
			continue
		}
		s.Containers = append(s.Containers, attach.ContainerScope{Name: cs.Name, ID: id, Root: root})
	}
	if needNetns {
		path, _, err := r.Pods.NetNS(p)
		if err != nil {
			return attach.PodScope{}, err
		}
		nl := netwatch.NewNetlink(path)
		s.Netns = nl
		s.Interfaces, s.InterfacesErr = nl.Interfaces()
		if s.InterfacesErr == nil {
			s.Primary, _ = nl.Primary()
		}
	}
	return s, nil
}

// namespaceLabels reads namespaces' labels from the cache, for
// namespaceSelectors of cluster programs' pod targets.
func (r *Reconciler) namespaceLabels(ctx context.Context) func(string) (map[string]string, bool) {
	return func(name string) (map[string]string, bool) {
		ns := &corev1.Namespace{}
		if err := r.Client.Get(ctx, client.ObjectKey{Name: name}, ns); err != nil {
			return nil, false
		}
		return ns.Labels, true
	}
}

// hasPodTargets tells whether any program attaches to pods, so that pod
// events matter to this node.
func hasPodTargets(programs []v1alpha1.BpfProgram) bool {
	for i := range programs {
		for j := range programs[i].Spec.Programs {
			if programs[i].Spec.Programs[j].PodTargets() != nil {
				return true
			}
		}
	}
	return false
}

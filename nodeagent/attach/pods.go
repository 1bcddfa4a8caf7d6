package attach

import (
	"github.com/bpfleet/bpfleet/nodeagent/netwatch"
)

// Pods is the pod part of an attach block that targets pods instead of the
// node: the pods the agent resolved for it now, possibly none. A hook with
// InPods set attaches in the pods only, never to the node.
type Pods struct {
	// InPods says the block targets pods.
	InPods bool
	// Scopes are the selected pods running on this node.
	Scopes []PodScope
}

// PodScope is one pod a hook attaches in, as the agent found it from the
// cgroup tree and /proc (nodeagent/internal/pods).
type PodScope struct {
	// Name is namespace/name; attach points carry it.
	Name string
	// Netns enters the pod's network namespace.
	Netns Namespace
	// Interfaces are the interfaces inside the pod's network namespace,
	// Primary the one of its default route; InterfacesErr is set when they
	// could not be listed (the pod is starting or going).
	Interfaces    []netwatch.Interface
	Primary       string
	InterfacesErr error
	// CgroupDir is the pod's cgroup v2 directory.
	CgroupDir string
	// Containers are the pod's running containers.
	Containers []ContainerScope
}

// ContainerScope is one running container of a pod.
type ContainerScope struct {
	// Name is the container's name in the pod spec.
	Name string
	// ID is the runtime's container id: a restarted container has a new
	// one, and its uprobes are attached again (its binary may be new).
	ID string
	// Root is the container's root filesystem as one of its processes
	// sees it (/proc/<pid>/root).
	Root string
}

// podPoint is the attach point of a kind's target inside pod s.
func podPoint(kindPrefix string, s PodScope, rest string) string {
	p := kindPrefix + "/pod/" + s.Name
	if rest != "" {
		p += "/" + rest
	}
	return p
}

// perPodInterface is one target per interface sel picks inside each pod's
// network namespace, attached there. A pod whose interfaces cannot be
// listed (starting, or going) has no target until the next plan.
func perPodInterface(h Hook, pods Pods, sel netwatch.Selector, kindPrefix string) ([]Target, error) {
	var out []Target
	for _, s := range pods.Scopes {
		if s.InterfacesErr != nil || s.Netns == nil {
			continue
		}
		ts, err := perInterface(h, Env{Interfaces: s.Interfaces, Primary: s.Primary, Netns: s.Netns}, sel, func(ifname string) string {
			return podPoint(kindPrefix, s, ifname)
		})
		if err != nil {
			return nil, err
		}
		out = append(out, ts...)
	}
	return out, nil
}

// podTargeted is a hook kind that can target pods.
type podTargeted interface {
	podsOf() *Pods
}

func (h *XDP) podsOf() *Pods    { return &h.Pods }
func (h *TCX) podsOf() *Pods    { return &h.Pods }
func (h *Cgroup) podsOf() *Pods { return &h.Pods }
func (h *Uprobe) podsOf() *Pods { return &h.Pods }

// PodsOf returns the pod part of h, nil for a kind that cannot target pods.
func PodsOf(h Hook) *Pods {
	if p, ok := h.(podTargeted); ok {
		return p.podsOf()
	}
	return nil
}

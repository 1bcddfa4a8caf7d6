package localenv

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/bpfleet/bpfleet/nodeagent/bpffs"
	"github.com/bpfleet/bpfleet/nodeagent/controller"
)

// FilterLabel selects the nodes the demo's packet-of-death filter runs on.
const FilterLabel = "bpfleet.io/filter"

// bpffsRoot holds every local node's pins, one subtree per node.
func (e *Env) bpffsRoot() string { return filepath.Join(bpffs.BPFFSMount, e.opts.Prefix+"-local") }

// Node is one simulated node: a Node object, a network namespace holding its
// interface eth0, and a veth peer on this host to send it traffic.
type Node struct {
	// Name is the Node object's name and the agent's node name.
	Name string
	// Labels are the Node's labels.
	Labels map[string]string
	// NetNS is the network namespace's name (/var/run/netns/<NetNS>).
	NetNS string
	// Interface is the node's interface inside NetNS.
	Interface string
	// Addr is Interface's address.
	Addr netip.Addr
	// HostInterface is the veth peer in this host's namespace.
	HostInterface string
	// HostAddr is HostInterface's address.
	HostAddr netip.Addr
	// BPFFSRoot is the agent's pin root.
	BPFFSRoot string
	// StateDir is the agent's state directory.
	StateDir string

	stop func()
	done chan error
}

func run(ctx context.Context, name string, args ...string) error {
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// createNodes makes the Node objects and, for each, a network namespace with
// eth0 and a host-side veth peer. Addresses come from one /24 of 198.18.0.0/15
// (reserved for benchmarking networks, RFC 2544) picked by the prefix, so
// two environments do not route over each other; they exist only on the
// interfaces made here.
func (e *Env) createNodes(ctx context.Context) error {
	if _, err := exec.LookPath("ip"); err != nil {
		return errors.New("the ip command (Debian package iproute2) is needed to create network namespaces")
	}
	// Registered first, so it runs last: whatever pins the agents left (a
	// run interrupted before its programs were deleted) go with the nodes.
	e.onStop(func(context.Context) error { return os.RemoveAll(e.bpffsRoot()) })
	if e.opts.Nodes > 60 {
		return fmt.Errorf("at most 60 nodes (their addresses come from one /24), not %d", e.opts.Nodes)
	}
	for i := 1; i <= e.opts.Nodes; i++ {
		name := fmt.Sprintf("%s-node-%d", e.opts.Prefix, i)
		n := &Node{
			Name:          name,
			NetNS:         name,
			Interface:     "eth0",
			HostInterface: fmt.Sprintf("%.10s-h%d", e.opts.Prefix, i),
			HostAddr:      netip.AddrFrom4([4]byte{198, 18, e.subnet(), byte(4*i + 1)}),
			Addr:          netip.AddrFrom4([4]byte{198, 18, e.subnet(), byte(4*i + 2)}),
			BPFFSRoot:     filepath.Join(e.bpffsRoot(), name),
			StateDir:      filepath.Join(e.opts.StateDir, "nodes", name),
			Labels:        map[string]string{"kubernetes.io/hostname": name},
		}
		// Every node but the last runs the filter, so the demo shows a node
		// the selector leaves alone.
		if i < e.opts.Nodes || e.opts.Nodes == 1 {
			n.Labels[FilterLabel] = "enabled"
		}
		if err := e.createNode(ctx, n); err != nil {
			return err
		}
		e.Nodes = append(e.Nodes, n)
		e.Printf("%s  netns %s  %s %s  ← host %s %s  labels %v", n.Name, n.NetNS, n.Interface, n.Addr, n.HostInterface, n.HostAddr, n.Labels)
	}
	return nil
}

// subnet is the third octet of this environment's node addresses.
func (e *Env) subnet() byte {
	h := fnv.New32a()
	_, _ = h.Write([]byte(e.opts.Prefix))
	return byte(h.Sum32())
}

func (e *Env) createNode(ctx context.Context, n *Node) error {
	obj := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: n.Name, Labels: n.Labels}}
	if err := e.Client.Create(ctx, obj); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create node %s: %w", n.Name, err)
	}
	// A namespace left by a run that was killed is replaced.
	_ = run(ctx, "ip", "netns", "del", n.NetNS)
	_ = run(ctx, "ip", "link", "del", n.HostInterface)
	e.onStop(func(ctx context.Context) error {
		err := run(ctx, "ip", "netns", "del", n.NetNS)
		_ = run(ctx, "ip", "link", "del", n.HostInterface)
		return err
	})
	cmds := [][]string{
		{"netns", "add", n.NetNS},
		{"-n", n.NetNS, "link", "set", "lo", "up"},
		{"link", "add", n.HostInterface, "type", "veth", "peer", "name", n.Interface, "netns", n.NetNS},
		{"addr", "add", n.HostAddr.String() + "/30", "dev", n.HostInterface},
		{"link", "set", n.HostInterface, "up"},
		{"-n", n.NetNS, "addr", "add", n.Addr.String() + "/30", "dev", n.Interface},
		{"-n", n.NetNS, "link", "set", n.Interface, "up"},
	}
	for _, c := range cmds {
		if err := run(ctx, "ip", c...); err != nil {
			return err
		}
	}
	return os.MkdirAll(n.StateDir, 0o700)
}

// startOperator runs the operator in this process until Stop.
func (e *Env) startOperator(ctx context.Context) error {
	if err := e.StartOperator(ctx); err != nil {
		return err
	}
	e.onStop(func(context.Context) error { return e.StopOperator() })
	return nil
}

// startAgents runs one node agent per node in this process, each with its
// own node name, pin root, state directory and network namespace.
func (e *Env) startAgents(ctx context.Context) error {
	for _, n := range e.Nodes {
		if err := e.StartAgent(n); err != nil {
			return err
		}
	}
	return nil
}

// StartAgent starts n's agent; it re-adopts whatever n's previous agent pinned.
func (e *Env) StartAgent(n *Node) error {
	runCtx, cancel := context.WithCancel(context.Background())
	n.done = make(chan error, 1)
	n.stop = cancel
	opts := controller.Options{
		NodeName:       n.Name,
		BPFFSRoot:      n.BPFFSRoot,
		StateDir:       filepath.Join(n.StateDir, "state"),
		CacheDir:       filepath.Join(n.StateDir, "cache"),
		NetNS:          "/var/run/netns/" + n.NetNS,
		ResyncInterval: 10 * time.Second,
		Stats:          true,
		StatsInterval:  2 * time.Second,
		Registry:       e.RemoteOptions,
		Version:        "local",
		Log:            e.Log.WithName("bpfleet-agent"),
	}
	started := make(chan struct{})
	go func() {
		close(started)
		n.done <- controller.Run(runCtx, e.Config, opts)
	}()
	<-started
	var once sync.Once
	e.onStop(func(context.Context) error {
		var err error
		once.Do(func() { err = e.StopAgent(n) })
		return err
	})
	return nil
}

// StopAgent stops n's agent; its programs stay attached through their pins.
func (e *Env) StopAgent(n *Node) error {
	if n.stop == nil {
		return nil
	}
	n.stop()
	n.stop = nil
	if err := <-n.done; err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("agent %s: %w", n.Name, err)
	}
	return nil
}

package localenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"strconv"
	"sync"
	"time"

	"github.com/vishvananda/netns"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	v1 "github.com/bpfleet/bpfleet/api/v1alpha1"
	"github.com/bpfleet/bpfleet/bpf/xdpfilter"
)

// Packet-of-death demo traffic: UDP to DeathPort; payloads that start with
// DeathPattern are dropped by the filter, the others pass.
const (
	DeathPort = 9999
)

// DeathPattern is the payload prefix of a packet of death.
var DeathPattern = []byte("DEATH")

// FilterRule is the rule the demo writes through spec.mapEntries.
func FilterRule() xdpfilter.Rule {
	return xdpfilter.Rule{
		Action:   xdpfilter.ActionDrop,
		Protocol: xdpfilter.ProtocolUDP,
		DstPort:  DeathPort,
		Pattern:  DeathPattern,
	}
}

// FilterProgram is a BpfProgram running the packet-of-death filter on the
// nodes labelled FilterLabel=enabled, with FilterRule as its rule set
// (slot 0) and the rule set's index.
func (e *Env) FilterProgram(name string) (*v1.BpfProgram, error) {
	b, ok := e.Bundles[xdpfilter.BundleName]
	if !ok {
		return nil, fmt.Errorf("bundle %s was not pushed", xdpfilter.BundleName)
	}
	entries, err := xdpfilter.RuleSet{FilterRule()}.Entries()
	if err != nil {
		return nil, fmt.Errorf("encode filter rule: %w", err)
	}
	mapEntries := make([]v1.MapEntry, 0, len(entries))
	for _, en := range entries {
		key, value := en.Hex()
		mapEntries = append(mapEntries, v1.MapEntry{Map: en.Map, Key: key, Value: value})
	}
	return &v1.BpfProgram{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: v1.BpfProgramSpec{
			Bundle: v1.BundleSource{Image: b.Ref},
			Programs: []v1.ProgramAttachment{{
				Name: xdpfilter.ProgramName,
				XDP:  &v1.XDPAttach{Interfaces: v1.InterfaceSelector{Names: []string{"eth*"}}, Mode: v1.XDPModeNative},
			}},
			MapEntries:   mapEntries,
			NodeSelector: &metav1.LabelSelector{MatchLabels: map[string]string{FilterLabel: "enabled"}},
			Rollout:      v1.RolloutSpec{Strategy: v1.RolloutAllAtOnce},
		},
	}, nil
}

// ExecTraceProgram is a BpfProgram tracing every exec on every node.
func (e *Env) ExecTraceProgram(name string) (*v1.BpfProgram, error) {
	b, ok := e.Bundles["exec-trace"]
	if !ok || len(b.Programs) == 0 {
		return nil, errors.New("bundle exec-trace was not pushed")
	}
	return &v1.BpfProgram{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: v1.BpfProgramSpec{
			Bundle: v1.BundleSource{Image: b.Ref},
			Programs: []v1.ProgramAttachment{{
				Name:       b.Programs[0],
				Tracepoint: &v1.TracepointAttach{Group: "sched", Name: "sched_process_exec"},
			}},
		},
	}, nil
}

// WaitReady waits until the BpfProgram is Ready with want nodes attached.
func (e *Env) WaitReady(ctx context.Context, name string, want int32, timeout time.Duration) (*v1.BpfProgram, error) {
	var p v1.BpfProgram
	var last string
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		if err := e.Client.Get(ctx, client.ObjectKey{Name: name}, &p); err != nil {
			return false, client.IgnoreNotFound(err)
		}
		c := meta.FindStatusCondition(p.Status.Conditions, v1.ConditionReady)
		if c != nil {
			last = fmt.Sprintf("Ready=%s %s: %s (nodes %d/%d attached, %d failed)", c.Status, c.Reason, c.Message,
				p.Status.Nodes.Attached, p.Status.Nodes.Selected, p.Status.Nodes.Failed)
		}
		return c != nil && c.Status == metav1.ConditionTrue && c.ObservedGeneration == p.Generation &&
			p.Status.Nodes.Attached == want, nil
	})
	if err != nil {
		return &p, fmt.Errorf("wait for %s to be Ready on %d nodes (last: %s): %w", name, want, last, err)
	}
	return &p, nil
}

// DeleteAll deletes every BpfProgram and waits until no node reports one.
func (e *Env) DeleteAll(ctx context.Context, timeout time.Duration) error {
	if err := e.Client.DeleteAllOf(ctx, &v1.BpfProgram{}); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("delete bpfprograms: %w", err)
	}
	return wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		var states v1.BpfNodeStateList
		if err := e.Client.List(ctx, &states); err != nil {
			return false, err
		}
		for _, s := range states.Items {
			if len(s.Status.Programs) > 0 {
				return false, nil
			}
		}
		return true, nil
	})
}

// Traffic counts what reached a node.
type Traffic struct {
	GoodSent, GoodReceived int
	BadSent, BadReceived   int
}

func (t Traffic) String() string {
	return fmt.Sprintf("good %d/%d delivered, packets of death %d/%d delivered", t.GoodReceived, t.GoodSent, t.BadReceived, t.BadSent)
}

// SendTraffic sends n good and n bad UDP datagrams from the host to the
// node's eth0 and counts, inside the node's namespace, what arrived.
func (e *Env) SendTraffic(ctx context.Context, node *Node, n int) (Traffic, error) {
	s, err := e.StartTraffic(node, 0)
	if err != nil {
		return Traffic{}, err
	}
	for i := 0; i < n; i++ {
		if err := s.sendPair(); err != nil {
			s.Stop()
			return Traffic{}, err
		}
	}
	return s.Stop(), ctx.Err()
}

// TrafficStream sends good and bad datagrams to a node and counts arrivals.
type TrafficStream struct {
	conn    net.PacketConn
	out     *net.UDPConn
	stop    chan struct{}
	done    chan struct{}
	mu      sync.Mutex
	t       Traffic
	sendErr error
}

// StartTraffic opens a receiver in the node's namespace and, when interval
// is positive, sends one good and one bad datagram every interval until Stop.
func (e *Env) StartTraffic(node *Node, interval time.Duration) (*TrafficStream, error) {
	conn, err := listenInNetNS(node.NetNS, netip.AddrPortFrom(node.Addr, DeathPort))
	if err != nil {
		return nil, err
	}
	out, err := net.DialUDP("udp4", &net.UDPAddr{IP: node.HostAddr.AsSlice()}, net.UDPAddrFromAddrPort(netip.AddrPortFrom(node.Addr, DeathPort)))
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("dial %s: %w", node.Addr, err)
	}
	s := &TrafficStream{conn: conn, out: out, stop: make(chan struct{}), done: make(chan struct{})}
	go s.receive()
	if interval > 0 {
		go func() {
			tick := time.NewTicker(interval)
			defer tick.Stop()
			for {
				select {
				case <-s.stop:
					return
				case <-tick.C:
					if err := s.sendPair(); err != nil {
						s.mu.Lock()
						s.sendErr = err
						s.mu.Unlock()
						return
					}
				}
			}
		}()
	}
	return s, nil
}

func (s *TrafficStream) sendPair() error {
	s.mu.Lock()
	i := s.t.GoodSent
	s.mu.Unlock()
	if _, err := s.out.Write([]byte("hello " + strconv.Itoa(i))); err != nil {
		return fmt.Errorf("send: %w", err)
	}
	if _, err := s.out.Write(append(append([]byte{}, DeathPattern...), []byte(" "+strconv.Itoa(i))...)); err != nil {
		return fmt.Errorf("send: %w", err)
	}
	s.mu.Lock()
	s.t.GoodSent++
	s.t.BadSent++
	s.mu.Unlock()
	return nil
}

func (s *TrafficStream) receive() {
	defer close(s.done)
	buf := make([]byte, 1500)
	for {
		k, _, err := s.conn.ReadFrom(buf)
		if err != nil {
			return
		}
		s.mu.Lock()
		if bytes.HasPrefix(buf[:k], DeathPattern) {
			s.t.BadReceived++
		} else {
			s.t.GoodReceived++
		}
		s.mu.Unlock()
	}
}

// Stop stops sending, waits for datagrams in flight, and returns the counts.
func (s *TrafficStream) Stop() Traffic {
	select {
	case <-s.stop:
	default:
		close(s.stop)
	}
	time.Sleep(300 * time.Millisecond)
	_ = s.conn.Close()
	<-s.done
	_ = s.out.Close()
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.t
}

// Err is the first send error, if any.
func (s *TrafficStream) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sendErr
}

// listenInNetNS opens a UDP socket inside the named network namespace; the
// socket stays there after the thread returns to its own namespace.
func listenInNetNS(name string, addr netip.AddrPort) (net.PacketConn, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		return nil, fmt.Errorf("get own netns: %w", err)
	}
	defer orig.Close()
	target, err := netns.GetFromName(name)
	if err != nil {
		return nil, fmt.Errorf("open netns %s: %w", name, err)
	}
	defer target.Close()
	if err := netns.Set(target); err != nil {
		return nil, fmt.Errorf("enter netns %s: %w", name, err)
	}
	conn, lerr := net.ListenPacket("udp4", addr.String())
	if err := netns.Set(orig); err != nil {
		// This thread must not run anything else: leave it locked so the
		// runtime discards it.
		runtime.LockOSThread()
		return nil, fmt.Errorf("return from netns %s: %w", name, err)
	}
	if lerr != nil {
		return nil, fmt.Errorf("listen in netns %s on %s: %w", name, addr, lerr)
	}
	return conn, nil
}

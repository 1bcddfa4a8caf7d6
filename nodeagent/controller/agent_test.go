package controller_test

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/go-logr/logr/testr"
	dto "github.com/prometheus/client_model/go"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/yaml"

	"github.com/bpfleet/bpfleet/api/v1alpha1"
	"github.com/bpfleet/bpfleet/bpf/xdpfilter"
	"github.com/bpfleet/bpfleet/bundles/build"
	"github.com/bpfleet/bpfleet/bundles/remote"
	"github.com/bpfleet/bpfleet/bundles/signing"
	"github.com/bpfleet/bpfleet/bundles/trust"
	"github.com/bpfleet/bpfleet/nodeagent/bpffs"
	"github.com/bpfleet/bpfleet/nodeagent/controller"
	"github.com/bpfleet/bpfleet/test/envtest"
	"github.com/bpfleet/bpfleet/test/kernelprog"
	"github.com/bpfleet/bpfleet/test/netns"
	"github.com/bpfleet/bpfleet/test/privileged"
	"github.com/bpfleet/bpfleet/test/procstat"
	"github.com/bpfleet/bpfleet/test/registry"
)

const (
	agentAddr  = "10.77.0.1"
	peerAddr   = "10.77.0.2"
	deniedPort = 7001
	openPort   = 7002
	otherPort  = 7003
	password   = "bpfleet-test"
	nodeLabel  = "bpfleet.io/test-agent"
)

// world is one node's worth of real parts: a loopback registry with signed
// bundles, a Node and trust policy in the API server, a network namespace
// with a veth to a peer namespace, and a private bpffs root and state dir.
type world struct {
	reg      *registry.Registry
	repo     string
	node     string
	root     string
	stateDir string
	agentNS  *netns.NS
	peerNS   *netns.NS
	veth     *netns.Veth
	keyDir   string
	priv     string
	pub      []byte
	policy   *v1alpha1.BundleTrustPolicy
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func newWorld(t *testing.T) *world {
	t.Helper()
	privileged.RequireBPFFS(t)
	privileged.RequireCommand(t, "ip")
	w := &world{
		reg:      registry.Start(t, registry.Options{}),
		node:     "agent-" + randHex(4),
		root:     "/sys/fs/bpf/bpfleet-test-" + randHex(6),
		stateDir: t.TempDir(),
		keyDir:   t.TempDir(),
	}
	w.repo = w.reg.Repository("agent/xdp")
	t.Cleanup(func() { _ = os.RemoveAll(w.root) })
	w.agentNS = netns.New(t)
	w.peerNS = netns.New(t)
	w.veth = netns.NewVeth(t, w.agentNS, agentAddr+"/24", w.peerNS, peerAddr+"/24")

	priv, pub, err := signing.GenerateKeyPair(w.keyDir, []byte(password))
	if err != nil {
		t.Fatalf("generate key pair: %v", err)
	}
	w.priv = priv
	if w.pub, err = os.ReadFile(pub); err != nil {
		t.Fatal(err)
	}

	ctx := context.Background()
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: w.node, Labels: map[string]string{nodeLabel: w.node}}}
	if err := env.Client.Create(ctx, node); err != nil {
		t.Fatalf("create node: %v", err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), node) })
	policy := &v1alpha1.BundleTrustPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "agent-" + randHex(4)},
		Spec: v1alpha1.BundleTrustPolicySpec{
			Images: []string{w.repo},
			Keys:   []v1alpha1.TrustedKey{{Name: "test", PublicKey: string(w.pub)}},
		},
	}
	if err := env.Client.Create(ctx, policy); err != nil {
		t.Fatalf("create trust policy: %v", err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), policy) })
	w.policy = policy
	return w
}

// push builds a bundle of the kernelprog XDP filter (version tells bundles
// apart), pushes it as tag and signs it when sign is set.
func (w *world) push(t *testing.T, tag, version string, sign bool) (ref, digest string) {
	t.Helper()
	return w.pushPrograms(t, tag, version, sign, kernelprog.XDPFilter+"=xdp")
}

// pushPrograms is push with the programs (name=attach kind) of the
// kernelprog object the bundle declares.
func (w *world) pushPrograms(t *testing.T, tag, version string, sign bool, programs ...string) (ref, digest string) {
	t.Helper()
	dir := t.TempDir()
	const object = "progs_bpfel.o"
	if err := os.WriteFile(filepath.Join(dir, object), kernelprog.Object, 0o644); err != nil {
		t.Fatal(err)
	}
	var decl strings.Builder
	for _, p := range programs {
		name, kind, _ := strings.Cut(p, "=")
		fmt.Fprintf(&decl, "  - name: %s\n    attach: %s\n", name, kind)
	}
	spec := fmt.Sprintf(`name: agent-test
version: %s
objects:
  - file: %s
programs:
%smetricMaps: [counters]
`, version, object, decl.String())
	if err := os.WriteFile(filepath.Join(dir, build.SpecFile), []byte(spec), 0o644); err != nil {
		t.Fatal(err)
	}
	return w.pushDir(t, dir, tag, sign)
}

// pushDir builds the bundle in dir, pushes it as tag and signs it when sign
// is set.
func (w *world) pushDir(t *testing.T, dir, tag string, sign bool) (ref, digest string) {
	t.Helper()
	layout := t.TempDir()
	ctx := context.Background()
	res, err := build.Build(ctx, dir, build.Options{LayoutDir: layout, Tag: tag})
	if err != nil {
		t.Fatalf("build bundle: %v", err)
	}
	ref = w.reg.Ref("agent/xdp", tag)
	digest, err = remote.New(remote.Options{}).Push(ctx, layout, ref)
	if err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
	if digest != res.Digest {
		t.Fatalf("pushed digest %s, built %s", digest, res.Digest)
	}
	if sign {
		if err := signing.Sign(ctx, w.repo+"@"+digest, w.priv, []byte(password), remote.Options{}); err != nil {
			t.Fatalf("sign %s: %v", digest, err)
		}
	}
	return ref, digest
}

func denyEntry(port uint16) v1alpha1.MapEntry {
	return v1alpha1.MapEntry{
		Map:   "deny",
		Key:   hex.EncodeToString(binary.NativeEndian.AppendUint16(nil, port)),
		Value: "01",
	}
}

// createProgram creates a BpfProgram for the XDP filter on the world's veth,
// selecting the world's node, and sets its status as the operator would
// after resolving and verifying digest.
func (w *world) createProgram(t *testing.T, ref, digest string, entries ...v1alpha1.MapEntry) *v1alpha1.BpfProgram {
	t.Helper()
	return w.createAttached(t, "xdp-"+randHex(4), ref, digest, v1alpha1.ProgramAttachment{
		Name: kernelprog.XDPFilter,
		XDP: &v1alpha1.XDPAttach{
			Interfaces: v1alpha1.InterfaceSelector{Names: []string{w.veth.A}},
			Mode:       v1alpha1.XDPModeGeneric,
		},
	}, entries...)
}

// createAttached creates BpfProgram name running pa on this node, and tells
// the node its digest as the operator would.
func (w *world) createAttached(t *testing.T, name, ref, digest string, pa v1alpha1.ProgramAttachment, entries ...v1alpha1.MapEntry) *v1alpha1.BpfProgram {
	t.Helper()
	p := &v1alpha1.BpfProgram{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: v1alpha1.BpfProgramSpec{
			Bundle:       v1alpha1.BundleSource{Image: ref},
			Programs:     []v1alpha1.ProgramAttachment{pa},
			MapEntries:   entries,
			NodeSelector: &metav1.LabelSelector{MatchLabels: map[string]string{nodeLabel: w.node}},
		},
	}
	if err := env.Client.Create(context.Background(), p); err != nil {
		t.Fatalf("create BpfProgram: %v", err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), p) })
	setRollout(t, p, digest, digest, "")
	return p
}

// setRollout writes status as the operator does: resolved, verified, and a
// rollout from stable to target (halted when halted is set).
func setRollout(t *testing.T, p *v1alpha1.BpfProgram, stable, target, halted string) {
	t.Helper()
	ctx := context.Background()
	if err := env.Client.Get(ctx, client.ObjectKeyFromObject(p), p); err != nil {
		t.Fatal(err)
	}
	p.Status.ObservedGeneration = p.Generation
	p.Status.ResolvedDigest = target
	meta.SetStatusCondition(&p.Status.Conditions, metav1.Condition{
		Type: v1alpha1.ConditionSignatureVerified, Status: metav1.ConditionTrue,
		Reason: v1alpha1.ReasonVerified, ObservedGeneration: p.Generation,
	})
	p.Status.Rollout = &v1alpha1.RolloutStatus{TargetDigest: target, StableDigest: stable, HaltedReason: halted}
	if err := env.Client.Status().Update(ctx, p); err != nil {
		t.Fatalf("update BpfProgram status: %v", err)
	}
}

// agent is a running node agent.
type agent struct {
	cancel context.CancelFunc
	done   chan error
}

func (w *world) startAgent(t *testing.T, mutate ...func(*controller.Options)) *agent {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	a := &agent{cancel: cancel, done: make(chan error, 1)}
	opts := controller.Options{
		NodeName:       w.node,
		BPFFSRoot:      w.root,
		StateDir:       w.stateDir,
		NetNS:          "/var/run/netns/" + w.agentNS.Name,
		ResyncInterval: 300 * time.Millisecond,
		Registry:       remote.Options{PlainHTTP: true, Timeout: 3 * time.Second},
		Version:        "test",
		Log:            testr.NewWithOptions(t, testr.Options{LogTimestamp: true}),
	}
	for _, m := range mutate {
		m(&opts)
	}
	cfg := agentConfig(t)
	go func() { a.done <- controller.Run(ctx, cfg, opts) }()
	t.Cleanup(a.stop)
	return a
}

func (a *agent) stop() {
	a.cancel()
	<-a.done
	a.done <- nil // later stops return at once
}

func eventually(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		ok, msg := cond()
		if ok {
			return
		}
		last = msg
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s: not true after %s; last: %s", what, timeout, last)
}

func (w *world) state(t *testing.T) *v1alpha1.BpfNodeState {
	t.Helper()
	ns := &v1alpha1.BpfNodeState{}
	if err := env.Client.Get(context.Background(), types.NamespacedName{Name: w.node}, ns); err != nil {
		if apierrors.IsNotFound(err) {
			return nil
		}
		t.Fatal(err)
	}
	return ns
}

func entriesOf(ns *v1alpha1.BpfNodeState, uid types.UID) []v1alpha1.ProgramState {
	if ns == nil {
		return nil
	}
	var out []v1alpha1.ProgramState
	for _, s := range ns.Status.Programs {
		if s.UID == uid {
			out = append(out, s)
		}
	}
	return out
}

// waitEntry waits for one entry of p matching cond and returns it.
func (w *world) waitEntry(t *testing.T, p *v1alpha1.BpfProgram, what string, cond func(v1alpha1.ProgramState) bool) v1alpha1.ProgramState {
	t.Helper()
	var got v1alpha1.ProgramState
	eventually(t, 30*time.Second, what, func() (bool, string) {
		es := entriesOf(w.state(t), p.UID)
		for _, e := range es {
			if cond(e) {
				got = e
				return true, ""
			}
		}
		return false, fmt.Sprintf("%+v", es)
	})
	return got
}

func attachedAt(digest string) func(v1alpha1.ProgramState) bool {
	return func(s v1alpha1.ProgramState) bool {
		return s.State == v1alpha1.PhaseAttached && s.Digest == digest && s.ID != 0 && s.Reason == v1alpha1.ReasonAttached
	}
}

// delivered sends n UDP datagrams from the peer namespace to port on the
// agent's side and returns how many arrived.
func (w *world) delivered(t *testing.T, port, n int) int {
	t.Helper()
	return w.deliveredPayload(t, port, n, []byte("bpfleet"))
}

// deliveredPayload is delivered with a given datagram payload.
func (w *world) deliveredPayload(t *testing.T, port, n int, payload []byte) int {
	t.Helper()
	var conn *net.UDPConn
	if err := w.agentNS.Do(t, func() (err error) {
		conn, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP(agentAddr), Port: port})
		return err
	}); err != nil {
		t.Fatalf("listen in agent netns: %v", err)
	}
	defer conn.Close()
	var out *net.UDPConn
	if err := w.peerNS.Do(t, func() (err error) {
		out, err = net.DialUDP("udp4", nil, &net.UDPAddr{IP: net.ParseIP(agentAddr), Port: port})
		return err
	}); err != nil {
		t.Fatalf("dial from peer netns: %v", err)
	}
	defer out.Close()
	for range n {
		if _, err := out.Write(payload); err != nil {
			t.Fatalf("send: %v", err)
		}
	}
	got := 0
	buf := make([]byte, 64)
	for {
		_ = conn.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		if _, _, err := conn.ReadFromUDP(buf); err != nil {
			return got
		}
		got++
	}
}

// bpffsLeft lists what is left under the world's bpffs root.
func (w *world) bpffsLeft(t *testing.T) []string {
	t.Helper()
	var left []string
	_ = filepath.Walk(w.root, func(path string, info os.FileInfo, err error) error {
		if err == nil && path != w.root {
			left = append(left, path)
		}
		return nil
	})
	return left
}

type bpftoolProg struct {
	ID           uint32   `json:"id"`
	Type         string   `json:"type"`
	Name         string   `json:"name"`
	Tag          string   `json:"tag"`
	BytesXlated  uint32   `json:"bytes_xlated"`
	BytesJited   uint32   `json:"bytes_jited"`
	BytesMemlock uint64   `json:"bytes_memlock"`
	MapIDs       []uint32 `json:"map_ids"`
	BTFID        uint32   `json:"btf_id"`
	LoadedAt     int64    `json:"loaded_at"`
	RunTimeNs    uint64   `json:"run_time_ns"`
	RunCnt       uint64   `json:"run_cnt"`
}

func bpftoolShow(t *testing.T, bpftool string, id uint32) bpftoolProg {
	t.Helper()
	out, err := exec.Command(bpftool, "-j", "prog", "show", "id", strconv.FormatUint(uint64(id), 10)).Output()
	if err != nil {
		t.Fatalf("bpftool prog show id %d: %v", id, err)
	}
	var p bpftoolProg
	if err := json.Unmarshal(out, &p); err != nil {
		t.Fatalf("decode bpftool output %s: %v", out, err)
	}
	return p
}

func readCounter(t *testing.T, w *world, uid types.UID, idx uint32) uint64 {
	t.Helper()
	m, err := ebpf.LoadPinnedMap(bpffs.Layout{Root: w.root}.Map(uid, "counters"), nil)
	if err != nil {
		t.Fatalf("open pinned counters map: %v", err)
	}
	defer m.Close()
	var v uint64
	if err := m.Lookup(idx, &v); err != nil {
		t.Fatalf("lookup counters[%d]: %v", idx, err)
	}
	return v
}

// TestAgentEndToEnd drives one agent on the real kernel through a program's
// life: attach and filter, map update in place, idle, restart, registry
// outage during an upgrade, deselection and deletion.
func TestAgentEndToEnd(t *testing.T) {
	w := newWorld(t)
	bpftool := privileged.RequireCommand(t, "bpftool")
	ctx := context.Background()

	ref, v1 := w.push(t, "v1", "0.1.0", true)
	a := w.startAgent(t)
	outer := t
	eventually(t, 10*time.Second, "agent reports the node", func() (bool, string) { return w.state(t) != nil, "no BpfNodeState" })
	p := w.createProgram(t, ref, v1, denyEntry(deniedPort))
	start := time.Now() // the operator's status write: the node learns its digest

	var first v1alpha1.ProgramState
	t.Run("attached and filtering", func(t *testing.T) {
		first = w.waitEntry(t, p, "program attached", attachedAt(v1))
		t.Logf("digest rolled out → Attached in BpfNodeState (observed by polling every 100ms): %s", time.Since(start))
		if want := "xdp/" + w.veth.A; first.AttachPoint == "" || first.Signer == "" || first.VerifiedAt == nil {
			t.Errorf("entry lacks attach point (want like %q), signer or verifiedAt: %+v", want, first)
		}
		if got := w.delivered(t, deniedPort, 20); got != 0 {
			t.Errorf("%d of 20 datagrams to the denied port arrived", got)
		}
		if got := w.delivered(t, openPort, 20); got == 0 {
			t.Errorf("no datagram to an open port arrived")
		}
		if drops := readCounter(t, w, p.UID, 1); drops < 20 {
			t.Errorf("counters[1] = %d drops, want >= 20", drops)
		}

		bt := bpftoolShow(t, bpftool, first.ID)
		if bt.ID != first.ID || bt.Tag != first.Tag || bt.Type != first.Type || bt.Name != first.Name ||
			bt.BytesXlated != first.BytesXlated || bt.BytesJited != first.BytesJited ||
			bt.BytesMemlock != first.BytesMemlock || bt.BTFID != first.BTFID ||
			fmt.Sprint(bt.MapIDs) != fmt.Sprint(first.MapIDs) {
			t.Errorf("status differs from bpftool:\nstatus  %+v\nbpftool %+v", first, bt)
		}
		if first.LoadedAt == nil || abs(first.LoadedAt.Unix()-bt.LoadedAt) > 1 {
			t.Errorf("loadedAt %v, bpftool %d", first.LoadedAt, bt.LoadedAt)
		}

		checkMetrics(t, w.node, first.ID)

		ns := w.state(t)
		if len(ns.OwnerReferences) != 1 || ns.OwnerReferences[0].Kind != "Node" || ns.OwnerReferences[0].Name != w.node {
			t.Errorf("owner references = %+v, want the Node", ns.OwnerReferences)
		}
		k := ns.Status.Kernel
		if k.Release == "" || k.Architecture == "" || k.BootID == "" || !k.BTF || len(ns.Status.Features) == 0 {
			t.Errorf("kernel/features incomplete: %+v, %d features", k, len(ns.Status.Features))
		}
		if ns.Status.Summary != (v1alpha1.NodeSummary{Programs: 1, Attached: 1}) || ns.Status.AgentVersion != "test" {
			t.Errorf("summary %+v, version %q", ns.Status.Summary, ns.Status.AgentVersion)
		}
		if c := meta.FindStatusCondition(ns.Status.Conditions, v1alpha1.ConditionReady); c == nil || c.Status != metav1.ConditionTrue {
			t.Errorf("Ready = %+v, want True", c)
		}
	})
	if t.Failed() {
		return
	}

	t.Run("map entries change in place", func(t *testing.T) {
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(p), p); err != nil {
			t.Fatal(err)
		}
		p.Spec.MapEntries = []v1alpha1.MapEntry{denyEntry(otherPort)}
		if err := env.Client.Update(ctx, p); err != nil {
			t.Fatal(err)
		}
		setRollout(t, p, v1, v1, "")
		w.waitEntry(t, p, "new generation attached", func(s v1alpha1.ProgramState) bool {
			return attachedAt(v1)(s) && s.Generation == p.Generation
		})
		eventually(t, 10*time.Second, "rule moved", func() (bool, string) {
			return w.delivered(t, otherPort, 5) == 0 && w.delivered(t, deniedPort, 5) > 0, "old port still denied or new one open"
		})
		if got := w.state(t).Status.Programs[0].ID; got != first.ID {
			t.Errorf("program id %d after a map change, want %d (no reload)", got, first.ID)
		}
	})

	t.Run("idle writes nothing", func(t *testing.T) {
		time.Sleep(time.Second) // let the last change settle
		before := w.state(t).ResourceVersion
		time.Sleep(2 * time.Second) // about 6 resyncs
		if after := w.state(t).ResourceVersion; after != before {
			t.Errorf("BpfNodeState resourceVersion moved from %s to %s while idle", before, after)
		}
	})

	t.Run("restart re-adopts", func(t *testing.T) {
		a.stop()
		if got := w.delivered(t, otherPort, 5); got != 0 {
			t.Errorf("filter stopped with the agent: %d datagrams arrived", got)
		}
		a = w.startAgent(outer) // runs until the whole test ends
		time.Sleep(2 * time.Second)
		got := w.waitEntry(t, p, "attached after restart", attachedAt(v1))
		if got.ID != first.ID {
			t.Errorf("program id %d after restart, want %d (re-adopted, not reloaded)", got.ID, first.ID)
		}
	})

	var v2 string
	t.Run("registry down during upgrade keeps the old program", func(t *testing.T) {
		_, v2 = w.push(t, "v2", "0.2.0", true)
		w.reg.Stop()
		setRollout(t, p, v1, v2, "")
		held := w.waitEntry(t, p, "held with PullFailed", func(s v1alpha1.ProgramState) bool {
			return s.Reason == v1alpha1.ReasonPullFailed
		})
		if held.State != v1alpha1.PhaseAttached || held.ID != first.ID || held.Message == "" {
			t.Errorf("held entry %+v, want Attached, id %d, a message", held, first.ID)
		}
		if got := w.delivered(t, otherPort, 5); got != 0 {
			t.Errorf("old filter not running during the outage: %d datagrams arrived", got)
		}
		c := meta.FindStatusCondition(w.state(t).Status.Conditions, v1alpha1.ConditionReady)
		if c == nil || c.Status != metav1.ConditionFalse || c.Reason != v1alpha1.ReasonPullFailed {
			t.Errorf("Ready = %+v, want False/PullFailed", c)
		}
		// The operator halts the rollout: the node returns to the stable
		// digest from its cache, without the registry.
		setRollout(t, p, v1, v2, v1alpha1.ReasonRolloutHalted)
		w.waitEntry(t, p, "back at v1", attachedAt(v1))
	})

	t.Run("deselected node detaches everything", func(t *testing.T) {
		node := &corev1.Node{}
		if err := env.Client.Get(ctx, types.NamespacedName{Name: w.node}, node); err != nil {
			t.Fatal(err)
		}
		delete(node.Labels, nodeLabel)
		if err := env.Client.Update(ctx, node); err != nil {
			t.Fatal(err)
		}
		eventually(t, 30*time.Second, "pins removed", func() (bool, string) {
			left := w.bpffsLeft(t)
			return len(left) == 0 && len(entriesOf(w.state(t), p.UID)) == 0, fmt.Sprint(left)
		})
		if got := w.delivered(t, otherPort, 5); got == 0 {
			t.Errorf("filter still drops after deselection")
		}
		if err := env.Client.Get(ctx, types.NamespacedName{Name: w.node}, node); err != nil {
			t.Fatal(err)
		}
		node.Labels = map[string]string{nodeLabel: w.node}
		if err := env.Client.Update(ctx, node); err != nil {
			t.Fatal(err)
		}
		w.waitEntry(t, p, "attached again from the cache", attachedAt(v1))
	})

	t.Run("restart during the outage keeps following the spec", func(t *testing.T) {
		before := w.waitEntry(t, p, "attached", attachedAt(v1))
		a.stop()
		a = w.startAgent(outer)
		// The new agent cannot verify v1 again, but v1 runs: it stays
		// Attached without a hold, and map entries still apply.
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(p), p); err != nil {
			t.Fatal(err)
		}
		p.Spec.MapEntries = []v1alpha1.MapEntry{denyEntry(deniedPort)}
		if err := env.Client.Update(ctx, p); err != nil {
			t.Fatal(err)
		}
		e := w.waitEntry(t, p, "new generation applied from the cache", func(s v1alpha1.ProgramState) bool {
			return attachedAt(v1)(s) && s.Generation == p.Generation
		})
		if e.ID != before.ID || e.VerifiedAt == nil || !e.VerifiedAt.Equal(before.VerifiedAt) || e.Signer != before.Signer {
			t.Errorf("entry %+v: want id %d, signer and first verification time kept from %+v", e, before.ID, before)
		}
		eventually(t, 10*time.Second, "rule moved back", func() (bool, string) {
			return w.delivered(t, deniedPort, 5) == 0 && w.delivered(t, otherPort, 5) > 0, "rule not moved"
		})
	})

	t.Run("deleted BpfProgram detaches everything", func(t *testing.T) {
		if err := env.Client.Delete(ctx, p); err != nil {
			t.Fatal(err)
		}
		eventually(t, 30*time.Second, "pins removed", func() (bool, string) {
			left := w.bpffsLeft(t)
			return len(left) == 0 && len(entriesOf(w.state(t), p.UID)) == 0, fmt.Sprint(left)
		})
		if ns := w.state(t); ns.Status.Summary.Programs != 0 {
			t.Errorf("summary %+v after deletion", ns.Status.Summary)
		}
	})
}

func abs(x int64) int64 {
	if x < 0 {
		return -x
	}
	return x
}

// TestUntrustedBundlesAreRefused: an unsigned bundle and one signed by a key
// no policy trusts fail with VerifyFailed and nothing is loaded.
func TestUntrustedBundlesAreRefused(t *testing.T) {
	w := newWorld(t)
	otherPriv, _, err := signing.GenerateKeyPair(t.TempDir(), []byte(password))
	if err != nil {
		t.Fatal(err)
	}

	unsignedRef, unsigned := w.push(t, "unsigned", "0.1.0", false)
	wrongRef, wrong := w.push(t, "wrongkey", "0.3.0", false)
	if err := signing.Sign(context.Background(), w.repo+"@"+wrong, otherPriv, []byte(password), remote.Options{}); err != nil {
		t.Fatalf("sign with another key: %v", err)
	}
	pu := w.createProgram(t, unsignedRef, unsigned, denyEntry(deniedPort))
	pw := w.createProgram(t, wrongRef, wrong, denyEntry(deniedPort))
	w.startAgent(t)

	for _, p := range []*v1alpha1.BpfProgram{pu, pw} {
		e := w.waitEntry(t, p, "refused "+p.Name, func(s v1alpha1.ProgramState) bool {
			return s.State == v1alpha1.PhaseFailed && s.Reason == v1alpha1.ReasonVerifyFailed
		})
		if e.ID != 0 || e.Message == "" {
			t.Errorf("refused entry %+v: want no program id and a message", e)
		}
	}
	if left := w.bpffsLeft(t); len(left) != 0 {
		t.Errorf("something was pinned for untrusted bundles: %v", left)
	}
	if got := w.delivered(t, deniedPort, 5); got == 0 {
		t.Errorf("a filter runs although no bundle was trusted")
	}
	c := meta.FindStatusCondition(w.state(t).Status.Conditions, v1alpha1.ConditionReady)
	if c == nil || c.Status != metav1.ConditionFalse || c.Reason != v1alpha1.ReasonVerifyFailed {
		t.Errorf("Ready = %+v, want False/VerifyFailed", c)
	}
	eventually(t, 10*time.Second, "a VerifyFailed warning event", func() (bool, string) {
		var evs eventsv1.EventList
		if err := env.Client.List(context.Background(), &evs); err != nil {
			return false, err.Error()
		}
		for _, e := range evs.Items {
			if e.Regarding.Name == w.node && e.Reason == v1alpha1.ReasonVerifyFailed && e.Type == corev1.EventTypeWarning {
				return true, ""
			}
		}
		return false, fmt.Sprintf("%d events, none for %s", len(evs.Items), w.node)
	})
}

// TestLockRefusesSecondAgent: one state directory, one agent.
func TestLockRefusesSecondAgent(t *testing.T) {
	dir := t.TempDir()
	unlock, err := controller.Lock(dir)
	if err != nil {
		t.Fatalf("first lock: %v", err)
	}
	_, err = controller.Lock(dir)
	if !errors.Is(err, controller.ErrLocked) {
		t.Fatalf("second lock: %v, want ErrLocked", err)
	}
	err = controller.Run(context.Background(), env.Config, controller.Options{NodeName: "n", StateDir: dir, BPFFSRoot: filepath.Join(dir, "nobpffs")})
	if !errors.Is(err, controller.ErrLocked) {
		t.Fatalf("Run with a locked state dir: %v, want ErrLocked", err)
	}
	unlock()
	unlock2, err := controller.Lock(dir)
	if err != nil {
		t.Fatalf("lock after unlock: %v", err)
	}
	unlock2()
}

// checkMetrics scrapes controller-runtime's registry: the program's info
// series, its declared metric map (counters[1] counts drops) and every
// reconcile phase must be there. It logs the phase breakdown.
func checkMetrics(t *testing.T, node string, id uint32) {
	t.Helper()
	checkMetricsOf(t, node, id, "counters", "1", 20)
}

// checkMetricsOf is checkMetrics for metric map series key field 0 at
// least minValue.
func checkMetricsOf(t *testing.T, node string, id uint32, metricMap, key string, minValue float64) {
	t.Helper()
	families, err := crmetrics.Registry.Gather()
	if err != nil {
		t.Fatalf("gather metrics: %v", err)
	}
	labels := func(m *dto.Metric) map[string]string {
		out := map[string]string{}
		for _, l := range m.GetLabel() {
			out[l.GetName()] = l.GetValue()
		}
		return out
	}
	var info, drops bool
	phases := map[string]*dto.Histogram{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			l := labels(m)
			if l["node"] != node {
				continue
			}
			switch f.GetName() {
			case "bpfleet_program_info":
				info = info || l["id"] == strconv.FormatUint(uint64(id), 10)
			case "bpfleet_map_value":
				if l["map"] == metricMap && l["key"] == key && l["field"] == "0" && m.GetGauge().GetValue() >= minValue {
					drops = true
				}
			case "bpfleet_agent_phase_seconds":
				phases[l["phase"]] = m.GetHistogram()
			}
		}
	}
	if !info {
		t.Errorf("no bpfleet_program_info series with id %d", id)
	}
	if !drops {
		t.Errorf("no bpfleet_map_value series for %s[%s] >= %v", metricMap, key, minValue)
	}
	for _, phase := range []string{"verify", "pull", "apply", "load", "attach", "status"} {
		h := phases[phase]
		if h == nil || h.GetSampleCount() == 0 {
			t.Errorf("no %s phase observed", phase)
			continue
		}
		t.Logf("phase %-6s n=%d mean=%s", phase, h.GetSampleCount(),
			time.Duration(h.GetSampleSum()/float64(h.GetSampleCount())*float64(time.Second)))
	}
}

// TestAgentFollowsInterfacesAndRefreshesStats: with the periodic resync out
// of the way, an interface that disappears and comes back is attached again
// within a second (the dataplane's netlink changes drive a reconcile), and a
// stats interval writes fresh run counts into status.
func TestAgentFollowsInterfacesAndRefreshesStats(t *testing.T) {
	w := newWorld(t)
	ref, digest := w.push(t, "v1", "0.1.0", true)
	p := w.createProgram(t, ref, digest, denyEntry(deniedPort))
	w.startAgent(t, func(o *controller.Options) {
		o.ResyncInterval = time.Hour
		o.Stats = true
		o.StatsInterval = 500 * time.Millisecond
	})
	first := w.waitEntry(t, p, "attached", attachedAt(digest))

	t.Run("stats refresh", func(t *testing.T) {
		w.delivered(t, openPort, 10)
		w.waitEntry(t, p, "run count in status", func(s v1alpha1.ProgramState) bool {
			return s.RunCount >= 10 && s.RunTimeNs > 0 && s.NsPerRun > 0
		})
	})

	t.Run("interface comes back", func(t *testing.T) {
		netns.Run(t, "ip", "-n", w.agentNS.Name, "link", "del", w.veth.A)
		gone := time.Now()
		netns.Run(t, "ip", "-n", w.agentNS.Name, "link", "add", w.veth.A, "type", "veth", "peer", "name", w.veth.B, "netns", w.peerNS.Name)
		netns.Run(t, "ip", "-n", w.agentNS.Name, "addr", "add", agentAddr+"/24", "dev", w.veth.A)
		netns.Run(t, "ip", "-n", w.peerNS.Name, "addr", "add", peerAddr+"/24", "dev", w.veth.B)
		netns.Run(t, "ip", "-n", w.agentNS.Name, "link", "set", w.veth.A, "up")
		netns.Run(t, "ip", "-n", w.peerNS.Name, "link", "set", w.veth.B, "up")
		e := w.waitEntry(t, p, "attached to the new interface", func(s v1alpha1.ProgramState) bool {
			return attachedAt(digest)(s) && s.LinkID != first.LinkID
		})
		took := time.Since(gone)
		t.Logf("interface deleted and re-created → Attached again in status: %s", took)
		if took > 3*time.Second {
			t.Errorf("re-attached after %s, want about a second", took)
		}
		if e.ID != first.ID {
			t.Errorf("program id %d, want %d: only the link is new", e.ID, first.ID)
		}
		if got := w.delivered(t, deniedPort, 5); got != 0 {
			t.Errorf("%d datagrams to the denied port arrived on the new interface", got)
		}
	})
}

// TestIdleAgentCost: an agent with a program attached and a one-second
// resync costs little CPU and writes nothing. It logs CPU and RSS of the
// test process (the agent, the in-process registry and the test itself; the
// API server runs in its own process).
func TestIdleAgentCost(t *testing.T) {
	for _, programs := range []int{1, 10} {
		t.Run(fmt.Sprintf("%d programs", programs), func(t *testing.T) { idleAgentCost(t, programs) })
	}
}

// idleAgentCost runs an agent with n BpfPrograms attached (the XDP filter,
// then tcx counters on the same interface) and measures it idle.
func idleAgentCost(t *testing.T, n int) {
	w := newWorld(t)
	ref, digest := w.pushPrograms(t, "v1", "0.1.0", true, kernelprog.XDPFilter+"=xdp", kernelprog.TCCount+"=tc")
	progs := []*v1alpha1.BpfProgram{w.createProgram(t, ref, digest, denyEntry(deniedPort))}
	for len(progs) < n {
		progs = append(progs, w.createTCProgram(t, ref, digest))
	}
	w.startAgent(t, func(o *controller.Options) { o.ResyncInterval = time.Second })
	for _, p := range progs {
		w.waitEntry(t, p, "attached", attachedAt(digest))
	}
	time.Sleep(time.Second)

	before := w.state(t).ResourceVersion
	cpu0 := processCPU(t)
	const window = 6 * time.Second
	time.Sleep(window)
	used := processCPU(t) - cpu0
	if after := w.state(t).ResourceVersion; after != before {
		t.Errorf("BpfNodeState written while idle: resourceVersion %s → %s", before, after)
	}
	share := float64(used) / float64(window) * 100
	t.Logf("idle, %d programs, resync 1s: CPU %s over %s (%.2f%% of one core), RSS %d MiB", n, used, window, share, rssKiB(t)/1024)
	if share > 5 {
		t.Errorf("idle agent used %.2f%% of a core, want under 5%%", share)
	}
}

// createTCProgram is a BpfProgram counting w.veth.A's ingress with tcx.
func (w *world) createTCProgram(t *testing.T, ref, digest string) *v1alpha1.BpfProgram {
	t.Helper()
	return w.createAttached(t, "tc-"+randHex(4), ref, digest, v1alpha1.ProgramAttachment{
		Name: kernelprog.TCCount,
		TC: &v1alpha1.TCAttach{
			Interfaces: v1alpha1.InterfaceSelector{Names: []string{w.veth.A}},
			Direction:  v1alpha1.TCIngress,
		},
	})
}

func processCPU(t *testing.T) time.Duration {
	t.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func rssKiB(t *testing.T) int64 {
	t.Helper()
	s, err := procstat.Read(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	return s.RSSKiB
}

const agentUser = "bpfleet-agent-under-test"

var grantAgentRole = sync.OnceValue(func() error {
	root, err := envtest.RepoRoot()
	if err != nil {
		return err
	}
	data, err := os.ReadFile(filepath.Join(root, "config", "rbac", "agent", "role.yaml"))
	if err != nil {
		return fmt.Errorf("read the agent's roles: %w", err)
	}
	ctx := context.Background()
	subjects := []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: agentUser}}
	// The file holds the ClusterRole (and any namespaced Role). Secrets are
	// granted by name only, as the operator's trust-keys Role does:
	// grantSecret.
	for _, doc := range strings.Split(string(data), "\n---\n") {
		var meta metav1.TypeMeta
		if err := yaml.Unmarshal([]byte(doc), &meta); err != nil {
			return fmt.Errorf("decode the agent's roles: %w", err)
		}
		var role, binding client.Object
		switch meta.Kind {
		case "ClusterRole":
			var r rbacv1.ClusterRole
			if err := yaml.Unmarshal([]byte(doc), &r); err != nil {
				return fmt.Errorf("decode the agent's ClusterRole: %w", err)
			}
			role = &r
			binding = &rbacv1.ClusterRoleBinding{
				ObjectMeta: metav1.ObjectMeta{Name: agentUser},
				RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: r.Name},
				Subjects:   subjects,
			}
		case "Role":
			var r rbacv1.Role
			if err := yaml.Unmarshal([]byte(doc), &r); err != nil {
				return fmt.Errorf("decode the agent's Role: %w", err)
			}
			ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: r.Namespace}}
			if err := env.Client.Create(ctx, ns); err != nil && !apierrors.IsAlreadyExists(err) {
				return fmt.Errorf("create namespace %s: %w", r.Namespace, err)
			}
			role = &r
			binding = &rbacv1.RoleBinding{
				ObjectMeta: metav1.ObjectMeta{Name: agentUser, Namespace: r.Namespace},
				RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: r.Name},
				Subjects:   subjects,
			}
		default:
			continue
		}
		for _, obj := range []client.Object{role, binding} {
			if err := env.Client.Create(ctx, obj); err != nil && !apierrors.IsAlreadyExists(err) {
				return fmt.Errorf("create %T %s: %w", obj, obj.GetName(), err)
			}
		}
	}
	return nil
})

// agentConfig connects as a user that holds only the agent's generated
// ClusterRole (config/rbac/agent), so every test proves the least-privilege
// role is enough.
func agentConfig(t *testing.T) *rest.Config {
	t.Helper()
	if err := grantAgentRole(); err != nil {
		t.Fatal(err)
	}
	cfg := rest.CopyConfig(env.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: agentUser}
	return cfg
}

// TestShippedXDPFilter runs the shipped xdp-pod-filter bundle (bpf/xdpfilter)
// through the agent: a typed packet-of-death rule written as a map entry
// drops the matching datagrams only, and the bundle's declared metric map
// (rule_hits) is exported.
func TestShippedXDPFilter(t *testing.T) {
	w := newWorld(t)
	root, err := envtest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	ref, digest := w.pushDir(t, filepath.Join(root, "bpf", "xdpfilter"), "shipped", true)
	rule := xdpfilter.Rule{Action: xdpfilter.ActionDrop, Protocol: xdpfilter.ProtocolUDP, DstPort: deniedPort, Pattern: []byte("DEATH")}
	key, value, err := rule.MapEntry(0)
	if err != nil {
		t.Fatal(err)
	}
	p := w.createProgram(t, ref, digest, v1alpha1.MapEntry{Map: xdpfilter.RulesMap, Key: key, Value: value})
	if err := env.Client.Get(context.Background(), client.ObjectKeyFromObject(p), p); err != nil {
		t.Fatal(err)
	}
	p.Spec.Programs[0].Name = xdpfilter.ProgramName
	if err := env.Client.Update(context.Background(), p); err != nil {
		t.Fatal(err)
	}
	setRollout(t, p, digest, digest, "")
	w.startAgent(t)
	e := w.waitEntry(t, p, "xdp-pod-filter attached", func(s v1alpha1.ProgramState) bool {
		return attachedAt(digest)(s) && s.Generation == p.Generation
	})

	if got := w.deliveredPayload(t, deniedPort, 20, []byte("DEATH packet")); got != 0 {
		t.Errorf("%d of 20 packets of death arrived", got)
	}
	if got := w.deliveredPayload(t, deniedPort, 20, []byte("harmless")); got == 0 {
		t.Errorf("harmless datagrams to the same port were dropped")
	}
	checkMetricsOf(t, w.node, e.ID, xdpfilter.HitsMap, "0", 20)
}

// TestTwoAgentsInOneProcess: agents for different nodes, each with its own
// netns, bpffs root and state dir, run side by side in one process (as
// bpfleet local and the e2e suite run them) and each reports only its own.
func TestTwoAgentsInOneProcess(t *testing.T) {
	worlds := []*world{newWorld(t), newWorld(t)}
	var progs []*v1alpha1.BpfProgram
	for _, w := range worlds {
		ref, digest := w.push(t, "v1", "0.1.0", true)
		progs = append(progs, w.createProgram(t, ref, digest, denyEntry(deniedPort)))
		w.startAgent(t)
	}
	for i, w := range worlds {
		e := w.waitEntry(t, progs[i], "attached on "+w.node, func(s v1alpha1.ProgramState) bool { return s.State == v1alpha1.PhaseAttached })
		if n := len(w.state(t).Status.Programs); n != 1 {
			t.Errorf("%s reports %d entries, want only its own program", w.node, n)
		}
		if got := w.delivered(t, deniedPort, 5); got != 0 {
			t.Errorf("%s: %d datagrams to the denied port arrived", w.node, got)
		}
		checkMetricsOf(t, w.node, e.ID, "counters", "1", 5)
	}
}

// TestTrustPolicyKeyFromSecret: a policy whose key lives in a Secret admits
// the bundle; the agent reads the Secret directly (get only, no watch).
func TestTrustPolicyKeyFromSecret(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: trust.DefaultSecretNamespace, Name: "cosign-" + w.node},
		Data:       map[string][]byte{"cosign.pub": w.pub},
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: trust.DefaultSecretNamespace}}
	if err := env.Client.Create(ctx, ns); client.IgnoreAlreadyExists(err) != nil {
		t.Fatal(err)
	}
	if err := env.Client.Create(ctx, secret); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), secret) })
	grantSecret(t, secret)
	w.policy.Spec.Keys = []v1alpha1.TrustedKey{{Name: "from-secret", SecretRef: &v1alpha1.SecretKeyRef{Namespace: trust.DefaultSecretNamespace, Name: secret.Name}}}
	if err := env.Client.Update(ctx, w.policy); err != nil {
		t.Fatal(err)
	}
	ref, digest := w.push(t, "v1", "0.1.0", true)
	p := w.createProgram(t, ref, digest, denyEntry(deniedPort))
	w.startAgent(t)
	e := w.waitEntry(t, p, "attached", attachedAt(digest))
	if !strings.Contains(e.Signer, "from-secret") {
		t.Errorf("signer %q does not name the secret's key", e.Signer)
	}
}

// grantSecret lets the agent's test user get this one Secret, as the Role
// bpfleet-trust-keys does once a policy names it (operator/trustkeys).
func grantSecret(t *testing.T, s *corev1.Secret) {
	t.Helper()
	ctx := context.Background()
	om := metav1.ObjectMeta{Namespace: s.Namespace, Name: "trust-keys-" + s.Name}
	role := &rbacv1.Role{ObjectMeta: om,
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get"}, ResourceNames: []string{s.Name}}}}
	binding := &rbacv1.RoleBinding{ObjectMeta: om,
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role.Name},
		Subjects: []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: agentUser}}}
	for _, obj := range []client.Object{role, binding} {
		if err := env.Client.Create(ctx, obj); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = env.Client.Delete(context.Background(), obj) })
	}
}

// TestRebootWithNewKernel simulates a reboot into a new kernel: the agent
// stops, the pins go (a reboot empties bpffs), the node cache is lost too,
// and the agent starts with a new boot id and kernel release. It pulls the
// bundle again, verifies it, loads and attaches it anew, and the node's
// BpfNodeState records the new kernel.
func TestRebootWithNewKernel(t *testing.T) {
	w := newWorld(t)
	ref, digest := w.push(t, "v1", "0.1.0", true)
	p := w.createProgram(t, ref, digest, denyEntry(deniedPort))
	bootA, bootB := "boot-a-"+randHex(4), "boot-b-"+randHex(4)
	a := w.startAgent(t, func(o *controller.Options) { o.BootID = bootA })
	before := w.waitEntry(t, p, "attached before the reboot", attachedAt(digest))
	release := w.state(t).Status.Kernel.Release
	if k := w.state(t).Status.Kernel; k.BootID != bootA {
		t.Fatalf("kernel %+v, want boot id %s", k, bootA)
	}
	a.stop()
	if err := os.RemoveAll(w.root); err != nil { // detaches: only the pins held the links
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(w.stateDir, "bundles")); err != nil {
		t.Fatal(err)
	}
	if got := w.delivered(t, deniedPort, 5); got != 5 {
		t.Fatalf("%d of 5 datagrams to the denied port arrived with the pins gone: the filter still runs", got)
	}
	b, err := remote.New(remote.Options{PlainHTTP: true}).Fetch(context.Background(), w.repo, digest)
	if err != nil {
		t.Fatal(err)
	}
	layer := b.Manifest.Objects[0].Digest
	pulls := w.reg.BlobGets(layer)

	upgraded := release + "-upgraded"
	start := time.Now()
	w.startAgent(t, func(o *controller.Options) { o.BootID, o.KernelRelease = bootB, upgraded })
	after := w.waitEntry(t, p, "attached again after the reboot", func(s v1alpha1.ProgramState) bool {
		return attachedAt(digest)(s) && s.ID != before.ID
	})
	t.Logf("reboot into %s → reloaded from a fresh pull and reported in %s", upgraded, time.Since(start))
	if k := w.state(t).Status.Kernel; k.BootID != bootB || k.Release != upgraded {
		t.Errorf("kernel %+v, want boot id %s and release %s", k, bootB, upgraded)
	}
	if w.reg.BlobGets(layer) <= pulls {
		t.Errorf("the bundle was not pulled again with the node cache gone")
	}
	if after.LinkID == before.LinkID && after.LinkID != 0 {
		t.Errorf("link %d survived a reboot", after.LinkID)
	}
	if got := w.delivered(t, deniedPort, 20); got != 0 {
		t.Errorf("%d of 20 datagrams to the denied port arrived after the reload", got)
	}
}

// TestProgramTypeDeniedOnTheNode: the trust policy admits only tracepoint
// programs for the repository; the bundle is signed by its key but holds an
// XDP program. Even with the operator's status telling the node to run it
// (set by the test), the agent refuses before loading anything.
func TestProgramTypeDeniedOnTheNode(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	w.policy.Spec.AllowedProgramTypes = []string{"tracepoint"}
	if err := env.Client.Update(ctx, w.policy); err != nil {
		t.Fatalf("restrict the trust policy: %v", err)
	}
	ref, digest := w.push(t, "v1", "0.1.0", true)
	p := w.createProgram(t, ref, digest, denyEntry(deniedPort))
	w.startAgent(t)
	e := w.waitEntry(t, p, "refused for its program type", func(s v1alpha1.ProgramState) bool {
		return s.State == v1alpha1.PhaseFailed && s.Reason == v1alpha1.ReasonVerifyFailed
	})
	if e.ID != 0 || !strings.Contains(e.Message, "xdp") || !strings.Contains(e.Message, "program type") {
		t.Errorf("refused entry %+v: want no program and a message naming the denied type", e)
	}
	if left := w.bpffsLeft(t); len(left) != 0 {
		t.Errorf("something was pinned for a denied program type: %v", left)
	}
	if got := w.delivered(t, deniedPort, 5); got == 0 {
		t.Errorf("the XDP filter runs although the policy denies XDP")
	}
}

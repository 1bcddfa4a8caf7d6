// The real node agent harness TestTopReadsAgentStats needs: the parts of
// nodeagent/controller's agent_helpers_test.go it uses.

package plugin_test

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/bpfleet/bpfleet/api/v1alpha1"
	"github.com/bpfleet/bpfleet/bundles/build"
	"github.com/bpfleet/bpfleet/bundles/remote"
	"github.com/bpfleet/bpfleet/bundles/signing"
	"github.com/bpfleet/bpfleet/nodeagent/controller"
	"github.com/bpfleet/bpfleet/test/support/envtest"
	"github.com/bpfleet/bpfleet/test/support/kernelprog"
	"github.com/bpfleet/bpfleet/test/support/netns"
	"github.com/bpfleet/bpfleet/test/support/privileged"
	"github.com/bpfleet/bpfleet/test/support/registry"
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
	// The agent writes the node's BpfNodeState; this package's other tests
	// list every node's, so it goes once the agent has stopped (cleanups run
	// last-registered first, and startAgent registers the stop after this).
	t.Cleanup(func() {
		_ = env.Client.Delete(context.Background(), &v1alpha1.BpfNodeState{ObjectMeta: metav1.ObjectMeta{Name: w.node}})
	})
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

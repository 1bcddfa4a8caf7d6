package dataplane_test

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cilium/ebpf/link"
	"github.com/go-logr/logr/funcr"
	"k8s.io/apimachinery/pkg/types"

	"github.com/bpfleet/bpfleet/api/v1alpha1"
	"github.com/bpfleet/bpfleet/nodeagent/bpffs"
	"github.com/bpfleet/bpfleet/nodeagent/dataplane"
	"github.com/bpfleet/bpfleet/test/support/kernelprog"
)

// TestExclusiveRollback: an upgrade frees a netfilter hook (an exclusive
// kind: the kernel takes one program per hook and priority) before the
// new program attaches there; when the upgrade then fails on another link
// of the same BpfProgram (a uprobe whose binary was removed since v1
// attached), the old program is attached to the hook again, the same
// program (by the rollback, not by a later repair of the link), and keeps
// counting the packets that pass it.
func TestExclusiveRollback(t *testing.T) {
	e := newEnv(t)
	bash, err := os.ReadFile("/bin/bash")
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "bash")
	if err := os.WriteFile(bin, bash, 0o755); err != nil {
		t.Fatal(err)
	}
	uid := "exclusive-" + randHex(4)
	ds := apiDesired{Name: "exclusive", UID: types.UID(uid), Generation: 1, Digest: "sha256:v1", Bundle: bundle(t, "sha256:v1", kernelprog.Object),
		Spec: v1alpha1.BpfProgramSpec{Programs: []v1alpha1.ProgramAttachment{
			// Links swap in program@point order: the hook is freed before
			// the uprobe fails.
			{Name: kernelprog.Netfilter, Netfilter: &v1alpha1.NetfilterAttach{Family: "ipv4", Hook: "input",
				NetNS: filepath.Join("/var/run/netns", e.nsA.Name)}},
			{Name: kernelprog.Uprobe, Uprobe: &v1alpha1.UprobeAttach{Path: bin, Symbol: "readline"}},
		}}}
	// The rollback itself must attach the old program again; it logs an
	// error when it cannot (and a later repair of the dead link would
	// hide that the hook went without a program).
	var mu sync.Mutex
	var failedRollback []string
	d := e.open(t, func(o *dataplane.Options) {
		o.Log = funcr.New(func(prefix, args string) {
			t.Log(prefix, args)
			if strings.Contains(args, `"msg"="attach the old program again"`) {
				mu.Lock()
				defer mu.Unlock()
				failedRollback = append(failedRollback, args)
			}
		}, funcr.Options{})
	})
	v1 := d.Apply(ctx, parsed(ds))
	nf := row(t, v1, uid, kernelprog.Netfilter)
	wantAttached(t, nf)
	wantAttached(t, row(t, v1, uid, kernelprog.Uprobe))
	counts := func() uint64 { return e.counter(t, uid, 0) }
	before := counts()
	e.sendUDP(t, 7400, 5)
	eventually(t, time.Second, "v1 counting the datagrams", func() bool { return counts() > before })

	if err := os.Remove(bin); err != nil {
		t.Fatal(err)
	}
	ds.Digest, ds.Bundle = "sha256:v2", bundle(t, "sha256:v2", kernelprog.ObjectV2)
	v2 := d.Apply(ctx, parsed(ds))
	if st := row(t, v2, uid, kernelprog.Uprobe); st.Reason != v1alpha1.ReasonAttachFailed {
		t.Fatalf("upgrade with the uprobe's binary gone: want reason %s, got %s/%s: %s", v1alpha1.ReasonAttachFailed, st.State, st.Reason, st.Message)
	}

	mu.Lock()
	if len(failedRollback) > 0 {
		t.Fatalf("the rollback did not attach the old program again: %v", failedRollback)
	}
	mu.Unlock()

	// The hook holds the v1 program again, on a new link (the old one was
	// closed to free the hook), pinned where the record says.
	l, err := link.LoadPinnedLink(bpffs.Layout{Root: e.root}.Link(types.UID(uid), kernelprog.Netfilter, nf.AttachPoint), nil)
	if err != nil {
		t.Fatalf("netfilter link pin after the failed upgrade: %v", err)
	}
	defer l.Close()
	info, err := l.Info()
	if err != nil {
		t.Fatal(err)
	}
	if uint32(info.Program) != nf.ID {
		t.Fatalf("netfilter hook runs program %d after the failed upgrade, want v1's %d", info.Program, nf.ID)
	}
	if uint32(info.ID) == nf.LinkID {
		t.Fatalf("link %d unchanged: the upgrade never freed the hook, so the rollback went untested", info.ID)
	}
	before = counts()
	e.sendUDP(t, 7400, 5)
	eventually(t, time.Second, "v1 counting again after the rollback", func() bool { return counts() > before })
	d.Apply(ctx, nil)
}

// row returns the state of program prog of uid, failing when there is not
// exactly one.
func row(t *testing.T, states []dataplane.ProgramState, uid, prog string) dataplane.ProgramState {
	t.Helper()
	var out []dataplane.ProgramState
	for _, s := range states {
		if string(s.UID) == uid && s.Program == prog {
			out = append(out, s)
		}
	}
	if len(out) != 1 {
		t.Fatalf("want 1 state for %s/%s, got %d: %+v", uid, prog, len(out), states)
	}
	return out[0]
}

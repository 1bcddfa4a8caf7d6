package attach_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/bpfleet/bpfleet/nodeagent/attach"
	"github.com/bpfleet/bpfleet/nodeagent/internal/loader"
	"github.com/bpfleet/bpfleet/nodeagent/internal/probe"
	"github.com/bpfleet/bpfleet/nodeagent/netwatch"
	"github.com/bpfleet/bpfleet/test/support/kernelprog"
	"github.com/bpfleet/bpfleet/test/support/netns"
	"github.com/bpfleet/bpfleet/test/support/privileged"
)

func load(t *testing.T, names ...string) map[string]*ebpf.Program {
	t.Helper()
	cs, err := loader.ParseELF(kernelprog.Object)
	if err != nil {
		t.Fatal(err)
	}
	maps, err := loader.LoadMaps(cs, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, m := range maps {
			m.Close()
		}
	})
	progs := map[string]*ebpf.Program{}
	for _, n := range names {
		p, err := loader.LoadProgram(cs, n, maps, nil)
		if err != nil {
			t.Fatalf("load %s: %v", n, err)
		}
		t.Cleanup(func() { p.Close() })
		progs[n] = p
	}
	return progs
}

func progID(t *testing.T, p *ebpf.Program) ebpf.ProgramID {
	t.Helper()
	info, err := p.Info()
	if err != nil {
		t.Fatal(err)
	}
	id, _ := info.ID()
	return id
}

// TestXDPUpdate swaps the program behind an XDP link back and forth and
// measures Link.Update: the link id never changes.
func TestXDPUpdate(t *testing.T) {
	privileged.RequireBPFFS(t)
	ns := netns.New(t)
	veth := netns.NewVeth(t, ns, "", nil, "")
	src := netwatch.NewNetlink(filepath.Join("/var/run/netns", ns.Name))
	ifaces, err := src.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	progs := load(t, kernelprog.XDPPass, kernelprog.XDPFilter)
	hook := &attach.XDP{Named: attach.Named{Name: kernelprog.XDPPass}, Interfaces: netwatch.Selector{Names: []string{veth.A}}}
	ts, err := hook.Targets(attach.Env{Interfaces: ifaces})
	if err != nil || len(ts) != 1 {
		t.Fatalf("targets: %v %v", ts, err)
	}
	var l link.Link
	if err := src.Do(func() error {
		var err error
		l, err = ts[0].Attach(progs[kernelprog.XDPPass])
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if !ts[0].Alive(l) {
		t.Fatal("fresh link not alive")
	}
	info, _ := l.Info()
	linkID := info.ID

	const n = 100
	order := []string{kernelprog.XDPFilter, kernelprog.XDPPass}
	var total, worst time.Duration
	for i := 0; i < n; i++ {
		p := progs[order[i%2]]
		start := time.Now()
		if err := l.Update(p); err != nil {
			t.Fatal(err)
		}
		d := time.Since(start)
		total += d
		worst = max(worst, d)
		info, err := l.Info()
		if err != nil || info.ID != linkID || info.Program != progID(t, p) {
			t.Fatalf("after update %d: link %d (want %d) runs %d (want %d): %v", i, info.ID, linkID, info.Program, progID(t, p), err)
		}
	}
	t.Logf("XDP Link.Update: mean %s, worst %s over %d swaps", total/n, worst, n)
}

// TestKprobeAttachFails: the probe and the attach agree. On a kernel without
// CONFIG_KPROBES (this one) the attach returns an error instead of crashing;
// on one with kprobes it attaches.
func TestKprobeAttachFails(t *testing.T) {
	privileged.RequireBPFFS(t)
	progs := load(t, kernelprog.Kprobe)
	hook := &attach.Kprobe{Named: attach.Named{Name: kernelprog.Kprobe}, Function: "do_sys_openat2"}
	tg, err := hook.Targets(attach.Env{})
	if err != nil {
		t.Fatal(err)
	}
	have := probe.Kprobes() == nil
	l, err := tg[0].Attach(progs[kernelprog.Kprobe])
	switch {
	case err == nil && have:
		l.Close()
		t.Log("this kernel has kprobes: attached")
	case err == nil:
		l.Close()
		t.Fatal("probe says no kprobes, yet the kprobe attached")
	case have:
		t.Fatalf("probe says kprobes work, attach failed: %v", err)
	default:
		t.Logf("no kprobes here, attach refused: %v", err)
	}
}

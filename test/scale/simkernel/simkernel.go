// Package simkernel is a SIMULATED kernel backend for scale tests: a
// controller.Dataplane that pretends to load and attach eBPF programs. It
// touches no kernel. Loading and attaching take a configurable wall-clock
// latency (time.Sleep, so a thousand simulated nodes do not burn the
// machine's CPU on work a real fleet does on a thousand machines), and the
// states it reports have the shape the real dataplane reports: Attached with
// program and link ids, a tag, bpftool-like sizes and the attach point; or
// Failed at the new digest while the previous digest keeps running, when the
// simulator is told to fail that digest.
//
// It exists so that the real node agent reconciler, the real operator, the
// real API server, registry, bundle cache and signature checks can be
// measured with thousands of nodes on one machine.
package simkernel

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/bpfleet/bpfleet/api/v1alpha1"
	"github.com/bpfleet/bpfleet/nodeagent/controller"
)

// Options configure a simulated node kernel.
type Options struct {
	// Node names the simulated node (used in the boot id).
	Node string
	// LoadLatency is how long loading one program takes (verifier, JIT).
	LoadLatency time.Duration
	// AttachLatency is how long attaching one program takes.
	AttachLatency time.Duration
	// Release is the simulated kernel release; default "6.18.0-simkernel".
	Release string
	// Fail tells whether loading digest fails on this node; nil never fails.
	Fail func(digest string) bool
}

// ids hands out program, link and map ids unique in the process, like the
// kernel's idr does on one machine.
var ids atomic.Uint32

// Dataplane is a simulated node kernel. It satisfies controller.Dataplane.
type Dataplane struct {
	opts    Options
	changes chan struct{}

	mu      sync.Mutex
	entries map[types.UID]*entry
	loads   int
}

// entry is one BpfProgram on the simulated node.
type entry struct {
	name       string
	generation int64
	runsKey    string
	signer     string
	// What runs.
	digest   string
	loadedAt time.Time
	progs    map[string]loaded
	// How the last apply went.
	desiredDigest string
	spec          v1alpha1.BpfProgramSpec
	failure       string
	hold          string
}

// loaded is one simulated kernel program and its link.
type loaded struct {
	id, linkID, mapID uint32
	tag               string
}

// New returns an empty simulated node kernel.
func New(opts Options) *Dataplane {
	if opts.Release == "" {
		opts.Release = "6.18.0-simkernel"
	}
	return &Dataplane{opts: opts, changes: make(chan struct{}), entries: map[types.UID]*entry{}}
}

// Apply makes the simulated node run exactly desired, as the real dataplane
// does: a held entry keeps what runs, a new digest is loaded and attached
// (sleeping the configured latencies), a digest told to fail is reported
// Failed while the previous digest keeps running, and entries no longer
// desired are removed.
func (d *Dataplane) Apply(ctx context.Context, desired []controller.Desired) []v1alpha1.ProgramState {
	d.mu.Lock()
	defer d.mu.Unlock()
	want := map[types.UID]bool{}
	for _, ds := range desired {
		want[ds.UID] = true
	}
	for uid := range d.entries {
		if !want[uid] {
			delete(d.entries, uid)
		}
	}
	for _, ds := range desired {
		e := d.entries[ds.UID]
		if e == nil {
			e = &entry{}
			d.entries[ds.UID] = e
		}
		e.name, e.signer = ds.Name, ds.Signer
		if rk := ds.RunsKey(); e.generation == 0 || rk != e.runsKey {
			e.generation, e.runsKey = ds.Generation, rk // as the real dataplane does
		}
		e.desiredDigest, e.failure, e.hold = ds.Digest, "", ""
		switch {
		case ds.Hold != nil:
			e.hold = ds.Hold.Error()
			if e.digest == "" {
				e.spec = ds.Spec
			}
			continue
		case ds.Bundle == nil:
			e.hold = "bundle not available on this node yet"
			continue
		case e.digest == ds.Digest:
			e.spec = ds.Spec
			continue
		}
		for _, pa := range ds.Spec.Programs {
			if _, ok := ds.Bundle.Program(pa.Name); !ok {
				e.failure = fmt.Sprintf("program %s is not in the bundle", pa.Name)
			}
		}
		if e.failure == "" && d.opts.Fail != nil && d.opts.Fail(ds.Digest) {
			d.sleep(ctx, d.opts.LoadLatency)
			e.failure = "simulated verifier rejection: R1 invalid mem access 'scalar'"
		}
		if e.failure != "" {
			if e.digest == "" {
				e.spec = ds.Spec
			}
			continue
		}
		progs := map[string]loaded{}
		for _, pa := range ds.Spec.Programs {
			d.sleep(ctx, d.opts.LoadLatency)
			d.loads++
			sum := sha256.Sum256([]byte(ds.Digest + "/" + pa.Name))
			progs[pa.Name] = loaded{id: ids.Add(1), mapID: ids.Add(1), tag: hex.EncodeToString(sum[:8])}
		}
		for name, p := range progs {
			d.sleep(ctx, d.opts.AttachLatency)
			p.linkID = ids.Add(1)
			progs[name] = p
		}
		e.digest, e.spec, e.progs, e.loadedAt = ds.Digest, ds.Spec, progs, time.Now()
	}
	return d.snapshotLocked()
}

func (d *Dataplane) sleep(ctx context.Context, dur time.Duration) {
	if dur <= 0 {
		return
	}
	t := time.NewTimer(dur)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// Snapshot returns the state of every simulated program and attach point.
func (d *Dataplane) Snapshot() []v1alpha1.ProgramState {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.snapshotLocked()
}

func (d *Dataplane) snapshotLocked() []v1alpha1.ProgramState {
	uids := make([]types.UID, 0, len(d.entries))
	for uid := range d.entries {
		uids = append(uids, uid)
	}
	sort.Slice(uids, func(i, j int) bool {
		a, b := d.entries[uids[i]], d.entries[uids[j]]
		if a.name != b.name {
			return a.name < b.name
		}
		return uids[i] < uids[j]
	})
	var out []v1alpha1.ProgramState
	for _, uid := range uids {
		e := d.entries[uid]
		for _, pa := range e.spec.Programs {
			st := v1alpha1.ProgramState{
				BpfProgram:  e.name,
				UID:         uid,
				Generation:  e.generation,
				Digest:      e.digest,
				Signer:      e.signer,
				Program:     pa.Name,
				AttachPoint: attachPoint(pa),
				State:       v1alpha1.PhasePending,
			}
			if st.Digest == "" {
				st.Digest = e.desiredDigest
			}
			if p, ok := e.progs[pa.Name]; ok {
				at := metav1.NewTime(e.loadedAt)
				st.State, st.Reason = v1alpha1.PhaseAttached, v1alpha1.ReasonAttached
				st.ID, st.Tag, st.Type, st.Name = p.id, p.tag, "TracePoint", truncateName(pa.Name)
				st.LoadedAt = &at
				st.BytesXlated, st.BytesJited, st.BytesMemlock, st.VerifiedInsns = 1224, 704, 4096, 153
				st.MapIDs, st.BTFID, st.LinkID = []uint32{p.mapID}, 1, p.linkID
			}
			switch {
			case e.hold != "":
				st.Reason, st.Message = v1alpha1.ReasonWaitingForBundle, e.hold
			case e.failure != "":
				msg := e.failure
				if st.State == v1alpha1.PhaseAttached {
					msg = fmt.Sprintf("keeping %s running: %s", e.digest, msg)
				}
				st.State, st.Reason, st.Message, st.Digest = v1alpha1.PhaseFailed, v1alpha1.ReasonVerifierRejected, msg, e.desiredDigest
			}
			out = append(out, st)
		}
	}
	return out
}

// attachPoint names where pa attaches, in the real dataplane's words for
// the kinds the scale test uses.
func attachPoint(pa v1alpha1.ProgramAttachment) string {
	if t := pa.Tracepoint; t != nil {
		return "tracepoint/" + t.Group + "/" + t.Name
	}
	return "simulated/" + pa.Name
}

// truncateName cuts a program name to the kernel's 15 characters.
func truncateName(s string) string {
	if len(s) > 15 {
		return s[:15]
	}
	return s
}

// Loads returns how many programs the simulated node loaded so far.
func (d *Dataplane) Loads() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.loads
}

// Changes never fires: simulated nodes have no interfaces coming and going.
func (d *Dataplane) Changes() <-chan struct{} { return d.changes }

// Kernel identifies the simulated kernel.
func (d *Dataplane) Kernel() v1alpha1.KernelInfo {
	return v1alpha1.KernelInfo{Release: d.opts.Release, Architecture: "amd64", BTF: true, BootID: "sim-" + d.opts.Node}
}

// Features lists the simulated kernel's capabilities.
func (d *Dataplane) Features() []v1alpha1.Feature {
	return []v1alpha1.Feature{{Name: "btf", Supported: true}, {Name: "tcx", Supported: true}, {Name: "tracepoint", Supported: true}}
}

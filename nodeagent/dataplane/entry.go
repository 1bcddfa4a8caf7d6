package dataplane

import (
	"errors"
	// ENOTSUPP (524) is kernel-internal, absent from x/sys/unix
	"github.com/cilium/ebpf"
	"k8s.io/apimachinery/pkg/types"

	"github.com/bpfleet/bpfleet/bundles/format"
	"github.com/bpfleet/bpfleet/nodeagent/attach"
	"github.com/bpfleet/bpfleet/nodeagent/bpffs"
	"github.com/bpfleet/bpfleet/nodeagent/internal/failpoint"
	"github.com/bpfleet/bpfleet/nodeagent/internal/loader"
)

// entry is one BpfProgram on this node: what runs, and how the last apply went.
type entry struct {
	uid        types.UID
	name       string
	generation int64  // the generation that last changed what the entry runs
	runsKey    string // what the entry runs, as far as the spec says
	signer     string

	// What runs.
	loaded   bool // a load succeeded (or was re-adopted); maps may be empty
	digest   string
	loadHash string
	object   string
	spec     Spec    // the spec the links follow
	hooks    hookSet // spec's attach blocks
	// specApplied: spec and hooks hold a spec applied once (not so for
	// an entry re-adopted from its record before the first apply).
	specApplied bool
	maps        map[string]*ebpf.Map
	programs    map[string]*program    // by name: what is loaded and how it went
	links       map[string]*attachment // by linkKey
	written     []loader.Entry         // the map entries last written
	// entriesHash is the hash of the spec's mapEntries last written.
	entriesHash string
	// mustReload: what runs cannot be trusted as recorded (a pinned
	// program's tag differs, or a recorded pin is missing): the next apply
	// reloads from the bundle even when the load hash is unchanged.
	mustReload bool
	record     bpffs.Record

	// How the last apply went.
	desiredDigest string
	desiredSpec   Spec
	desiredHooks  hookSet
	// waiting says why the entry cannot move to the desired digest now
	// (a Hold: registry down, verification failed, wave not come): what
	// runs keeps running, nothing is reloaded.
	waiting error
	// loadFailure: moving to the desired digest was tried and failed (load,
	// verifier, map entries, swap); what ran keeps running.
	loadFailure error
	attachErr   map[string]error
	// tamperNotice reports tampering found and repaired, until the next
	// regular load.
	tamperNotice *notice
}

// program is one program of an entry: what is loaded, and how its last
// load and its last plan went.
type program struct {
	prog *ebpf.Program // nil when not loaded
	tag  string        // the kernel's tag of prog
	// loadErr says why the program is not loaded, for the running load.
	loadErr error
	// targets are where the spec wants the program, as last planned, and
	// planErr why it has none.
	targets []attach.Target
	planErr error
}

// program returns the named program of e, added when new.
func (e *entry) program(name string) *program {
	pg := e.programs[name]
	if pg == nil {
		pg = &program{}
		e.programs[name] = pg
	}
	return pg
}

// prog is the loaded program of that name, nil when none is.
func (e *entry) prog(name string) *ebpf.Program {
	if pg := e.programs[name]; pg != nil {
		return pg.prog
	}
	return nil
}

// loadedProgs are the loaded programs by name.
func (e *entry) loadedProgs() map[string]*ebpf.Program {
	out := map[string]*ebpf.Program{}
	for name, pg := range e.programs {
		if pg.prog != nil {
			out[name] = pg.prog
		}
	}
	return out
}

// setLoaded records p as the loaded program name, with its tag.
func (e *entry) setLoaded(name string, p *ebpf.Program) {
	pg := e.program(name)
	pg.prog, pg.tag = p, ""
	if info, err := p.Info(); err == nil {
		pg.tag = info.Tag
	}
}

// closePrograms unpins (when unpin) and closes every loaded program.
func (e *entry) closePrograms(unpin bool) {
	for _, pg := range e.programs {
		if pg.prog == nil {
			continue
		}
		if unpin {
			_ = pg.prog.Unpin()
		}
		pg.prog.Close()
		pg.prog, pg.tag = nil, ""
	}
}

// notice is a status reason and message for running rows.
type notice struct{ reason, message string }

func newEntry(uid types.UID) *entry {
	return &entry{
		uid:      uid,
		maps:     map[string]*ebpf.Map{},
		programs: map[string]*program{},
		links:    map[string]*attachment{},
	}
}

func isNilBundle(b Bundle) bool {
	if b == nil {
		return true
	}
	fb, ok := b.(*format.Bundle)
	return ok && fb == nil
}

// applyEntry moves one BpfProgram towards ds.
func (d *Dataplane) applyEntry(e *entry, ds *Desired, net netState) {
	e.name, e.signer = ds.Name, ds.Signer
	if rk := ds.RunsKey(); e.generation == 0 || rk != e.runsKey {
		e.generation, e.runsKey = ds.Generation, rk
	}
	e.desiredDigest, e.desiredSpec, e.desiredHooks = ds.Digest, ds.Spec, ds.hooks
	e.waiting, e.loadFailure = nil, nil

	hold := ds.Hold
	if hold == nil && isNilBundle(ds.Bundle) {
		hold = Hold(ReasonWaitingForBundle, errors.New("bundle not available on this node yet"))
	}
	lh := loadHash(ds)
	if hold != nil {
		e.waiting = hold
		if e.loaded && !e.mustReload && e.loadHash == lh {
			// The desired code already runs: apply what needs no bundle
			// (map entries, attach points of loaded programs), so a new
			// rule takes effect even while the registry is down.
			d.writeSpecEntries(e, ds)
			d.followSpec(e, ds, net)
		} else if e.specApplied {
			d.reconcileLinks(e, e.spec, e.hooks, net)
		}
		d.writeRecord(e)
		return
	}

	if !e.loaded || e.loadHash != lh || e.mustReload {
		if err := d.reload(e, ds, lh); err != nil {
			d.log.Error(err, "load failed, keeping what runs", "bpfProgram", ds.Name, "digest", ds.Digest, "running", e.digest)
			e.loadFailure = err
			if e.specApplied {
				d.reconcileLinks(e, e.spec, e.hooks, net)
			}
			d.writeRecord(e)
			return
		}
	} else {
		d.loadMissing(e, ds)
		d.writeSpecEntries(e, ds)
	}
	d.followSpec(e, ds, net)
	failpoint.Inject("after-pin")
	d.writeRecord(e)
	failpoint.Inject("after-record")
}

// writeSpecEntries writes ds's map entries into the running maps; a failure
// is the entry's load failure.
func (d *Dataplane) writeSpecEntries(e *entry, ds *Desired) {
	if err := d.writeEntries(e, ds.Spec.MapEntries, e.maps); err != nil {
		e.loadFailure = withReason(ReasonMapUpdateFailed, err)
	}
}

// followSpec makes ds the spec e's links follow, attaches and detaches to
// match it, and pins what runs.
func (d *Dataplane) followSpec(e *entry, ds *Desired, net netState) {
	e.spec, e.hooks, e.specApplied, e.digest = ds.Spec, ds.hooks, true, ds.Digest
	d.reconcileLinks(e, ds.Spec, ds.hooks, net)
	d.dropUnused(e)
	d.ensurePins(e)
}

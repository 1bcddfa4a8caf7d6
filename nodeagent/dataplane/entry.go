package dataplane

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"syscall" // ENOTSUPP (524) is kernel-internal, absent from x/sys/unix
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
	"k8s.io/apimachinery/pkg/types"

	"github.com/bpfleet/bpfleet/api/v1alpha1"
	"github.com/bpfleet/bpfleet/bundles/format"
	"github.com/bpfleet/bpfleet/nodeagent/attach"
	"github.com/bpfleet/bpfleet/nodeagent/bpffs"
	"github.com/bpfleet/bpfleet/nodeagent/failpoint"
	"github.com/bpfleet/bpfleet/nodeagent/hookspec"
	"github.com/bpfleet/bpfleet/nodeagent/loader"
	"github.com/bpfleet/bpfleet/nodeagent/probe"
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
	spec     v1alpha1.BpfProgramSpec // the spec the links follow
	hooks    hookspec.Set            // spec's attach blocks
	specSet  bool
	maps     map[string]*ebpf.Map
	progs    map[string]*ebpf.Program
	tags     map[string]string
	links    map[string]*attachment // by linkKey
	written  []loader.Entry
	wHash    string
	tampered bool
	record   bpffs.Record

	// How the last apply went.
	desiredDigest string
	desiredSpec   v1alpha1.BpfProgramSpec
	desiredHooks  hookspec.Set
	hold          error
	failure       error            // the desired digest could not be loaded; what ran keeps running
	progErr       map[string]error // per program, for the running load
	targets       map[string][]attach.Target
	planErr       map[string]error
	attachErr     map[string]error
	notice        *notice // e.g. tampering found and repaired
}

type notice struct{ reason, message string }

type attachment struct {
	target attach.Target
	link   link.Link
}

func newEntry(uid types.UID) *entry {
	return &entry{
		uid:   uid,
		maps:  map[string]*ebpf.Map{},
		progs: map[string]*ebpf.Program{},
		tags:  map[string]string{},
		links: map[string]*attachment{},
	}
}

func linkKey(program, point string) string { return program + "@" + point }

// reasonError gives an error a status reason.
type reasonError struct {
	reason string
	err    error
}

func (e *reasonError) Error() string { return e.err.Error() }
func (e *reasonError) Unwrap() error { return e.err }

func withReason(reason string, err error) error {
	if err == nil {
		return nil
	}
	return &reasonError{reason: reason, err: err}
}

// reasonFor maps an error to a status reason; def when nothing more precise fits.
func reasonFor(err error, def string) string {
	var he *HoldError
	var ve *ebpf.VerifierError
	var re *reasonError
	switch {
	case errors.As(err, &he):
		return he.Reason
	case errors.Is(err, ebpf.ErrNotSupported):
		return v1alpha1.ReasonNotSupported
	case errors.As(err, &ve) && hasLog(ve):
		return v1alpha1.ReasonVerifierRejected
	case errors.Is(err, loader.ErrInvalidConstant):
		return v1alpha1.ReasonInvalidConstant
	case errors.Is(err, loader.ErrInvalidMapEntry):
		return v1alpha1.ReasonMapUpdateFailed
	case errors.Is(err, loader.ErrNoProgram):
		return v1alpha1.ReasonProgramNotInBundle
	case errors.Is(err, attach.ErrTypeMismatch):
		return v1alpha1.ReasonAttachMismatch
	case errors.As(err, &re):
		return re.reason
	}
	return def
}

// hasLog tells whether the verifier said anything (a refusal before the
// verifier ran, e.g. EPERM, carries an empty log).
func hasLog(ve *ebpf.VerifierError) bool {
	for _, l := range ve.Log {
		if strings.TrimSpace(l) != "" {
			return true
		}
	}
	return false
}

// loadError classifies a program load error: the kernel refusing BTF
// tracing programs (fentry, fexit, tp_btf) outright means not supported.
func loadError(ps *ebpf.ProgramSpec, err error) error {
	var ve *ebpf.VerifierError
	if ps != nil && ps.Type == ebpf.Tracing && (!errors.As(err, &ve) || !hasLog(ve)) &&
		(errors.Is(err, unix.EPERM) || errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, syscall.Errno(524))) {
		return fmt.Errorf("kernel refuses BTF tracing programs (fentry/fexit/tp_btf): %w: %w", ebpf.ErrNotSupported, err)
	}
	return withReason(v1alpha1.ReasonLoadFailed, err)
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
	e.hold, e.failure = nil, nil

	hold := ds.Hold
	if hold == nil && isNilBundle(ds.Bundle) {
		hold = Hold(v1alpha1.ReasonWaitingForBundle, errors.New("bundle not available on this node yet"))
	}
	lh := loadHash(ds)
	if hold != nil {
		e.hold = hold
		if e.loaded && !e.tampered && e.loadHash == lh {
			// The desired code already runs: apply what needs no bundle
			// (map entries, attach points of loaded programs), so a new
			// rule takes effect even while the registry is down.
			if err := d.writeEntries(e, ds.Spec.MapEntries, e.maps); err != nil {
				e.failure = withReason(v1alpha1.ReasonMapUpdateFailed, err)
			}
			e.spec, e.hooks, e.specSet, e.digest = ds.Spec, ds.hooks, true, ds.Digest
			d.reconcileLinks(e, ds.Spec, ds.hooks, net)
			d.dropUnused(e)
			d.ensurePins(e)
		} else if e.specSet {
			d.reconcileLinks(e, e.spec, e.hooks, net)
		}
		d.writeRecord(e)
		return
	}

	if !e.loaded || e.loadHash != lh || e.tampered {
		if err := d.reload(e, ds, lh); err != nil {
			d.log.Error(err, "load failed, keeping what runs", "bpfProgram", ds.Name, "digest", ds.Digest, "running", e.digest)
			e.failure = err
			if e.specSet {
				d.reconcileLinks(e, e.spec, e.hooks, net)
			}
			d.writeRecord(e)
			return
		}
	} else {
		d.loadMissing(e, ds)
		if err := d.writeEntries(e, ds.Spec.MapEntries, e.maps); err != nil {
			e.failure = withReason(v1alpha1.ReasonMapUpdateFailed, err)
		}
	}
	e.spec, e.hooks, e.specSet, e.digest = ds.Spec, ds.hooks, true, ds.Digest
	d.reconcileLinks(e, ds.Spec, ds.hooks, net)
	d.dropUnused(e)
	d.ensurePins(e)
	failpoint.Inject("after-pin")
	d.writeRecord(e)
	failpoint.Inject("after-record")
}

// loadHash hashes what needs a reload when it changes.
func loadHash(ds *Desired) string {
	var keys []string
	for _, pa := range ds.Spec.Programs {
		if h := ds.hooks.Hooks[pa.Name]; h != nil {
			if k := h.LoadKey(); k != "" {
				keys = append(keys, k)
			}
		}
	}
	return bpffs.LoadHash(ds.Digest, ds.Spec.Constants, keys...)
}

// parse reads the object holding the spec's programs, checks that the
// manifest describes them truly and that the object's maps fit the limits,
// sets the constants and prepares each program for its attach block.
// Per-program problems (type mismatch, program type unsupported here) are
// returned in progErr.
func (d *Dataplane) parse(ds *Desired) (cs *ebpf.CollectionSpec, object string, progErr map[string]error, err error) {
	progErr = map[string]error{}
	declared := map[string]*format.Program{}
	for _, pa := range ds.Spec.Programs {
		mp, ok := ds.Bundle.Program(pa.Name)
		if !ok {
			progErr[pa.Name] = fmt.Errorf("program %s: %w", pa.Name, loader.ErrNoProgram)
			continue
		}
		declared[pa.Name] = mp
		if object == "" {
			object = mp.Object
		} else if object != mp.Object {
			return nil, "", nil, withReason(v1alpha1.ReasonLoadFailed,
				fmt.Errorf("programs of one BpfProgram must come from one object, got %s and %s", object, mp.Object))
		}
	}
	if object == "" {
		return nil, "", nil, withReason(v1alpha1.ReasonProgramNotInBundle, fmt.Errorf("no program of the spec is in the bundle: %w", loader.ErrNoProgram))
	}
	elf, err := ds.Bundle.Object(object)
	if err != nil {
		return nil, "", nil, withReason(v1alpha1.ReasonLoadFailed, fmt.Errorf("read object %s: %w", object, err))
	}
	cs, err = loader.ParseELF(elf)
	if err != nil {
		return nil, "", nil, withReason(v1alpha1.ReasonLoadFailed, err)
	}
	// The trust policies judged the manifest; the kernel gets the ELF. A
	// bundle whose manifest misstates a program is refused whole.
	for _, pa := range ds.Spec.Programs {
		if mp := declared[pa.Name]; mp != nil {
			if err := format.CheckProgram(mp, cs.Programs[pa.Name]); err != nil {
				return nil, "", nil, withReason(v1alpha1.ReasonBundleInvalid, err)
			}
		}
	}
	// Map limits before anything else reaches the kernel (probes included).
	if err := loader.CheckMapSizes(cs); err != nil {
		return nil, "", nil, withReason(v1alpha1.ReasonLoadFailed, err)
	}
	if err := loader.SetConstants(cs, constants(ds.Spec.Constants)); err != nil {
		return nil, "", nil, err
	}
	for _, pa := range ds.Spec.Programs {
		if progErr[pa.Name] != nil {
			continue
		}
		ps, ok := cs.Programs[pa.Name]
		if !ok {
			progErr[pa.Name] = fmt.Errorf("program %s in object %s: %w", pa.Name, object, loader.ErrNoProgram)
			continue
		}
		h := ds.hooks.Hooks[pa.Name]
		if h == nil {
			progErr[pa.Name] = ds.hooks.Errs[pa.Name]
			continue
		}
		if err := h.Prepare(ps); err != nil {
			progErr[pa.Name] = err
			continue
		}
		if err := supported(ps, h); err != nil {
			progErr[pa.Name] = err
		}
	}
	return cs, object, progErr, nil
}

// supported decides early, from cached probes, whether the program can work here.
func supported(ps *ebpf.ProgramSpec, h attach.Hook) error {
	if err := probe.ProgramType(ps.Type); err != nil {
		return err
	}
	return h.Supported()
}

// reload loads the desired digest next to what runs and swaps it in: links
// that can be updated in place are (Link.Update: same link, new program),
// others get the new program attached before the old link is closed. Any
// failure leaves what runs untouched.
func (d *Dataplane) reload(e *entry, ds *Desired, lh string) error {
	failpoint.Inject("after-pull")
	loadStart := time.Now()
	cs, object, progErr, err := d.parse(ds)
	if err != nil {
		return err
	}
	running := len(e.links) > 0 || len(e.progs) > 0
	if running && len(progErr) > 0 {
		return firstErr(progErr)
	}
	maps, err := loader.LoadMaps(cs, d.cache)
	if err != nil {
		return withReason(v1alpha1.ReasonLoadFailed, err)
	}
	progs := map[string]*ebpf.Program{}
	discard := func() {
		for _, p := range progs {
			p.Close()
		}
		for _, m := range maps {
			m.Close()
		}
	}
	for _, pa := range ds.Spec.Programs {
		if progErr[pa.Name] != nil {
			continue
		}
		p, err := loader.LoadProgram(cs, pa.Name, maps, d.cache)
		if err != nil {
			err = loadError(cs.Programs[pa.Name], err)
			if running {
				discard()
				return err
			}
			progErr[pa.Name] = err
			continue
		}
		progs[pa.Name] = p
	}
	// Entries go into the new maps before any packet reaches the new programs.
	entries, err := loader.DecodeMapEntries(cs, mapEntries(ds.Spec.MapEntries))
	if err == nil {
		err = loader.WriteEntries(maps, entries, nil)
	}
	if err != nil {
		discard()
		return withReason(v1alpha1.ReasonMapUpdateFailed, err)
	}
	d.observe(PhaseLoad, loadStart)
	failpoint.Inject("after-load")

	// Swap what runs.
	var undo []func()
	rollback := func() {
		for i := len(undo) - 1; i >= 0; i-- {
			undo[i]()
		}
	}
	newLinks := map[string]link.Link{}
	for key, a := range e.links {
		np := progs[a.target.Program]
		if np == nil {
			continue // program left the spec: reconcileLinks detaches it
		}
		if attach.Updatable(a.target.Kind) {
			old := e.progs[a.target.Program]
			swapStart := time.Now()
			err := a.link.Update(np)
			d.observe(PhaseAttach, swapStart)
			if err != nil {
				rollback()
				discard()
				return withReason(v1alpha1.ReasonAttachFailed, fmt.Errorf("update link %s: %w", a.target.Point, err))
			}
			if old != nil {
				l := a.link
				undo = append(undo, func() { _ = l.Update(old) })
			}
			continue
		}
		t := a.target
		if t.Hook == nil {
			// Re-adopted before the spec was known again: attach by the
			// desired block of the program, when it is of the same kind.
			if h := ds.hooks.Hooks[t.Program]; h != nil && h.Kind() == t.Kind {
				t.Hook, t.HostRoot = h, d.opts.HostRoot
			}
		}
		nl, err := d.attachTarget(t, np)
		if err != nil {
			rollback()
			for _, l := range newLinks {
				l.Close()
			}
			discard()
			return withReason(v1alpha1.ReasonAttachFailed, err)
		}
		newLinks[key] = nl
	}
	failpoint.Inject("after-attach")

	// Commit: the new programs run everywhere; replace the old objects and pins.
	if !running {
		// Pins without a record (a crash before the record was written).
		_ = d.layout.Remove(e.uid)
	}
	if err := d.layout.Prepare(e.uid); err != nil {
		d.log.Error(err, "prepare pin directory", "uid", e.uid)
	}
	for key, nl := range newLinks {
		a := e.links[key]
		_ = a.link.Unpin()
		_ = a.link.Close()
		a.link = nl
		if err := nl.Pin(d.layout.Link(e.uid, a.target.Program, a.target.Point)); err != nil {
			d.log.Error(err, "pin link", "point", a.target.Point)
		}
	}
	for _, p := range e.progs {
		_ = p.Unpin()
		p.Close()
	}
	for _, m := range e.maps {
		_ = m.Unpin()
		m.Close()
	}
	e.maps, e.progs, e.tags = maps, progs, map[string]string{}
	for name, p := range progs {
		if info, err := p.Info(); err == nil {
			e.tags[name] = info.Tag
		}
	}
	d.ensurePins(e)
	e.written, e.wHash = entries, hashEntries(ds.Spec.MapEntries)
	if !e.tampered {
		e.notice = nil // a tampering notice lasts until the next regular load
	}
	e.object, e.loadHash, e.digest, e.progErr, e.tampered = object, lh, ds.Digest, progErr, false
	e.loaded = true
	return nil
}

func firstErr(m map[string]error) error {
	var names []string
	for n := range m {
		names = append(names, n)
	}
	if len(names) == 0 {
		return nil
	}
	min := names[0]
	for _, n := range names {
		if n < min {
			min = n
		}
	}
	return m[min]
}

// loadMissing loads programs the spec names that are not loaded yet (added
// to the spec, or lost), against the running maps.
func (d *Dataplane) loadMissing(e *entry, ds *Desired) {
	var missing []v1alpha1.ProgramAttachment
	for _, pa := range ds.Spec.Programs {
		if e.progs[pa.Name] == nil && e.progErr[pa.Name] == nil {
			missing = append(missing, pa)
		}
	}
	if len(missing) == 0 {
		return
	}
	if e.progErr == nil {
		e.progErr = map[string]error{}
	}
	cs, _, progErr, err := d.parse(ds)
	if err != nil {
		for _, pa := range missing {
			e.progErr[pa.Name] = err
		}
		return
	}
	for _, pa := range missing {
		if err := progErr[pa.Name]; err != nil {
			e.progErr[pa.Name] = err
			continue
		}
		p, err := loader.LoadProgram(cs, pa.Name, e.maps, d.cache)
		if err != nil {
			e.progErr[pa.Name] = loadError(cs.Programs[pa.Name], err)
			continue
		}
		e.progs[pa.Name] = p
		if info, err := p.Info(); err == nil {
			e.tags[pa.Name] = info.Tag
		}
	}
}

func hashEntries(entries []v1alpha1.MapEntry) string {
	b, _ := json.Marshal(entries)
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// writeEntries writes the spec's map entries into running maps when they
// changed, deleting the keys no longer listed. Programs are not reloaded.
func (d *Dataplane) writeEntries(e *entry, spec []v1alpha1.MapEntry, maps map[string]*ebpf.Map) error {
	h := hashEntries(spec)
	if h == e.wHash {
		return nil
	}
	entries, err := loader.DecodeMapEntriesLive(maps, mapEntries(spec))
	if err != nil {
		return err
	}
	if err := loader.WriteEntries(maps, entries, e.written); err != nil {
		return err
	}
	e.written, e.wHash = entries, h
	return nil
}

// attachTarget attaches p at t (inside t's network namespace).
func (d *Dataplane) attachTarget(t attach.Target, p *ebpf.Program) (link.Link, error) {
	defer d.observe(PhaseAttach, time.Now())
	return t.Attach(p)
}

// reconcileLinks attaches every target of spec that has no live link, and
// detaches links no target wants. Links of per-interface programs are kept
// when the interfaces cannot be listed (a transient failure).
func (d *Dataplane) reconcileLinks(e *entry, spec v1alpha1.BpfProgramSpec, hooks hookspec.Set, net netState) {
	e.targets, e.planErr, e.attachErr = map[string][]attach.Target{}, map[string]error{}, map[string]error{}
	want := map[string]attach.Target{}
	keep := map[string]bool{}
	env := attach.Env{Interfaces: net.ifaces, Primary: net.primary, InterfacesErr: net.err, Netns: d.src, HostRoot: d.opts.HostRoot}
	for _, pa := range spec.Programs {
		h := hooks.Hooks[pa.Name]
		if h == nil {
			e.planErr[pa.Name] = hooks.Errs[pa.Name]
			continue
		}
		if attach.PerInterface(h.Kind()) && net.err != nil {
			e.planErr[pa.Name] = withReason(v1alpha1.ReasonAttachFailed, fmt.Errorf("list interfaces: %w", net.err))
			keep[pa.Name] = true
			continue
		}
		ts, err := h.Targets(env)
		if err != nil {
			e.planErr[pa.Name] = err
			continue
		}
		for i := range ts {
			want[linkKey(ts[i].Program, ts[i].Point)] = ts[i]
		}
		e.targets[pa.Name] = ts
	}
	for key, a := range e.links {
		t, ok := want[key]
		if !ok {
			if !keep[a.target.Program] {
				d.detach(e, key, a)
			}
			continue
		}
		if !t.Alive(a.link) {
			d.log.Info("link gone, attaching again", "bpfProgram", e.name, "point", t.Point)
			d.detach(e, key, a)
			continue
		}
		a.target = t
		// A link may run another program: swapped through its pin while the
		// agent ran or was down (tampering). Ours, loaded from the verified
		// bundle, goes back in its place.
		if p := e.progs[t.Program]; p != nil && attach.Updatable(t.Kind) && !sameProgram(a.link, p) {
			ran := linkProgramID(a.link)
			if err := a.link.Update(p); err != nil {
				e.attachErr[key] = withReason(v1alpha1.ReasonAttachFailed, err)
			} else {
				e.notice = &notice{reason: v1alpha1.ReasonTampered,
					message: fmt.Sprintf("link %s ran program id %d instead of %s: %s restored from the verified bundle", t.Point, ran, t.Program, t.Program)}
				d.log.Info("link ran another program: tampered, restored", "bpfProgram", e.name, "point", t.Point, "ran", ran)
			}
		}
	}
	for key, t := range want {
		if _, ok := e.links[key]; ok {
			continue
		}
		p := e.progs[t.Program]
		if p == nil {
			continue
		}
		l, err := d.attachTarget(t, p)
		if err != nil {
			e.attachErr[key] = withReason(v1alpha1.ReasonAttachFailed, err)
			continue
		}
		failpoint.Inject("after-attach")
		if err := d.layout.Prepare(e.uid); err != nil {
			d.log.Error(err, "prepare pin directory")
		}
		if err := l.Pin(d.layout.Link(e.uid, t.Program, t.Point)); err != nil {
			d.log.Error(err, "pin link", "point", t.Point)
		}
		e.links[key] = &attachment{target: t, link: l}
	}
}

// linkProgramID is the id of the program l runs; 0 when unknown.
func linkProgramID(l link.Link) ebpf.ProgramID {
	li, err := l.Info()
	if err != nil {
		return 0
	}
	return li.Program
}

func sameProgram(l link.Link, p *ebpf.Program) bool {
	ran := linkProgramID(l)
	pi, err := p.Info()
	if ran == 0 || err != nil {
		return true
	}
	id, ok := pi.ID()
	return !ok || ran == id
}

// detach unpins and detaches one link.
func (d *Dataplane) detach(e *entry, key string, a *attachment) {
	_ = a.link.Unpin()
	if err := a.link.Detach(); err != nil && !errors.Is(err, ebpf.ErrNotSupported) {
		d.log.V(1).Info("detach link", "point", a.target.Point, "error", err.Error())
	}
	_ = a.link.Close()
	delete(e.links, key)
}

// dropUnused unloads programs the spec no longer names.
func (d *Dataplane) dropUnused(e *entry) {
	names := map[string]bool{}
	for _, pa := range e.spec.Programs {
		names[pa.Name] = true
	}
	for name, p := range e.progs {
		if !names[name] {
			_ = p.Unpin()
			p.Close()
			delete(e.progs, name)
			delete(e.tags, name)
		}
	}
	for name := range e.progErr {
		if !names[name] {
			delete(e.progErr, name)
		}
	}
}

// ensurePins pins programs, maps and links whose pin is missing (never
// pinned, or removed out of band).
func (d *Dataplane) ensurePins(e *entry) {
	if len(e.progs) == 0 && len(e.maps) == 0 && len(e.links) == 0 {
		return
	}
	if err := d.layout.Prepare(e.uid); err != nil {
		d.log.Error(err, "prepare pin directory")
		return
	}
	type pinner interface {
		Pin(string) error
		Unpin() error
	}
	repin := func(obj pinner, path string) {
		if _, err := os.Stat(path); err == nil {
			return
		}
		_ = obj.Unpin() // forget the old path, or Pin to the same path is a no-op
		if err := obj.Pin(path); err != nil {
			d.log.Error(err, "pin", "path", path)
		}
	}
	for name, p := range e.progs {
		repin(p, d.layout.Program(e.uid, name))
	}
	for name, m := range e.maps {
		repin(m, d.layout.Map(e.uid, name))
	}
	for _, a := range e.links {
		repin(a.link, d.layout.Link(e.uid, a.target.Program, a.target.Point))
	}
}

// writeRecord stores what runs, when it changed.
func (d *Dataplane) writeRecord(e *entry) {
	if len(e.progs) == 0 && len(e.maps) == 0 {
		return
	}
	rec := bpffs.Record{
		Version:        bpffs.RecordVersion,
		UID:            e.uid,
		Name:           e.name,
		Digest:         e.digest,
		LoadHash:       e.loadHash,
		Object:         e.object,
		Programs:       map[string]bpffs.ProgramRecord{},
		MapEntriesHash: e.wHash,
	}
	for name, p := range e.progs {
		pr := bpffs.ProgramRecord{Tag: e.tags[name]}
		if info, err := p.Info(); err == nil {
			if id, ok := info.ID(); ok {
				pr.ID = uint32(id)
			}
		}
		rec.Programs[name] = pr
	}
	for name := range e.maps {
		rec.Maps = append(rec.Maps, name)
	}
	for _, a := range e.links {
		rec.Links = append(rec.Links, bpffs.LinkRecord{Program: a.target.Program, Point: a.target.Point, Kind: string(a.target.Kind)})
	}
	sort.Slice(rec.Links, func(i, j int) bool {
		return rec.Links[i].Program+"@"+rec.Links[i].Point < rec.Links[j].Program+"@"+rec.Links[j].Point
	})
	sort.Strings(rec.Maps)
	for _, en := range e.written {
		rec.MapEntries = append(rec.MapEntries, bpffs.EntryRecord{Map: en.Map, Key: hex.EncodeToString(en.Key), Value: hex.EncodeToString(en.Value)})
	}
	if reflect.DeepEqual(rec, e.record) {
		return
	}
	if err := d.store.Put(rec); err != nil {
		d.log.Error(err, "write record", "uid", e.uid)
		return
	}
	e.record = rec
}

// remove detaches and unpins everything of e and forgets its record.
func (d *Dataplane) remove(e *entry) {
	d.log.Info("removing", "bpfProgram", e.name, "uid", e.uid)
	for key, a := range e.links {
		d.detach(e, key, a)
	}
	for _, p := range e.progs {
		_ = p.Unpin()
		p.Close()
	}
	for _, m := range e.maps {
		_ = m.Unpin()
		m.Close()
	}
	e.progs, e.maps, e.loaded = map[string]*ebpf.Program{}, map[string]*ebpf.Map{}, false
	if err := d.layout.Remove(e.uid); err != nil {
		d.log.Error(err, "remove pins")
	}
	if err := d.store.Delete(e.uid); err != nil {
		d.log.Error(err, "delete record")
	}
}

// release closes e's file descriptors; pins keep everything running.
func (e *entry) release() {
	for _, a := range e.links {
		_ = a.link.Close()
	}
	for _, p := range e.progs {
		p.Close()
	}
	for _, m := range e.maps {
		m.Close()
	}
	e.links, e.progs, e.maps = map[string]*attachment{}, map[string]*ebpf.Program{}, map[string]*ebpf.Map{}
}

// adoptAll re-adopts what a previous agent pinned, from the records.
func (d *Dataplane) adoptAll() {
	uids, err := d.store.List()
	if err != nil {
		d.log.Error(err, "list records")
		return
	}
	for _, uid := range uids {
		rec, ok, err := d.store.Get(uid)
		if err != nil || !ok {
			d.log.Error(err, "read record", "uid", uid)
			continue
		}
		d.entries[uid] = d.adopt(rec)
	}
}

func (d *Dataplane) adopt(rec bpffs.Record) *entry {
	e := newEntry(rec.UID)
	e.name, e.digest, e.loadHash, e.object, e.wHash = rec.Name, rec.Digest, rec.LoadHash, rec.Object, rec.MapEntriesHash
	e.record = rec
	e.loaded = true // a missing pin below sets tampered, which forces a reload
	for _, er := range rec.MapEntries {
		k, err1 := hex.DecodeString(er.Key)
		v, err2 := hex.DecodeString(er.Value)
		if err1 == nil && err2 == nil {
			e.written = append(e.written, loader.Entry{Map: er.Map, Key: k, Value: v})
		}
	}
	mapDir := d.layout.MapDir(rec.UID)
	if ents, err := os.ReadDir(mapDir); err == nil {
		for _, ent := range ents {
			m, err := ebpf.LoadPinnedMap(filepath.Join(mapDir, ent.Name()), nil)
			if err != nil {
				d.log.Error(err, "load pinned map", "path", ent.Name())
				continue
			}
			e.maps[bpffs.MapName(ent.Name())] = m
		}
	}
	tamper := func(name, got string) {
		e.tampered = true
		e.notice = &notice{reason: v1alpha1.ReasonTampered,
			message: fmt.Sprintf("pinned program %s had tag %s, recorded %s: reloaded from the bundle", name, got, rec.Programs[name].Tag)}
		d.log.Info("pinned program tag differs from record: tampered", "uid", rec.UID, "program", name, "tag", got, "recorded", rec.Programs[name].Tag)
	}
	for name, pr := range rec.Programs {
		p, err := ebpf.LoadPinnedProgram(d.layout.Program(rec.UID, name), nil)
		if err != nil {
			continue // maybe recoverable from a link below
		}
		info, err := p.Info()
		if err != nil {
			p.Close()
			continue
		}
		e.progs[name], e.tags[name] = p, info.Tag
		if info.Tag != pr.Tag {
			tamper(name, info.Tag)
		}
	}
	recorded := map[string]bpffs.LinkRecord{}
	for _, lr := range rec.Links {
		recorded[d.layout.Link(rec.UID, lr.Program, lr.Point)] = lr
	}
	pins, _ := d.layout.Links(rec.UID)
	for _, pin := range pins {
		prog, point, err := bpffs.ParseLink(pin)
		var kind attach.Kind
		if lr, ok := recorded[pin]; ok {
			prog, point, kind, err = lr.Program, lr.Point, attach.Kind(lr.Kind), nil
		}
		if kind == "" {
			// A record an older agent wrote, or a pin it did not record:
			// the kind from the point's name.
			kind = attach.KindOfPoint(point)
		}
		if err != nil {
			d.log.Info("unknown link pin, leaving it", "path", pin, "error", err.Error())
			continue
		}
		l, err := link.LoadPinnedLink(pin, nil)
		if err != nil {
			d.log.Error(err, "load pinned link", "path", pin)
			continue
		}
		e.links[linkKey(prog, point)] = &attachment{target: attach.Target{Program: prog, Point: point, Kind: kind}, link: l}
		if e.progs[prog] != nil {
			continue
		}
		// The program's pin went away but its link holds it: take it from there.
		if info, err := l.Info(); err == nil {
			if p, err := ebpf.NewProgramFromID(info.Program); err == nil {
				if pi, err := p.Info(); err == nil {
					e.progs[prog], e.tags[prog] = p, pi.Tag
					if pi.Tag != rec.Programs[prog].Tag {
						tamper(prog, pi.Tag)
					}
				} else {
					p.Close()
				}
			}
		}
	}
	for _, name := range rec.Maps {
		if e.maps[name] == nil {
			d.log.Info("recorded map not pinned: reloading", "uid", rec.UID, "map", name)
			e.tampered = true
		}
	}
	for name := range rec.Programs {
		if e.progs[name] == nil {
			d.log.Info("recorded program not pinned: reloading", "uid", rec.UID, "program", name)
			e.tampered = true // force a reload; not a tampering notice
		}
	}
	return e
}

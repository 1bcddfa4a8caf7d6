package dataplane

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/bpfleet/bpfleet/bundles"
	"github.com/bpfleet/bpfleet/bundles/format"
	"github.com/bpfleet/bpfleet/nodeagent/attach"
	"github.com/bpfleet/bpfleet/nodeagent/bpffs"
	"github.com/bpfleet/bpfleet/nodeagent/internal/failpoint"
	"github.com/bpfleet/bpfleet/nodeagent/internal/loader"
	"github.com/bpfleet/bpfleet/nodeagent/internal/probe"
)

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
			return nil, "", nil, withReason(ReasonLoadFailed,
				fmt.Errorf("programs of one BpfProgram must come from one object, got %s and %s", object, mp.Object))
		}
	}
	if object == "" {
		return nil, "", nil, withReason(ReasonProgramNotInBundle, fmt.Errorf("no program of the spec is in the bundle: %w", loader.ErrNoProgram))
	}
	elf, err := ds.Bundle.Object(object)
	if err != nil {
		return nil, "", nil, withReason(ReasonLoadFailed, fmt.Errorf("read object %s: %w", object, err))
	}
	cs, err = loader.ParseELF(elf)
	if err != nil {
		return nil, "", nil, withReason(ReasonLoadFailed, err)
	}
	// The trust policies judged the manifest; the kernel gets the ELF. A
	// bundle whose manifest misstates a program is refused whole.
	for _, pa := range ds.Spec.Programs {
		if mp := declared[pa.Name]; mp != nil {
			if err := format.CheckProgram(mp, cs.Programs[pa.Name]); err != nil {
				return nil, "", nil, withReason(ReasonBundleInvalid, err)
			}
		}
	}
	// Map limits before anything else reaches the kernel (probes included).
	if err := loader.CheckMapSizes(cs); err != nil {
		return nil, "", nil, withReason(ReasonLoadFailed, err)
	}
	if err := loader.SetConstants(cs, ds.Spec.Constants); err != nil {
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
	running := len(e.links) > 0 || len(e.loadedProgs()) > 0
	if running && len(progErr) > 0 {
		return firstErr(progErr)
	}
	reuse, lost, err := preservedMaps(e, ds.Bundle, cs)
	if err != nil {
		return err
	}
	maps, err := loader.LoadMapsReusing(cs, d.cache, reuse)
	if err != nil {
		return withReason(ReasonLoadFailed, err)
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
	// Entries go into the new maps before any packet reaches the new
	// programs. A preserved map is the running one: the keys written there
	// before and no longer wanted go.
	var stale []loader.Entry
	for _, w := range e.written {
		if reuse[w.Map] != nil {
			stale = append(stale, w)
		}
	}
	entries, err := loader.DecodeMapEntries(cs, ds.Spec.MapEntries)
	if err == nil {
		err = loader.WriteEntries(maps, entries, stale)
	}
	if err != nil {
		discard()
		return withReason(ReasonMapUpdateFailed, err)
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
	// fail undoes the swap: the new links go first, so that the points of
	// exclusive kinds are free again when the old programs re-attach.
	fail := func(err error) error {
		for _, l := range newLinks {
			l.Close()
		}
		rollback()
		discard()
		return withReason(ReasonAttachFailed, err)
	}
	// In key order (program@point), so a failure part way rolls back the
	// same links on every run.
	keys := make([]string, 0, len(e.links))
	for key := range e.links {
		keys = append(keys, key)
	}
	sort.Strings(keys)
	for _, key := range keys {
		a := e.links[key]
		np := progs[a.target.Program]
		if np == nil {
			continue // program left the spec: reconcileLinks detaches it
		}
		if attach.Updatable(a.target.Kind) {
			old := e.prog(a.target.Program)
			swapStart := time.Now()
			err := a.link.Update(np)
			d.observe(PhaseAttach, swapStart)
			if err != nil {
				return fail(fmt.Errorf("update link %s: %w", a.target.Point, err))
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
		if attach.Exclusive(t.Kind) {
			// The point takes one program: free it, and on failure attach
			// the old program again.
			freeExclusive(d, e, a, t, &undo)
		}
		nl, err := d.attachTarget(t, np)
		if err != nil {
			return fail(err)
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
	e.closePrograms(true)
	for name, m := range e.maps {
		if reuse[name] == m {
			// Carried over: keep the running map's object, which holds its
			// pin, so the map is pinned at every instant.
			maps[name].Close()
			maps[name] = m
			continue
		}
		_ = m.Unpin()
		m.Close()
	}
	e.maps = maps
	for name, p := range progs {
		e.setLoaded(name, p)
	}
	d.ensurePins(e)
	e.written, e.entriesHash = entries, hashEntries(ds.Spec.MapEntries)
	if !e.mustReload {
		e.tamperNotice = nil // a tampering notice lasts until the next regular load
	}
	if len(lost) > 0 {
		e.tamperNotice = &notice{reason: ReasonTampered,
			message: fmt.Sprintf("preserved map %s was recorded but no longer pinned (removed out of band): created empty, its state is lost", strings.Join(lost, ", "))}
	}
	for name, err := range progErr {
		e.program(name).loadErr = err
	}
	for name, pg := range e.programs {
		pg.loadErr = progErr[name]
	}
	e.object, e.loadHash, e.digest, e.mustReload = object, lh, ds.Digest, false
	e.loaded = true
	return nil
}

// preservedMaps returns the running maps of e a load of cs re-uses: every
// map of the object the bundle marks preserve that e runs. Each must have
// the shape the object declares (loader.CheckPreserved), or the load is
// refused with reason MapIncompatible, naming every map and what differs:
// a preserved map is never silently created anew. A preserved map the
// running version lacks (first version, or new in this one) is created;
// lost names those the record says ran but whose pin went away (created
// empty too, reported as tampering).
func preservedMaps(e *entry, b Bundle, cs *ebpf.CollectionSpec) (reuse map[string]*ebpf.Map, lost []string, err error) {
	names := make([]string, 0, len(cs.Maps))
	for name := range cs.Maps {
		names = append(names, name)
	}
	sort.Strings(names)
	reuse = map[string]*ebpf.Map{}
	var errs []error
	for _, name := range names {
		mp, ok := b.Map(name)
		if !ok || !mp.Preserve {
			continue
		}
		running := e.maps[name]
		if running == nil {
			if slices.Contains(e.record.Maps, name) {
				lost = append(lost, name)
			}
			continue
		}
		ms := cs.Maps[name]
		// The manifest was checked when the bundle was built; the ELF is
		// what loads.
		if typ := format.MapTypeName(ms.Type); !slices.Contains(format.PreservableMapTypes, typ) {
			return nil, nil, withReason(ReasonBundleInvalid, fmt.Errorf("%w: preserved map %s is a %s in the ELF object, which cannot be preserved", bundles.ErrManifestMismatch, name, typ))
		}
		if err := loader.CheckPreserved(name, loader.ShapeOfMap(running), loader.ShapeOfSpec(ms)); err != nil {
			errs = append(errs, err)
			continue
		}
		reuse[name] = running
	}
	if len(errs) > 0 {
		return nil, nil, withReason(ReasonMapIncompatible, errors.Join(errs...))
	}
	return reuse, lost, nil
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
	var missing []Program
	for _, pa := range ds.Spec.Programs {
		if pg := e.programs[pa.Name]; pg == nil || pg.prog == nil && pg.loadErr == nil {
			missing = append(missing, pa)
		}
	}
	if len(missing) == 0 {
		return
	}
	cs, _, progErr, err := d.parse(ds)
	if err != nil {
		for _, pa := range missing {
			e.program(pa.Name).loadErr = err
		}
		return
	}
	for _, pa := range missing {
		if err := progErr[pa.Name]; err != nil {
			e.program(pa.Name).loadErr = err
			continue
		}
		p, err := loader.LoadProgram(cs, pa.Name, e.maps, d.cache)
		if err != nil {
			e.program(pa.Name).loadErr = loadError(cs.Programs[pa.Name], err)
			continue
		}
		e.setLoaded(pa.Name, p)
	}
}

// hashEntries hashes map entries as records have since the API's MapEntry
// was hashed here: the same JSON, so an upgraded agent finds its records'
// hashes unchanged and writes nothing again.
func hashEntries(entries []loader.MapEntry) string {
	type apiEntry struct {
		Map      string `json:"map"`
		Key      string `json:"key"`
		Value    string `json:"value"`
		Encoding string `json:"encoding,omitempty"`
	}
	var es []apiEntry // nil stays null
	for _, e := range entries {
		es = append(es, apiEntry{Map: e.Map, Key: e.Key, Value: e.Value, Encoding: string(e.Encoding)})
	}
	if es == nil && entries != nil {
		es = []apiEntry{}
	}
	b, _ := json.Marshal(es)
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// writeEntries writes the spec's map entries into running maps when they
// changed, deleting the keys no longer listed. Programs are not reloaded.
func (d *Dataplane) writeEntries(e *entry, spec []loader.MapEntry, maps map[string]*ebpf.Map) error {
	h := hashEntries(spec)
	if h == e.entriesHash {
		return nil
	}
	entries, err := loader.DecodeMapEntriesLive(maps, spec)
	if err != nil {
		return err
	}
	if err := loader.WriteEntries(maps, entries, e.written); err != nil {
		return err
	}
	e.written, e.entriesHash = entries, h
	return nil
}

// freeExclusive detaches a's link so its point t can take the new program
// (an exclusive kind), and adds to undo attaching the old program again.
func freeExclusive(d *Dataplane, e *entry, a *attachment, t attach.Target, undo *[]func()) {
	_ = a.link.Unpin()
	_ = a.link.Close()
	old := e.prog(t.Program)
	*undo = append(*undo, func() {
		if old == nil || t.Hook == nil {
			return
		}
		l, err := d.attachTarget(t, old)
		if err != nil {
			d.log.Error(err, "attach the old program again", "point", t.Point)
			return
		}
		a.link = l
		if err := l.Pin(d.layout.Link(e.uid, t.Program, t.Point)); err != nil {
			d.log.Error(err, "pin link", "point", t.Point)
		}
	})
}

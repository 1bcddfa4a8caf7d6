package dataplane

import (
	"encoding/hex"
	"os"
	"reflect"
	"sort"

	// ENOTSUPP (524) is kernel-internal, absent from x/sys/unix
	"github.com/cilium/ebpf"

	"github.com/bpfleet/bpfleet/nodeagent/bpffs"
)

// dropUnused unloads programs the spec no longer names.
func (d *Dataplane) dropUnused(e *entry) {
	names := map[string]bool{}
	for _, pa := range e.spec.Programs {
		names[pa.Name] = true
	}
	for name, pg := range e.programs {
		if !names[name] {
			if pg.prog != nil {
				_ = pg.prog.Unpin()
				pg.prog.Close()
			}
			delete(e.programs, name)
		}
	}
}

// ensurePins pins programs, maps and links whose pin is missing (never
// pinned, or removed out of band).
func (d *Dataplane) ensurePins(e *entry) {
	if len(e.loadedProgs()) == 0 && len(e.maps) == 0 && len(e.links) == 0 {
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
	for name, p := range e.loadedProgs() {
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
	if len(e.loadedProgs()) == 0 && len(e.maps) == 0 {
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
		MapEntriesHash: e.entriesHash,
	}
	for name, pg := range e.programs {
		if pg.prog == nil {
			continue
		}
		pr := bpffs.ProgramRecord{Tag: pg.tag}
		if info, err := pg.prog.Info(); err == nil {
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
	e.closePrograms(true)
	for _, m := range e.maps {
		_ = m.Unpin()
		m.Close()
	}
	e.maps, e.loaded = map[string]*ebpf.Map{}, false
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
	e.closePrograms(false)
	for _, m := range e.maps {
		m.Close()
	}
	e.links, e.maps = map[string]*attachment{}, map[string]*ebpf.Map{}
}

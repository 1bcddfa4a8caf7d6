package dataplane

import (
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"

	// ENOTSUPP (524) is kernel-internal, absent from x/sys/unix
	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/bpfleet/bpfleet/nodeagent/attach"
	"github.com/bpfleet/bpfleet/nodeagent/bpffs"
	"github.com/bpfleet/bpfleet/nodeagent/internal/loader"
)

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
	e.name, e.digest, e.loadHash, e.object, e.entriesHash = rec.Name, rec.Digest, rec.LoadHash, rec.Object, rec.MapEntriesHash
	e.record = rec
	e.loaded = true // a missing pin below sets mustReload, which forces a reload
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
		e.mustReload = true
		e.tamperNotice = &notice{reason: ReasonTampered,
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
		pg := e.program(name)
		pg.prog, pg.tag = p, info.Tag
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
		if e.prog(prog) != nil {
			continue
		}
		// The program's pin went away but its link holds it: take it from there.
		if info, err := l.Info(); err == nil {
			if p, err := ebpf.NewProgramFromID(info.Program); err == nil {
				if pi, err := p.Info(); err == nil {
					pg := e.program(prog)
					pg.prog, pg.tag = p, pi.Tag
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
			e.mustReload = true
		}
	}
	for name := range rec.Programs {
		if e.prog(name) == nil {
			d.log.Info("recorded program not pinned: reloading", "uid", rec.UID, "program", name)
			e.mustReload = true // force a reload; not a tampering notice
		}
	}
	return e
}

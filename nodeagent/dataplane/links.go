package dataplane

import (
	"errors"
	"fmt" // ENOTSUPP (524) is kernel-internal, absent from x/sys/unix
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/bpfleet/bpfleet/nodeagent/attach"
	"github.com/bpfleet/bpfleet/nodeagent/internal/failpoint"
)

type attachment struct {
	target attach.Target
	link   link.Link
}

func linkKey(program, point string) string { return program + "@" + point }

// attachTarget attaches p at t (inside t's network namespace).
func (d *Dataplane) attachTarget(t attach.Target, p *ebpf.Program) (link.Link, error) {
	defer d.observe(PhaseAttach, time.Now())
	return t.Attach(p)
}

// reconcileLinks attaches every target of spec that has no live link, and
// detaches links no target wants. Links of per-interface programs are kept
// when the interfaces cannot be listed (a transient failure).
func (d *Dataplane) reconcileLinks(e *entry, spec Spec, hooks hookSet, net netState) {
	e.attachErr = map[string]error{}
	for _, pg := range e.programs {
		pg.targets, pg.planErr = nil, nil
	}
	want := map[string]attach.Target{}
	keep := map[string]bool{}
	env := attach.Env{Interfaces: net.ifaces, Primary: net.primary, InterfacesErr: net.err, Netns: d.src, HostRoot: d.opts.HostRoot}
	for _, pa := range spec.Programs {
		h := hooks.Hooks[pa.Name]
		if h == nil {
			e.program(pa.Name).planErr = hooks.Errs[pa.Name]
			continue
		}
		if attach.PerInterface(h.Kind()) && net.err != nil {
			e.program(pa.Name).planErr = withReason(ReasonAttachFailed, fmt.Errorf("list interfaces: %w", net.err))
			keep[pa.Name] = true
			continue
		}
		ts, err := h.Targets(env)
		if err != nil {
			e.program(pa.Name).planErr = err
			continue
		}
		for i := range ts {
			want[linkKey(ts[i].Program, ts[i].Point)] = ts[i]
		}
		e.program(pa.Name).targets = ts
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
		if p := e.prog(t.Program); p != nil && attach.Updatable(t.Kind) && !sameProgram(a.link, p) {
			ran := linkProgramID(a.link)
			if err := a.link.Update(p); err != nil {
				e.attachErr[key] = withReason(ReasonAttachFailed, err)
			} else {
				e.tamperNotice = &notice{reason: ReasonTampered,
					message: fmt.Sprintf("link %s ran program id %d instead of %s: %s restored from the verified bundle", t.Point, ran, t.Program, t.Program)}
				d.log.Info("link ran another program: tampered, restored", "bpfProgram", e.name, "point", t.Point, "ran", ran)
			}
		}
	}
	for key, t := range want {
		if _, ok := e.links[key]; ok {
			continue
		}
		p := e.prog(t.Program)
		if p == nil {
			continue
		}
		l, err := d.attachTarget(t, p)
		if err != nil {
			e.attachErr[key] = withReason(ReasonAttachFailed, err)
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

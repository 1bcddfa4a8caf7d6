package dataplane

import (
	"fmt"
	"sort"
	"strings"

	"github.com/bpfleet/bpfleet/nodeagent/attach"
	"github.com/bpfleet/bpfleet/nodeagent/internal/loader"
	"github.com/bpfleet/bpfleet/nodeagent/internal/status"
)

// maxMessage bounds ProgramState.Message (the CRD allows 2048).
const maxMessage = 2000

func message(err error) string {
	if reasonFor(err, "") != ReasonVerifierRejected {
		return truncate(err.Error())
	}
	if tail, ok := loader.VerifierTail(err, maxMessage-100); ok {
		return truncate("verifier rejected the program:\n" + tail)
	}
	return truncate(err.Error())
}

func truncate(s string) string {
	if len(s) <= maxMessage {
		return s
	}
	return "…" + s[len(s)-maxMessage+3:]
}

// snapshotLocked builds one ProgramState per program and attach point.
func (d *Dataplane) snapshotLocked() []ProgramState {
	var out []ProgramState
	for _, e := range sortedUIDs(d.entries) {
		out = append(out, d.entryStates(e)...)
	}
	return out
}

func (d *Dataplane) entryStates(e *entry) []ProgramState {
	spec, hooks := e.desiredSpec, e.desiredHooks
	if e.waiting != nil && e.specApplied {
		spec, hooks = e.spec, e.hooks
	}
	base := ProgramState{
		BpfProgram: e.name,
		UID:        e.uid,
		Generation: e.generation,
		Digest:     e.digest,
		Signer:     e.signer,
	}
	if base.Digest == "" {
		base.Digest = e.desiredDigest
	}
	var out []ProgramState
	programs := spec.Programs
	if len(programs) == 0 && !e.specApplied {
		// Re-adopted, no desired set yet: report what runs.
		programs = adoptedPrograms(e)
	}
	for _, pa := range programs {
		st := base
		st.Program = pa.Name
		pg := e.programs[pa.Name]
		if pg == nil {
			pg = &program{}
		}
		prog := pg.prog
		if prog != nil {
			if err := status.FillProgram(&st.ProgramInfo, prog, d.opts.Stats); err != nil {
				d.log.V(1).Info("read program info", "error", err.Error())
			}
		}
		targets := pg.targets
		rows := make([]ProgramState, 0, len(targets)+1)
		for _, t := range targets {
			row := st
			row.AttachPoint = t.Point
			key := linkKey(t.Program, t.Point)
			if a := e.links[key]; a != nil {
				row.State, row.Reason = StateAttached, ReasonAttached
				row.LinkID = status.LinkID(a.link)
			} else if err := e.attachErr[key]; err != nil {
				row.State, row.Reason, row.Message = StateFailed, reasonFor(err, ReasonAttachFailed), message(err)
			} else if err := pg.loadErr; err != nil {
				row.State, row.Reason, row.Message = StateFailed, reasonFor(err, ReasonLoadFailed), message(err)
			} else {
				row.State = StatePending
			}
			rows = append(rows, row)
		}
		if h := hooks.Hooks[pa.Name]; len(rows) > 0 && h != nil {
			if p := attach.PodsOf(h); p != nil && p.InPods {
				rows = []ProgramState{podRow(st, rows)}
			}
		}
		if len(rows) == 0 {
			row := st
			var kind attach.Kind
			inPods := false
			if h := hooks.Hooks[pa.Name]; h != nil {
				kind = h.Kind()
				p := attach.PodsOf(h)
				inPods = p != nil && p.InPods
			}
			switch err := firstNonNil(pg.loadErr, pg.planErr); {
			case err != nil:
				row.State, row.Reason, row.Message = StateFailed, reasonFor(err, ReasonLoadFailed), message(err)
			case inPods && e.specApplied && pg.prog != nil:
				// Loaded and ready for the selected pods, none of which
				// runs here now: nothing is missing on this node.
				row.State, row.Reason, row.Message = StateAttached, ReasonNoPodsOnNode, "no selected pod runs on this node"
			case attach.PerInterface(kind) && e.specApplied:
				row.State, row.Reason, row.Message = StatePending, ReasonNoInterface, "no interface matches the selector"
			default:
				row.State = StatePending
			}
			// Links adopted but not reconciled yet (held before the first apply).
			for _, a := range e.links {
				if a.target.Program == pa.Name && !e.specApplied {
					r := st
					r.AttachPoint, r.State, r.Reason, r.LinkID = a.target.Point, StateAttached, ReasonAttached, status.LinkID(a.link)
					rows = append(rows, r)
				}
			}
			if len(rows) == 0 {
				rows = append(rows, row)
			}
		}
		for i := range rows {
			d.overlay(e, &rows[i])
		}
		out = append(out, rows...)
	}
	return out
}

// podRow sums the rows of a program's attach points in pods into one, so
// that status grows with programs, not pods: attached when every point is,
// failed when any failed (the first failure is the reason), pending else.
func podRow(st ProgramState, rows []ProgramState) ProgramState {
	row := st
	prefix, _, _ := strings.Cut(rows[0].AttachPoint, "/pod/")
	row.AttachPoint = prefix + "/pods"
	c := &PodCounts{}
	var failed *ProgramState
	for i := range rows {
		r := &rows[i]
		switch r.State {
		case StateAttached:
			c.Attached++
		case StateFailed:
			c.Failed++
			if failed == nil {
				failed = r
			}
			if len(c.RecentFailures) < MaxRecentPodFailures {
				c.RecentFailures = append(c.RecentFailures, truncate(fmt.Sprintf("%s: %s: %s", r.AttachPoint, r.Reason, r.Message)))
			}
		default:
			c.Pending++
		}
	}
	row.Pods = c
	switch {
	case failed != nil:
		row.State, row.Reason = StateFailed, failed.Reason
		row.Message = truncate(fmt.Sprintf("%d of %d attach points in pods failed; first: %s: %s", c.Failed, len(rows), failed.AttachPoint, failed.Message))
	case c.Pending > 0:
		row.State, row.Message = StatePending, fmt.Sprintf("%d of %d attach points in pods pending", c.Pending, len(rows))
	default:
		row.State, row.Reason, row.Message = StateAttached, ReasonAttached, fmt.Sprintf("attached at %d points in pods", c.Attached)
	}
	return row
}

// overlay applies the entry-wide outcome (hold, failed new digest, notice).
func (d *Dataplane) overlay(e *entry, row *ProgramState) {
	running := row.State == StateAttached
	switch {
	case e.waiting != nil:
		row.Reason, row.Message = reasonFor(e.waiting, ReasonWaitingForBundle), truncate(e.waiting.Error())
		if !running {
			row.State = StatePending
		}
	case e.loadFailure != nil:
		row.State, row.Reason = StateFailed, reasonFor(e.loadFailure, ReasonLoadFailed)
		row.Digest = e.desiredDigest
		msg := message(e.loadFailure)
		if running {
			msg = fmt.Sprintf("keeping %s running: %s", e.digest, msg)
		}
		row.Message = truncate(msg)
	case e.tamperNotice != nil && running:
		row.Reason, row.Message = e.tamperNotice.reason, e.tamperNotice.message
	}
}

// adoptedPrograms names the programs of a re-adopted entry, for status.
func adoptedPrograms(e *entry) []Program {
	names := map[string]bool{}
	for name := range e.loadedProgs() {
		names[name] = true
	}
	for _, a := range e.links {
		names[a.target.Program] = true
	}
	out := make([]Program, 0, len(names))
	for name := range names {
		out = append(out, Program{Name: name})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func firstNonNil(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

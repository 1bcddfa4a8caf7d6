package dataplane

import (
	"fmt"
	"sort"
	"strings"

	"github.com/bpfleet/bpfleet/api/v1alpha1"
	"github.com/bpfleet/bpfleet/nodeagent/attach"
	"github.com/bpfleet/bpfleet/nodeagent/loader"
	"github.com/bpfleet/bpfleet/nodeagent/status"
)

// maxMessage bounds ProgramState.Message (the CRD allows 2048).
const maxMessage = 2000

func message(err error) string {
	if reasonFor(err, "") != v1alpha1.ReasonVerifierRejected {
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
func (d *Dataplane) snapshotLocked() []v1alpha1.ProgramState {
	var out []v1alpha1.ProgramState
	for _, e := range sortedUIDs(d.entries) {
		out = append(out, d.entryStates(e)...)
	}
	return out
}

func (d *Dataplane) entryStates(e *entry) []v1alpha1.ProgramState {
	spec, hooks := e.desiredSpec, e.desiredHooks
	if e.waiting != nil && e.specApplied {
		spec, hooks = e.spec, e.hooks
	}
	base := v1alpha1.ProgramState{
		BpfProgram: e.name,
		UID:        e.uid,
		Generation: e.generation,
		Digest:     e.digest,
		Signer:     e.signer,
	}
	if base.Digest == "" {
		base.Digest = e.desiredDigest
	}
	var out []v1alpha1.ProgramState
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
			if err := status.FillProgram(&st, prog, d.opts.Stats); err != nil {
				d.log.V(1).Info("read program info", "error", err.Error())
			}
		}
		targets := pg.targets
		rows := make([]v1alpha1.ProgramState, 0, len(targets)+1)
		for _, t := range targets {
			row := st
			row.AttachPoint = t.Point
			key := linkKey(t.Program, t.Point)
			if a := e.links[key]; a != nil {
				row.State, row.Reason = v1alpha1.PhaseAttached, v1alpha1.ReasonAttached
				row.LinkID = status.LinkID(a.link)
			} else if err := e.attachErr[key]; err != nil {
				row.State, row.Reason, row.Message = v1alpha1.PhaseFailed, reasonFor(err, v1alpha1.ReasonAttachFailed), message(err)
			} else if err := pg.loadErr; err != nil {
				row.State, row.Reason, row.Message = v1alpha1.PhaseFailed, reasonFor(err, v1alpha1.ReasonLoadFailed), message(err)
			} else {
				row.State = v1alpha1.PhasePending
			}
			rows = append(rows, row)
		}
		if h := hooks.Hooks[pa.Name]; len(rows) > 0 && h != nil {
			if p := attach.PodsOf(h); p != nil && p.InPods {
				rows = []v1alpha1.ProgramState{podRow(st, rows)}
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
				row.State, row.Reason, row.Message = v1alpha1.PhaseFailed, reasonFor(err, v1alpha1.ReasonLoadFailed), message(err)
			case inPods && e.specApplied && pg.prog != nil:
				// Loaded and ready for the selected pods, none of which
				// runs here now: nothing is missing on this node.
				row.State, row.Reason, row.Message = v1alpha1.PhaseAttached, v1alpha1.ReasonNoPodsOnNode, "no selected pod runs on this node"
			case attach.PerInterface(kind) && e.specApplied:
				row.State, row.Reason, row.Message = v1alpha1.PhasePending, v1alpha1.ReasonNoInterface, "no interface matches the selector"
			default:
				row.State = v1alpha1.PhasePending
			}
			// Links adopted but not reconciled yet (held before the first apply).
			for _, a := range e.links {
				if a.target.Program == pa.Name && !e.specApplied {
					r := st
					r.AttachPoint, r.State, r.Reason, r.LinkID = a.target.Point, v1alpha1.PhaseAttached, v1alpha1.ReasonAttached, status.LinkID(a.link)
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
func podRow(st v1alpha1.ProgramState, rows []v1alpha1.ProgramState) v1alpha1.ProgramState {
	row := st
	prefix, _, _ := strings.Cut(rows[0].AttachPoint, "/pod/")
	row.AttachPoint = prefix + "/pods"
	c := &v1alpha1.PodAttachCounts{}
	var failed *v1alpha1.ProgramState
	for i := range rows {
		r := &rows[i]
		switch r.State {
		case v1alpha1.PhaseAttached:
			c.Attached++
		case v1alpha1.PhaseFailed:
			c.Failed++
			if failed == nil {
				failed = r
			}
			if len(c.RecentFailures) < v1alpha1.MaxRecentPodFailures {
				c.RecentFailures = append(c.RecentFailures, truncate(fmt.Sprintf("%s: %s: %s", r.AttachPoint, r.Reason, r.Message)))
			}
		default:
			c.Pending++
		}
	}
	row.Pods = c
	switch {
	case failed != nil:
		row.State, row.Reason = v1alpha1.PhaseFailed, failed.Reason
		row.Message = truncate(fmt.Sprintf("%d of %d attach points in pods failed; first: %s: %s", c.Failed, len(rows), failed.AttachPoint, failed.Message))
	case c.Pending > 0:
		row.State, row.Message = v1alpha1.PhasePending, fmt.Sprintf("%d of %d attach points in pods pending", c.Pending, len(rows))
	default:
		row.State, row.Reason, row.Message = v1alpha1.PhaseAttached, v1alpha1.ReasonAttached, fmt.Sprintf("attached at %d points in pods", c.Attached)
	}
	return row
}

// overlay applies the entry-wide outcome (hold, failed new digest, notice).
func (d *Dataplane) overlay(e *entry, row *v1alpha1.ProgramState) {
	running := row.State == v1alpha1.PhaseAttached
	switch {
	case e.waiting != nil:
		row.Reason, row.Message = reasonFor(e.waiting, v1alpha1.ReasonWaitingForBundle), truncate(e.waiting.Error())
		if !running {
			row.State = v1alpha1.PhasePending
		}
	case e.loadFailure != nil:
		row.State, row.Reason = v1alpha1.PhaseFailed, reasonFor(e.loadFailure, v1alpha1.ReasonLoadFailed)
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
func adoptedPrograms(e *entry) []v1alpha1.ProgramAttachment {
	names := map[string]bool{}
	for name := range e.loadedProgs() {
		names[name] = true
	}
	for _, a := range e.links {
		names[a.target.Program] = true
	}
	out := make([]v1alpha1.ProgramAttachment, 0, len(names))
	for name := range names {
		out = append(out, v1alpha1.ProgramAttachment{Name: name})
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

package controller_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bpfleet/bpfleet/api/v1alpha1"
	"github.com/bpfleet/bpfleet/bundles/build"
	"github.com/bpfleet/bpfleet/test/support/kernelprog"
)

// pushPreserving builds a bundle of the kernelprog object obj whose
// bundle.yaml preserves the counters map, pushes it as tag and signs it.
func (w *world) pushPreserving(t *testing.T, tag string, obj []byte) (ref, digest string) {
	t.Helper()
	dir := t.TempDir()
	const object = "progs_bpfel.o"
	if err := os.WriteFile(filepath.Join(dir, object), obj, 0o644); err != nil {
		t.Fatal(err)
	}
	spec := fmt.Sprintf(`name: agent-test
version: %s
objects:
  - file: %s
programs:
  - name: %s
    attach: xdp
metricMaps: [counters]
maps:
  - {name: counters, preserve: true}
`, tag, object, kernelprog.XDPFilter)
	if err := os.WriteFile(filepath.Join(dir, build.SpecFile), []byte(spec), 0o644); err != nil {
		t.Fatal(err)
	}
	return w.pushDir(t, dir, tag, true)
}

// TestAgentPreservesMapsAcrossUpgrades: an agent pulling signed bundles
// from a registry upgrades a filter to a digest that preserves its
// counters map: the packet counter carries on from where it was. A digest
// whose counters have another value size is refused on the node with
// reason MapIncompatible in its BpfNodeState row for that digest (which
// the operator counts as a failed node), while the old filter stays
// attached, dropping and counting.
func TestAgentPreservesMapsAcrossUpgrades(t *testing.T) {
	w := newWorld(t)
	ref, v1 := w.pushPreserving(t, "0.1.0", kernelprog.Object)
	_, v2 := w.pushPreserving(t, "0.2.0", kernelprog.ObjectV2)
	_, wide := w.pushPreserving(t, "0.3.0", kernelprog.ObjectWide)
	w.startAgent(t)

	p := w.createProgram(t, ref, v1, denyEntry(deniedPort))
	w.waitEntry(t, p, "v1 attached", attachedAt(v1))
	if got := w.delivered(t, openPort, 20); got != 20 {
		t.Fatalf("%d of 20 datagrams to an open port delivered", got)
	}
	before := readCounter(t, w, p.UID, 0)
	if before < 20 {
		t.Fatalf("counter %d after 20 datagrams", before)
	}

	setRollout(t, p, v1, v2, "")
	w.waitEntry(t, p, "v2 attached", attachedAt(v2))
	if got := readCounter(t, w, p.UID, 0); got < before {
		t.Fatalf("counter reset by the upgrade to v2: %d -> %d", before, got)
	}
	w.delivered(t, openPort, 20)
	if got := readCounter(t, w, p.UID, 0); got < before+20 {
		t.Fatalf("counter %d after 20 more datagrams on v2, was %d before the upgrade", got, before)
	}

	atV2 := readCounter(t, w, p.UID, 0)
	setRollout(t, p, v2, wide, "")
	st := w.waitEntry(t, p, "wide refused with MapIncompatible", func(s v1alpha1.ProgramState) bool {
		return s.Reason == v1alpha1.ReasonMapIncompatible
	})
	if st.State != v1alpha1.PhaseFailed || st.Digest != wide || !strings.Contains(st.Message, "keeping "+v2+" running") ||
		!strings.Contains(st.Message, "preserved map counters") || !strings.Contains(st.Message, "value size 8, new version 16") {
		t.Fatalf("want Failed at %s saying v2 keeps running and what differs, got %s at %s: %q", wide, st.State, st.Digest, st.Message)
	}
	if got := w.delivered(t, deniedPort, 5); got != 0 {
		t.Fatalf("%d of 5 datagrams to the denied port delivered: the old filter must keep running", got)
	}
	w.delivered(t, openPort, 20)
	if got := readCounter(t, w, p.UID, 0); got < atV2+25 {
		t.Fatalf("counter %d after 25 datagrams on the held v2, was %d", got, atV2)
	}
}

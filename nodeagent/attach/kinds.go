package attach

import (
	"slices"
	"sync"

	"github.com/cilium/ebpf"
)

// Kind names an attach kind: the field of the BpfProgram attach block, the
// bundle manifest's attach hint, the first word of a trust policy's
// allowedAttachTypes, the kind hooks report and the kind bpffs records
// store. One name per kind, everywhere.
type Kind string

// ProgramFit is one kernel program type a kind takes, with the expected
// attach type its ELF section must give it (AnyAttachType: the kernel does
// not care).
type ProgramFit struct {
	Type          ebpf.ProgramType
	AttachType    ebpf.AttachType
	AnyAttachType bool
}

// AnyAttach is a fit for every program of type t, whatever its expected
// attach type.
func AnyAttach(t ebpf.ProgramType) ProgramFit { return ProgramFit{Type: t, AnyAttachType: true} }

// The one table of attach kinds, which the operator's compatibility check,
// the manifest's list of kinds (bundles/format imports this package, so
// every reader of a manifest has every row), the bundle builder and the
// node agent's hooks read. Each kind's file adds its row with register
// from init.
var (
	kindMu sync.RWMutex
	kinds  = map[Kind]Def{}
	names  []Kind // sorted
)

// register adds a kind to the table; each kind's file calls it from init.
// It panics on a kind registered twice: two files claim one name.
func register(d Def) {
	kindMu.Lock()
	defer kindMu.Unlock()
	if _, dup := kinds[d.Kind]; dup {
		panic("attach: kind " + string(d.Kind) + " registered twice")
	}
	kinds[d.Kind] = d
	names = append(names, d.Kind)
	slices.Sort(names)
}

// lookup returns a kind's row; ok is false for an unknown kind.
func lookup(k Kind) (Def, bool) {
	kindMu.RLock()
	defer kindMu.RUnlock()
	d, ok := kinds[k]
	return d, ok
}

// Kinds returns the name of every kind, sorted.
func Kinds() []Kind {
	kindMu.RLock()
	defer kindMu.RUnlock()
	return slices.Clone(names)
}

// PolicyNames returns every name a trust policy's allowedAttachTypes may
// list, sorted: each kind's name, or for kinds with PolicyHooks kind/hook
// for each and kind/*. api/v1alpha1's generated allowedAttachTypes pattern
// is made from it.
func PolicyNames() []string {
	kindMu.RLock()
	defer kindMu.RUnlock()
	var out []string
	for _, k := range names {
		hooks := kinds[k].PolicyHooks
		if len(hooks) == 0 {
			out = append(out, string(k))
			continue
		}
		for _, h := range hooks {
			out = append(out, string(k)+"/"+h)
		}
		out = append(out, string(k)+"/*")
	}
	return out
}

// KindFits tells whether a program of type t, whose ELF section gives it
// the expected attach type at, fits a block of kind (false for an unknown
// kind). It is all an attach hint (a kind without a block) allows
// checking; Fits checks a hook.
func KindFits(kind Kind, t ebpf.ProgramType, at ebpf.AttachType) bool {
	d, ok := lookup(kind)
	if !ok {
		return false
	}
	for _, p := range d.Programs {
		if p.Type == t && (p.AnyAttachType || p.AttachType == at) {
			return true
		}
	}
	return false
}

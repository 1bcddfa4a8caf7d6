// Package uprobecount is the uprobe-count program: a uprobe that counts the
// calls of a user-space function.
package uprobecount

import _ "embed"

// Names in the ELF object and the bundle.
const (
	// BundleName is the name in bundle.yaml.
	BundleName = "uprobe-count"
	// ObjectFile is the ELF object next to bundle.yaml.
	ObjectFile = "uprobecount_bpfel.o"
	// ProgramName is the uprobe program (its C function name).
	ProgramName = "uprobe_count"
	// CallsMap is the per-CPU array with one uint64: the number of calls.
	CallsMap = "calls"
	// TargetTGIDConstant is the volatile const that, when not 0, restricts
	// counting to one process.
	TargetTGIDConstant = "target_tgid"
)

// BundleYAML is the bundle description (bundle.yaml) of this program.
//
//go:embed bundle.yaml
var BundleYAML []byte

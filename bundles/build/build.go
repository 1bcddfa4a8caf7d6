// Package build turns a directory with a bundle.yaml and its ELF objects into
// a bundle in a content-addressed OCI layout. Program sections, types, attach
// types, licenses and maps come from parsing the ELF with cilium/ebpf, never
// from the user.
package build

import (
	"context"
	"errors"

	"github.com/bpfleet/bpfleet/bundles/format"
)

// SpecFile is the file name Build reads in a bundle directory.
const SpecFile = "bundle.yaml"

// MaxSpecSize bounds bundle.yaml.
const MaxSpecSize = 256 << 10

// Spec is bundle.yaml.
type Spec struct {
	// Name of the bundle.
	Name string `json:"name"`
	// Version of the bundle.
	Version string `json:"version,omitempty"`
	// Description for humans.
	Description string `json:"description,omitempty"`
	// Objects are the ELF files, relative to bundle.yaml.
	Objects []SpecObject `json:"objects"`
	// Programs users may attach.
	Programs []SpecProgram `json:"programs"`
	// MetricMaps name maps exported as metrics.
	MetricMaps []string `json:"metricMaps,omitempty"`
	// MinKernel is the oldest supported kernel release, e.g. "6.1".
	MinKernel string `json:"minKernel,omitempty"`
	// RequiredFeatures name kernel features the programs need.
	RequiredFeatures []string `json:"requiredFeatures,omitempty"`
}

// SpecObject is one ELF file of bundle.yaml.
type SpecObject struct {
	// File is the ELF file name, relative to bundle.yaml, never with "..".
	File string `json:"file"`
}

// SpecProgram is one program of bundle.yaml.
type SpecProgram struct {
	// Name of the program in the ELF.
	Name string `json:"name"`
	// Object is the file holding the program; needed only when several do.
	Object string `json:"object,omitempty"`
	// Attach is the attach kind (format.AttachKinds).
	Attach string `json:"attach"`
	// Target is an optional default attach target.
	Target string `json:"target,omitempty"`
}

// Options say where Build writes.
type Options struct {
	// LayoutDir is the OCI layout directory (created if missing).
	LayoutDir string
	// Tag is the tag given to the bundle in the layout (a reference's tag,
	// e.g. "0.1.0"); empty means "latest".
	Tag string
}

// Result describes a built bundle.
type Result struct {
	// Digest of the OCI image manifest.
	Digest string
	// Tag it was given in the layout.
	Tag string
	// Manifest is the bundle manifest written in the config blob.
	Manifest *format.Manifest
	// Size is the total size of manifest, config and layers.
	Size int64
}

var errNotImplemented = errors.New("not implemented yet")

// ParseSpec decodes bundle.yaml strictly (unknown fields refused) and
// checks it. Errors wrap bundles.ErrBundleInvalid or ErrTooLarge.
func ParseSpec(data []byte) (*Spec, error) {
	return nil, errNotImplemented
}

// ReadSpec reads and parses dir/bundle.yaml.
func ReadSpec(dir string) (*Spec, error) {
	return nil, errNotImplemented
}

// Build reads dir's bundle.yaml and ELF files and writes the bundle to the
// OCI layout opts.LayoutDir, tagged opts.Tag.
func Build(ctx context.Context, dir string, opts Options) (Result, error) {
	return Result{}, errNotImplemented
}

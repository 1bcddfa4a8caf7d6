// Package dataplane keeps exactly the desired programs loaded, attached and
// pinned on this node. It re-adopts what a previous agent pinned, swaps new
// digests in atomically, heals drift, follows interfaces as they come and go,
// and never detaches what runs because of a transient failure.
package dataplane

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"golang.org/x/sys/unix"
	"k8s.io/apimachinery/pkg/types"

	"github.com/bpfleet/bpfleet/bundles/format"
	"github.com/bpfleet/bpfleet/nodeagent/bpffs"
	"github.com/bpfleet/bpfleet/nodeagent/internal/loader"
	"github.com/bpfleet/bpfleet/nodeagent/internal/probe"
	"github.com/bpfleet/bpfleet/nodeagent/internal/status"
	"github.com/bpfleet/bpfleet/nodeagent/netwatch"
)

// Bundle is what the dataplane reads from a verified bundle: the manifest
// entry of a program and the ELF object holding it. *format.Bundle
// implements it.
type Bundle interface {
	// Object returns the ELF bytes of the named object.
	Object(name string) ([]byte, error)
	// Program returns the manifest entry of the named program.
	Program(name string) (*format.Program, bool)
	// Map returns the manifest entry of the named map (whether the bundle
	// preserves it across versions).
	Map(name string) (*format.Map, bool)
}

// Desired is one BpfProgram the node must run.
type Desired struct {
	// Name is the BpfProgram's name.
	Name string
	// UID is the BpfProgram's uid; pins live under <root>/<uid>.
	UID types.UID
	// Generation is the BpfProgram's generation. Status echoes the
	// generation that last changed what the entry runs (digest, programs
	// and attach blocks, constants, map entries).
	Generation int64
	// Digest is the bundle digest to run.
	Digest string
	// Bundle is the verified bundle of Digest; nil keeps what runs for this
	// UID (as if Hold were set).
	Bundle Bundle
	// Signer is recorded in status.
	Signer string
	// Spec holds the programs with their hooks, constants and map entries.
	// A hook that targets pods carries the pods of this node it selects
	// now, resolved by the caller.
	Spec Spec
	// Hold, when set, means the node cannot move to Digest now (registry
	// down, verification failed, waiting for a wave): what runs keeps
	// running and every entry reports why (see HoldError for the reason).
	Hold error

	// hooks are Spec's hooks by program name, indexed once by Apply.
	hooks hookSet
}

// RunsKey identifies what a desired entry runs: its digest and the parts of
// the spec that reach the kernel. A generation that changes none of them (a
// new image for a node whose wave has not come yet, a new node selector, new
// rollout settings) leaves the entry, and so the node's status, as it was: a
// wave rollout costs each node one status write, not two.
func (ds *Desired) RunsKey() string {
	b, err := json.Marshal(struct {
		Digest string
		Spec   string
	}{ds.Digest, ds.Spec.Key})
	if err != nil {
		return fmt.Sprintf("unencodable generation %d", ds.Generation) // equal to no real key
	}
	return string(b)
}

// HoldError is a Hold with a status reason (a word of the API's Reason*).
type HoldError struct {
	// Reason is reported as ProgramState.Reason, e.g. PullFailed.
	Reason string
	// Err says why.
	Err error
}

func (e *HoldError) Error() string { return e.Err.Error() }
func (e *HoldError) Unwrap() error { return e.Err }

// Hold returns a Hold error reported with reason.
func Hold(reason string, err error) error { return &HoldError{Reason: reason, Err: err} }

// Options configure a Dataplane.
type Options struct {
	// BPFFSRoot is where pins live; default /sys/fs/bpf/bpfleet. It must be
	// bpfleet's own directory: New refuses a bpffs mount root or a
	// directory holding pins bpfleet did not make (bpffs.ErrUnsafeRoot).
	BPFFSRoot string
	// BPFFSMount is the bpffs mount holding BPFFSRoot, mounted again when it
	// disappears under a running Dataplane; default /sys/fs/bpf.
	BPFFSMount string
	// StateDir holds the local records; default /var/lib/bpfleet.
	StateDir string
	// Stats turns on the kernel's run-time statistics (run count, run time)
	// for as long as the Dataplane is open.
	Stats bool
	// Log receives progress and errors.
	Log logr.Logger
	// Interfaces lists and watches interfaces; nil means netlink in NetNS.
	Interfaces netwatch.Source
	// NetNS is the path of the network namespace whose interfaces are
	// managed (e.g. /var/run/netns/x); "" means the agent's own. Used only
	// when Interfaces is nil.
	NetNS string
	// HostRoot is where the node's root filesystem is mounted in the
	// agent's own (uprobe targets are paths of the node); "" when the agent
	// runs in the node's.
	HostRoot string
	// BootID overrides /proc/sys/kernel/random/boot_id (tests).
	BootID string
	// KernelRelease overrides uname -r (tests).
	KernelRelease string
	// Observe, when set, is told how long each kernel phase took: PhaseLoad
	// (parse, create maps, load programs, write map entries: one bundle
	// load) and PhaseAttach (one attach, or one Link.Update swap).
	Observe func(phase string, took time.Duration)
}

// Kernel phases reported to Options.Observe.
const (
	PhaseLoad   = "load"
	PhaseAttach = "attach"
)

func (d *Dataplane) observe(phase string, start time.Time) {
	if d.opts.Observe != nil {
		d.opts.Observe(phase, time.Since(start))
	}
}

// DefaultStateDir is where records live unless Options.StateDir says otherwise.
const DefaultStateDir = "/var/lib/bpfleet"

// Dataplane owns the managed programs of one node. Its methods are safe for
// concurrent use.
type Dataplane struct {
	opts     Options
	log      logr.Logger
	layout   bpffs.Layout
	store    bpffs.Store
	src      netwatch.Source
	cache    *loader.Cache
	stats    io.Closer
	kernel   KernelInfo
	features []probe.Feature
	changes  chan struct{}
	cancel   context.CancelFunc

	mu      sync.Mutex
	closed  bool
	applied bool // Apply ran once: last is a complete desired set
	entries map[types.UID]*entry
	last    []Desired
	// remounts counts bpffs mounts made under the running Dataplane, until
	// TakeBPFFSRemounts reports them.
	remounts int
}

// TakeBPFFSRemounts returns how many times bpffs had to be mounted again
// under the running Dataplane since the last call, for the agent to report.
func (d *Dataplane) TakeBPFFSRemounts() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := d.remounts
	d.remounts = 0
	return n
}

// New opens the dataplane: it mounts bpffs and tracefs when missing, reads
// the local records, detects a reboot or kernel change (the pins are then
// gone and everything is loaded again on Apply), re-adopts what is pinned
// and starts watching interfaces.
func New(ctx context.Context, opts Options) (*Dataplane, error) {
	if opts.BPFFSRoot == "" {
		opts.BPFFSRoot = bpffs.DefaultRoot
	}
	if opts.StateDir == "" {
		opts.StateDir = DefaultStateDir
	}
	if opts.BPFFSMount == "" {
		opts.BPFFSMount = bpffs.BPFFSMount
	}
	if _, err := bpffs.EnsureBPFFS(opts.BPFFSMount); err != nil {
		return nil, err
	}
	if err := checkRoot(opts); err != nil {
		return nil, err
	}
	if err := bpffs.MountTracefs(); err != nil {
		// Only tracepoints and uprobes need it; report, do not fail.
		opts.Log.Error(err, "tracefs unavailable")
	}
	if err := os.MkdirAll(opts.BPFFSRoot, 0o700); err != nil {
		return nil, fmt.Errorf("create pin root: %w", err)
	}
	d := &Dataplane{
		opts:    opts,
		log:     opts.Log,
		layout:  bpffs.Layout{Root: opts.BPFFSRoot},
		store:   bpffs.Store{Dir: opts.StateDir},
		src:     opts.Interfaces,
		cache:   loader.NewCache(),
		changes: make(chan struct{}, 1),
		entries: map[types.UID]*entry{},
	}
	if d.src == nil {
		d.src = netwatch.NewNetlink(opts.NetNS)
	}
	d.kernel = kernelInfo(opts)
	for _, f := range probe.Features() {
		d.features = append(d.features, probe.Feature{Name: f.Name, Supported: f.Supported})
	}
	if opts.Stats {
		c, err := status.EnableStats()
		if err != nil {
			return nil, err
		}
		d.stats = c
	}
	if err := d.checkBoot(); err != nil {
		d.closeStats()
		return nil, err
	}
	d.adoptAll()
	wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	d.cancel = cancel
	if err := d.src.Watch(wctx, d.signal); err != nil {
		cancel()
		d.closeAll()
		d.closeStats()
		return nil, err
	}
	return d, nil
}

// checkRoot refuses a pin root that is not bpfleet's own; the directories
// of recorded programs are bpfleet's whatever their names.
func checkRoot(opts Options) error {
	uids, err := bpffs.Store{Dir: opts.StateDir}.List()
	if err != nil {
		return err
	}
	recorded := map[types.UID]bool{}
	for _, uid := range uids {
		recorded[uid] = true
	}
	return bpffs.Layout{Root: opts.BPFFSRoot}.Check(func(uid types.UID) bool { return recorded[uid] })
}

// ensureBPFFS mounts bpffs again when it went away under the running
// Dataplane (unmounted by hand, or by a tool cleaning up): the pins went
// with it, so the root is made again and every applied entry pins again.
// Attached links hold on through the Dataplane's own references.
func (d *Dataplane) ensureBPFFS() {
	mounted, err := bpffs.EnsureBPFFS(d.opts.BPFFSMount)
	if err != nil {
		d.log.Error(err, "bpffs unavailable: pins cannot be restored; what is attached keeps running")
		return
	}
	if !mounted {
		return
	}
	d.remounts++
	d.log.Error(errBPFFSGone, "remounted bpffs; pinning every program again", "mount", d.opts.BPFFSMount, "root", d.opts.BPFFSRoot)
	if err := os.MkdirAll(d.opts.BPFFSRoot, 0o700); err != nil {
		d.log.Error(err, "create pin root")
	}
}

// errBPFFSGone reports a bpffs that disappeared under a running agent.
var errBPFFSGone = errors.New("bpffs was unmounted under the running agent")

func (d *Dataplane) signal() {
	select {
	case d.changes <- struct{}{}:
	default:
	}
}

func kernelInfo(opts Options) KernelInfo {
	k := KernelInfo{Release: opts.KernelRelease, BootID: opts.BootID, Architecture: runtime.GOARCH}
	if k.Release == "" {
		var u unix.Utsname
		if unix.Uname(&u) == nil {
			k.Release = unix.ByteSliceToString(u.Release[:])
		}
	}
	if k.BootID == "" {
		b, _ := os.ReadFile("/proc/sys/kernel/random/boot_id")
		k.BootID = strings.TrimSpace(string(b))
	}
	k.BTF = probe.BTF() == nil
	return k
}

// checkBoot compares the boot id and kernel release with the node record. A
// change means the pins of the previous boot are gone (or, after a kernel
// upgrade, must not be trusted): forget every record and pin.
func (d *Dataplane) checkBoot() error {
	prev, ok, err := d.store.Node()
	if err != nil {
		return err
	}
	cur := bpffs.Node{BootID: d.kernel.BootID, KernelRelease: d.kernel.Release}
	if ok && prev != cur {
		d.log.Info("boot or kernel changed: reloading everything", "previousBoot", prev.BootID, "boot", cur.BootID,
			"previousKernel", prev.KernelRelease, "kernel", cur.KernelRelease)
		uids, err := d.store.List()
		if err != nil {
			return err
		}
		for _, uid := range uids {
			if err := d.store.Delete(uid); err != nil {
				return err
			}
			if err := d.layout.Remove(uid); err != nil {
				return err
			}
		}
	}
	if !ok || prev != cur {
		return d.store.PutNode(cur)
	}
	return nil
}

// Apply makes the node run exactly desired, the node's full desired set. It
// is idempotent; what is pinned but not desired is detached and unpinned, so
// call it only with a complete view (an empty set removes everything).
func (d *Dataplane) Apply(ctx context.Context, desired []Desired) []ProgramState {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil
	}
	d.last = append([]Desired(nil), desired...)
	for i := range d.last {
		d.last[i].hooks = hooksOf(d.last[i].Spec)
	}
	d.applied = true
	return d.applyLocked(ctx)
}

// Resync applies the last desired set again: it heals drift and attaches
// interfaces that appeared since. Before the first Apply it only reports
// what was re-adopted: the desired set is not known yet, nothing is removed.
func (d *Dataplane) Resync(ctx context.Context) []ProgramState {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil
	}
	if !d.applied {
		return d.snapshotLocked()
	}
	return d.applyLocked(ctx)
}

func (d *Dataplane) applyLocked(ctx context.Context) []ProgramState {
	// tracefs unmounted since New (by hand, by a tool cleaning up) would make
	// every new tracepoint attach fail; what is attached runs without it.
	if err := bpffs.MountTracefs(); err != nil {
		d.log.V(1).Info("tracefs unavailable", "error", err.Error())
	}
	// Likewise bpffs: its pins are what a restarted agent re-adopts.
	d.ensureBPFFS()
	want := map[types.UID]bool{}
	for i := range d.last {
		want[d.last[i].UID] = true
	}
	// Remove first: a replacement may need the hooks the removed ones hold.
	for uid, e := range d.entries {
		if !want[uid] {
			d.remove(e)
			delete(d.entries, uid)
		}
	}
	// Pin directories nobody recorded (a crash between pin and record).
	if uids, err := d.layout.UIDs(); err == nil {
		for _, uid := range uids {
			if !want[uid] && d.entries[uid] == nil {
				d.log.Info("removing unrecorded pins", "uid", uid)
				_ = d.layout.Remove(uid)
			}
		}
	}
	net := d.interfaces()
	done := map[types.UID]bool{}
	for i := range d.last {
		ds := &d.last[i]
		if done[ds.UID] || ctx.Err() != nil {
			continue
		}
		done[ds.UID] = true
		e := d.entries[ds.UID]
		if e == nil {
			e = newEntry(ds.UID)
			d.entries[ds.UID] = e
		}
		d.applyEntry(e, ds, net)
	}
	return d.snapshotLocked()
}

// netState is the interfaces seen at the start of an Apply.
type netState struct {
	ifaces  []netwatch.Interface
	primary string
	err     error
}

func (d *Dataplane) interfaces() netState {
	var n netState
	n.ifaces, n.err = d.src.Interfaces()
	if n.err == nil {
		n.primary, n.err = d.src.Primary()
	}
	return n
}

// Snapshot returns the state of every managed program and attach point with
// bpftool's fields, and run statistics when Options.Stats is set.
func (d *Dataplane) Snapshot() []ProgramState {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.snapshotLocked()
}

// Changes is signalled when an interface appears or disappears; the caller
// should call Resync.
func (d *Dataplane) Changes() <-chan struct{} { return d.changes }

// Kernel identifies the running kernel.
func (d *Dataplane) Kernel() KernelInfo { return d.kernel }

// Features lists the probed kernel capabilities.
func (d *Dataplane) Features() []probe.Feature {
	return append([]probe.Feature(nil), d.features...)
}

// Close releases file descriptors and stops watching interfaces. It never
// detaches: pins keep programs running.
func (d *Dataplane) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil
	}
	d.closed = true
	if d.cancel != nil {
		d.cancel()
	}
	d.closeAll()
	return d.closeStats()
}

func (d *Dataplane) closeAll() {
	for _, e := range d.entries {
		e.release()
	}
}

func (d *Dataplane) closeStats() error {
	if d.stats == nil {
		return nil
	}
	err := d.stats.Close()
	d.stats = nil
	return err
}

func sortedUIDs(m map[types.UID]*entry) []*entry {
	out := make([]*entry, 0, len(m))
	for _, e := range m {
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].name != out[j].name {
			return out[i].name < out[j].name
		}
		return out[i].uid < out[j].uid
	})
	return out
}

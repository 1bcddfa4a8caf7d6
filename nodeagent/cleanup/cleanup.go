// Package cleanup removes what bpfleet left on a node after an uninstall:
// the pins under the agent's pin root (removing a link's last pin detaches
// it, removing a program's and maps' frees them), the agent's local records
// and its bundle cache. It is `bpfleet-agent --cleanup`, run on each node
// after `kubectl delete -k config/default`.
//
// It touches only what bpfleet made: it refuses a pin root that is a bpffs
// mount root or holds anything but BpfProgram pin directories (named by UID
// or recorded by this node's agent), and it refuses to run while an agent
// holds the state directory.
package cleanup

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"k8s.io/apimachinery/pkg/types"

	"github.com/bpfleet/bpfleet/nodeagent/bpffs"
	"github.com/bpfleet/bpfleet/nodeagent/controller"
)

// Options name what to clean, as the agent's flags do.
type Options struct {
	// BPFFSRoot is the agent's pin root (--bpffs-root).
	BPFFSRoot string
	// StateDir holds the agent's records and lock (--state-dir).
	StateDir string
	// CacheDir is the bundle cache (--cache-dir); "" means
	// <StateDir>/bundles, the agent's default.
	CacheDir string
}

// Report says what was removed.
type Report struct {
	// Programs are the BpfProgram uids whose pins were removed.
	Programs []types.UID
	// Records is how many local program records were removed.
	Records int
}

// Run removes bpfleet's pins, records and cache from the node. Errors wrap
// bpffs.ErrUnsafeRoot (nothing removed) or controller.ErrLocked (an agent
// runs; nothing removed).
func Run(opts Options) (Report, error) {
	var rep Report
	if opts.BPFFSRoot == "" || opts.StateDir == "" {
		return rep, errors.New("cleanup: the pin root and the state directory are required")
	}
	if opts.CacheDir == "" {
		opts.CacheDir = filepath.Join(opts.StateDir, "bundles")
	}
	// No state directory: no agent ran here with it, none holds it, and
	// there are no records; do not create it.
	if _, err := os.Stat(opts.StateDir); err == nil {
		unlock, err := controller.Lock(opts.StateDir)
		if err != nil {
			return rep, fmt.Errorf("cleanup: %w", err)
		}
		defer unlock()
	}
	store := bpffs.Store{Dir: opts.StateDir}
	recorded, err := store.List()
	if err != nil {
		return rep, fmt.Errorf("cleanup: %w", err)
	}
	known := map[types.UID]bool{}
	for _, uid := range recorded {
		known[uid] = true
	}
	layout := bpffs.Layout{Root: opts.BPFFSRoot}
	if err := layout.Check(func(uid types.UID) bool { return known[uid] }); err != nil {
		return rep, fmt.Errorf("cleanup: %w", err)
	}
	dirs, err := os.ReadDir(opts.BPFFSRoot)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return rep, fmt.Errorf("cleanup: list pin root: %w", err)
	}
	for _, d := range dirs {
		// Check admitted only UID-named or recorded directories.
		uid := types.UID(d.Name())
		if err := layout.Remove(uid); err != nil {
			return rep, fmt.Errorf("cleanup: %w", err)
		}
		rep.Programs = append(rep.Programs, uid)
	}
	if err := os.Remove(opts.BPFFSRoot); err != nil && !errors.Is(err, os.ErrNotExist) {
		return rep, fmt.Errorf("cleanup: remove pin root: %w", err)
	}
	for _, uid := range recorded {
		if err := store.Delete(uid); err != nil {
			return rep, fmt.Errorf("cleanup: %w", err)
		}
		rep.Records++
	}
	for _, p := range []string{filepath.Join(opts.StateDir, "programs"), filepath.Join(opts.StateDir, "node.json")} {
		if err := os.RemoveAll(p); err != nil {
			return rep, fmt.Errorf("cleanup: remove %s: %w", p, err)
		}
	}
	if err := os.RemoveAll(opts.CacheDir); err != nil {
		return rep, fmt.Errorf("cleanup: remove bundle cache: %w", err)
	}
	return rep, nil
}

// Package netwatch lists a node's network interfaces, finds the primary one
// (the interface of the default route), picks interfaces by selector and
// signals when interfaces appear or disappear, through a netlink subscription.
package netwatch

import (
	"context"
	"fmt"
	"path"
	"sort"
)

// Interface is one network interface.
type Interface struct {
	// Name is the interface name, e.g. eth0.
	Name string
	// Index is the kernel's ifindex.
	Index int
}

// Source lists interfaces and reports their changes. The real one is netlink
// (NewNetlink); tests may pass another.
type Source interface {
	// Interfaces lists the interfaces of the namespace.
	Interfaces() ([]Interface, error)
	// Primary names the interface of the default route ("" when none).
	Primary() (string, error)
	// Watch calls changed whenever an interface is added, removed or
	// renamed, until ctx ends. It returns once the subscription is live.
	Watch(ctx context.Context, changed func()) error
	// Do runs fn on an OS thread inside the source's network namespace, so
	// that ifindexes mean what Interfaces returned.
	Do(fn func() error) error
}

// Selector picks interfaces: exact names or shell globs, and the primary
// interface.
type Selector struct {
	// Names are interface names or shell globs (path.Match).
	Names []string
	// Primary picks the interface of the default route.
	Primary bool
}

// Select returns the interfaces sel picks among ifaces: exact names, shell
// globs (path.Match) and, with Primary, the primary interface. The result is
// sorted by name and holds no duplicates.
func Select(sel Selector, ifaces []Interface, primary string) ([]Interface, error) {
	seen := map[string]bool{}
	var out []Interface
	for _, ifc := range ifaces {
		match := sel.Primary && primary != "" && ifc.Name == primary
		for _, pat := range sel.Names {
			ok, err := path.Match(pat, ifc.Name)
			if err != nil {
				return nil, fmt.Errorf("match interface pattern %q: %w", pat, err)
			}
			if ok {
				match = true
				break
			}
		}
		if match && !seen[ifc.Name] {
			seen[ifc.Name] = true
			out = append(out, ifc)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

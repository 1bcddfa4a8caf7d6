package netwatch

import (
	"context"
	"fmt"
	"runtime"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Netlink is the real Source: rtnetlink in one network namespace.
type Netlink struct {
	nsPath string
}

// NewNetlink returns a netlink Source for the namespace at nsPath (e.g.
// /var/run/netns/x); "" is the caller's own namespace.
func NewNetlink(nsPath string) *Netlink { return &Netlink{nsPath: nsPath} }

func (n *Netlink) handle() (*netlink.Handle, func(), error) {
	if n.nsPath == "" {
		h, err := netlink.NewHandle()
		if err != nil {
			return nil, nil, fmt.Errorf("open netlink: %w", err)
		}
		return h, h.Close, nil
	}
	ns, err := netns.GetFromPath(n.nsPath)
	if err != nil {
		return nil, nil, fmt.Errorf("open netns %s: %w", n.nsPath, err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return nil, nil, fmt.Errorf("open netlink in %s: %w", n.nsPath, err)
	}
	return h, h.Close, nil
}

// Interfaces lists the namespace's interfaces.
func (n *Netlink) Interfaces() ([]Interface, error) {
	h, done, err := n.handle()
	if err != nil {
		return nil, err
	}
	defer done()
	links, err := h.LinkList()
	if err != nil {
		return nil, fmt.Errorf("list interfaces: %w", err)
	}
	out := make([]Interface, 0, len(links))
	for _, l := range links {
		a := l.Attrs()
		out = append(out, Interface{Name: a.Name, Index: a.Index})
	}
	return out, nil
}

// Primary names the interface of the IPv4 default route, else the IPv6 one.
func (n *Netlink) Primary() (string, error) {
	h, done, err := n.handle()
	if err != nil {
		return "", err
	}
	defer done()
	for _, family := range []int{unix.AF_INET, unix.AF_INET6} {
		routes, err := h.RouteListFiltered(family, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
		if err != nil {
			return "", fmt.Errorf("list routes: %w", err)
		}
		best, bestIdx := -1, 0
		for _, r := range routes {
			if r.Dst != nil {
				if ones, _ := r.Dst.Mask.Size(); ones != 0 {
					continue
				}
			}
			idx := r.LinkIndex
			if idx == 0 && len(r.MultiPath) > 0 {
				idx = r.MultiPath[0].LinkIndex
			}
			if idx != 0 && (best < 0 || r.Priority < best) {
				best, bestIdx = r.Priority, idx
			}
		}
		if best >= 0 {
			l, err := h.LinkByIndex(bestIdx)
			if err != nil {
				return "", fmt.Errorf("find primary interface: %w", err)
			}
			return l.Attrs().Name, nil
		}
	}
	return "", nil
}

// Watch subscribes to link changes and calls changed on every new, deleted
// or renamed interface until ctx ends.
func (n *Netlink) Watch(ctx context.Context, changed func()) error {
	ch := make(chan netlink.LinkUpdate, 64)
	done := make(chan struct{})
	opts := netlink.LinkSubscribeOptions{ErrorCallback: func(error) { changed() }}
	if n.nsPath != "" {
		ns, err := netns.GetFromPath(n.nsPath)
		if err != nil {
			return fmt.Errorf("open netns %s: %w", n.nsPath, err)
		}
		defer ns.Close()
		opts.Namespace = &ns
	}
	if err := netlink.LinkSubscribeWithOptions(ch, done, opts); err != nil {
		return fmt.Errorf("subscribe to interface changes: %w", err)
	}
	// Seed after subscribing, so an interface created in between is seen.
	known := map[int32]string{}
	if ifaces, err := n.Interfaces(); err == nil {
		for _, ifc := range ifaces {
			known[int32(ifc.Index)] = ifc.Name
		}
	}
	go func() {
		defer close(done)
		for {
			select {
			case <-ctx.Done():
				return
			case u, ok := <-ch:
				if !ok {
					return
				}
				// RTM_NEWLINK also reports flag changes and our own XDP
				// attachments: signal only interfaces added, removed or renamed.
				idx, name := u.Index, ""
				if u.Link != nil {
					name = u.Link.Attrs().Name
				}
				switch u.Header.Type {
				case unix.RTM_DELLINK:
					delete(known, idx)
				case unix.RTM_NEWLINK:
					if known[idx] == name {
						continue
					}
					known[idx] = name
				}
				changed()
			}
		}
	}()
	return nil
}

// Do runs fn on a locked OS thread inside the namespace.
func (n *Netlink) Do(fn func() error) error {
	if n.nsPath == "" {
		return fn()
	}
	ns, err := netns.GetFromPath(n.nsPath)
	if err != nil {
		return fmt.Errorf("open netns %s: %w", n.nsPath, err)
	}
	defer ns.Close()
	errc := make(chan error, 1)
	go func() {
		// The thread is never unlocked: if switching back fails it dies
		// with the goroutine instead of running others in the wrong netns.
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			errc <- fmt.Errorf("get current netns: %w", err)
			return
		}
		defer orig.Close()
		if err := netns.Set(ns); err != nil {
			errc <- fmt.Errorf("enter netns %s: %w", n.nsPath, err)
			return
		}
		ferr := fn()
		if err := netns.Set(orig); err == nil {
			runtime.UnlockOSThread()
		}
		errc <- ferr
	}()
	return <-errc
}

//go:build linux

package xdplb

import (
	"fmt"

	"github.com/cilium/ebpf"
)

// Spec returns the collection spec of the embedded ELF object.
func Spec() (*ebpf.CollectionSpec, error) {
	return loadXdplb()
}

// Maps are the loaded maps of the program that configure services.
type Maps struct {
	VIPs, Rings, Backends, Reals *ebpf.Map
}

// SetService points service at backends through ring: it writes the
// backends and their return-path entries, the ring from table (indices into
// backends, RingSize slots, as MaglevTable or MaglevRebuild return), and
// last the service itself. Rewriting the ring of a live service swaps
// flows slot by slot, without a reload.
func (m Maps) SetService(ring uint32, s Service, backends []Backend, table []int) error {
	if len(table) != RingSize {
		return fmt.Errorf("%w: table of %d slots, want %d", ErrInvalidTable, len(table), RingSize)
	}
	for _, b := range backends {
		if b.Addr.Addr().Is4() != s.VIP.Addr().Is4() {
			return fmt.Errorf("%w: backend %s and service %s differ in family", ErrInvalidService, b.Addr, s.VIP)
		}
		v, err := BackendValue(b)
		if err != nil {
			return err
		}
		if err := m.Backends.Update(b.ID, v, ebpf.UpdateAny); err != nil {
			return fmt.Errorf("write backend %d: %w", b.ID, err)
		}
		rk, err := RealKey(b, s.Protocol)
		if err != nil {
			return err
		}
		rv, err := RealValue(s)
		if err != nil {
			return err
		}
		if err := m.Reals.Update(rk, rv, ebpf.UpdateAny); err != nil {
			return fmt.Errorf("write return path of backend %d: %w", b.ID, err)
		}
	}
	keys := make([]uint32, RingSize)
	ids := make([]uint32, RingSize)
	for slot, i := range table {
		if i < 0 || i >= len(backends) {
			return fmt.Errorf("%w: slot %d holds backend %d of %d", ErrInvalidTable, slot, i, len(backends))
		}
		keys[slot] = ring*RingSize + uint32(slot)
		ids[slot] = backends[i].ID
	}
	vk, err := VIPKey(s)
	if err != nil {
		return err
	}
	vv, err := VIPValue(ring)
	if err != nil {
		return err
	}
	if _, err := m.Rings.BatchUpdate(keys, ids, nil); err != nil {
		return fmt.Errorf("write ring %d: %w", ring, err)
	}
	if err := m.VIPs.Update(vk, vv, ebpf.UpdateAny); err != nil {
		return fmt.Errorf("write service %s: %w", s.VIP, err)
	}
	return nil
}

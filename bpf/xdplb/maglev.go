package xdplb

import (
	"errors"
	"fmt"
	"hash/fnv"
	"math/big"
)

// ErrInvalidTable is returned for a Maglev table that cannot be built.
var ErrInvalidTable = errors.New("invalid maglev table")

// permutation is one backend's preference order over the table's slots,
// (offset + j*skip) mod size, as in the Maglev paper (NSDI'16, §3.4).
type permutation struct {
	offset, skip, next uint64
}

func newPermutation(name string, size uint64) permutation {
	h := func(salt string) uint64 {
		f := fnv.New64a()
		_, _ = f.Write([]byte(salt))
		_, _ = f.Write([]byte(name))
		return f.Sum64()
	}
	return permutation{offset: h("offset:") % size, skip: h("skip:")%(size-1) + 1}
}

// claim returns the backend's next preferred slot that is still free.
func (p *permutation) claim(table []int) int {
	size := uint64(len(table))
	for {
		slot := (p.offset + p.next*p.skip) % size
		p.next++
		if table[slot] < 0 {
			return int(slot)
		}
	}
}

func checkTable(backends []string, size int) error {
	if len(backends) == 0 {
		return fmt.Errorf("%w: no backends", ErrInvalidTable)
	}
	if size < len(backends) || !big.NewInt(int64(size)).ProbablyPrime(20) {
		return fmt.Errorf("%w: size %d must be a prime of at least the number of backends (%d)", ErrInvalidTable, size, len(backends))
	}
	seen := make(map[string]bool, len(backends))
	for _, b := range backends {
		if seen[b] {
			return fmt.Errorf("%w: backend %q twice", ErrInvalidTable, b)
		}
		seen[b] = true
	}
	return nil
}

// MaglevTable builds the Maglev lookup table of the paper: size slots (a
// prime), each holding an index into backends, filled by letting the
// backends take turns claiming their next preferred free slot. Backends are
// named (for example "10.0.0.1:80"); the table depends only on the names
// and their order, so every node computes the same table.
func MaglevTable(backends []string, size int) ([]int, error) {
	if err := checkTable(backends, size); err != nil {
		return nil, err
	}
	table := make([]int, size)
	for i := range table {
		table[i] = -1
	}
	perms := make([]permutation, len(backends))
	for i, b := range backends {
		perms[i] = newPermutation(b, uint64(size))
	}
	for filled := 0; ; {
		for i := range perms {
			table[perms[i].claim(table)] = i
			if filled++; filled == size {
				return table, nil
			}
		}
	}
}

// MaglevRebuild builds a table for backends that keeps every slot of prev
// (a table for prevBackends) whose backend is still present, as long as that
// backend does not own more than its fair share (size/len(backends), +1 for
// the first size%len(backends)); the freed slots are claimed Maglev-style by
// the backends below their share. Removing a backend therefore moves only
// the flows of that backend, and adding one moves only flows to it, while
// every backend ends within one slot of its fair share. With prev nil it
// builds a perfectly balanced Maglev table.
func MaglevRebuild(prev []int, prevBackends, backends []string, size int) ([]int, error) {
	if err := checkTable(backends, size); err != nil {
		return nil, err
	}
	if prev != nil && len(prev) != size {
		return nil, fmt.Errorf("%w: previous table has %d slots, want %d", ErrInvalidTable, len(prev), size)
	}
	index := make(map[string]int, len(backends))
	for i, b := range backends {
		index[b] = i
	}
	quota := make([]int, len(backends))
	for i := range quota {
		quota[i] = size / len(backends)
		if i < size%len(backends) {
			quota[i]++
		}
	}
	owned := make([]int, len(backends))
	table := make([]int, size)
	free := 0
	for slot := range table {
		table[slot] = -1
		if prev == nil || prev[slot] < 0 || prev[slot] >= len(prevBackends) {
			free++
			continue
		}
		i, ok := index[prevBackends[prev[slot]]]
		if !ok || owned[i] == quota[i] {
			free++
			continue
		}
		table[slot] = i
		owned[i]++
	}
	perms := make([]permutation, len(backends))
	for i, b := range backends {
		perms[i] = newPermutation(b, uint64(size))
	}
	for free > 0 {
		for i := range perms {
			if owned[i] == quota[i] {
				continue
			}
			table[perms[i].claim(table)] = i
			owned[i]++
			if free--; free == 0 {
				break
			}
		}
	}
	return table, nil
}

//go:build linux

package sklookup

import "github.com/cilium/ebpf"

// Spec returns the collection spec of the embedded ELF object.
func Spec() (*ebpf.CollectionSpec, error) {
	return loadSklookup()
}

//go:build linux

package xdpfilter

import "github.com/cilium/ebpf"

// Spec returns the collection spec of the embedded ELF object, ready to be
// adjusted (constants, map sizes) and loaded.
func Spec() (*ebpf.CollectionSpec, error) {
	return loadXdpfilter()
}

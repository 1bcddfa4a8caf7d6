//go:build linux

package netfilter

import "github.com/cilium/ebpf"

// Spec returns the collection spec of the embedded ELF object.
func Spec() (*ebpf.CollectionSpec, error) {
	return loadNetfilter()
}

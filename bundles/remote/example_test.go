package remote_test

import (
	"fmt"

	"github.com/bpfleet/bpfleet/bundles/remote"
)

func ExampleParseReference() {
	r, err := remote.ParseReference("registry.example.com/ebpf/xdp-pod-filter:0.1.0")
	if err != nil {
		panic(err)
	}
	fmt.Println(r.Registry)
	fmt.Println(r.Repository)
	fmt.Println(r.Tag)
	// Output:
	// registry.example.com
	// registry.example.com/ebpf/xdp-pod-filter
	// 0.1.0
}

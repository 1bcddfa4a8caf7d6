package build_test

import (
	"fmt"

	"github.com/bpfleet/bpfleet/bundles/build"
)

func ExampleParseSpec() {
	spec, err := build.ParseSpec([]byte(`
name: xdp-pod-filter
version: 0.1.0
objects:
  - file: xdpfilter_bpfel.o
programs:
  - name: xdp_pod_filter
    attach: xdp
metricMaps: [rule_hits]
minKernel: "6.1"
`))
	if err != nil {
		panic(err)
	}
	fmt.Println(spec.Name, spec.Objects[0].File, spec.Programs[0].Attach)

	_, err = build.ParseSpec([]byte("name: x\nobjects: [{file: ../x.o}]\nprograms: [{name: p, attach: xdp}]"))
	fmt.Println(err)
	// Output:
	// xdp-pod-filter xdpfilter_bpfel.o xdp
	// bundle.yaml: objects[0].file: invalid bundle: "../x.o" is not a local path below bundle.yaml
}

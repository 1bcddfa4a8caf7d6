package format_test

import (
	"errors"
	"fmt"

	"github.com/bpfleet/bpfleet/bundles"
	"github.com/bpfleet/bpfleet/bundles/format"
)

func ExampleParseManifest() {
	config := []byte(`{
	  "schemaVersion": 1,
	  "name": "xdp-pod-filter",
	  "objects": [{"name": "../../etc/shadow", "digest": "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "size": 1, "endianness": "little"}],
	  "programs": []
	}`)
	_, err := format.ParseManifest(config)
	fmt.Println(errors.Is(err, bundles.ErrBundleInvalid))
	fmt.Println(err)
	// Output:
	// true
	// objects[0].name: invalid bundle: file name "../../etc/shadow" is a path
}

package registry_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"syscall"
	"testing"

	"github.com/bpfleet/bpfleet/bundles/remote"
	"github.com/bpfleet/bpfleet/test/support/registry"
	"github.com/bpfleet/bpfleet/test/support/registry/testbundle"
)

func TestRegistries(t *testing.T) {
	starts := map[string]func(t *testing.T) *registry.Registry{
		"in-process":      func(t *testing.T) *registry.Registry { return registry.Start(t, registry.Options{}) },
		"docker-registry": func(t *testing.T) *registry.Registry { return registry.StartDistribution(t) },
	}
	for name, start := range starts {
		t.Run(name, func(t *testing.T) {
			reg := start(t)
			_, digest := testbundle.Push(t, reg, "ebpf/xdp", "v1", testbundle.Source{})
			b, err := remote.New(remote.Options{}).Fetch(context.Background(), reg.Repository("ebpf/xdp"), digest)
			if err != nil {
				t.Fatal(err)
			}
			layer := b.Manifest.Objects[0].Digest

			reg.TamperBlob(t, layer, []byte("tampered"))
			resp, err := http.Get("http://" + reg.Host + "/v2/ebpf/xdp/blobs/" + layer)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if !bytes.Equal(body, []byte("tampered")) {
				t.Fatalf("registry serves %q after TamperBlob, want the tampered bytes", body)
			}

			reg.Stop()
			reg.Stop() // idempotent
			if _, err := http.Get("http://" + reg.Host + "/v2/"); !errors.Is(err, syscall.ECONNREFUSED) {
				t.Fatalf("GET after Stop = %v, want connection refused", err)
			}
		})
	}
}

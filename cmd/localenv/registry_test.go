package localenv

import (
	"bytes"
	"context"
	"net"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	ggcrremote "github.com/google/go-containerregistry/pkg/v1/remote"
)

// TestRegistrySurvivesStop: the embedded registry's tags outlive Stop (the
// teardown after Ctrl-C) and come back when local mode starts again on the
// same state dir, on another port.
func TestRegistrySurvivesStop(t *testing.T) {
	stateDir := t.TempDir()
	run := func(port int) (*Env, *bytes.Buffer) {
		t.Helper()
		var out bytes.Buffer
		opts := Options{StateDir: stateDir, RegistryPort: port, Out: &out}
		opts.defaults()
		e := &Env{opts: opts}
		if err := e.startRegistry(context.Background()); err != nil {
			t.Fatalf("start registry: %v", err)
		}
		t.Cleanup(func() { _ = e.Stop(context.Background()) })
		return e, &out
	}
	first := freePort(t)
	e, _ := run(first)
	img, err := random.Image(256, 1)
	if err != nil {
		t.Fatal(err)
	}
	want, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	tag, err := name.NewTag(e.Registry + "/bpfleet/pod-filter:v1")
	if err != nil {
		t.Fatal(err)
	}
	if err := ggcrremote.Write(tag, img); err != nil {
		t.Fatalf("push: %v", err)
	}
	if err := e.Stop(context.Background()); err != nil {
		t.Fatalf("stop: %v", err)
	}

	second := freePort(t)
	for second == first {
		second = freePort(t)
	}
	e2, out := run(second)
	if !strings.Contains(out.String(), "1 manifest writes restored") {
		t.Errorf("progress does not say what was restored:\n%s", out.String())
	}
	tag2, err := name.NewTag(e2.Registry + "/bpfleet/pod-filter:v1")
	if err != nil {
		t.Fatal(err)
	}
	desc, err := ggcrremote.Head(tag2)
	if err != nil {
		t.Fatalf("v1 after the restart: %v", err)
	}
	if desc.Digest != want {
		t.Errorf("v1 after the restart is %s, want %s", desc.Digest, want)
	}
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

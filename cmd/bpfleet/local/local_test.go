package local

import (
	"bytes"
	"context"
	"net"
	"strings"
	"testing"

	"github.com/bpfleet/bpfleet/test/envtest"
	"github.com/bpfleet/bpfleet/test/privileged"
)

// TestStartRefusesClearly: prerequisites that do not hold stop Start at its
// first step with a message saying what to do, before anything is started.
func TestStartRefusesClearly(t *testing.T) {
	privileged.RequireRoot(t)
	root, err := envtest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	port := taken.Addr().(*net.TCPAddr).Port

	tests := []struct {
		name string
		opts Options
		// want is a fragment of the error.
		want string
	}{
		{
			name: "apiserver port taken",
			opts: Options{RepoDir: root, APIPort: port, RegistryPort: port + 1},
			want: "is taken (is another bpfleet local running?",
		},
		{
			name: "registry port taken",
			opts: Options{RepoDir: root, APIPort: port + 1, RegistryPort: port},
			want: "is taken",
		},
		{
			name: "control plane not built",
			opts: Options{RepoDir: t.TempDir()},
			want: "run `make tools` first",
		},
		{
			name: "prefix too long for interface names",
			opts: Options{RepoDir: root, Prefix: "much-too-long-prefix"},
			want: "longer than 10 characters",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			tt.opts.Out = &out
			tt.opts.StateDir = t.TempDir()
			_, err := Start(context.Background(), tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("want an error containing %q, got %v", tt.want, err)
			}
			if !strings.Contains(out.String(), "[ 1] check prerequisites") || strings.Contains(out.String(), "[ 2]") {
				t.Errorf("want a stop at the first step, progress was:\n%s", out.String())
			}
		})
	}
}

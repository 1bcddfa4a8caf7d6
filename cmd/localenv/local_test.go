package localenv

import (
	"bytes"
	"context"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bpfleet/bpfleet/cmd/localenv/orphans"
	"github.com/bpfleet/bpfleet/test/support/envtest"
	"github.com/bpfleet/bpfleet/test/support/privileged"
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

// TestStartStopsWhatAKilledRunLeft: a run killed with SIGKILL leaves its
// etcd and kube-apiserver running, recorded in the state dir; the next
// Start stops them in its first step, before it checks the ports.
func TestStartStopsWhatAKilledRunLeft(t *testing.T) {
	privileged.RequireRoot(t)
	root, err := envtest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	left := exec.Command("sleep", "300") // stands for the killed run's etcd
	if err := left.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- left.Wait() }()
	t.Cleanup(func() { _ = left.Process.Kill() })
	state := t.TempDir()
	if err := orphans.Record(filepath.Join(state, "pids"), left.Process.Pid); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	// The long prefix stops Start right after the clean-up.
	_, err = Start(context.Background(), Options{RepoDir: root, StateDir: state, Prefix: "much-too-long-prefix", Out: &out})
	if err == nil || !strings.Contains(err.Error(), "longer than 10 characters") {
		t.Fatalf("Start: %v", err)
	}
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		t.Fatal("the process the killed run left still runs")
	}
	if !strings.Contains(out.String(), "stopped 1 processes a killed earlier run left running") {
		t.Errorf("progress does not say what it stopped:\n%s", out.String())
	}
}

package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bpfleet/bpfleet/nodeagent/controller"
	"github.com/bpfleet/bpfleet/test/support/envtest"
	"github.com/bpfleet/bpfleet/test/support/targets"
)

// TestMain runs the agent's main instead of the tests when the test binary
// is re-executed by runAgent.
func TestMain(m *testing.M) {
	if os.Getenv("BPFLEET_AGENT_TEST_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	// No operator runs here: the mirror writes the BpfProgramTargets the
	// agent reads, as the operator would.
	os.Exit(envtest.Run(m, &env, targets.Mirror))
}

var env *envtest.Env

// runAgent runs main in a child process with args and env, and returns its
// exit code and combined output.
func runAgent(t *testing.T, env []string, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(append(os.Environ(), "BPFLEET_AGENT_TEST_MAIN=1", "NODE_NAME="), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode(), string(out)
		}
		t.Fatalf("run agent: %v", err)
	}
	return 0, string(out)
}

func TestAgentRefusesToStart(t *testing.T) {
	dir := t.TempDir()
	kubeconfig := filepath.Join(dir, "kubeconfig")
	// A kubeconfig that loads but points nowhere: the agent must stop
	// before it connects.
	if err := os.WriteFile(kubeconfig, []byte(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
current-context: c
`), 0o600); err != nil {
		t.Fatal(err)
	}
	locked := filepath.Join(dir, "locked")
	unlock, err := controller.Lock(locked)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()

	tests := []struct {
		name     string
		env      []string
		args     []string
		wantCode int
		wantOut  string
	}{
		{
			name:     "no node name",
			args:     []string{"--metrics-bind-address=0", "--health-probe-bind-address=0"},
			wantCode: 2,
			wantOut:  "--node-name or $NODE_NAME is required",
		},
		{
			name:     "state dir held by another agent",
			env:      []string{"KUBECONFIG=" + kubeconfig, "NODE_NAME=n1"},
			args:     []string{"--state-dir", locked, "--metrics-bind-address=0", "--health-probe-bind-address=0"},
			wantCode: 1,
			wantOut:  "another bpfleet agent holds the state directory",
		},
		{
			name:     "unknown flag",
			args:     []string{"--no-such-flag"},
			wantCode: 2,
			wantOut:  "flag provided but not defined",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out := runAgent(t, tt.env, tt.args...)
			if code != tt.wantCode || !strings.Contains(out, tt.wantOut) {
				t.Fatalf("exit %d, output:\n%s\nwant exit %d and %q", code, out, tt.wantCode, tt.wantOut)
			}
		})
	}
}

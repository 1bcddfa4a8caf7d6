package caps_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bpfleet/bpfleet/test/caps"
)

// TestMain runs one scenario when started as a scenario process (see
// harness.run), the tests otherwise.
func TestMain(m *testing.M) {
	if name := os.Getenv(envScenario); name != "" {
		if err := runScenario(name); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// daemonSet is the manifest whose grant the tests check.
const daemonSet = "../../config/agent/daemonset.yaml"

// runLimit bounds every confined run: CI must not hang on one.
const runLimit = 60 * time.Second

func grant(t *testing.T) []string {
	t.Helper()
	g, err := caps.AgentCapabilities(daemonSet)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func TestAgentCapabilities(t *testing.T) {
	g := grant(t)
	// The table below and the DaemonSet must move together.
	if want := []string{"BPF", "PERFMON", "NET_ADMIN", "SYS_ADMIN", "SYS_PTRACE"}; !slices.Equal(g, want) {
		t.Fatalf("agent capabilities %v, the tests here were written for %v: update both", g, want)
	}
	for _, tc := range []struct {
		name, yaml, err string
	}{
		{name: "no agent container", yaml: "apiVersion: apps/v1\nkind: DaemonSet\nspec: {template: {spec: {containers: [{name: other}]}}}\n", err: "no such container"},
		{name: "no drop ALL", yaml: "apiVersion: apps/v1\nkind: DaemonSet\nspec: {template: {spec: {containers: [{name: agent, securityContext: {capabilities: {add: [BPF]}}}]}}}\n", err: "does not drop ALL"},
		{name: "privileged", yaml: "apiVersion: apps/v1\nkind: DaemonSet\nspec: {template: {spec: {containers: [{name: agent, securityContext: {privileged: true, capabilities: {drop: [ALL]}}}]}}}\n", err: "is privileged"},
		{name: "unknown field", yaml: "apiVersion: apps/v1\nkind: DaemonSet\nspec: {template: {spec: {containers: [{name: agent, capabilities: {add: [BPF]}}]}}}\n", err: "unknown field"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "ds.yaml")
			if err := os.WriteFile(path, []byte(tc.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			if _, err := caps.AgentCapabilities(path); err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("want an error containing %q, got %v", tc.err, err)
			}
		})
	}
}

// confined runs a command as root holding exactly capset, within runLimit,
// and returns its combined output and error.
func confined(t *testing.T, capset []string, env []string, prefix []string, cmd ...string) (string, time.Duration, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), runLimit)
	defer cancel()
	args := append(slices.Clone(prefix), "setpriv")
	args = append(append(args, caps.SetprivArgs(capset)...), cmd...)
	c := exec.CommandContext(ctx, args[0], args[1:]...)
	c.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	c.Stdout, c.Stderr = &out, &out
	start := time.Now()
	err := c.Run()
	took := time.Since(start)
	if ctx.Err() != nil {
		t.Fatalf("%s did not finish within %s:\n%s", strings.Join(args, " "), runLimit, out.String())
	}
	return out.String(), took, err
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

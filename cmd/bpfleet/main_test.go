package main_test

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bpfleet/bpfleet/test/support/privileged"
	"github.com/bpfleet/bpfleet/test/support/registry"
	"github.com/bpfleet/bpfleet/test/support/registry/testbundle"
)

// TestEndToEndWithDistribution runs the real binary against Debian's
// docker-registry: build → push → sign → verify → pull, and checks exit codes.
func TestEndToEndWithDistribution(t *testing.T) {
	goBin := privileged.RequireCommand(t, "go")
	reg := registry.StartDistribution(t)
	bin := filepath.Join(t.TempDir(), "bpfleet")
	if out, err := exec.Command(goBin, "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	work := t.TempDir()
	env := append(os.Environ(), "COSIGN_PASSWORD=e2e", "BPFLEET_LAYOUT="+filepath.Join(work, "layout"))
	run := func(args ...string) (string, int) {
		cmd := exec.Command(bin, append([]string{"bundle"}, args...)...)
		cmd.Env = env
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		code := 0
		if exitErr, ok := err.(*exec.ExitError); ok {
			code = exitErr.ExitCode()
		} else if err != nil {
			t.Fatalf("run %v: %v", args, err)
		}
		return out.String(), code
	}
	mustRun := func(args ...string) string {
		t.Helper()
		out, code := run(args...)
		if code != 0 {
			t.Fatalf("bpfleet bundle %s exited %d:\n%s", strings.Join(args, " "), code, out)
		}
		return out
	}

	src := testbundle.Dir(t, testbundle.Source{})
	ref := reg.Ref("ebpf/xdp-pod-filter", "0.1.0")
	mustRun("generate-key-pair", "--output-dir", work)
	mustRun("build", src, "-t", ref)
	mustRun("push", ref)
	if out, code := run("verify", "--key", filepath.Join(work, "cosign.pub"), ref); code == 0 || !strings.Contains(out, "not signed") {
		t.Fatalf("verify of unsigned bundle exited %d:\n%s", code, out)
	}
	mustRun("sign", "--key", filepath.Join(work, "cosign.key"), ref)
	if out := mustRun("verify", "--key", filepath.Join(work, "cosign.pub"), ref); !strings.Contains(out, "Verified") {
		t.Fatalf("verify:\n%s", out)
	}
	pulled := filepath.Join(work, "pulled")
	mustRun("pull", ref, "-o", pulled, "--key", filepath.Join(work, "cosign.pub"))
	want, _ := os.ReadFile(filepath.Join(src, testbundle.ObjectFile))
	if got, err := os.ReadFile(filepath.Join(pulled, testbundle.ObjectFile)); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("pulled ELF differs (%v)", err)
	}
	if out := mustRun("inspect", ref); !strings.Contains(out, "Signatures: 1") {
		t.Fatalf("inspect:\n%s", out)
	}

	// Failures exit non-zero with a message naming the problem.
	other := filepath.Join(work, "other")
	if err := os.Mkdir(other, 0o700); err != nil {
		t.Fatal(err)
	}
	mustRun("generate-key-pair", "--output-dir", other)
	if out, code := run("verify", "--key", filepath.Join(other, "cosign.pub"), ref); code != 1 || !strings.Contains(out, "no signature matches a trusted key") {
		t.Fatalf("verify with wrong key exited %d:\n%s", code, out)
	}
	if out, code := run("pull", reg.Ref("ebpf/missing", "v1")); code != 1 || !strings.Contains(out, "not found") {
		t.Fatalf("pull of missing bundle exited %d:\n%s", code, out)
	}
	// A layer tampered with in the registry's storage is refused.
	var info struct {
		Manifest struct {
			Objects []struct{ Digest string } `json:"objects"`
		} `json:"manifest"`
	}
	if err := json.Unmarshal([]byte(mustRun("inspect", "-o", "json", ref)), &info); err != nil {
		t.Fatal(err)
	}
	evil := bytes.Clone(want)
	evil[len(evil)-1] ^= 0xff
	reg.TamperBlob(t, info.Manifest.Objects[0].Digest, evil)
	if out, code := run("pull", ref, "-o", filepath.Join(work, "evil")); code != 1 || !strings.Contains(out, "content digest mismatch") {
		t.Fatalf("pull of tampered bundle exited %d:\n%s", code, out)
	}
	if _, err := os.Stat(filepath.Join(work, "evil", testbundle.ObjectFile)); !os.IsNotExist(err) {
		t.Fatalf("pull wrote the tampered ELF: %v", err)
	}

	reg.Stop()
	if out, code := run("inspect", "--timeout", "2s", ref); code != 1 || !strings.Contains(out, "registry unavailable") {
		t.Fatalf("inspect with registry down exited %d:\n%s", code, out)
	}
}

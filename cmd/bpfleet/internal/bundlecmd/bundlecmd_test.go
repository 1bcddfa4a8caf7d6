package bundlecmd_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bpfleet/bpfleet/bundles"
	"github.com/bpfleet/bpfleet/bundles/signing"
	"github.com/bpfleet/bpfleet/cmd/bpfleet/internal/bundlecmd"
	"github.com/bpfleet/bpfleet/test/support/registry"
	"github.com/bpfleet/bpfleet/test/support/registry/testbundle"
)

func run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := bundlecmd.NewBundleCommand()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	err := cmd.Execute()
	return out.String(), err
}

func mustRun(t *testing.T, args ...string) string {
	t.Helper()
	out, err := run(t, args...)
	if err != nil {
		t.Fatalf("bundle %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func TestBuildPushSignVerifyInspectPull(t *testing.T) {
	t.Setenv(signing.PasswordEnv, "s3cret")
	reg := registry.Start(t, registry.Options{})
	src := testbundle.Dir(t, testbundle.Source{})
	layout := t.TempDir()
	keys := t.TempDir()
	otherKeys := t.TempDir()
	ref := reg.Ref("ebpf/xdp", "v1")

	mustRun(t, "generate-key-pair", "--output-dir", keys)
	mustRun(t, "generate-key-pair", "--output-dir", otherKeys)
	out := mustRun(t, "build", src, "-t", ref, "--layout", layout)
	if !strings.Contains(out, "xdp_pod_filter") || !strings.Contains(out, "Digest: sha256:") {
		t.Fatalf("build output lacks the program or digest:\n%s", out)
	}
	out = mustRun(t, "push", ref, "--layout", layout)
	if !strings.Contains(out, reg.Repository("ebpf/xdp")+"@sha256:") {
		t.Fatalf("push output lacks the digest reference:\n%s", out)
	}

	pub := filepath.Join(keys, signing.PublicKeyFile)
	if _, err := run(t, "verify", "--key", pub, ref); !errors.Is(err, bundles.ErrUnsigned) || !strings.Contains(err.Error(), "is not signed") {
		t.Fatalf("verify unsigned = %v, want ErrUnsigned", err)
	}
	mustRun(t, "sign", "--key", filepath.Join(keys, signing.PrivateKeyFile), ref)
	if out := mustRun(t, "verify", "--key", pub, ref); !strings.Contains(out, "Verified") || !strings.Contains(out, "SHA256:") {
		t.Fatalf("verify output:\n%s", out)
	}
	if _, err := run(t, "verify", "--key", filepath.Join(otherKeys, signing.PublicKeyFile), ref); !errors.Is(err, bundles.ErrSignatureMismatch) {
		t.Fatalf("verify with wrong key = %v, want ErrSignatureMismatch", err)
	}
	// Either of two keys may have signed.
	mustRun(t, "verify", "--key", filepath.Join(otherKeys, signing.PublicKeyFile), "--key", pub, ref)

	var info bundlecmd.InspectOutput
	if err := json.Unmarshal([]byte(mustRun(t, "inspect", "-o", "json", ref)), &info); err != nil {
		t.Fatal(err)
	}
	if info.Signatures != 1 || info.Manifest.Name != "test-bundle" || len(info.Manifest.Programs) != 2 || !strings.HasPrefix(info.Digest, "sha256:") {
		t.Fatalf("inspect = %+v", info)
	}
	if text := mustRun(t, "inspect", ref); !strings.Contains(text, "rule_hits") || !strings.Contains(text, "Signatures: 1") {
		t.Fatalf("inspect text:\n%s", text)
	}

	pulled := t.TempDir()
	mustRun(t, "pull", ref, "-o", pulled, "--key", pub)
	want, _ := os.ReadFile(filepath.Join(src, testbundle.ObjectFile))
	got, err := os.ReadFile(filepath.Join(pulled, testbundle.ObjectFile))
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("pulled ELF differs from the built one (%v)", err)
	}
	if _, err := os.Stat(filepath.Join(pulled, "bundle.json")); err != nil {
		t.Fatal(err)
	}
	if _, err := run(t, "pull", ref, "-o", t.TempDir(), "--key", filepath.Join(otherKeys, signing.PublicKeyFile)); !errors.Is(err, bundles.ErrSignatureMismatch) {
		t.Fatalf("pull with wrong key = %v, want ErrSignatureMismatch", err)
	}
}

func TestCommandErrors(t *testing.T) {
	t.Setenv(signing.PasswordEnv, "")
	reg := registry.Start(t, registry.Options{})
	tests := []struct {
		args []string // command line
		want string   // text the error must contain
	}{
		{args: []string{"build", t.TempDir(), "-t", reg.Ref("x/y", "v1")}, want: "bundle.yaml"},
		{args: []string{"build", t.TempDir()}, want: `required flag(s) "tag" not set`},
		{args: []string{"push", reg.Ref("x/y", "v1"), "--layout", t.TempDir()}, want: "not found"},
		{args: []string{"inspect", reg.Ref("x/y", "v1")}, want: "not found"},
		{args: []string{"inspect", "-o", "yaml", reg.Ref("x/y", "v1")}, want: "want text or json"},
		{args: []string{"verify", reg.Ref("x/y", "v1")}, want: `required flag(s) "key" not set`},
		{args: []string{"pull", "not a ref"}, want: "invalid bundle"},
	}
	for _, tt := range tests {
		_, err := run(t, tt.args...)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("bundle %s = %v, want an error mentioning %q", strings.Join(tt.args, " "), err, tt.want)
		}
	}
}
